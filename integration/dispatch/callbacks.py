"""``POST /dispatch/callback``: signed status callbacks from the webhook platform.

The body is one status document (integration.dispatch.webhook.parse_report), signed
as integration.dispatch.signing describes. Answers: 200 ``{"result": applied |
duplicate | stale | backwards}``; 400 an unreadable body; 401 unsigned, badly signed or
stale; 404 an unknown case; 409 a replay; 503 when no secret is configured.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web

from integration.dispatch.errors import CallbackRefused, DispatchProtocolError
from integration.dispatch.signing import verify
from integration.dispatch.sync import Outcome, StatusSync
from integration.dispatch.webhook import parse_report
from integration.errors import CaseNotFound

log = logging.getLogger(__name__)

CALLBACK_PATH = "/dispatch/callback"


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
            report = parse_report(json.loads(body))
        except (ValueError, DispatchProtocolError) as exc:
            return _error(f"unreadable callback: {exc}", 400)
        try:
            outcome = await self._sync.apply(report, receipt=digest)
        except CallbackRefused as exc:
            return _error(exc.reason, exc.status)
        except CaseNotFound:
            return _error(f"no case {report.reference or report.platform_id}", 404)
        if outcome is Outcome.applied:
            self._on_change()
        return web.json_response({"result": outcome.value})


def _error(reason: str, status: int) -> web.Response:
    return web.json_response({"error": reason}, status=status)
