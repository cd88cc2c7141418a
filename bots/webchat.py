"""The web chat channel: a page at /chat talking to the pipeline over a WebSocket.

Who the visitor is comes from the signed cookie the page was served with
(bots.identity); the socket accepts nothing else, and only from our own pages
(Origin). Every frame is checked and its text cleaned before the pipeline sees it
(bots.sanitize). Every send to a socket is bounded by a timeout: a browser that
stops reading is disconnected, and what it missed stays queued (pushes) or in the
transcript (replies) for its next visit.

Wire format (JSON text frames):

- page → server: ``{"type": "message", "id", "text", "payload"?, "location"?,
  "media"?}``; ``id`` is the page's own (1–64 of ``A-Za-z0-9_-``), the same on a resend.
- server → page: on connect ``{"type": "history", "greeting", "items"}``; then
  ``{"type": "reply", "in_reply_to", "time", "messages"}``, ``{"type": "push", "time",
  "message"}``, ``{"type": "duplicate", "in_reply_to"}`` and ``{"type": "error",
  "error", "in_reply_to"?}`` with ``error`` one of ``bad_frame``, ``busy`` (not
  processed: send it again) and ``media`` (a photo that is not the visitor's or has
  expired). A message is a ``{"text", "buttons": [{"label", "payload"}], "media":
  [{"kind", "url"}]}``; a history item ``{"id", "from": "me"|"bot"|"push", "text",
  "time", "message_id"?, "media"?, "location"?}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from bots.identity import VisitorIdentity, same_origin
from bots.sanitize import RefusedInput, load_json
from bots.webframes import history_json, outbound_json, parse_frame, stamp
from handlers.catalog import Catalog
from handlers.history import HistoryItem
from handlers.messages import DeliveryError, Inbound, Media, Outbound
from integration.state.keys import KeyBuilder
from integration.state.throttle import Throttle

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Above the page's 4,000-character input (up to 12 KB as UTF-8), so an over-long
# message still gets its polite answer, yet far below what fills a socket's buffers.
MAX_FRAME = 64 * 1024

Handler = Callable[[Inbound], Awaitable[list[Outbound] | None]]
OnConnect = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WebChatLimits:
    """The web chat's own limits, beside the pipeline's per-resident rate."""

    send_timeout: float = 5.0  # a send not done by then drops the connection
    window: float = 60.0  # seconds of the two message limits below
    per_connection: int = 30  # messages over one socket per window
    per_address: int = 120  # messages from one address per window, all visitors
    sockets_per_address: int = 20  # open sockets from one address (this process)
    history: int = 100  # lines sent to a page when it connects
    origins: tuple[str, ...] = ()  # origins allowed beside our own


class HistorySource(Protocol):
    """Where a connecting page's history comes from (handlers.history.ChatHistory)."""

    async def recent(self, channel: str, chat_id: str, limit: int = 100) -> list[HistoryItem]:
        """The newest lines of a chat, oldest first."""
        ...


class MediaClaims(Protocol):
    """How a message's photos are checked (bots.media.MediaStore)."""

    async def claim(self, channel: str, chat_id: str, refs: list[str]) -> list[str]:
        """The references that are the chat's own photos, now used."""
        ...


@dataclass(frozen=True, slots=True)
class WebChatParts:
    """What the channel needs from the running services (bound in the app's lifespan)."""

    media: MediaClaims
    throttle: Throttle
    history: HistorySource
    keys: KeyBuilder
    catalog: Catalog
    greeting: Outbound  # the first screen: a welcome and the main menu


@dataclass(eq=False, slots=True)
class _Socket:
    """One open page: its socket, transport (to cut it) and message counter."""

    ws: web.WebSocketResponse
    transport: Any
    address: str
    window_ends: float = 0.0
    count: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    busy: bool = False  # a message of this page is being handled


