"""Push-burst benchmark: N status-change pushes drained at the platform's rate limit.

Run from the repository root (it borrows the test suite's platform emulators)::

    .venv/bin/python -m bots.bench.push --channel telegram --pushes 10000 --chats 1000
    YIMEN_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/yimen_bench \\
        .venv/bin/python -m bots.bench.push --channel wechat --pushes 10000 --chats 1000

N cases are opened for C residents (round robin) and each is moved to 处理中 by staff,
which queues one status push per case in the same transaction (not timed). Then the
real notification pump (handlers.notifier) drains the queue through the real channel
(Telegram: the paced sender; WeChat: message/custom/send, the residents being inside
the 48-hour window) against the loopback emulator of the platform's API. It reports
pushes/s, the drain time, what the emulator received, the pushes lost (queued, never
received) and received twice, and the most sends in any one second. The emulator
shares the benchmark's process and CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bots.logs import configure
from bots.runtime import Services, open_services
from bots.settings import Settings
from handlers.messages import Channel, Inbound, Outbound
from handlers.notifier import NotificationPump
from integration.cases import CaseDraft
from integration.models import CaseStatus, Notification, utcnow
from integration.transcript import InboundRecord

CHANNELS = ("telegram", "wechat")
NOTE = "已派城管中队处理"
FIRST_CHAT = 7_100_000_000  # Telegram chat ids of the benchmark's residents
OPENERS = 20  # cases opened at once while the queue is filled


@dataclass(frozen=True, slots=True)
class PushBench:
    """What one burst measured."""

    channel: str
    database: str
    pushes: int  # queued
    chats: int
    rate: float  # the pacing configured (messages/s; 0: none)
    enqueue_seconds: float
    drain_seconds: float  # from the pump's start to the last push received
    received: int  # sends the emulator accepted for the burst's cases
    lost: int  # queued but never received
    duplicates: int  # received more than once (extra copies)
    max_per_second: int  # most sends in any one-second window
    violations: int  # the emulator's count of sends over its rate limits (Telegram)
    left_in_queue: dict[str, int]  # the queue's rows by state afterwards

    @property
    def pushes_per_second(self) -> float:
        return self.received / self.drain_seconds if self.drain_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pushes_per_second": round(self.pushes_per_second, 2)}

    def describe(self) -> str:
        pacing = f"{self.rate:g}/s" if self.rate else "none"
        return (
            f"push burst ({self.channel}, {self.database}): {self.pushes} pushes to "
            f"{self.chats} residents, pacing {pacing}\n"
            f"  queued in {self.enqueue_seconds:.1f}s; drained in {self.drain_seconds:.1f}s = "
            f"{self.pushes_per_second:,.1f} pushes/s\n"
            f"  emulator received {self.received}; lost {self.lost}; duplicates "
            f"{self.duplicates}; max {self.max_per_second} sends in one second; "
            f"{self.violations} limit violations; queue afterwards {self.left_in_queue}"
        )


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of ``times`` that fall in any half-open window of ``window`` seconds
    (times a nanosecond short of ``window`` apart count as ``window`` apart)."""
    ordered, best, start = sorted(times), 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window + 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


