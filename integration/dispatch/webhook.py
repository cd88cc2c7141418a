"""A generic REST dispatch platform: cases POSTed as JSON, statuses called back signed.

Wire format (documented for the platform's integrators in the README):

- create: ``POST {YIMEN_DISPATCH_URL}`` with a JSON case (``reference`` is our case
  number) and ``Idempotency-Key``; answer 2xx, or 409 for a key already seen, with
  ``{"id": "<platform id>"}``.
- reopen: ``POST {YIMEN_DISPATCH_URL}/{id}/reopen`` with ``{"reference", "reason",
  "comment"}`` and its own ``Idempotency-Key``.
- urge (催办): ``POST {YIMEN_DISPATCH_URL}/{id}/urge`` with ``{"reference", "comment"}``
  (the resident's words, phone and ID numbers masked) and its own ``Idempotency-Key``.
- status: ``GET {YIMEN_DISPATCH_URL}/{id}`` answers a status document, the same shape
  as a callback: ``{"id", "reference", "status", "note", "updated_at"}``.

Every request we send is signed like the callbacks we accept (integration.dispatch.signing).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import ClientSession

from integration.dispatch.errors import DispatchNotFound, DispatchProtocolError, DispatchRejected
from integration.dispatch.http import check_status, parse_json, send
from integration.dispatch.signing import signed_headers
from integration.dispatch.types import CaseTicket, Receipt, StatusReport
from integration.models import CaseStatus

# Status words a platform may use, beside our own lifecycle's names.
STATUS_ALIASES: Mapping[str, CaseStatus] = {
    "new": CaseStatus.received,
    "open": CaseStatus.accepted,
    "acknowledged": CaseStatus.accepted,
    "assigned": CaseStatus.dispatched,
    "processing": CaseStatus.in_progress,
    "in progress": CaseStatus.in_progress,
    "inprogress": CaseStatus.in_progress,
    "done": CaseStatus.resolved,
    "completed": CaseStatus.resolved,
    "solved": CaseStatus.resolved,
    "refused": CaseStatus.rejected,
}
ID_FIELDS = ("id", "case_id", "platform_id", "service_request_id")


def parse_status(word: Any) -> CaseStatus:
    """Our status for a platform's status word; ``DispatchProtocolError`` if unknown."""
    text = str(word or "").strip().lower().replace("-", "_")
    if text in CaseStatus.__members__:
        return CaseStatus(text)
    if text.replace("_", " ") in STATUS_ALIASES:
        return STATUS_ALIASES[text.replace("_", " ")]
    raise DispatchProtocolError(f"unknown status {word!r}")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with its offset; None when absent, an error when unreadable."""
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise DispatchProtocolError(f"time without an offset {value!r}")
        # In UTC now: 0001-01-01T00:00-23:59 or 9999-12-31T23:59+…, which no platform
        # means, overflow here rather than in a comparison later.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise DispatchProtocolError(f"unreadable time {value!r}") from None


def platform_id_of(document: Any) -> str | None:
    """The platform id in an answer: a top-level id field, or one in a nested object."""
    if isinstance(document, list) and document:
        return platform_id_of(document[0])
    if not isinstance(document, Mapping):
        return None
    for field in ID_FIELDS:
        value = document.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    for value in document.values():
        if isinstance(value, Mapping) and (found := platform_id_of(value)):
            return found
    return None


def parse_report(document: Any) -> StatusReport:
    """A status document (a callback body, or a GET answer) as a StatusReport."""
    if not isinstance(document, Mapping):
        raise DispatchProtocolError("a status document must be a JSON object")
    platform_id = platform_id_of(document)
    reference = document.get("reference")
    if platform_id is None and not reference:
        raise DispatchProtocolError("a status document needs an id or a reference")
    note = document.get("note") or document.get("status_notes") or ""
    return StatusReport(
        platform_id=platform_id or "",
        status=parse_status(document.get("status")),
        note=str(note)[:2000],
        updated_at=parse_time(document.get("updated_at")),
        reference=str(reference).upper() if reference else None,
    )


class WebhookPlatform:
    """Speaks the generic REST platform's JSON, signing every request we send."""

    name = "webhook"
    can_reopen = True
    can_urge = True

    def __init__(
        self, http: ClientSession, url: str, *, secret: str = "", callback_url: str = ""
    ) -> None:
        self._http = http
        self._url = url.rstrip("/")
        self._secret = secret
        self._callback_url = callback_url

    async def create(self, ticket: CaseTicket, *, maybe_sent: bool) -> Receipt:
        """POST the case; the idempotency key makes a repeated POST return the same id."""
        body = {
            "reference": ticket.number,
            "category": ticket.category,
            "description": ticket.description,
            "address": ticket.address,
            "latitude": ticket.latitude,
            "longitude": ticket.longitude,
            "media": list(ticket.media_urls),
            "created_at": ticket.created_at.isoformat(),
        }
        if self._callback_url:
            body["callback_url"] = self._callback_url
        document = await self._post(self._url, body, ticket.key, accept_conflict=True)
        platform_id = platform_id_of(document)
        if platform_id is None:
            raise DispatchProtocolError("the platform's answer has no case id")
        return Receipt(platform_id=platform_id)

    async def resolve_token(self, token: str) -> str | None:
        """This platform answers with ids, never tokens."""
        return token

    async def statuses(self, platform_ids: Sequence[str]) -> list[StatusReport]:
        """GET each case's status document (a backstop for lost callbacks)."""
        found = await asyncio.gather(*(self._status(pid) for pid in platform_ids))
        return [report for report in found if report is not None]

    async def reopen(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """Ask the platform to take a resolved case up again."""
        body = {"reference": number, "reason": "resident_dissatisfied", "comment": comment}
        await self._follow_up(platform_id, "reopen", body, key)

    async def urge(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """Pass on a resident's 催办 (the platform may raise the case's priority)."""
        body = {"reference": number, "comment": comment}
        await self._follow_up(platform_id, "urge", body, key)

    async def _follow_up(
        self, platform_id: str, action: str, body: dict[str, Any], key: str
    ) -> None:
        try:
            await self._post(f"{self._url}/{quote(platform_id)}/{action}", body, key, False)
        except DispatchRejected as exc:
            if exc.status != 409:  # 409: already done under this key
                raise

    async def _status(self, platform_id: str) -> StatusReport | None:
        status, text, headers = await send(
            self._http, "GET", f"{self._url}/{quote(platform_id)}", headers=self._sign(b"")
        )
        document = parse_json(text) if text.strip() else None
        try:
            check_status(status, document, headers)
        except DispatchNotFound:
            return None
        report = parse_report(document)
        return report if report.platform_id else None

    async def _post(self, url: str, body: dict[str, Any], key: str, accept_conflict: bool) -> Any:
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, **self._sign(raw)}
        status, text, answer_headers = await send(
            self._http, "POST", url, data=raw, headers=headers
        )
        document = parse_json(text) if text.strip() else None
        if status == 409 and accept_conflict and platform_id_of(document):
            return document  # already created under this key: the same case, not a new one
        check_status(status, document, answer_headers)
        return document

    def _sign(self, body: bytes) -> dict[str, str]:
        return signed_headers(self._secret, body) if self._secret else {}
