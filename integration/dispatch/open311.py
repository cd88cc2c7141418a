"""An Open311 GeoReport v2 client: the dispatch platform as a GeoReport server.

Endpoints (each with the format suffix, ``.json`` by default): ``GET services``,
``POST requests`` (form-encoded), ``GET requests`` and ``GET requests/{id}`` for
statuses, ``GET tokens/{token}`` for servers that answer a POST with a token.

Real servers stray from the spec, so answers are read liberally: JSON or XML whatever
was asked for, errors as an array or a single object, a POST answered with the whole
request object, ids as numbers or strings. GeoReport v2 has no idempotency keys, so
a create that may already have reached the server first looks the case up by the
``[case number]`` that starts every description we send.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml
from aiohttp import ClientSession

from integration.dispatch.errors import (
    DispatchError,
    DispatchNotFound,
    DispatchProtocolError,
    DispatchRejected,
    DispatchRetryAfter,
    DispatchUnavailable,
    DispatchUnsupported,
)
from integration.dispatch.http import check_status, is_html, parse_json, send
from integration.dispatch.types import CaseTicket, Receipt, StatusReport
from integration.dispatch.webhook import parse_time
from integration.models import CaseStatus

log = logging.getLogger(__name__)

DEFAULT_MAP = Path(__file__).parent / "open311_map.yml"
DEFAULT_KEY = "__default__"
LOOKUP_SLACK = timedelta(minutes=10)  # clock skew allowed between us and the server
BATCH = 50  # service_request_ids per status query

# A POST the server answers with 5xx this many times in a row, while it answers other
# calls, is reported as the request's fault (a field the server requires and we do not
# send), so the dead-letter reason tells staff what to fix.
SAME_REQUEST_FAULTS = 3


@dataclass(frozen=True, slots=True)
class Place:
    """Coordinates for a typed address: ``near`` names what they are the centre of
    (a community, a street, the district) when they are only approximate."""

    latitude: float
    longitude: float
    near: str = ""


Locate = Callable[[str], Place | None]


@dataclass(frozen=True, slots=True)
class ServiceMap:
    """The mapping file: category words and codes, extra attributes, status words."""

    categories: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]  # codes, words
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    statuses: Mapping[str, CaseStatus] = field(default_factory=dict)
    open_with_notes: CaseStatus | None = None
    # Added to the description when the coordinates sent are only a centre ({near}).
    approximate_note: str = "（坐标为{near}的大致位置，请以地址为准）"

    @classmethod
    def load(cls, path: Path | None = None) -> ServiceMap:
        """Read a mapping file (the shipped default when ``path`` is None)."""
        document = yaml.safe_load((path or DEFAULT_MAP).read_text(encoding="utf-8")) or {}

        def entry(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
            value = value or {}
            return (
                tuple(str(c) for c in value.get("codes") or ()),
                tuple(str(w).lower() for w in value.get("words") or ()),
            )

        categories = {k: entry(v) for k, v in (document.get("categories") or {}).items()}
        categories[DEFAULT_KEY] = entry(document.get("default"))
        statuses = {
            str(k).lower(): CaseStatus(v) for k, v in (document.get("statuses") or {}).items()
        }
        with_notes = document.get("open_with_notes")
        return cls(
            categories=categories,
            attributes={
                k: {str(a): str(b) for a, b in (v or {}).items()}
                for k, v in (document.get("attributes") or {}).items()
            },
            statuses=statuses,
            open_with_notes=CaseStatus(with_notes) if with_notes else None,
            **(
                {"approximate_note": str(document["approximate_note"])}
                if document.get("approximate_note")
                else {}
            ),
        )

    def resolve(self, services: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Each category's service code among the platform's ``services``."""
        codes = {str(s.get("service_code", "")) for s in services} - {""}
        resolved: dict[str, str] = {}
        for category, (wanted, words) in self.categories.items():
            code = next((c for c in wanted if c in codes), None)
            if code is None:
                code = next((_code(s) for s in services if _mentions(s, words)), None)
            if code:
                resolved[category] = code
        return resolved

    def status(self, word: str, notes: str) -> CaseStatus | None:
        """Our status for a GeoReport status word and its notes; None when unknown."""
        word = word.strip().lower().replace(" ", "_")
        if word == "open" and notes.strip() and self.open_with_notes:
            return self.open_with_notes
        return self.statuses.get(word)


def _code(service: Mapping[str, Any]) -> str:
    return str(service.get("service_code", ""))


def _mentions(service: Mapping[str, Any], words: Sequence[str]) -> bool:
    fields = ("service_name", "keywords", "group", "description")
    text = " ".join(str(service.get(f) or "") for f in fields).lower()
    return any(word in text for word in words)


def decode(text: str) -> Any:
    """A GeoReport answer as Python data, JSON or XML, whichever it is."""
    if not text.strip():
        return None
    if text.lstrip().startswith("<") and not is_html(text):
        return _from_xml(text)
    return parse_json(text)


