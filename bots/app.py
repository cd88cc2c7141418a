"""The aiohttp server behind `yimen run`: web chat, health, and the channels' webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bots.runtime import Services, finish, open_services
from bots.settings import Settings
from bots.telegram import TELEGRAM, SendLimits, open_telegram, telegram_routes
from bots.webchat import WebChatChannel
from bots.wechat import WECHAT, WeChatOptions, open_wechat, wechat_routes
from handlers.messages import Channel, Inbound, Outbound
from handlers.notifier import NotificationPump
from integration.dispatch.callbacks import CALLBACK_PATH

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
PUMP = web.AppKey("pump", NotificationPump)


def create_app(
    settings: Settings,
    *,
    telegram_limits: SendLimits | None = None,
    wechat_options: WeChatOptions | None = None,
) -> web.Application:
    """The application; services open and close with it (its cleanup context).

    ``telegram_limits`` overrides Telegram's send rates (tests use faster ones);
    ``wechat_options`` WeChat's reply deadline and clock (tests, the benchmark).
    """
    app = web.Application(client_max_size=settings.max_upload_bytes + 64 * 1024)
    webchat = WebChatChannel(settings.media_dir, settings.max_upload_bytes)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings) as services, contextlib.AsyncExitStack() as stack:
            app[SERVICES] = services
            channels: dict[str, Channel[Any]] = {webchat.name: webchat}
            if settings.telegram_token:
                telegram = await stack.enter_async_context(
                    open_telegram(settings, handle, services.catalog, telegram_limits)
                )
                app[TELEGRAM], channels[telegram.channel.name] = telegram, telegram.channel
            if settings.wechat_token:
                wechat = await stack.enter_async_context(
                    open_wechat(settings, services, handle, wechat_options)
                )
                app[WECHAT], channels[wechat.name] = wechat, wechat
            pump = NotificationPump(
                services.notifications,
                channels,
                services.catalog,
                poll_interval=settings.push_poll_interval,
            )
            app[PUMP] = pump
            services.dispatch.changed.connect(pump.wake)  # platform changes push at once
            tasks = [
                asyncio.create_task(pump.run(), name="notification-pump"),
                asyncio.create_task(services.dispatch.worker.run(), name="dispatch-worker"),
            ]
            try:
                yield
            finally:
                pump.stop()
                services.dispatch.worker.stop()
                await finish(tasks)

    async def handle(inbound: Inbound) -> list[Outbound] | None:
        pipeline = app[SERVICES].pipeline
        assert pipeline is not None
        return await pipeline.handle(inbound)

    async def on_connect(chat_id: str) -> None:
        await app[SERVICES].notifications.release(webchat.name, chat_id)
        app[PUMP].wake()

    async def healthz(request: web.Request) -> web.Response:
        report = await request.app[SERVICES].health()
        healthy = all(value == "ok" for value in report.values())
        return web.json_response(
            {"status": "ok" if healthy else "degraded", **report}, status=200 if healthy else 503
        )

    async def index(_: web.Request) -> web.Response:
        raise web.HTTPFound("/chat")

    async def dispatch_callback(request: web.Request) -> web.Response:
        return await request.app[SERVICES].dispatch.callbacks.handle(request)

    app.cleanup_ctx.append(lifespan)
    app.add_routes([web.get("/", index), web.get("/healthz", healthz)])
    app.add_routes([web.post(CALLBACK_PATH, dispatch_callback)])
    app.add_routes(webchat.routes(handle, on_connect))
    app.add_routes(telegram_routes(settings))
    app.add_routes(wechat_routes(settings))
    return app
