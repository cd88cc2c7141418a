"""`yimen bench`: messages per second and latency through the whole pipeline.

Simulated residents each run a complete conversation (greeting, a noise report with
its address, confirmation, a status query) concurrently, through the same Pipeline
object the channels use: dedupe, lock, rate limit, transcript, NLU, flow, state and
case creation, on whichever database and state store the settings name.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
import uuid
from dataclasses import dataclass

from bots.runtime import open_services
from bots.settings import Settings
from handlers.messages import Inbound
from handlers.pipeline import Pipeline

SCRIPT = (
    "你好",
    "楼下烧烤店每天半夜还很吵",
    "幸福路{house}号",
    "跳过",
    "提交",
    "我的进度",
    "谢谢",
)


def script(house: int) -> list[str]:
    """One resident's conversation, reporting at house number ``house``.

    Each resident needs a place of their own: reports of one category at one place
    within 24 hours are offered as a case to join, and the benchmark is meant to open
    a case per conversation. Callers number residents from a random base, so runs
    against a persistent database do not meet each other's cases either.
    """
    return [text.format(house=house) for text in SCRIPT]


def house_numbers() -> itertools.count[int]:
    """House numbers for one run's residents, from a random base."""
    return itertools.count(random.randrange(10_000, 10_000_000))  # noqa: S311 (not a secret)


@dataclass(frozen=True, slots=True)
class BenchResult:
    """What one benchmark run measured."""

    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds

    @classmethod
    def of(cls, latencies: list[float], seconds: float) -> BenchResult:
        """The summary of per-message latencies (in seconds) over a run of ``seconds``."""
        ordered = sorted(latencies)
        return cls(
            messages=len(ordered),
            seconds=seconds,
            p50_ms=statistics.median(ordered) * 1000,
            p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            max_ms=ordered[-1] * 1000,
        )


async def _resident(
    pipeline: Pipeline, run: str, index: int, house: int, latencies: list[float]
) -> None:
    chat = f"bench-{run}-{index}"
    for text in script(house):
        inbound = Inbound("bench", chat, chat, uuid.uuid4().hex, text)
        started = time.perf_counter()
        replies = await pipeline.handle(inbound)
        latencies.append(time.perf_counter() - started)
        if not replies:
            raise RuntimeError(f"no reply to {text!r}")


async def bench(settings: Settings, conversations: int, concurrency: int) -> BenchResult:
    """Run ``conversations`` scripted residents, ``concurrency`` at a time."""
    settings = settings.model_copy(update={"rate_limit": 10**9})
    async with open_services(settings) as services:
        pipeline = services.pipeline
        assert pipeline is not None
        run = uuid.uuid4().hex[:8]
        latencies: list[float] = []
        houses = house_numbers()
        await _resident(pipeline, run, -1, next(houses), [])  # warm up caches, connections
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(conversations):
            queue.put_nowait(index)

        async def worker() -> None:
            while not queue.empty():
                await _resident(pipeline, run, queue.get_nowait(), next(houses), latencies)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return BenchResult.of(latencies, elapsed)