def _from_xml(text: str) -> Any:
    """``<service_requests><request>…`` as a list of dicts; a flat element as one dict.

    The standard library's expat refuses entity expansion attacks and never fetches
    external entities.
    """
    try:
        root = ElementTree.fromstring(text.strip())  # noqa: S314 (see the docstring)
    except ElementTree.ParseError as exc:
        raise DispatchProtocolError(f"malformed XML from the platform: {exc}") from None
    children = list(root)
    if children and all(len(child) == 0 for child in children):
        return {child.tag: (child.text or "").strip() for child in children}
    return [{leaf.tag: (leaf.text or "").strip() for leaf in child} for child in children]


def requests_in(document: Any) -> list[Mapping[str, Any]]:
    """The service-request objects in an answer, however it is wrapped."""
    if isinstance(document, list):
        return [item for item in document if isinstance(item, Mapping)]
    if isinstance(document, Mapping):
        if "service_request_id" in document or "token" in document:
            return [document]
        for key in ("service_requests", "service_request", "requests", "request"):
            if key in document:
                return requests_in(document[key])
    return []


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


class Open311Platform:
    """A GeoReport v2 server as our dispatch platform (it cannot reopen requests)."""

    name = "open311"
    can_reopen = False
    can_urge = False

    def __init__(
        self,
        http: ClientSession,
        base_url: str,
        *,
        api_key: str = "",
        jurisdiction: str = "",
        services: ServiceMap | None = None,
        fmt: str = "json",
        locate: Locate | None = None,
        services_ttl: float = 3600.0,
    ) -> None:
        self._http = http
        self._base = base_url if base_url.endswith("/") else base_url + "/"
        self._api_key = api_key
        self._jurisdiction = jurisdiction
        self._map = services or ServiceMap.load()
        self._fmt = fmt
        self._locate = locate
        self._ttl = services_ttl
        self._codes: dict[str, str] = {}
        self._codes_at = 0.0
        # case number -> (hash of the request, 5xx answers to it in a row); in memory
        # only: it words a reason, and a restart merely counts again.
        self._faults: dict[str, tuple[str, int]] = {}

    async def create(self, ticket: CaseTicket, *, maybe_sent: bool) -> Receipt:
        """POST the request; first look for it when an earlier attempt may have landed."""
        code = await self.service_code(ticket.category)
        if maybe_sent and (found := await self.find(ticket, code)):
            log.info("case %s was already on the platform as %s", ticket.number, found)
            return Receipt(platform_id=found)
        form = self._form(ticket, code)
        try:
            document = await self._call("POST", "requests", data=form)
        except DispatchRejected as exc:
            if any("service_code" in f"{c} {d}".lower() for c, d in exc.errors):
                self._codes_at = 0.0  # the service list changed: read it again next time
            raise
        except DispatchUnavailable as exc:
            await self._judge_server_error(ticket.number, form, exc)
            raise
        self._faults.pop(ticket.number, None)
        [request, *_] = requests_in(document) or [{}]
        platform_id = _text(request.get("service_request_id"))
        token = _text(request.get("token"))
        if not platform_id and not token:
            raise DispatchProtocolError("the POST answer has neither service_request_id nor token")
        return Receipt(platform_id=platform_id or None, token=token or None)

    async def _judge_server_error(
        self, number: str, form: Mapping[str, str], exc: DispatchUnavailable
    ) -> None:
        """Say so when a 5xx looks like the request's fault rather than the server's.

        A server that is down fails every call. One that answers ``GET services`` at
        once but answers the same POST with 5xx, ``SAME_REQUEST_FAULTS`` times in a
        row, most likely lacks a field it requires (GeoReport servers are known to
        answer 500 without coordinates). The attempt is still retried (a server may
        yet recover), but with a reason staff can act on when it reaches the dead
        letters, instead of "HTTP 500: -".
        """
        if exc.status is None or exc.status < 500 or isinstance(exc, DispatchRetryAfter):
            return  # unreachable, timed out, or asked to come back later
        try:
            await self._call("GET", "services")
        except DispatchError:
            self._faults.pop(number, None)
            return  # the server is in trouble, not the request
        digest = hashlib.sha256(repr(sorted(form.items())).encode()).hexdigest()
        seen, count = self._faults.get(number, ("", 0))
        count = count + 1 if seen == digest else 1
        self._faults[number] = (digest, count)
        if count < SAME_REQUEST_FAULTS:
            return
        fields = ", ".join(sorted(k for k in form if k not in ("api_key", "description")))
        raise DispatchUnavailable(
            f"the platform answered HTTP {exc.status} to this same request {count} times "
            f"in a row while answering other calls: it likely requires a field we do not "
            f"send (sent: {fields}); check its service definition and the mapping file. "
            f"Last answer: {exc}",
            exc.status,
        ) from exc

    async def resolve_token(self, token: str) -> str | None:
        """``GET tokens/{token}``: the request's id once the server has made it."""
        try:
            document = await self._call("GET", f"tokens/{token}")
        except DispatchNotFound:
            return None
        ids = [_text(r.get("service_request_id")) for r in requests_in(document)]
        return next((i for i in ids if i), None)

    async def statuses(self, platform_ids: Sequence[str]) -> list[StatusReport]:
        """``GET requests/{id}`` for one id, ``GET requests?service_request_id=a,b`` for more."""
        chunks = [platform_ids[i : i + BATCH] for i in range(0, len(platform_ids), BATCH)]
        answers = await asyncio.gather(*(self._requests(chunk) for chunk in chunks))
        return [r for found in answers for r in map(self._report, found) if r is not None]

    async def _requests(self, chunk: Sequence[str]) -> list[Mapping[str, Any]]:
        try:
            if len(chunk) == 1:
                return requests_in(await self._call("GET", f"requests/{chunk[0]}"))
            params = {"service_request_id": ",".join(chunk)}
            return requests_in(await self._call("GET", "requests", params=params))
        except DispatchNotFound:
            return []

    async def reopen(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """GeoReport v2 has no way to reopen a request."""
        raise DispatchUnsupported("GeoReport v2 cannot reopen a service request")

    async def urge(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """GeoReport v2 has no way to add to a request; staff read urges in the console."""
        raise DispatchUnsupported("GeoReport v2 cannot take an urge")

    async def service_code(self, category: str) -> str:
        """The service code for a category, from the mapping file and ``GET services``."""
        if not self._codes or time.monotonic() - self._codes_at > self._ttl:
            services = requests_or_services(await self._call("GET", "services"))
            self._codes, self._codes_at = self._map.resolve(services), time.monotonic()
        code = self._codes.get(category) or self._codes.get(DEFAULT_KEY)
        if not code:
            raise DispatchRejected(400, [("service_code", f"no service for {category!r}")])
        return code

    async def find(self, ticket: CaseTicket, code: str) -> str | None:
        """The id of the request we may already have created for this case, if any."""
        now = datetime.now(UTC)
        params = {
            "service_code": code,
            "start_date": (ticket.created_at - LOOKUP_SLACK).isoformat(timespec="seconds"),
            "end_date": (now + LOOKUP_SLACK).isoformat(timespec="seconds"),
        }
        marker = f"[{ticket.number}]"
        for request in requests_in(await self._call("GET", "requests", params=params)):
            if marker in _text(request.get("description")):
                return _text(request.get("service_request_id")) or None
        return None

    def _form(self, ticket: CaseTicket, code: str) -> dict[str, str]:
        form = {"service_code": code, "description": f"[{ticket.number}] {ticket.description}"}
        if self._api_key:
            form["api_key"] = self._api_key
        if self._jurisdiction:
            form["jurisdiction_id"] = self._jurisdiction
        if ticket.latitude is not None and ticket.longitude is not None:
            form["lat"], form["long"] = f"{ticket.latitude:.6f}", f"{ticket.longitude:.6f}"
        elif ticket.address and self._locate and (place := self._locate(ticket.address)):
            # Many servers need coordinates even when they accept an address: the best
            # known, said to be approximate when they are only a community's or street's.
            form["lat"], form["long"] = f"{place.latitude:.6f}", f"{place.longitude:.6f}"
            if place.near:
                form["description"] += self._map.approximate_note.format(near=place.near)
        if ticket.address:
            form["address_string"] = ticket.address
            # Not in the spec, but widely deployed servers read it (and fail without it).
            form["address"] = ticket.address
        media = next((u for u in ticket.media_urls if u.startswith(("http://", "https://"))), "")
        if media:
            form["media_url"] = media
        for name, value in self._map.attributes.get(ticket.category, {}).items():
            form[f"attribute[{name}]"] = value.replace("{number}", ticket.number)
        return form

    def _report(self, request: Mapping[str, Any]) -> StatusReport | None:
        platform_id = _text(request.get("service_request_id"))
        notes = _text(request.get("status_notes"))
        status = self._map.status(_text(request.get("status")), notes)
        if not platform_id or status is None:
            log.warning("unreadable status %r of request %r", request.get("status"), platform_id)
            return None
        return StatusReport(
            platform_id=platform_id,
            status=status,
            note=notes[:2000],
            updated_at=parse_time(request.get("updated_datetime")),
        )

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        url = f"{self._base}{path}.{self._fmt}"
        if self._jurisdiction and method == "GET":
            options["params"] = {"jurisdiction_id": self._jurisdiction, **options.get("params", {})}
        status, text, headers = await send(self._http, method, url, **options)
        try:
            document = decode(text)
        except DispatchProtocolError:
            if 200 <= status < 300:
                raise
            document = text[:300] if not is_html(text) else None  # an HTML error page
        check_status(status, document, headers)
        return document


def requests_or_services(document: Any) -> list[Mapping[str, Any]]:
    """The service objects of a ``GET services`` answer."""
    if isinstance(document, Mapping):
        document = document.get("services", document.get("service", [document]))
    return [s for s in document or [] if isinstance(s, Mapping)]
