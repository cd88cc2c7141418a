"""The WeChat Official Account channel: the /wechat webhook, replies and pushes.

WeChat waits 5 seconds for an answer and then retries (three deliveries in all). A
message is answered in the same HTTP response (a passive reply) when the pipeline
finishes within ``deadline``; otherwise the response is ``success`` (nothing to say
now) and the answer follows as a customer-service message once it is ready. The
pipeline dedupes redeliveries by message id and answers them with None: a
redelivery gets ``success`` while the first delivery's answer travels whichever way
it took, so the resident reads it exactly once.

A passive reply holds one message: replies are joined while they fit, the rest follow
as customer-service messages. WeChat text has no quick replies, so buttons are
numbered lines, and the pipeline accepts a typed number or label.

Pushes (status updates) use customer-service messages within 48 hours of the
resident's last message, and the status template outside it or when WeChat says the
window is closed (45015, 45047).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from bots.wechat.api import WeChatAPI
from bots.wechat.errors import (
    WINDOW_CLOSED,
    WeChatAPIError,
    WeChatError,
    delivery_error,
)
from bots.wechat.security import MAX_BODY, WebhookGuard, WebhookRejected
from bots.wechat.translate import CHANNEL, Answer, Forward, Record, chunks, field, interpret
from bots.wechat.translate import reply_xml as build_reply
from handlers.catalog import Catalog
from handlers.messages import DeliveryError, Inbound, Outbound

log = logging.getLogger(__name__)

Handler = Callable[[Inbound], Awaitable[list[Outbound] | None]]
Recorder = Callable[[Inbound], Awaitable[None]]
Spooler = Callable[[str, str], Awaitable[None]]  # (openid, text): queue a reply durably
LastInbound = Callable[[str], Awaitable[datetime | None]]

TEMPLATE_FIELD = 20  # characters WeChat keeps in a template's "thing" field


@dataclass(frozen=True, slots=True)
class WeChatTiming:
    """The channel's clocks: the passive-reply budget, the push window, retries."""

    deadline: float = 4.0  # seconds to answer passively; WeChat gives up after 5
    window: float = 48 * 3600.0  # customer-service messages this long after the last message
    send_attempts: int = 3  # tries of each late reply
    send_backoff: float = 1.0  # seconds before the second try, doubled after
    drain: float = 10.0  # seconds to finish late replies at shutdown


class _Turn:
    """Whether the webhook response is still waiting for this message's replies."""

    __slots__ = ("late",)

    def __init__(self) -> None:
        self.late = False


