"""How Telegram updates arrive: long polling (the default) or the /telegram webhook.

Both paths end in the same place: answer a button press at once, turn the update
into an Inbound, run it through the pipeline, and queue the replies. The pipeline
dedupes by update id, so an update seen twice is answered once.

Polling confirms a batch of updates (by asking for the next offset) only after the
pipeline has stored them, so a crash redelivers rather than loses them; within a
batch, different chats are handled side by side and one chat's updates in order.
In webhook mode a failure before the message was stored answers 500, and Telegram
delivers the update again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.exceptions import AiogramError, TelegramRetryAfter, TelegramUnauthorizedError
from aiogram.types import BotCommand, CallbackQuery, Update
from aiohttp import web

from bots.sanitize import RefusedInput, load_json
from bots.telegram.channel import TelegramChannel, chat_of
from handlers.catalog import Catalog
from handlers.messages import Inbound, Outbound

log = logging.getLogger(__name__)

Handler = Callable[[Inbound], Awaitable[list[Outbound] | None]]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
ALLOWED_UPDATES = ["message", "callback_query"]
MAX_BACKOFF = 60.0  # seconds between attempts while Telegram is unreachable
# The bot's command menu, in the order Telegram clients show it.
COMMANDS = ("start", "help", "status", "cancel")


class TelegramReceiver:
    """Receives updates for one bot and feeds them to the pipeline's ``handle``."""

    def __init__(
        self,
        bot: Bot,
        channel: TelegramChannel,
        handle: Handler,
        catalog: Catalog,
        *,
        webhook_url: str = "",
        secret: str = "",
        poll_timeout: int = 30,
    ) -> None:
        self.bot = bot
        self.channel = channel
        self._handle = handle
        self._t = catalog
        self._webhook_url = webhook_url
        self._secret = secret.encode()
        self._poll_timeout = poll_timeout

    @property
    def mode(self) -> str:
        """How updates arrive: ``webhook`` or ``polling``."""
        return "webhook" if self._webhook_url else "polling"

    async def run(self) -> None:
        """Register with Telegram, then poll until cancelled (webhook mode just returns)."""
        if not await self._set_up():
            return
        if not self._webhook_url:
            await self._poll()

    # -- webhook -------------------------------------------------------------------

    async def on_webhook(self, request: web.Request) -> web.Response:
        """One update POSTed by Telegram.

        401 without our secret; 400 for a body that is not JSON at all (or absurdly
        nested); 200 for an update we refuse or cannot read (Telegram would otherwise
        deliver it again forever); 500 only when processing failed before the message
        was stored, to have Telegram deliver it again.
        """
        # Header values are str decoded by aiohttp; a non-ASCII one is simply wrong.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not self._webhook_url or not secrets.compare_digest(given, self._secret):
            log.warning("telegram webhook call without the right secret from %s", request.remote)
            raise web.HTTPUnauthorized(text="wrong or missing secret token")
        try:
            document = load_json(await request.read())
        except RefusedInput as refused:
            raise web.HTTPBadRequest(text=f"not JSON: {refused.reason}") from None
        try:
            update = Update.model_validate(document, context={"bot": self.bot})
        except ValueError as exc:  # not an Update (pydantic's ValidationError)
            log.warning("telegram sent an update we cannot read: %s", str(exc)[:300])
            return web.Response(text="ignored")
        inbound = await self._receive(update)
        if inbound is not None:
            try:
                replies = await self._handle(inbound)
            except Exception:
                # Nothing was stored: Telegram's redelivery will be processed.
                log.exception("telegram update %s failed; asking for redelivery", update.update_id)
                raise web.HTTPInternalServerError() from None
            if replies:
                self.channel.reply_later(inbound, replies)
        return web.Response()

    # -- polling -------------------------------------------------------------------

    async def _poll(self) -> None:
        offset: int | None = None
        delay = 1.0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset,
                    timeout=self._poll_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                    request_timeout=self._poll_timeout + 15,
                )
            except TelegramUnauthorizedError:
                log.error("telegram refused the bot token; stopped polling")
                return
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
                continue
            except AiogramError as exc:  # network, 5xx, a webhook set by someone else
                log.warning("telegram getUpdates failed (%s); again in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            delay = 1.0
            if updates:
                await self._process_batch(updates)
                offset = max(update.update_id for update in updates) + 1

    async def _process_batch(self, updates: list[Update]) -> None:
        lanes: dict[str, list[Update]] = {}
        for update in updates:
            lanes.setdefault(chat_of(update), []).append(update)
        await asyncio.gather(*(self._process_lane(lane) for lane in lanes.values()))

    async def _process_lane(self, updates: list[Update]) -> None:
        for update in updates:
            inbound = None
            try:
                inbound = await self._receive(update)
                if inbound is None:
                    continue
                replies = await self._handle(inbound)
            except Exception:
                log.exception("telegram update %s failed", update.update_id)
                if inbound is None:
                    continue
                # Confirmed all the same (one bad update must not stall the bot): ask
                # the resident to send it again.
                replies = [Outbound(self._t("chat.retry"))]
            if replies:
                self.channel.reply_later(inbound, replies)

    # -- both ----------------------------------------------------------------------

    async def _receive(self, update: Update) -> Inbound | None:
        """Answer a button press (always, so its spinner stops), then build the Inbound."""
        if update.callback_query is not None:
            await self._answer(update.callback_query)
        inbound = self.channel.to_inbound(update)
        return await self.channel.with_photos(inbound) if inbound is not None else None

    async def _answer(self, query: CallbackQuery) -> None:
        try:
            await self.bot.answer_callback_query(query.id)
        except AiogramError as exc:  # too old, or already answered on a previous delivery
            log.info("telegram callback %s not answered: %s", query.id, type(exc).__name__)

    def _commands(self) -> list[BotCommand]:
        return [
            BotCommand(command=name, description=self._t(f"telegram.command_{name}"))
            for name in COMMANDS
        ]

    async def _set_up(self) -> bool:
        """Point Telegram at us (set or delete the webhook) and publish the commands.

        Retried until Telegram answers, so the rest of Yimen runs while it is
        unreachable; False when the token is refused.
        """
        delay = 1.0
        while True:
            try:
                me = await self.bot.get_me()
                if self._webhook_url:
                    await self.bot.set_webhook(
                        url=self._webhook_url,
                        secret_token=self._secret.decode(),
                        allowed_updates=ALLOWED_UPDATES,
                    )
                else:
                    await self.bot.delete_webhook(drop_pending_updates=False)
                await self.bot.set_my_commands(self._commands())
            except TelegramUnauthorizedError:
                log.error("telegram refused the bot token; the telegram channel is off")
                return False
            except AiogramError as exc:
                wait = exc.retry_after if isinstance(exc, TelegramRetryAfter) else delay
                log.warning("telegram setup failed (%s); again in %.0fs", exc, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            log.info("telegram bot @%s receives updates by %s", me.username, self.mode)
            return True
