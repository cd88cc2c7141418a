"""Dispatch benchmark: forwarding throughput, and status change → resident push delay.

Run from the repository root (it borrows the test suite's platform emulators)::

    .venv/bin/python -m bots.bench.dispatch --platform webhook --cases 2000
    YIMEN_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/yimen_bench \\
        .venv/bin/python -m bots.bench.dispatch --platform open311

Forwarding: N cases are opened first (not timed), then the worker forwards them all
through the emulated platform; cases per second is N over that time. Delay: for each
of M forwarded cases the platform changes the status (webhook: a signed callback to
``/dispatch/callback``; Open311: the change is found by status polling) and the time
until the resident's channel is handed the push is measured; p50 and p99. The
emulator shares the benchmark's process and CPU, so the numbers are conservative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import ClientSession, web

from bots.logs import configure
from bots.loop import run as run_loop
from bots.runtime import dispatch_config, open_services
from bots.settings import Settings
from handlers.messages import Outbound
from handlers.notifier import NotificationPump
from integration.cases import CaseDraft
from integration.dispatch.callbacks import CALLBACK_PATH
from integration.dispatch.signing import signed_headers
from integration.dispatch.worker import WorkerTiming
from tests.emulators.dispatch import DispatchEmulator
from tests.emulators.open311 import Open311Emulator

SECRET = "bench-secret"  # noqa: S105 (the benchmark's emulated platform)


@dataclass(frozen=True, slots=True)
class DispatchBench:
    """What one run measured."""

    cases: int
    forward_seconds: float
    changes: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Cases forwarded per second."""
        return self.cases / self.forward_seconds


class _Stopwatch:
    """A channel that notes when each chat's push arrives."""

    name = "bench"

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.events: dict[str, asyncio.Event] = {}

    def to_inbound(self, update: object) -> None:
        return None

    async def reply(self, inbound: object, messages: list[Outbound]) -> None:
        return None

    async def push(self, chat_id: str, message: Outbound) -> None:
        self.arrived.setdefault(chat_id, time.perf_counter())
        self.events.setdefault(chat_id, asyncio.Event()).set()

    async def wait(self, chat_id: str) -> float:
        await self.events.setdefault(chat_id, asyncio.Event()).wait()
        return self.arrived[chat_id]


async def run(
    settings: Settings, platform: str, cases: int, changes: int, concurrency: int = 1
) -> DispatchBench:
    """Forward ``cases`` cases, then time ``changes`` status changes to their push."""
    emulator: DispatchEmulator | Open311Emulator
    first = int(time.time() * 1000)  # platform ids never met before, even in a reused database
    if platform == "webhook":
        emulator = DispatchEmulator(secret=SECRET, first_id=first)
    else:
        emulator = Open311Emulator(first_id=first)
    await emulator.start()
    url = emulator.url if isinstance(emulator, DispatchEmulator) else emulator.base
    settings = settings.model_copy(
        update={
            "dispatch": platform,
            "dispatch_url": url,
            "dispatch_secret": SECRET,
            "open311_url": url,
            "open311_api_key": "test-key",
            "dispatch_poll_interval": 0.05,
            "dispatch_status_interval": 0.2,
            "push_poll_interval": 1.0,
        }
    )
    try:
        async with AsyncExitStack() as stack:
            services = await stack.enter_async_context(open_services(settings, with_nlu=False))
            numbers = await _open(services.cases, cases)
            worker = services.dispatch.worker
            started = time.perf_counter()
            while (await services.dispatch.outbox.counts()).get("pending"):
                if not await worker.forward_due():
                    await asyncio.sleep(0.05)  # only retries are left: they come due soon
            forward_seconds = time.perf_counter() - started
            delays = await _delays(services, emulator, numbers[:changes], stack, concurrency)
    finally:
        emulator.faults.release.set()
        await emulator.stop()
    ordered = sorted(delays)
    return DispatchBench(
        cases=cases,
        forward_seconds=forward_seconds,
        changes=len(ordered),
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    )


async def _open(book: object, count: int) -> list[str]:
    from integration.cases import CaseBook

    assert isinstance(book, CaseBook)
    queue = list(range(count))
    numbers: list[str] = []

    async def opener() -> None:
        while queue:
            index = queue.pop()
            chat = f"bench-{index}"
            draft = CaseDraft(
                "bench", chat, chat, "noise", "夜里施工扰民", "金辉小区3号楼", 39.6, 109.7
            )
            numbers.append((await book.create_case(draft)).number)

    await asyncio.gather(*(opener() for _ in range(20)))
    return sorted(numbers)


async def _delays(
    services: object,
    emulator: DispatchEmulator | Open311Emulator,
    numbers: Sequence[str],
    stack: AsyncExitStack,
    concurrency: int = 1,
) -> list[float]:
    from bots.runtime import Services

    assert isinstance(services, Services)
    channel = _Stopwatch()
    pump = NotificationPump(services.notifications, {channel.name: channel}, services.catalog)
    services.dispatch.changed.connect(pump.wake)
    await pump.deliver_due()  # the 已受理 pushes of forwarding are not what we measure
    channel.arrived.clear()
    channel.events.clear()
    tasks = [asyncio.create_task(pump.run())]
    chats = {}
    for number in numbers:
        view = await services.cases.get(number)
        chats[number] = view.chat_id
    delays: list[float] = []
    if isinstance(emulator, DispatchEmulator):
        app = web.Application()
        app.add_routes(services.dispatch.callbacks.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
        slots = asyncio.Semaphore(concurrency)
        http = await stack.enter_async_context(ClientSession())

        async def change(number: str) -> None:
            async with slots:
                [case] = emulator.created_for(number)
                document = emulator.set_status(case["id"], "in_progress", "已派城管中队")
                body = json.dumps(document, ensure_ascii=False).encode()
                headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
                sent = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    assert response.status == 200, await response.text()
                delays.append(await channel.wait(chats[number]) - sent)

        await asyncio.gather(*(change(n) for n in numbers))
    else:
        tasks.append(asyncio.create_task(services.dispatch.worker.run()))
        for number in numbers:
            [request] = emulator.created_for(number)
            emulator.set_status(request["service_request_id"], "open", "已派城管中队")
            sent = time.perf_counter()
            delays.append(await channel.wait(chats[number]) - sent)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return delays


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m bots.bench.dispatch``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", choices=["webhook", "open311"], default="webhook")
    parser.add_argument("--cases", type=int, default=1000, help="cases to forward")
    parser.add_argument("--changes", type=int, default=200, help="status changes to time")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="webhook callbacks in flight at once"
    )
    arguments = parser.parse_args(argv)
    configure("WARNING")
    settings = Settings(**{})  # YIMEN_* variables and .env, as every command reads them
    with tempfile.TemporaryDirectory() as tmp:
        if not settings.database_url:
            settings = settings.model_copy(
                update={"database_url": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"}
            )
        dispatch_config(settings)  # validates the timing settings
        result = run_loop(
            run(
                settings,
                arguments.platform,
                arguments.cases,
                arguments.changes,
                arguments.concurrency,
            )
        )
    print(
        f"dispatch ({arguments.platform}, {settings.resolved_database_url.split(':')[0]}): "
        f"{result.cases} cases forwarded in {result.forward_seconds:.2f}s = "
        f"{result.rate:,.0f} cases/s\n"
        f"  status change -> resident push ({result.changes} changes): "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()


__all__ = ["DispatchBench", "WorkerTiming", "main", "replace", "run"]
