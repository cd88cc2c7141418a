"""Builds the configured dispatch platform and everything around it.

Platforms are chosen from an explicit registry by name (YIMEN_DISPATCH); the one HTTP
session they share is opened here and closed with the caller's exit stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integration.dispatch.callbacks import CallbackReceiver
from integration.dispatch.local import LocalDeskPlatform
from integration.dispatch.open311 import Locate, Open311Platform, ServiceMap
from integration.dispatch.outbox import Outbox
from integration.dispatch.ratings import RatingBook
from integration.dispatch.sync import StatusSync
from integration.dispatch.types import DispatchPlatform
from integration.dispatch.webhook import WebhookPlatform
from integration.dispatch.worker import DispatchWorker, WorkerTiming


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """What the composition root tells this package (from YIMEN_* settings)."""

    platform: str = "local"
    open311_url: str = ""
    open311_api_key: str = ""
    open311_jurisdiction: str = ""
    open311_format: str = "json"
    open311_map: Path | None = None
    url: str = ""
    secret: str = ""
    callback_url: str = ""
    timeout: float = 10.0
    callback_tolerance: float = 300.0
    timing: WorkerTiming = field(default_factory=WorkerTiming)


Builder = Callable[[DispatchConfig, ClientSession, Locate | None], DispatchPlatform]


def _local(config: DispatchConfig, http: ClientSession, locate: Locate | None) -> LocalDeskPlatform:
    return LocalDeskPlatform()


def _open311(config: DispatchConfig, http: ClientSession, locate: Locate | None) -> Open311Platform:
    if not config.open311_url:
        raise ValueError("YIMEN_DISPATCH=open311 needs YIMEN_OPEN311_URL")
    return Open311Platform(
        http,
        config.open311_url,
        api_key=config.open311_api_key,
        jurisdiction=config.open311_jurisdiction,
        services=ServiceMap.load(config.open311_map),
        fmt=config.open311_format,
        locate=locate,
    )


def _webhook(config: DispatchConfig, http: ClientSession, locate: Locate | None) -> WebhookPlatform:
    if not config.url:
        raise ValueError("YIMEN_DISPATCH=webhook needs YIMEN_DISPATCH_URL")
    return WebhookPlatform(http, config.url, secret=config.secret, callback_url=config.callback_url)


PLATFORMS: Mapping[str, Builder] = {"local": _local, "open311": _open311, "webhook": _webhook}


class Signal:
    """Calls every connected listener; how a status change wakes the push pump."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def connect(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on every signal."""
        self._listeners.append(listener)

    def __call__(self) -> None:
        for listener in self._listeners:
            listener()


@dataclass(slots=True)
class Dispatch:
    """The platform and the parts that talk to it, for one process."""

    platform: DispatchPlatform
    outbox: Outbox
    sync: StatusSync
    ratings: RatingBook
    worker: DispatchWorker
    callbacks: CallbackReceiver
    changed: Signal


def can_reopen(platform: str) -> bool:
    """Whether the named platform can reopen a case (GeoReport v2 cannot)."""
    return platform != "open311"


async def open_dispatch(
    config: DispatchConfig,
    sessions: async_sessionmaker[AsyncSession],
    stack: AsyncExitStack,
    *,
    locate: Locate | None = None,
) -> Dispatch:
    """Build the configured platform over one shared HTTP session closed with ``stack``."""
    build = PLATFORMS[config.platform]
    http = ClientSession(
        timeout=ClientTimeout(total=config.timeout),
        connector=TCPConnector(limit=max(config.timing.concurrency, 1)),
    )
    stack.push_async_callback(http.close)
    platform = build(config, http, locate)
    changed = Signal()
    outbox = Outbox(sessions, platform.name)
    sync = StatusSync(sessions, platform.name)
    ratings = RatingBook(sessions, platform=platform.name, can_reopen=platform.can_reopen)
    # A replay must be refused for as long as its signature is accepted: keep receipts
    # at least twice the tolerance (a callback may be up to that far ahead or behind).
    timing = replace(
        config.timing,
        receipt_ttl=max(config.timing.receipt_ttl, 2 * config.callback_tolerance),
    )
    worker = DispatchWorker(outbox, platform, sync, ratings, timing, on_change=changed)
    receiver = CallbackReceiver(
        sync, config.secret, tolerance=config.callback_tolerance, on_change=changed
    )
    return Dispatch(platform, outbox, sync, ratings, worker, receiver, changed)
