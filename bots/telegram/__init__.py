"""The Telegram channel (aiogram 3): long polling by default, or a webhook at /telegram.

``open_telegram`` builds the one Bot (and HTTP session) of the process, its sender and
its receiver, runs the receiver in the background, and closes it all on exit; the app
lifespan enters it when YIMEN_TELEGRAM_TOKEN is set.

aiogram serves as the typed Bot API client (methods, types, errors). Updates are not
routed through its Dispatcher: a polling loop of our own confirms updates only once
the pipeline has stored them, and keeps each chat's updates in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
from collections.abc import AsyncIterator

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from bots.media import PhotoKeeper
from bots.settings import Settings
from bots.telegram.channel import TelegramChannel
from bots.telegram.limiter import SendLimiter, SendLimits
from bots.telegram.receiver import SECRET_HEADER, Handler, TelegramReceiver
from bots.telegram.sender import TelegramSender, delivery_error
from handlers.catalog import Catalog

__all__ = [
    "SECRET_HEADER",
    "TELEGRAM",
    "SendLimiter",
    "SendLimits",
    "TelegramChannel",
    "TelegramReceiver",
    "TelegramSender",
    "delivery_error",
    "open_telegram",
    "telegram_routes",
    "webhook_secret",
]

TELEGRAM = web.AppKey("telegram", TelegramReceiver)
WEBHOOK_PATH = "/telegram"
DRAIN_TIMEOUT = 5.0  # seconds to finish sending queued replies at shutdown
# What Telegram accepts as a secret_token.
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def webhook_secret(settings: Settings) -> str:
    """The webhook's secret token: the configured one, else one derived from the token.

    Derived (HMAC-SHA256 of the bot token), not random: every worker and every restart
    computes the same value, so workers sharing one bot never overwrite each other's
    webhook with a secret the others would reject; nobody without the bot token can
    compute it. A configured secret Telegram would refuse stops the start.
    """
    configured = settings.telegram_webhook_secret
    if configured:
        if not _SECRET.match(configured):
            raise ValueError("YIMEN_TELEGRAM_WEBHOOK_SECRET must be 1-256 letters, digits, _ or -")
        return configured
    digest = hmac.new(settings.telegram_token.encode(), b"yimen telegram webhook", hashlib.sha256)
    return digest.hexdigest()


@contextlib.asynccontextmanager
async def open_telegram(
    settings: Settings,
    handle: Handler,
    catalog: Catalog,
    limits: SendLimits | None = None,
    *,
    photos: PhotoKeeper,
) -> AsyncIterator[TelegramReceiver]:
    """Run the Telegram channel for the duration of the block.

    Raises at once for a malformed token or secret (the server refuses to start); a
    token Telegram itself refuses is logged and leaves the other channels running.
    """
    secret = webhook_secret(settings) if settings.telegram_webhook_url else ""
    api = TelegramAPIServer.from_base(settings.telegram_api_base)
    bot = Bot(settings.telegram_token, session=AiohttpSession(api=api))
    try:
        sender = TelegramSender(
            bot,
            SendLimiter(
                limits
                or SendLimits(
                    rate=settings.telegram_rate, chat_interval=settings.telegram_chat_interval
                )
            ),
        )
        channel = TelegramChannel(bot, sender, photos, settings.max_upload_bytes)
        receiver = TelegramReceiver(
            bot,
            channel,
            handle,
            catalog,
            webhook_url=settings.telegram_webhook_url,
            secret=secret,
        )
        task = asyncio.create_task(receiver.run(), name="telegram-receiver")
        try:
            yield receiver
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sender.drain(DRAIN_TIMEOUT)
    finally:
        await bot.session.close()


def telegram_routes(settings: Settings) -> list[web.RouteDef]:
    """The webhook route, in webhook mode; the receiver comes from the app's TELEGRAM."""
    if not (settings.telegram_token and settings.telegram_webhook_url):
        return []

    async def webhook(request: web.Request) -> web.Response:
        return await request.app[TELEGRAM].on_webhook(request)

    return [web.post(WEBHOOK_PATH, webhook)]
