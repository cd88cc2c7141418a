"""The WeChat Official Account channel: a webhook at /wechat on the `yimen run` server.

wechatpy does what it is good at without I/O (signatures, AES, reply XML); the few API
calls (access_token, customer-service and template messages, the menu) go through one
aiohttp session opened and closed with the app. ``open_wechat`` builds it all when
YIMEN_WECHAT_TOKEN is set; ``wechat_routes`` mounts the webhook.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bots.settings import Settings
from bots.wechat.api import WeChatAPI
from bots.wechat.channel import Handler, Recorder, WeChatChannel, WeChatTiming
from bots.wechat.errors import WeChatAPIError, WeChatError, WeChatUnavailable
from bots.wechat.security import WebhookGuard
from bots.wechat.tokens import MemoryTokenCache, RedisTokenCache, TokenCache
from bots.wechat.translate import CHANNEL
from bots.wechat.window import TranscriptWindow
from handlers.messages import Inbound
from handlers.pipeline import transcript_record
from integration.errors import DuplicateMessage
from integration.state import KeyBuilder, RedisClient, open_redis
from integration.transcript import Transcript

if TYPE_CHECKING:
    from bots.runtime import Services

__all__ = [
    "WECHAT",
    "WeChatAPI",
    "WeChatAPIError",
    "WeChatChannel",
    "WeChatError",
    "WeChatOptions",
    "WeChatTiming",
    "WeChatUnavailable",
    "install_menu",
    "open_wechat",
    "wechat_routes",
]

log = logging.getLogger(__name__)

WECHAT = web.AppKey("wechat", WeChatChannel)
WEBHOOK_PATH = "/wechat"
API_TIMEOUT = 10.0  # seconds per WeChat API call


@dataclass(frozen=True, slots=True)
class WeChatOptions:
    """What code, not the environment, may change: timing and the clock (tests, benches)."""

    timing: WeChatTiming = field(default_factory=WeChatTiming)
    clock: Callable[[], float] = time.time


def token_cache(settings: Settings, redis: RedisClient | None) -> TokenCache:
    """Where the access_token is shared: Redis when configured, else this process."""
    if redis is None:
        return MemoryTokenCache()
    keys = KeyBuilder(settings.redis_prefix)
    tag = keys.conversation(CHANNEL, settings.wechat_app_id)  # one slot for token and lock
    return RedisTokenCache(
        redis,
        keys.build("token", CHANNEL, settings.wechat_app_id, tag=tag),
        keys.build("tokenlock", CHANNEL, settings.wechat_app_id, tag=tag),
    )


@contextlib.asynccontextmanager
async def open_api(settings: Settings, redis: RedisClient | None) -> AsyncIterator[WeChatAPI]:
    """The WeChat API client over a session of its own, closed on exit."""
    timeout = aiohttp.ClientTimeout(total=API_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield WeChatAPI(
            session,
            settings.wechat_api_base,
            settings.wechat_app_id,
            settings.wechat_app_secret,
            token_cache(settings, redis),
            rate=settings.wechat_rate,
        )


@contextlib.asynccontextmanager
async def open_wechat(
    settings: Settings, services: Services, handle: Handler, options: WeChatOptions | None = None
) -> AsyncIterator[WeChatChannel]:
    """The channel for the duration of the block; late replies finish before it closes."""
    options = options or WeChatOptions(WeChatTiming(deadline=settings.wechat_deadline))
    guard = WebhookGuard(
        settings.wechat_token,
        settings.wechat_aes_key,
        settings.wechat_app_id,
        clock=options.clock,
    )
    if not (settings.wechat_app_id and settings.wechat_app_secret):
        log.warning(
            "YIMEN_WECHAT_APP_ID or YIMEN_WECHAT_APP_SECRET unset: passive replies only, "
            "late replies and status pushes will fail"
        )
    async with open_api(settings, services.redis) as api:
        channel = WeChatChannel(
            guard,
            api,
            services.catalog,
            handle=handle,
            record=_recorder(services.transcript),
            spool=functools.partial(services.notifications.queue_reply, CHANNEL),
            last_inbound=TranscriptWindow(services.sessions, CHANNEL).last_inbound,
            template_id=settings.wechat_template_status,
            timing=options.timing,
            clock=options.clock,
        )
        try:
            yield channel
        finally:
            await channel.drain()


def wechat_routes(settings: Settings) -> list[web.RouteDef]:
    """GET and POST /wechat when the channel is configured; the channel is app[WECHAT]."""
    if not settings.wechat_token:
        return []

    async def verify(request: web.Request) -> web.Response:
        return await request.app[WECHAT].on_verify(request)

    async def deliver(request: web.Request) -> web.Response:
        return await request.app[WECHAT].on_message(request)

    return [web.get(WEBHOOK_PATH, verify), web.post(WEBHOOK_PATH, deliver)]


async def install_menu(settings: Settings, menu: Mapping[str, Any]) -> None:
    """Install the custom menu (menu/create), sharing the workers' access_token in Redis."""
    redis = (
        open_redis(settings.redis_url, cluster=settings.redis_cluster)
        if settings.redis_url
        else None
    )
    try:
        async with open_api(settings, redis) as api:
            await api.create_menu(menu)
    finally:
        if redis is not None:
            await redis.aclose()


def _recorder(transcript: Transcript) -> Recorder:
    async def record(inbound: Inbound) -> None:
        """Keep an event that needs no answer (unsubscribe); a redelivery is a no-op."""
        try:
            await transcript.record_inbound(transcript_record(inbound))
        except DuplicateMessage:
            pass

    return record
