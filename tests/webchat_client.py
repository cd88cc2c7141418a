"""A web-chat visitor as a browser is one: a cookie jar, the page, then the socket.

Each Visitor has a client session of its own (its own cookies), loads /chat to be
issued its signed identity, and opens sockets with it; the first frame of every
socket is the history the server sends.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from bots.identity import COOKIE

TIMEOUT = 15.0


class Visitor:
    """One browser: its own cookies, the page loaded once, sockets on demand."""

    def __init__(self, client: TestClient[Any, Any], origin: str | None = "same") -> None:
        self._client = client
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.id = ""
        server = client.server
        self.origin = f"http://{server.host}:{server.port}" if origin == "same" else origin

    def url(self, path: str) -> str:
        return str(self._client.make_url(path))

    async def load_page(self) -> aiohttp.ClientResponse:
        """GET /chat as a browser does; remembers the visitor id it was given."""
        response = await self.session.get(self.url("/chat"))
        assert response.status == 200, response.status
        cookie = self.session.cookie_jar.filter_cookies(self._client.make_url("/chat"))[COOKIE]
        self.id = cookie.value.split(".")[0]
        return response

    async def connect(
        self, **kwargs: Any
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
        """Open a socket (loading the page first if needed); the socket and its history."""
        if not self.id:
            await self.load_page()
        headers = dict(kwargs.pop("headers", {}))
        if self.origin:
            headers.setdefault("Origin", self.origin)
        ws = await self.session.ws_connect(self.url("/chat/ws"), headers=headers, **kwargs)
        message = await ws.receive(timeout=TIMEOUT)
        assert message.type == WSMsgType.TEXT, message
        history: dict[str, Any] = message.json()
        assert history["type"] == "history", history
        return ws, history

    async def upload(self, form: aiohttp.FormData, **kwargs: Any) -> aiohttp.ClientResponse:
        """POST a photo from the page."""
        if not self.id:
            await self.load_page()
        headers = dict(kwargs.pop("headers", {}))
        if self.origin:
            headers.setdefault("Origin", self.origin)
        return await self.session.post(self.url("/chat/upload"), data=form, headers=headers)

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Visitor:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()
