"""The web chat channel: a page at /chat talking to the pipeline over a WebSocket.

Each browser keeps a random visitor id in localStorage; that id is the chat id, so a
reload (or a second tab) continues the same conversation and receives its pushes.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from bots.media import MEDIA_NAME, keep_image
from handlers.messages import DeliveryError, Inbound, Location, Media, Outbound

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
VISITOR = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# Far above the pipeline's text limit, so an over-long message gets its polite answer.
MAX_FRAME = 1024 * 1024

Handler = Callable[[Inbound], Awaitable[list[Outbound] | None]]
OnConnect = Callable[[str], Awaitable[None]]


def outbound_json(message: Outbound) -> dict[str, Any]:
    """The wire form of a bot message."""
    return {
        "text": message.text,
        "buttons": [{"label": b.label, "payload": b.payload} for b in message.buttons],
        "media": [{"kind": m.kind, "url": m.url or m.ref} for m in message.media],
    }


class WebChatChannel:
    """Serves the chat page and its sockets; pushes reach every open tab of a visitor."""

    name = "webchat"

    def __init__(self, media_dir: Path, max_upload: int) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._media_dir = media_dir
        self._max_upload = max_upload

    # -- Channel protocol ----------------------------------------------------------

    def to_inbound(self, update: tuple[str, dict[str, Any]]) -> Inbound | None:
        """Turn a visitor id and a client frame into an Inbound; None if it is not one."""
        chat_id, frame = update
        if frame.get("type") != "message":
            return None
        text = frame.get("text", "")
        message_id = frame.get("id", "")
        if not isinstance(text, str) or not isinstance(message_id, str) or not message_id:
            return None
        location = None
        if isinstance(pin := frame.get("location"), dict):
            try:
                location = Location(
                    float(pin["latitude"]), float(pin["longitude"]), str(pin.get("label", ""))[:200]
                )
            except (KeyError, TypeError, ValueError):
                return None
        media = tuple(
            Media("image", ref, ref)
            for ref in frame.get("media") or []
            if isinstance(ref, str) and MEDIA_NAME.match(ref.removeprefix("/media/"))
        )
        payload = frame.get("payload", "")
        return Inbound(
            channel=self.name,
            user_id=chat_id,
            chat_id=chat_id,
            message_id=message_id[:64],
            text=text,
            location=location,
            media=media,
            payload=payload if isinstance(payload, str) else "",
        )

    async def reply(self, inbound: Inbound, messages: list[Outbound]) -> None:
        """Send replies to every tab of the visitor."""
        frame = {"type": "reply", "in_reply_to": inbound.message_id}
        await self._send(
            inbound.chat_id, frame | {"messages": [outbound_json(m) for m in messages]}
        )

    async def push(self, chat_id: str, message: Outbound) -> None:
        """Send a status update; an offline visitor gets it on their next visit."""
        if not self._sockets.get(chat_id):
            raise DeliveryError("visitor offline", offline=True)
        await self._send(chat_id, {"type": "push", "message": outbound_json(message)})

    async def _send(self, chat_id: str, frame: dict[str, Any]) -> None:
        sent = False
        for socket in list(self._sockets.get(chat_id, ())):
            try:
                await socket.send_json(frame)
                sent = True
            except (ConnectionError, RuntimeError):
                self._sockets[chat_id].discard(socket)
        if not sent:
            raise DeliveryError("visitor offline", offline=True)

    # -- HTTP --------------------------------------------------------------------------

    def routes(self, handle: Handler, on_connect: OnConnect) -> list[web.RouteDef]:
        """The page, socket, upload and media routes, feeding ``handle``."""

        async def page(_: web.Request) -> web.FileResponse:
            return web.FileResponse(STATIC / "chat.html")

        async def socket(request: web.Request) -> web.WebSocketResponse:
            return await self._serve_socket(request, handle, on_connect)

        return [
            web.get("/chat", page),
            web.get("/chat/ws", socket),
            web.post("/chat/upload", self._upload),
            web.get("/media/{name}", self._media),
        ]

    async def _serve_socket(
        self, request: web.Request, handle: Handler, on_connect: OnConnect
    ) -> web.WebSocketResponse:
        visitor = request.query.get("visitor", "")
        if not VISITOR.match(visitor):
            raise web.HTTPBadRequest(text="visitor must be 8-64 letters, digits, - or _")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        self._sockets[visitor].add(ws)
        try:
            await on_connect(visitor)
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                await self._on_frame(ws, visitor, frame, handle)
        finally:
            self._sockets[visitor].discard(ws)
            if not self._sockets[visitor]:
                del self._sockets[visitor]
        return ws

    async def _on_frame(
        self, ws: web.WebSocketResponse, visitor: str, frame: Any, handle: Handler
    ) -> None:
        try:
            data = frame.json()
        except ValueError:
            data = None
        inbound = self.to_inbound((visitor, data)) if isinstance(data, dict) else None
        if inbound is None:
            await ws.send_json({"type": "error", "error": "bad_frame"})
            return
        try:
            replies = await handle(inbound)
        except Exception:
            # Nothing was stored (the pipeline let go of the message): the page resends it.
            log.exception("web chat message %s failed", inbound.message_id)
            await ws.send_json(
                {"type": "error", "error": "busy", "in_reply_to": inbound.message_id}
            )
            return
        if replies is None:  # a resend of a message already answered
            await ws.send_json({"type": "duplicate", "in_reply_to": inbound.message_id})
            return
        await self.reply(inbound, replies)

    async def _upload(self, request: web.Request) -> web.Response:
        if request.content_length and request.content_length > self._max_upload + 4096:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self._max_upload, actual_size=request.content_length
            )
        reader = await request.multipart()
        part = await reader.next()
        if part is None or getattr(part, "name", None) != "file":
            raise web.HTTPBadRequest(text="expected a multipart field named file")
        data = bytearray()
        while chunk := await part.read_chunk():  # type: ignore[union-attr]
            data += chunk
            if len(data) > self._max_upload:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=self._max_upload, actual_size=len(data)
                )
        ref = await keep_image(self._media_dir, bytes(data))
        if ref is None:
            raise web.HTTPUnsupportedMediaType(text="only JPEG, PNG, GIF and WebP images")
        return web.json_response({"ref": ref})

    async def _media(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self._media_dir / name
        if not MEDIA_NAME.match(name) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)
