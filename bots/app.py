"""The aiohttp server behind `yimen run`: web chat, health, and the channels' webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bots.runtime import Services, open_services
from bots.settings import Settings
from bots.webchat import WebChatChannel
from handlers.messages import Inbound, Outbound
from handlers.notifier import NotificationPump

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
PUMP = web.AppKey("pump", NotificationPump)


def create_app(settings: Settings) -> web.Application:
    """The application; services open and close with it (its cleanup context)."""
    app = web.Application(client_max_size=settings.max_upload_bytes + 64 * 1024)
    webchat = WebChatChannel(settings.media_dir, settings.max_upload_bytes)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            pump = NotificationPump(
                services.notifications,
                {webchat.name: webchat},
                services.catalog,
                poll_interval=settings.push_poll_interval,
            )
            app[SERVICES], app[PUMP] = services, pump
            task = asyncio.create_task(pump.run(), name="notification-pump")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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

    app.cleanup_ctx.append(lifespan)
    app.add_routes([web.get("/", index), web.get("/healthz", healthz)])
    app.add_routes(webchat.routes(handle, on_connect))
    return app