class _Platform:
    """The emulated platform API: its settings for Yimen, and what it received."""

    def __init__(self, channel: str, rate: float, chat_interval: float) -> None:
        self.channel = channel
        self._rate, self._chat_interval = rate, chat_interval
        self._emulator: Any = None

    @contextlib.asynccontextmanager
    async def running(self, settings: Settings) -> AsyncIterator[Settings]:
        """Start the emulator; ``settings`` pointed at it."""
        if self.channel == "telegram":
            from tests.emulators.telegram import TelegramEmulator
            from tests.emulators.telegram_app import TOKEN

            async with TelegramEmulator(
                TOKEN, chat_interval=self._chat_interval, rate=self._rate
            ) as emulator:
                self._emulator = emulator
                yield settings.model_copy(
                    update={
                        "telegram_token": TOKEN,
                        "telegram_api_base": emulator.base_url,
                        "telegram_rate": self._rate,
                        "telegram_chat_interval": self._chat_interval,
                    }
                )
        else:
            from tests.emulators.wechat import APP_ID, APP_SECRET, TOKEN, WeChatAPIEmulator

            async with WeChatAPIEmulator() as emulator:
                self._emulator = emulator
                yield settings.model_copy(
                    update={
                        "wechat_token": TOKEN,
                        "wechat_app_id": APP_ID,
                        "wechat_app_secret": APP_SECRET,
                        "wechat_api_base": emulator.base,
                        "wechat_rate": self._rate,
                    }
                )

    def received(self) -> list[tuple[str, float]]:
        """(text, when on the monotonic clock) of every message accepted so far."""
        if self.channel == "telegram":
            return [(sent.text, sent.at) for sent in self._emulator.sent]
        return [(sent.text, sent.at) for sent in self._emulator.texts]

    def count(self) -> int:
        return len(self._emulator.sent if self.channel == "telegram" else self._emulator.texts)

    @property
    def violations(self) -> int:
        return len(self._emulator.violations) if self.channel == "telegram" else 0


def chat_of(channel: str, index: int) -> str:
    """The benchmark's resident ``index`` as the platform names the chat."""
    return str(FIRST_CHAT + index) if channel == "telegram" else f"o-bench-resident-{index:06d}"


async def enqueue(services: Services, channel: str, pushes: int, chats: int) -> list[str]:
    """Open ``pushes`` cases round robin over ``chats`` residents and move each to 处理中:
    one queued status push per case. The case numbers, in the order they were queued."""
    if channel == "wechat":  # each resident wrote once: pushes go as customer messages
        now = utcnow()
        for index in range(chats):
            chat = chat_of(channel, index)
            await services.transcript.record_inbound(
                InboundRecord(channel, chat, chat, f"bench-{chat}-{now.timestamp()}", "你好", now)
            )
    todo = list(range(pushes))
    todo.reverse()
    numbers: list[str] = []

    async def opener() -> None:
        while todo:
            chat = chat_of(channel, todo.pop() % chats)
            draft = CaseDraft(channel, chat, chat, "noise", "夜里施工扰民", "金辉小区3号楼")
            number = (await services.cases.create_case(draft)).number
            await services.cases.change_status(number, CaseStatus.in_progress, NOTE)
            numbers.append(number)

    await asyncio.gather(*(opener() for _ in range(min(OPENERS, pushes))))
    return numbers


async def last_push_id(services: Services) -> int:
    """The newest queued push's id (0 for none): the run's pushes come after it."""
    async with services.sessions() as session:
        return int(await session.scalar(select(func.max(Notification.id))) or 0)


async def queue_states(services: Services, channel: str, after: int) -> dict[str, int]:
    """The channel's pushes queued after id ``after``, by state."""
    query = (
        select(Notification.state, func.count())
        .where(Notification.channel == channel, Notification.id > after)
        .group_by(Notification.state)
    )
    async with services.sessions() as session:
        return {str(state): int(count) for state, count in (await session.execute(query)).all()}


@contextlib.asynccontextmanager
async def open_channel(
    settings: Settings, services: Services, channel: str
) -> AsyncIterator[Channel[Any]]:
    """The channel as the app opens it (its own sender, pacing and API client)."""

    async def handle(inbound: Inbound) -> list[Outbound] | None:
        return None  # nobody writes during the burst

    if channel == "telegram":
        from bots.telegram import open_telegram

        async with open_telegram(
            settings, handle, services.catalog, photos=services.media
        ) as receiver:
            yield receiver.channel
    else:
        from bots.wechat import open_wechat

        async with open_wechat(settings, services, handle) as wechat:
            yield wechat


