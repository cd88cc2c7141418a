"""A GeoReport v2 server on loopback: services, requests, tokens, in JSON and XML.

It keeps what it is sent, so tests can count platform cases, and it can stray from
the spec the ways real servers do (see ``Quirks``) or fail (see ``Faults``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from tests.emulators.dispatch_base import Faults, Served

SERVICES = [
    {
        "service_code": "001",
        "service_name": "噪音扰民",
        "description": "施工、商户、广场舞噪音",
        "metadata": False,
        "type": "realtime",
        "keywords": "noise,噪声",
        "group": "环境",
    },
    {
        "service_code": "002",
        "service_name": "垃圾清运",
        "description": "垃圾未清运、公厕保洁",
        "metadata": False,
        "type": "realtime",
        "keywords": "sanitation,环境卫生",
        "group": "环卫",
    },
    {
        "service_code": "003",
        "service_name": "路灯井盖",
        "description": "路灯、井盖、道路破损",
        "metadata": False,
        "type": "realtime",
        "keywords": "公共设施",
        "group": "市政",
    },
    {
        "service_code": "099",
        "service_name": "其他问题",
        "description": "其他",
        "metadata": False,
        "type": "realtime",
        "keywords": "other",
        "group": "综合",
    },
]


@dataclass
class Quirks:
    """Ways real GeoReport servers stray from the spec."""

    token: bool = False  # answer POST with a token, not an id
    token_pending: int = 0  # GET tokens/{t} answers without an id this many times
    errors_as_object: bool = False  # {"code":…, "description":…} instead of an array
    post_returns_request: bool = False  # answer POST with the whole request object
    # As a widely deployed server does: a POST with neither lat/long nor the non-standard
    # `address` field (address_string alone is not read) gets a 500 HTML page.
    needs_latlong: bool = False
    required: tuple[str, ...] = ()  # form fields whose absence gets a 500 HTML page
    broken: int = 0  # every call is answered with this status (a server in trouble)
    html_without_suffix: bool = True  # no .json/.xml suffix: an HTML page
    xml_always: bool = False  # answer XML even when JSON was asked for


class Open311Emulator(Served):
    """One jurisdiction's GeoReport v2 endpoint; ``requests`` are its cases by id."""

    def __init__(
        self,
        port: int | None = None,
        *,
        api_key: str = "test-key",
        quirks: Quirks | None = None,
        faults: Faults | None = None,
        first_id: int = 5000,
    ) -> None:
        super().__init__(port)
        self.api_key = api_key
        self.quirks = quirks or Quirks()
        self.faults = faults or Faults()
        self.requests: dict[str, dict[str, Any]] = {}
        self.posts: list[dict[str, str]] = []
        self.tokens: dict[str, str] = {}
        self.token_polls = 0
        self._ids = first_id

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", self._route)
        return application

    # -- what tests look at --------------------------------------------------------

    def created_for(self, number: str) -> list[dict[str, Any]]:
        """The platform's requests created for our case ``number``."""
        return [r for r in self.requests.values() if f"[{number}]" in r["description"]]

    def set_status(
        self, request_id: str, status: str, notes: str = "", at: datetime | None = None
    ) -> None:
        """Staff on the platform change a request."""
        request = self.requests[request_id]
        request["status"], request["status_notes"] = status, notes
        request["updated_datetime"] = (at or datetime.now(UTC)).isoformat(timespec="seconds")

    # -- the wire ------------------------------------------------------------------

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["tail"]
        fmt = "json"
        for suffix in (".json", ".xml"):
            if path.endswith(suffix):
                path, fmt = path.removesuffix(suffix), suffix[1:]
                break
        else:
            if self.quirks.html_without_suffix:
                return _html(200, "<html><body><h1>311 portal</h1></body></html>")
        if self.quirks.broken:
            return _html(self.quirks.broken, "<html><body><h1>Bad Gateway</h1></body></html>")
        if self.quirks.xml_always:
            fmt = "xml"
        parts = path.strip("/").split("/")
        if request.method == "GET" and parts == ["services"]:
            return _render(fmt, "services", "service", SERVICES)
        if request.method == "POST" and parts == ["requests"]:
            return await self._post(request, fmt)
        if request.method == "GET" and parts == ["requests"]:
            return _render(fmt, "service_requests", "request", self._query(request.query))
        if request.method == "GET" and len(parts) == 2 and parts[0] == "requests":
            found = self.requests.get(parts[1])
            if found is None:
                return self._error(fmt, 404, f"no service request {parts[1]}")
            return _render(fmt, "service_requests", "request", [found])
        if request.method == "GET" and len(parts) == 2 and parts[0] == "tokens":
            return self._token(fmt, parts[1])
        return self._error(fmt, 404, "no such resource")

    async def _post(self, request: web.Request, fmt: str) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("api_key") != self.api_key:
            return self._error(
                fmt, 403, "Invalid api_key received -- can't proceed with create_request."
            )
        if form.get("service_code") not in {s["service_code"] for s in SERVICES}:
            return self._error(fmt, 400, "service_code was not found")
        has_point = bool(form.get("lat") and form.get("long"))
        if not has_point and not form.get("address_string"):
            return self._error(fmt, 400, "a location is required: lat/long or address_string")
        lacking = [name for name in self.quirks.required if not form.get(name)]
        if (self.quirks.needs_latlong and not has_point and not form.get("address")) or lacking:
            return _html(500, "<html><body><h1>Internal Server Error</h1></body></html>")
        faults = self.faults
        if faults.fail:
            return self._error(fmt, faults.fail.pop(0), "the platform is having a bad day")
        self.posts.append(form)
        created = self._create(form)
        answer: dict[str, Any] = {"service_notice": "", "account_id": None}
        if self.quirks.token:
            token = f"tok-{created['service_request_id']}"
            self.tokens[token] = created["service_request_id"]
            answer["token"] = token
        elif self.quirks.post_returns_request:
            answer = dict(created)
        else:
            answer["service_request_id"] = created["service_request_id"]
        if faults.duplicate_id and len(self.requests) > 1:
            faults.duplicate_id -= 1
            answer["service_request_id"] = next(iter(self.requests))
        if faults.hold:
            faults.received.set()
            await faults.release.wait()
        if delay := faults.delay:  # once; the test's teardown (``release``) cuts it short
            faults.delay = 0.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await faults.release.wait()
        if faults.malformed:
            faults.malformed -= 1
            return web.Response(text='[{"service_request_id": ', content_type="application/json")
        return _render(fmt, "service_requests", "request", [answer])

    def _create(self, form: dict[str, str]) -> dict[str, Any]:
        self._ids += 1
        now = datetime.now(UTC).isoformat(timespec="seconds")
        service = next(s for s in SERVICES if s["service_code"] == form["service_code"])
        request: dict[str, Any] = {
            "service_request_id": str(self._ids),
            "status": "open",
            "status_notes": "",
            "service_name": service["service_name"],
            "service_code": service["service_code"],
            "description": form.get("description", ""),
            "agency_responsible": "街道综合执法队",
            "service_notice": "",
            "requested_datetime": now,
            "updated_datetime": now,
            "expected_datetime": "",
            "address": form.get("address_string", ""),
            "address_id": "",
            "zipcode": "",
            "lat": form.get("lat", ""),
            "long": form.get("long", ""),
            "media_url": form.get("media_url", ""),
        }
        self.requests[request["service_request_id"]] = request
        return request

    def _query(self, query: Any) -> list[dict[str, Any]]:
        if ids := query.get("service_request_id"):
            wanted = [i.strip() for i in ids.split(",")]
            return [self.requests[i] for i in wanted if i in self.requests]
        found = list(self.requests.values())
        if code := query.get("service_code"):
            found = [r for r in found if r["service_code"] == code]
        start = _when(query.get("start_date")) or datetime.now(UTC) - timedelta(days=90)
        end = _when(query.get("end_date")) or datetime.now(UTC) + timedelta(days=1)
        return [r for r in found if start <= _moment(r["requested_datetime"]) <= end][:1000]

    def _token(self, fmt: str, token: str) -> web.StreamResponse:
        if token not in self.tokens:
            return self._error(fmt, 404, f"no token {token}")
        self.token_polls += 1
        if self.quirks.token_pending:
            self.quirks.token_pending -= 1
            return _render(fmt, "service_requests", "request", [{"token": token}])
        answer = {"service_request_id": self.tokens[token], "token": token}
        return _render(fmt, "service_requests", "request", [answer])

    def _error(self, fmt: str, status: int, description: str) -> web.StreamResponse:
        if fmt == "xml":
            return _xml(status, "errors", "error", [{"code": status, "description": description}])
        error = {"code": status, "description": description}
        body = error if self.quirks.errors_as_object else [error]
        return web.json_response(body, status=status)


def _when(text: str | None) -> datetime | None:
    return _moment(text) if text else None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _html(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/html")


def _render(fmt: str, root: str, item: str, rows: list[dict[str, Any]]) -> web.Response:
    if fmt == "xml":
        return _xml(200, root, item, rows)
    return web.Response(text=json.dumps(rows, ensure_ascii=False), content_type="application/json")


def _xml(status: int, root: str, item: str, rows: list[dict[str, Any]]) -> web.Response:
    def leaf(key: str, value: Any) -> str:
        text = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        return f"<{key}>{escape(text)}</{key}>"

    items = "".join(
        f"<{item}>" + "".join(leaf(k, v) for k, v in row.items()) + f"</{item}>" for row in rows
    )
    body = f'<?xml version="1.0" encoding="utf-8"?>\n<{root}>{items}</{root}>'
    return web.Response(status=status, text=body, content_type="text/xml", charset="utf-8")
