"""A loopback stand-in for a Rasa server's /model/parse that can hold its answers.

Only for tests that need a message to stay in flight on purpose (a graceful shutdown):
every parse is answered ``greet``, the way Rasa 3.6 shapes it, once ``release`` is set
while ``hold`` is on. Tests of what Rasa understands use the real server
(tests/test_rasa_server.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class HeldRasa:
    """POST /model/parse on 127.0.0.1; use as an async context manager."""

    def __init__(self) -> None:
        self.hold = False
        self.release = asyncio.Event()
        self.received: list[str] = []
        self.arrived = asyncio.Event()  # a parse came in
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> HeldRasa:
        app = web.Application()
        app.add_routes([web.post("/model/parse", self._parse)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _parse(self, request: web.Request) -> web.Response:
        text = (await request.json())["text"]
        self.received.append(text)
        self.arrived.set()
        if self.hold:
            await self.release.wait()
        intent: dict[str, Any] = {"name": "greet", "confidence": 0.99}
        return web.json_response(
            {"text": text, "intent": intent, "intent_ranking": [intent], "entities": []}
        )
