"""``POST /dispatch/callback``: signed status callbacks from the webhook platform.

The body is one status document (integration.dispatch.webhook.parse_report), signed
as integration.dispatch.signing describes. Answers: 200 ``{"result": applied |
duplicate | stale | backwards}``; 400 an unreadable body, non-ASCII signature headers,
or an ``updated_at`` further ahead of our clock than the tolerance (or over a year
behind it); 401 unsigned, badly signed or stale; 404 an unknown case; 409 a replay;
503 when no secret is configured.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from integration.dispatch.errors import CallbackRefused, DispatchProtocolError
from integration.dispatch.signing import verify
from integration.dispatch.sync import Outcome, StatusSync
from integration.dispatch.webhook import parse_report
from integration.errors import CaseNotFound

log = logging.getLogger(__name__)

CALLBACK_PATH = "/dispatch/callback"
MAX_AGE = timedelta(days=365)  # the oldest change a callback may report
MAX_CONTAINERS = 256  # objects and arrays in one callback body (it has one)


class CallbackReceiver:
    """Verifies, parses and applies one callback per request."""

    def __init__(
        self,
        sync: StatusSync,
        secret: str,
        *,
        tolerance: float = 300.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._sync = sync
        self._secret = secret
        self._tolerance = tolerance
        self._on_change = on_change or (lambda: None)

    def _plausible(self, moment: datetime) -> bool:
        """Whether a platform's time is at most the tolerance ahead of ours and within
        ``MAX_AGE`` behind it (a change reported after a long outage still counts)."""
        now = datetime.now(UTC)
        return now - MAX_AGE <= moment <= now + timedelta(seconds=self._tolerance)

    def routes(self) -> list[web.RouteDef]:
        """The route to add to the application."""
        return [web.post(CALLBACK_PATH, self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        """One callback."""
        body = await request.read()
        if not self._secret:
            return _error("callbacks need YIMEN_DISPATCH_SECRET", 503)
        try:
            digest = verify(self._secret, request.headers, body, tolerance=self._tolerance)
        except CallbackRefused as exc:
            log.warning("refused a dispatch callback: %s", exc.reason)
            return _error(exc.reason, exc.status)
        try:
            report = parse_report(_load(body))
        except (ValueError, RecursionError, DispatchProtocolError) as exc:
            return _error(f"unreadable callback: {str(exc)[:200]}", 400)
        if report.updated_at is not None and not self._plausible(report.updated_at):
            # A signed time far from now would freeze the case (every later genuine
            # update looking stale) or is a mistake; either way, not applied.
            return _error(f"updated_at {report.updated_at.isoformat()} is far from now", 400)
        try:
            outcome = await self._sync.apply(report, receipt=digest)
        except CallbackRefused as exc:
            return _error(exc.reason, exc.status)
        except CaseNotFound:
            return _error(f"no case {report.reference or report.platform_id}", 404)
        if outcome is Outcome.applied:
            self._on_change()
        return web.json_response({"result": outcome.value})


def _load(body: bytes) -> object:
    """The callback's JSON; NaN, Infinity and absurd nesting are refused."""
    if body.count(b"[") + body.count(b"{") > MAX_CONTAINERS:
        raise ValueError("too many nested objects or arrays")
    return json.loads(body, parse_constant=_no_constant)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _error(reason: str, status: int) -> web.Response:
    return web.json_response({"error": reason}, status=status)