async def run(
    settings: Settings,
    channel: str,
    pushes: int,
    chats: int,
    rate: float,
    chat_interval: float = 1.0,
    advance: Callable[[int], None] = lambda _: None,
    stall: float = 120.0,
) -> PushBench:
    """Queue the burst, drain it, and count what the platform received."""
    platform = _Platform(channel, rate, chat_interval)
    async with platform.running(settings) as settings, contextlib.AsyncExitStack() as stack:
        services = await stack.enter_async_context(open_services(settings, with_nlu=False))
        before = await last_push_id(services)  # a reused database has older pushes
        started = time.perf_counter()
        numbers = await enqueue(services, channel, pushes, chats)
        enqueue_seconds = time.perf_counter() - started
        wanted = set(numbers)
        sender = await stack.enter_async_context(open_channel(settings, services, channel))
        pump = NotificationPump(
            services.notifications,
            {channel: sender},
            services.catalog,
            poll_interval=settings.push_poll_interval,
            send_timeout=settings.push_timeout,
        )
        began = time.monotonic()
        task = asyncio.create_task(pump.run(), name="bench-pump")
        seen, last_change = 0, began
        try:
            while seen < pushes and time.monotonic() - last_change < stall:
                await asyncio.sleep(0.2)
                count = platform.count()
                if count != seen:
                    advance(count - seen)
                    seen, last_change = count, time.monotonic()
            await asyncio.sleep(1.0)  # a duplicate would be on its way now
        finally:
            pump.stop()
            await task
        got = [(number, at) for text, at in platform.received() for number in _numbers(text)]
        copies = Counter(number for number, _ in got if number in wanted)
        times = [at for number, at in got if number in wanted]
        return PushBench(
            channel=channel,
            database=settings.resolved_database_url.split(":")[0].split("+")[0],
            pushes=pushes,
            chats=chats,
            rate=rate,
            enqueue_seconds=enqueue_seconds,
            drain_seconds=(max(times) - began) if times else 0.0,
            received=sum(copies.values()),
            lost=len(wanted - set(copies)),
            duplicates=sum(n - 1 for n in copies.values()),
            max_per_second=max_in_window(times),
            violations=platform.violations,
            left_in_queue=await queue_states(services, channel, before),
        )


def _numbers(text: str) -> list[str]:
    """The case number a push names (first word that looks like one)."""
    found = re.search(r"YM\d{10,}", text)
    return [found.group()] if found else []


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m bots.bench.push``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--channel", choices=CHANNELS, default="telegram")
    parser.add_argument("--pushes", type=int, default=1000, help="status pushes to queue")
    parser.add_argument("--chats", type=int, default=100, help="residents they go to")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="pacing, messages/s (Telegram: YIMEN_TELEGRAM_RATE, default 30; "
        "WeChat: YIMEN_WECHAT_RATE, default 0 = none)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    arguments = parser.parse_args(argv)
    if arguments.pushes < 1 or arguments.chats < 1:
        parser.error("--pushes and --chats must be at least 1")
    configure("WARNING")
    settings = Settings(**{})  # YIMEN_* variables and .env, as every command reads them
    rate = arguments.rate
    if rate is None:
        rate = settings.telegram_rate if arguments.channel == "telegram" else settings.wechat_rate
    from bots.progress import counting

    with tempfile.TemporaryDirectory() as tmp:
        if not settings.database_url:
            settings = settings.model_copy(
                update={"database_url": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"}
            )
        with counting(f"{arguments.channel} pushes", arguments.pushes) as advance:
            result = asyncio.run(
                run(
                    settings,
                    arguments.channel,
                    arguments.pushes,
                    arguments.chats,
                    rate,
                    settings.telegram_chat_interval,
                    advance,
                )
            )
    print(result.describe())
    if arguments.json:
        arguments.json.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
        print(f"  figures written to {arguments.json}")
    if result.lost or result.duplicates:
        raise SystemExit(1)  # the burst's point: nothing lost, nothing doubled


if __name__ == "__main__":
    main()