class WeChatChannel:
    """Serves /wechat and delivers replies and pushes through the WeChat API."""

    name = CHANNEL

    def __init__(
        self,
        guard: WebhookGuard,
        api: WeChatAPI,
        catalog: Catalog,
        *,
        handle: Handler,
        record: Recorder,
        spool: Spooler,
        last_inbound: LastInbound,
        template_id: str = "",
        timing: WeChatTiming | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._guard = guard
        self._api = api
        self._t = catalog
        self._handle = handle
        self._record = record
        self._spool = spool
        self._last_inbound = last_inbound
        self._template_id = template_id
        self._timing = timing or WeChatTiming()
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- Channel protocol ------------------------------------------------------------

    def to_inbound(self, update: dict[str, Any]) -> Inbound | None:
        """The Inbound in a delivery's fields; None when it carries nothing for the pipeline."""
        action = interpret(update, self._t, self._clock())
        return action.inbound if isinstance(action, Forward) else None

    async def reply(self, inbound: Inbound, messages: list[Outbound]) -> None:
        """Answer ``inbound`` with customer-service messages (the late path)."""
        for text in chunks(messages, self._t):
            await self._send_late(inbound, text)

    async def push(self, chat_id: str, message: Outbound) -> None:
        """A status update: customer-service message in the window, else the template."""
        try:
            last = await self._last_inbound(chat_id)
            if last is not None and self._clock() - last.timestamp() < self._timing.window:
                try:
                    for text in chunks([message], self._t):
                        await self._api.send_text(chat_id, text)
                    return
                except WeChatAPIError as exc:
                    if exc.errcode not in WINDOW_CLOSED:
                        raise
                    log.info("WeChat window closed for a push (%s); using the template", exc)
            await self._push_template(chat_id, message)
        except WeChatError as exc:
            raise delivery_error(exc) from exc
        except RedisError as exc:  # the shared access_token could not be read
            raise DeliveryError(f"Redis: {type(exc).__name__}") from exc

    async def _push_template(self, chat_id: str, message: Outbound) -> None:
        if not self._template_id:
            raise DeliveryError(
                "outside the 48-hour window and YIMEN_WECHAT_TEMPLATE_STATUS is not set",
                retryable=False,
            )
        if not message.data:
            raise DeliveryError("outside the 48-hour window: no template fields", retryable=False)
        data = {
            key: (value or self._t("wechat.template_empty"))[:TEMPLATE_FIELD]
            for key, value in message.data
        }
        await self._api.send_template(chat_id, self._template_id, data)

    # -- the webhook -----------------------------------------------------------------

    async def on_verify(self, request: web.Request) -> web.Response:
        """GET /wechat: WeChat's URL verification; echoes ``echostr`` when signed."""
        try:
            echo = self._guard.check_url(request.query)
        except WebhookRejected as exc:
            return _rejected(exc)
        return web.Response(text=echo)

    async def on_message(self, request: web.Request) -> web.Response:
        """POST /wechat: one delivery of a message or event."""
        try:
            fields = self._guard.open(request.query, await _read(request))
        except WebhookRejected as exc:
            return _rejected(exc)
        openid, account = field(fields, "FromUserName"), field(fields, "ToUserName")
        if not openid or not account:
            return _rejected(WebhookRejected(400, "FromUserName and ToUserName are required"))
        action = interpret(fields, self._t, self._guard.now())
        if isinstance(action, Forward):
            texts = await self._answer(action)
        elif isinstance(action, Answer):
            texts = [self._t(action.key)]
        else:
            if isinstance(action, Record):
                await self._record(action.inbound)
            texts = []
        if not texts:
            return web.Response(text="success")
        xml = build_reply(account, openid, texts[0], self._guard.now())
        body = self._guard.seal(xml, request.query.get("nonce", ""))
        return web.Response(text=body, content_type="application/xml")

    async def _answer(self, forward: Forward) -> list[str]:
        """The text to answer passively, or [] when the answer goes another way."""
        turn = _Turn()
        task = self._spawn(self._converse(forward, turn))
        try:
            await asyncio.wait((task,), timeout=self._timing.deadline)
        finally:
            if not task.done():  # past the deadline, or WeChat hung up: answer later
                turn.late = True
        return task.result() if task.done() else []

    async def _converse(self, forward: Forward, turn: _Turn) -> list[str]:
        inbound = forward.inbound
        try:
            replies = await self._handle(inbound)
        except Exception:
            # Not stored: the resident is asked to send it again.
            log.exception("WeChat message %s failed", inbound.message_id)
            replies = [Outbound(self._t("chat.retry"))]
        if replies is None:  # another delivery of this message is answering it
            return []
        if forward.welcome:
            replies = [Outbound(self._t("wechat.welcome")), *replies]
        texts = chunks(replies, self._t)
        if turn.late:
            await self.reply(inbound, replies)
            return []
        if len(texts) > 1:  # a passive reply holds one message; the rest follow
            self._spawn(self._send_rest(inbound, texts[1:]))
        return texts[:1]

    async def _send_rest(self, inbound: Inbound, texts: list[str]) -> None:
        for text in texts:
            await self._send_late(inbound, text)

    async def _send_late(self, inbound: Inbound, text: str) -> None:
        """One customer-service message answering ``inbound``, tried a few times at once.

        If WeChat keeps failing, the answer goes to the push queue, which retries it
        with backoff for hours (and shows staff what never got through): an answer is
        sent or durably queued, never dropped.
        """
        delay = self._timing.send_backoff
        for attempt in range(1, self._timing.send_attempts + 1):
            try:
                await self._api.send_text(inbound.chat_id, text)
                return
            except (WeChatError, RedisError) as exc:
                error = delivery_error(exc) if isinstance(exc, WeChatError) else None
                if attempt == self._timing.send_attempts or (error and not error.retryable):
                    log.warning(
                        "reply to WeChat message %s not sent (%s); queued for retry",
                        inbound.message_id,
                        exc,
                    )
                    break
            await asyncio.sleep(delay)
            delay *= 2
        await self._spool(inbound.chat_id, text)

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("WeChat background work failed", exc_info=exc)

    async def drain(self) -> None:
        """Let late replies finish (up to the drain timeout) before the session closes."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._timing.drain)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%d WeChat replies unfinished at shutdown", len(pending))


async def _read(request: web.Request) -> bytes:
    """The body, refused with 413 past MAX_BODY whether or not its length was declared."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise WebhookRejected(413, f"body over {MAX_BODY} bytes")
    if declared is not None:
        return await request.read()
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_BODY:
            raise WebhookRejected(413, f"body over {MAX_BODY} bytes")
    return bytes(body)


def _rejected(exc: WebhookRejected) -> web.Response:
    log.warning("WeChat delivery refused (%d): %s", exc.status, exc.reason)
    return web.Response(status=exc.status, text=exc.reason)
