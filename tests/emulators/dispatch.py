"""The generic REST dispatch platform on loopback, and its signed status callbacks.

Speaks what integration.dispatch.webhook documents: ``POST /cases`` with an
``Idempotency-Key`` (a key seen before answers the same id), ``POST /cases/{id}/reopen``,
``POST /cases/{id}/urge`` and ``GET /cases/{id}``. When it has a secret it checks our
signatures, and it signs the callbacks it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from integration.dispatch.signing import SIGNATURE_HEADER, signature, signed_headers
from tests.emulators.dispatch_base import Faults, Served


class DispatchEmulator(Served):
    """A dispatch platform: ``cases`` by id, ``keys`` idempotency key → id."""

    def __init__(
        self,
        port: int | None = None,
        *,
        secret: str = "",
        faults: Faults | None = None,
        first_id: int = 70000,
    ) -> None:
        super().__init__(port)
        self.secret = secret
        self.faults = faults or Faults()
        self.cases: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.posts: list[tuple[str, dict[str, Any]]] = []  # (idempotency key, body)
        self.reopens: list[tuple[str, dict[str, Any]]] = []
        self.urges: list[tuple[str, dict[str, Any]]] = []
        self._ids = first_id

    @property
    def url(self) -> str:
        """YIMEN_DISPATCH_URL for this platform."""
        return f"{self.base}/cases"

    def app(self) -> web.Application:
        application = web.Application()
        application.add_routes(
            [
                web.post("/cases", self._create),
                web.post("/cases/{id}/reopen", self._reopen),
                web.post("/cases/{id}/urge", self._urge),
                web.get("/cases/{id}", self._get),
            ]
        )
        return application

    def created_for(self, number: str) -> list[dict[str, Any]]:
        """The platform's cases whose reference is our case ``number``."""
        return [c for c in self.cases.values() if c["reference"] == number]

    def set_status(self, case_id: str, status: str, note: str = "") -> dict[str, Any]:
        """Staff on the platform change a case; returns the callback body to send."""
        case = self.cases[case_id]
        case.update(status=status, note=note, updated_at=datetime.now(UTC).isoformat())
        return self.document(case_id)

    def document(self, case_id: str) -> dict[str, Any]:
        """A case's status document (a GET answer and a callback body)."""
        case = self.cases[case_id]
        fields = ("id", "reference", "status", "note", "updated_at")
        return {k: case[k] for k in fields}

    async def _create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if refused := self._check(request, raw):
            return refused
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return web.json_response({"error": "Idempotency-Key is required"}, status=400)
        faults = self.faults
        if faults.fail:
            status = faults.fail.pop(0)
            return web.json_response({"error": "the platform is having a bad day"}, status=status)
        body = json.loads(raw)
        self.posts.append((key, body))
        if key in self.keys:
            return web.json_response({"id": self.keys[key], "duplicate": True}, status=409)
        self._ids += 1
        case_id = f"D{self._ids}"
        self.keys[key] = case_id
        self.cases[case_id] = {
            **body,
            "id": case_id,
            "status": "received",
            "note": "",
            "updated_at": datetime.now(UTC).isoformat(),
        }
        answer = case_id
        if faults.duplicate_id and len(self.cases) > 1:
            faults.duplicate_id -= 1
            answer = next(iter(self.cases))
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
            return web.Response(text='{"id": "D', content_type="application/json")
        return web.json_response({"id": answer}, status=201)

    async def _reopen(self, request: web.Request) -> web.StreamResponse:
        answer = await self._follow_up(request, self.reopens)
        if answer.status == 200:
            self.set_status(request.match_info["id"], "reopened", "居民不满意，已重新派单")
        return answer

    async def _urge(self, request: web.Request) -> web.StreamResponse:
        return await self._follow_up(request, self.urges)

    async def _follow_up(
        self, request: web.Request, done: list[tuple[str, dict[str, Any]]]
    ) -> web.Response:
        """A reopen or an urge: recorded once per idempotency key (409 after that)."""
        raw = await request.read()
        if refused := self._check(request, raw):
            return refused
        case_id = request.match_info["id"]
        if case_id not in self.cases:
            return web.json_response({"error": "no such case"}, status=404)
        key = request.headers.get("Idempotency-Key", "")
        if any(k == key for k, _ in done):
            return web.json_response({"error": "already done"}, status=409)
        done.append((key, json.loads(raw)))
        return web.json_response({"id": case_id})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        if refused := self._check(request, b""):
            return refused
        case_id = request.match_info["id"]
        if case_id not in self.cases:
            return web.json_response({"error": "no such case"}, status=404)
        return web.json_response(self.document(case_id))

    def _check(self, request: web.Request, raw: bytes) -> web.Response | None:
        if not self.secret:
            return None
        timestamp = request.headers.get("X-Yimen-Timestamp", "")
        if request.headers.get(SIGNATURE_HEADER) != signature(self.secret, timestamp, raw):
            return web.json_response({"error": "bad signature"}, status=401)
        return None


async def send_callback(
    url: str,
    document: dict[str, Any],
    secret: str,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST one status callback, signed with ``secret`` unless ``headers`` are given."""
    body = raw if raw is not None else json.dumps(document, ensure_ascii=False).encode()
    sent = headers if headers is not None else signed_headers(secret, body)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers={"Content-Type": "application/json", **sent}) as response,
    ):
        return response.status, await response.json()
