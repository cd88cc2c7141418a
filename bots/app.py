"""The aiohttp server behind `yimen run`: web chat, health, and the channels' webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bots.identity import ClientAddress, VisitorIdentity, load_secret_key
from bots.runtime import Services, finish, open_services
from bots.security import forwarded_middleware, secure_headers
from bots.settings import Settings
from bots.telegram import TELEGRAM, SendLimits, open_telegram, telegram_routes
from bots.uploads import UploadLimits, UploadRoutes
from bots.webchat import STATIC, WebChatChannel, WebChatLimits, WebChatParts
from bots.wechat import WECHAT, WeChatOptions, open_wechat, wechat_routes
from console import build_console
from console.web import CONSOLE
from handlers.flows.chat import ChatFlow
from handlers.handoff_alarms import HandoffAlarms
from handlers.history import ChatHistory
from handlers.messages import Channel, Inbound, Outbound
from handlers.notifier import NotificationPump
from handlers.reminders import BookingReminders
from handlers.volunteer_reminders import VolunteerReminders
from integration.appointment_reminders import ReminderQueue
from integration.claims import ClaimBook
from integration.dispatch.callbacks import CALLBACK_PATH
from integration.history import TranscriptTail
from integration.metrics import (
    HANDOFF_OLDEST,
    HANDOFF_WAITING,
    OUTBOX_AGE,
    OUTBOX_DEPTH,
    exposition,
)
from integration.services import load_catalogue
from integration.volunteer_reminders import VolunteerReminderQueue
from nlu.rasa_client import FallbackInterpreter
from nlu.types import Interpreter

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
PUMP = web.AppKey("pump", NotificationPump)
WEBCHAT = web.AppKey("webchat", WebChatChannel)
SWEEP_INTERVAL = 3600.0  # seconds between sweeps of unused uploads
# Bodies other than uploads (which stream) are small: callbacks, Telegram updates.
MAX_BODY = 1024 * 1024


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
    shutdown = Shutdown(settings.shutdown_timeout)
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[shutdown.middleware, forwarded_middleware(ClientAddress(settings.proxies))],
        # aiohttp closes a connection that has not sent a whole request this long
        # after it opened (or after its last response): slow headers are cut off.
        handler_args={"keepalive_timeout": settings.header_timeout},
    )
    app.on_response_prepare.append(secure_headers)
    identity = VisitorIdentity(load_secret_key(settings.secret_key, settings.data_dir))
    webchat = WebChatChannel(identity, webchat_limits(settings))
    uploads = UploadRoutes(
        identity,
        webchat.name,
        UploadLimits(
            per_address=settings.upload_address_limit,
            concurrent=settings.upload_concurrency,
            origins=settings.origins,
        ),
    )
    app[WEBCHAT] = webchat
    app[CONSOLE] = console = build_console(settings)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings) as services, contextlib.AsyncExitStack() as stack:
            app[SERVICES] = services
            console.bind(services)
            channels: dict[str, Channel[Any]] = {webchat.name: webchat}
            if settings.telegram_token:
                telegram = await stack.enter_async_context(
                    open_telegram(
                        settings, handle, services.catalog, telegram_limits, photos=services.media
                    )
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
                send_timeout=settings.push_timeout,
                lease=settings.push_lease,
            )
            app[PUMP] = pump
            webchat.bind(
                WebChatParts(
                    media=services.media,
                    throttle=services.throttle,
                    history=ChatHistory(
                        TranscriptTail(services.sessions), services.notifications, pump.render
                    ),
                    keys=services.keys,
                    catalog=services.catalog,
                    greeting=Outbound(
                        services.catalog("chat.greet"), ChatFlow(services.catalog).menu()
                    ),
                )
            )
            uploads.bind(services.media, services.throttle, services.keys, services.catalog)
            services.dispatch.changed.connect(pump.wake)  # platform changes push at once
            sweeping = asyncio.Event()  # set: stop sweeping (and reminding)
            reminders = BookingReminders(
                ReminderQueue(services.sessions),
                load_catalogue(settings.service_catalogue),
                services.catalog,
            )
            volunteer_reminders = VolunteerReminders(
                VolunteerReminderQueue(services.sessions),
                ClaimBook(services.sessions),
                services.catalog,
            )
            tasks = [
                asyncio.create_task(reminders.run(sweeping), name="appointment-reminders"),
                asyncio.create_task(
                    HandoffAlarms(services.handoffs, services.catalog).run(sweeping),
                    name="handoff-alarms",
                ),
                asyncio.create_task(volunteer_reminders.run(sweeping), name="volunteer-reminders"),
                asyncio.create_task(pump.run(), name="notification-pump"),
                asyncio.create_task(services.dispatch.worker.run(), name="dispatch-worker"),
                asyncio.create_task(sweep_uploads(services, sweeping), name="upload-sweeper"),
            ]
            try:
                yield
            finally:
                pump.stop()
                services.dispatch.worker.stop()
                sweeping.set()
                # The pushes in hand finish within what is left of the shutdown deadline.
                await finish(tasks, grace=shutdown.remaining())

    async def going_away(app: web.Application) -> None:
        """SIGTERM (aiohttp has stopped listening): idle chat pages are closed with 1001,
        and the messages in hand are answered before the services close."""
        shutdown.begin()
        await webchat.going_away()
        await shutdown.drain()

    async def handle(inbound: Inbound) -> list[Outbound] | None:
        pipeline = app[SERVICES].pipeline
        assert pipeline is not None
        return await pipeline.handle(inbound)

    async def on_connect(chat_id: str) -> None:
        await app[SERVICES].notifications.release(webchat.name, chat_id)
        app[PUMP].wake()

    async def healthz(request: web.Request) -> web.Response:
        report: dict[str, Any] = dict(await request.app[SERVICES].health())
        pump = request.app[PUMP].status()
        report["pump"] = pump.as_dict()
        healthy = not pump.stalled and all(
            value == "ok" for key, value in report.items() if key != "pump"
        )
        return web.json_response(
            {"status": "ok" if healthy else "degraded", **report}, status=200 if healthy else 503
        )

    async def readyz(request: web.Request) -> web.Response:
        """Whether to send this process traffic, with each part named.

        Not ready (503) when the database or Redis cannot be reached: nothing could be
        kept. The NLU backend and the platform are named but do not decide: with Rasa
        down the embedded model answers, and with the platform down cases wait in the
        outbox and are forwarded later.
        """
        services = request.app[SERVICES]
        report: dict[str, Any] = dict(await services.health())
        ready = all(value == "ok" for value in report.values())
        report.setdefault("redis", "none")  # in-process state: nothing to reach
        report["nlu"] = nlu_status(services.nlu)
        worker = services.dispatch.worker
        report["platform"] = {
            "name": services.dispatch.platform.name,
            "state": "ok" if worker.last_error is None else "unreachable",
            **({"last_error": worker.last_error} if worker.last_error else {}),
        }
        report["pump"] = request.app[PUMP].status().as_dict()
        report["worker"] = os.getpid()  # which of `run --workers N` answered
        return web.json_response(
            {"status": "ready" if ready else "not ready", **report}, status=200 if ready else 503
        )

    async def metrics(request: web.Request) -> web.Response:
        """Prometheus metrics; the outbox and handoff gauges are read from the database now."""
        outbox = request.app[SERVICES].dispatch.outbox
        try:
            counts = await outbox.counts()
            for state in ("pending", "dead"):
                OUTBOX_DEPTH.labels(state).set(counts.get(state, 0))
            OUTBOX_AGE.set(await outbox.oldest_pending_age())
            waiting, oldest = await request.app[SERVICES].handoffs.waiting_stats()
            HANDOFF_WAITING.set(waiting)
            HANDOFF_OLDEST.set(oldest)
        except Exception:  # the counters still tell; /readyz names the database
            log.warning("outbox and handoff gauges not read", exc_info=True)
        body, content_type = exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def index(_: web.Request) -> web.Response:
        raise web.HTTPFound("/chat")

    async def dispatch_callback(request: web.Request) -> web.Response:
        return await request.app[SERVICES].dispatch.callbacks.handle(request)

    app.cleanup_ctx.append(lifespan)
    app.on_shutdown.append(going_away)
    app.add_routes([web.get("/", index), web.get("/healthz", healthz)])
    app.add_routes([web.get("/readyz", readyz), web.get("/metrics", metrics)])
    app.add_routes([web.post(CALLBACK_PATH, dispatch_callback)])
    app.add_routes(webchat.routes(handle, on_connect))
    app.add_routes(uploads.routes())
    app.router.add_static("/chat/static", STATIC / "assets", append_version=False)
    app.add_routes(telegram_routes(settings))
    app.add_routes(wechat_routes(settings))
    app.add_subapp("/console", console.app)
    return app


class Shutdown:
    """The requests in flight, and the deadline a shutdown must keep.

    aiohttp waits 60 s for handlers after its on_shutdown hooks; this keeps the
    operator's own deadline (YIMEN_SHUTDOWN_TIMEOUT) for requests and pushes together:
    what is still running when it passes is cancelled (a message not answered is
    resent by its channel; a push not marked sent is sent again after its lease).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._deadline: float | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Keep each request's task while it runs."""
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await handler(request)
        finally:
            self._handlers.discard(task)

    def begin(self) -> None:
        """Start the clock (once)."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout

    def remaining(self) -> float:
        """Seconds left before the deadline (the whole timeout before it began)."""
        if self._deadline is None:
            return self.timeout
        return max(0.0, self._deadline - time.monotonic())

    async def drain(self) -> None:
        """Wait for the requests in flight until the deadline; cancel what is left."""
        pending = {task for task in self._handlers if task is not asyncio.current_task()}
        if not pending:
            return
        log.info("shutting down: waiting for %d requests in flight", len(pending))
        _, late = await asyncio.wait(pending, timeout=self.remaining())
        if late:
            log.warning("shutting down: %d requests cut off at the deadline", len(late))
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=1.0)


def webchat_limits(settings: Settings) -> WebChatLimits:
    """The web chat's own limits from settings."""
    return WebChatLimits(
        send_timeout=settings.webchat_send_timeout,
        window=settings.rate_window,
        per_connection=settings.webchat_connection_limit,
        per_address=settings.webchat_address_limit,
        sockets_per_address=settings.webchat_address_sockets,
        history=settings.webchat_history,
        origins=settings.origins,
    )


async def sweep_uploads(
    services: Services, stop: asyncio.Event, interval: float = SWEEP_INTERVAL
) -> None:
    """Delete uploads no message used in time, every ``interval`` seconds, until ``stop``."""
    while not stop.is_set():
        try:
            swept = await services.media.sweep()
            if swept:
                log.info("deleted %d unused uploads", swept)
        except Exception:
            log.exception("sweeping unused uploads failed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()


def nlu_status(interpreter: Interpreter | None) -> str:
    """Which NLU backend answers now: embedded, rasa, or embedded standing in for Rasa."""
    if interpreter is None:
        return "none"
    if isinstance(interpreter, FallbackInterpreter):
        failure = interpreter.failure
        return "rasa" if failure is None else f"embedded (rasa unavailable: {failure})"
    return "embedded"