class WebChatChannel:
    """Serves the chat page and its sockets; pushes reach every open tab of a visitor."""

    name = "webchat"

    def __init__(self, identity: VisitorIdentity, limits: WebChatLimits | None = None) -> None:
        self.identity = identity
        self.limits = limits or WebChatLimits()
        self._parts: WebChatParts | None = None
        self._sockets: dict[str, set[_Socket]] = defaultdict(set)
        self._per_address: Counter[str] = Counter()
        self._going_away = False

    def bind(self, parts: WebChatParts) -> None:
        """Give the channel the running services (the app's lifespan does this)."""
        self._parts = parts

    @property
    def parts(self) -> WebChatParts:
        """The bound services; the routes are only served while they are bound."""
        if self._parts is None:
            raise web.HTTPServiceUnavailable(text="starting")
        return self._parts

    # -- Channel protocol ----------------------------------------------------------

    def to_inbound(self, update: tuple[str, Any]) -> Inbound | None:
        """A visitor id and a page frame as an Inbound; None if the frame is refused."""
        try:
            return self.parse_frame(*update)
        except RefusedInput:
            return None

    def parse_frame(self, visitor: str, frame: Any) -> Inbound:
        """A page frame as an Inbound; ``RefusedInput`` for anything malformed."""
        return parse_frame(self.name, visitor, frame)

    async def reply(self, inbound: Inbound, messages: list[Outbound]) -> None:
        """Send replies to every tab of the visitor."""
        frame = {"type": "reply", "in_reply_to": inbound.message_id, "time": stamp()}
        await self._send(
            inbound.chat_id, frame | {"messages": [outbound_json(m) for m in messages]}
        )

    async def push(self, chat_id: str, message: Outbound) -> None:
        """Send a status update; an offline visitor gets it on their next visit."""
        await self._send(
            chat_id, {"type": "push", "time": stamp(), "message": outbound_json(message)}
        )

    def disconnect(self, chat_id: str) -> int:
        """Cut every open page of a visitor (their pages reconnect); how many were cut."""
        sockets = list(self._sockets.get(chat_id, ()))
        for socket in sockets:
            self._cut(socket)
        return len(sockets)

    async def going_away(self) -> None:
        """Shutting down: close every idle page with 1001 (going away) now, and each busy
        one once the message in hand is answered. The pages reconnect (to another
        worker) and resend whatever was not answered."""
        self._going_away = True
        idle = [s for sockets in self._sockets.values() for s in sockets if not s.busy]
        await asyncio.gather(*(self._close_going_away(socket) for socket in idle))

    async def _close_going_away(self, socket: _Socket) -> None:
        try:
            async with asyncio.timeout(self.limits.send_timeout):
                await socket.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restarting")
        except (TimeoutError, ConnectionError, RuntimeError):
            self._cut(socket)

    def online(self, chat_id: str) -> bool:
        """Whether the visitor has a page open on this process."""
        return bool(self._sockets.get(chat_id))

    async def _send(self, chat_id: str, frame: dict[str, Any]) -> None:
        sockets = list(self._sockets.get(chat_id, ()))
        if not sockets:
            raise DeliveryError("visitor offline", offline=True)
        data = json.dumps(frame, ensure_ascii=False)
        sent = await asyncio.gather(*(self._send_to(socket, data) for socket in sockets))
        if not any(sent):
            raise DeliveryError("visitor offline", offline=True)

    async def _send_to(self, socket: _Socket, data: str) -> bool:
        """One bounded send; a page that does not take it in time is disconnected."""
        try:
            async with asyncio.timeout(self.limits.send_timeout):
                await socket.ws.send_str(data)
        except TimeoutError:
            log.warning("web chat page at %s stopped reading; disconnected", socket.address)
            self._cut(socket)
            return False
        except (ConnectionError, RuntimeError):
            self._cut(socket)
            return False
        return True

    def _cut(self, socket: _Socket) -> None:
        """Drop a connection at once, without waiting on the peer for a close handshake."""
        for sockets in self._sockets.values():
            sockets.discard(socket)
        if socket.transport is not None:
            socket.transport.abort()

    # -- HTTP --------------------------------------------------------------------------

    def routes(self, handle: Handler, on_connect: OnConnect) -> list[web.RouteDef]:
        """The page, its session, and socket routes, feeding ``handle``."""

        async def socket(request: web.Request) -> web.WebSocketResponse:
            return await self._serve_socket(request, handle, on_connect)

        return [
            web.get("/chat", self._page),
            web.post("/chat/session", self._session),
            web.get("/chat/ws", socket),
        ]

    async def _page(self, request: web.Request) -> web.FileResponse:
        response = web.FileResponse(STATIC / "chat.html")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        self.identity.ensure(request, response)
        return response

    async def _session(self, request: web.Request) -> web.Response:
        """(Re)issue the visitor cookie; the page calls this before each connect."""
        if not same_origin(request, self.limits.origins):
            raise web.HTTPForbidden(text="cross-origin request refused")
        response = web.json_response({"ok": True})
        response.headers["Cache-Control"] = "no-store"
        self.identity.ensure(request, response)
        return response

    async def _serve_socket(
        self, request: web.Request, handle: Handler, on_connect: OnConnect
    ) -> web.WebSocketResponse:
        if not same_origin(request, self.limits.origins):
            log.warning("refused a web chat socket from origin %s", request.headers.get("Origin"))
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        visitor = self.identity.visitor(request)
        if visitor is None:
            raise web.HTTPUnauthorized(text="no visitor session: load /chat first")
        address = request.remote or "unknown"
        if self._per_address[address] >= self.limits.sockets_per_address:
            raise web.HTTPTooManyRequests(text="too many open chats from this address")
        parts = self.parts
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        socket = _Socket(ws, request.transport, address)
        self._sockets[visitor].add(socket)
        self._per_address[address] += 1
        try:
            await self._send_history(socket, visitor, parts)
            await on_connect(visitor)
            async for frame in ws:
                if frame.type != WSMsgType.TEXT or self._going_away:
                    continue  # once going away, a frame is left for the page to resend
                socket.busy = True
                try:
                    await self._on_frame(socket, visitor, frame.data, handle)
                finally:
                    socket.busy = False
                if self._going_away:
                    await self._close_going_away(socket)
        finally:
            self._sockets[visitor].discard(socket)
            if not self._sockets[visitor]:
                del self._sockets[visitor]
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]
        return ws

    async def _send_history(self, socket: _Socket, visitor: str, parts: WebChatParts) -> None:
        items = await parts.history.recent(self.name, visitor, self.limits.history)
        frame = {
            "type": "history",
            "time": stamp(),
            "greeting": outbound_json(parts.greeting),
            "items": [history_json(item) for item in items],
        }
        await self._send_to(socket, json.dumps(frame, ensure_ascii=False))

    async def _on_frame(self, socket: _Socket, visitor: str, raw: str, handle: Handler) -> None:
        try:
            inbound = self.parse_frame(visitor, load_json(raw))
        except RefusedInput as refused:
            await self._answer(
                socket, {"type": "error", "error": "bad_frame", "reason": refused.reason}
            )
            return
        try:
            if not await self._admit(socket, inbound):
                return
            if inbound.media:
                owned = await self._with_own_media(socket, inbound)
                if owned is None:
                    return
                inbound = owned
            replies = await handle(inbound)
        except Exception:
            # Nothing was stored (the pipeline let go of the message, or a store such as
            # Redis is down before it got there): the page resends it, and the socket
            # stays open for the resend.
            log.exception("web chat message %s failed", inbound.message_id)
            await self._answer(
                socket, {"type": "error", "error": "busy", "in_reply_to": inbound.message_id}
            )
            return
        if replies is None:  # a resend of a message already answered
            await self._answer(socket, {"type": "duplicate", "in_reply_to": inbound.message_id})
            return
        try:
            await self.reply(inbound, replies)
        except DeliveryError:
            pass  # every tab went away; the replies are in the transcript for the next visit

    async def _admit(self, socket: _Socket, inbound: Inbound) -> bool:
        """Count the message against its connection and its address; False when over.

        A refused message is answered (not stored, as the pipeline's own rate limit);
        a connection far over its limit is closed.
        """
        limits, now = self.limits, time.monotonic()
        if now >= socket.window_ends:
            socket.window_ends, socket.count = now + limits.window, 0
        socket.count += 1
        over = socket.count > limits.per_connection
        if not over:
            key = self.parts.keys.build("webchat-address", self.name, socket.address)
            over = await self.parts.throttle.hit(key, limits.window) > limits.per_address
        if not over:
            return True
        log.warning("web chat messages from %s over the limit", socket.address)
        if socket.count > 3 * limits.per_connection:
            await socket.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limit")
            return False
        refusal = Outbound(self.parts.catalog("chat.rate_limited"))
        await self._answer(
            socket,
            {
                "type": "reply",
                "in_reply_to": inbound.message_id,
                "time": stamp(),
                "messages": [outbound_json(refusal)],
            },
        )
        return False

    async def _with_own_media(self, socket: _Socket, inbound: Inbound) -> Inbound | None:
        """``inbound`` with only the photos this visitor uploaded (now used); None if a
        message of photos alone has none left (the page is told)."""
        refs = [m.ref for m in inbound.media]
        own = await self.parts.media.claim(self.name, inbound.chat_id, refs)
        if len(own) < len(refs):
            log.info("web chat message %s named photos not its own", inbound.message_id)
        if not own and not inbound.text.strip() and inbound.location is None:
            await self._answer(
                socket,
                {
                    "type": "error",
                    "error": "media",
                    "in_reply_to": inbound.message_id,
                    "text": self.parts.catalog("webchat.media_expired"),
                },
            )
            return None
        media = tuple(Media("image", ref, ref) for ref in own)
        return Inbound(
            channel=inbound.channel,
            user_id=inbound.user_id,
            chat_id=inbound.chat_id,
            message_id=inbound.message_id,
            text=inbound.text,
            location=inbound.location,
            media=media,
            payload=inbound.payload,
            time=inbound.time,
        )

    async def _answer(self, socket: _Socket, frame: dict[str, Any]) -> None:
        await self._send_to(socket, json.dumps(frame, ensure_ascii=False))


# The chat page's Content-Security-Policy: its own scripts, styles, fonts and photos
# only; sockets to itself; never framed by another site.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; "
    "img-src 'self' blob: data:; connect-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
