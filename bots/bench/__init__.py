"""`yimen bench`: messages per second and latency through the whole pipeline.

Simulated residents each run a whole conversation from a scenario file (YAML under
bots/bench/scenarios/: complaints that open cases, a window booking, a guide
question, greetings, mixed by weight; each conversation a new resident) concurrently,
through the same Pipeline object the channels use: dedupe, lock, rate limit,
transcript, NLU, flow, state and case creation, on whichever database and state store
the settings name.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bots.runtime import open_services
from bots.settings import Settings
from handlers.messages import Inbound
from handlers.pipeline import Pipeline

SCENARIOS = Path(__file__).parent / "scenarios"
DEFAULT_SCENARIOS = "mixed"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of conversation: what a resident says, turn by turn."""

    name: str
    weight: float
    turns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scenarios:
    """The conversations of one scenario file, picked by weight."""

    name: str
    kinds: tuple[Scenario, ...]

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_SCENARIOS) -> Scenarios:
        """A file's scenarios; a bare name is a file in bots/bench/scenarios/."""
        path = Path(name_or_path)
        if not path.exists():
            path = SCENARIOS / f"{name_or_path}.yml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.yml")))
            raise ValueError(f"no scenario file {name_or_path} (shipped: {shipped})")
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        kinds = []
        for entry in document.get("conversations") or []:
            turns = tuple(str(turn) for turn in entry.get("turns") or [])
            weight = float(entry.get("weight", 1))
            if not turns or weight <= 0:
                raise ValueError(f"{path}: {entry.get('name')!r} needs turns and a weight > 0")
            kinds.append(Scenario(str(entry["name"]), weight, turns))
        if not kinds:
            raise ValueError(f"{path}: no conversations")
        return cls(path.stem, tuple(kinds))

    @property
    def mean_turns(self) -> float:
        """Messages in an average conversation (by weight)."""
        total = sum(kind.weight for kind in self.kinds)
        return sum(kind.weight * len(kind.turns) for kind in self.kinds) / total

    def plan(self, conversations: int, seed: int | None = None) -> list[Scenario]:
        """Which scenario each of ``conversations`` residents plays."""
        chooser = random.Random(seed)  # noqa: S311 (not a secret)
        weights = [kind.weight for kind in self.kinds]
        return chooser.choices(self.kinds, weights, k=conversations)


def script(scenario: Scenario, house: int) -> list[str]:
    """One resident's conversation, at house number ``house``.

    Each resident needs a place of their own: reports of one category at one place
    within 24 hours are offered as a case to join, and the benchmark is meant to open
    a case per complaint. Callers number residents from a random base, so runs
    against a persistent database do not meet each other's cases either.
    """
    return [text.format(house=house) for text in scenario.turns]


def house_numbers() -> itertools.count[int]:
    """House numbers for one run's residents, from a random base."""
    return itertools.count(random.randrange(10_000, 10_000_000))  # noqa: S311 (not a secret)


@dataclass(slots=True)
class Samples:
    """Every measured message: when it was sent (seconds since the start), how long
    its answer took, and the scenario; errors apart."""

    started: float = field(default_factory=time.perf_counter)
    points: list[tuple[float, float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def restart(self) -> None:
        """The clock starts now (after the warm-up)."""
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def timing(self, kind: str) -> Iterator[None]:
        """Times the block as one message of scenario ``kind``."""
        sent = time.perf_counter()
        yield
        self.points.append((sent - self.started, time.perf_counter() - sent, kind))

    @property
    def latencies(self) -> list[float]:
        """The latencies alone, in seconds."""
        return [latency for _, latency, _ in self.points]

    def by_scenario(self) -> dict[str, int]:
        """Messages per scenario."""
        counts: dict[str, int] = {}
        for _, _, kind in self.points:
            counts[kind] = counts.get(kind, 0) + 1
        return counts


@dataclass(frozen=True, slots=True)
class BenchResult:
    """What one benchmark run measured."""

    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    p95_ms: float = 0.0

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds

    @classmethod
    def of(cls, latencies: list[float], seconds: float) -> BenchResult:
        """The summary of per-message latencies (in seconds) over a run of ``seconds``."""
        ordered = sorted(latencies)

        def at(share: float) -> float:
            return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000

        return cls(
            messages=len(ordered),
            seconds=seconds,
            p50_ms=statistics.median(ordered) * 1000,
            p99_ms=at(0.99),
            max_ms=ordered[-1] * 1000,
            p95_ms=at(0.95),
        )

    def summary(self) -> str:
        """The run in one line's words: rate, then p50, p95, p99 and max latency."""
        return (
            f"{self.rate:,.0f} messages/s; latency p50 {self.p50_ms:.1f} ms, "
            f"p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms"
        )

    def as_dict(self) -> dict[str, Any]:
        """Latency and rate as JSON-ready data."""
        return {
            "messages": self.messages,
            "seconds": self.seconds,
            "messages_per_second": self.rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """One in-process run: latency, errors, what a message cost, and what stayed behind."""

    result: BenchResult
    samples: Samples
    scenarios: str
    conversations: int
    concurrency: int
    costs: dict[str, Any]  # counters.Snapshot.as_dict() of the measured part
    per_message: dict[str, float]
    footprint: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data."""
        return {
            "mode": "pipeline",
            "scenarios": self.scenarios,
            "conversations": self.conversations,
            "concurrency": self.concurrency,
            **self.result.as_dict(),
            "errors": len(self.samples.errors),
            "messages_by_scenario": self.samples.by_scenario(),
            "per_message": self.per_message,
            "server": self.costs,
            "footprint": self.footprint,
        }


async def _resident(
    pipeline: Pipeline, chat: str, scenario: Scenario, house: int, samples: Samples
) -> None:
    for text in script(scenario, house):
        inbound = Inbound("bench", chat, chat, uuid.uuid4().hex, text)
        with samples.timing(scenario.name):
            replies = await pipeline.handle(inbound)
        if not replies:
            samples.errors.append(f"{scenario.name}: no reply to {text!r}")


async def bench(
    settings: Settings,
    conversations: int,
    concurrency: int,
    scenarios: Scenarios | None = None,
    advance: Callable[[int], None] = lambda _n: None,
) -> PipelineRun:
    """Run ``conversations`` residents from ``scenarios``, ``concurrency`` at a time;
    ``advance(1)`` after each conversation (a progress bar)."""
    from bots.bench import footprint
    from bots.bench.counters import Counters

    scenarios = scenarios or Scenarios.load()
    settings = settings.model_copy(update={"rate_limit": 10**9})
    async with open_services(settings) as services:
        pipeline = services.pipeline
        assert pipeline is not None
        run = uuid.uuid4().hex[:8]
        houses = house_numbers()
        for kind in scenarios.kinds:  # warm up caches, connections, every flow
            await _resident(pipeline, f"bench-{run}-w{kind.name}", kind, next(houses), Samples())
        plan = scenarios.plan(conversations)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(conversations):
            queue.put_nowait(index)
        samples = Samples()
        chats = [f"bench-{run}-{index}" for index in range(conversations)]

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                await _resident(pipeline, chats[index], plan[index], next(houses), samples)
                advance(1)

        before = await footprint.begin(services.engine, services.redis, conversations)
        counters = Counters().install()
        try:
            samples.restart()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - samples.started
            costs = counters.snapshot()
        finally:
            counters.uninstall()
        await footprint.rows_after(before, services.engine, services.redis)
        probes = []  # conversations left mid-flow, to weigh an active one in Redis
        for kind in scenarios.kinds:
            if len(kind.turns) > 2:
                probes.append(f"bench-{run}-p{kind.name}")
                half = Scenario(kind.name, kind.weight, kind.turns[: len(kind.turns) // 2])
                await _resident(pipeline, probes[-1], half, next(houses), Samples())
        after = await footprint.redis_bytes(
            before, services.redis, services.keys, "bench", chats + probes
        )
    result = BenchResult.of(samples.latencies, elapsed)
    return PipelineRun(
        result,
        samples,
        scenarios.name,
        conversations,
        concurrency,
        costs.as_dict(),
        costs.per(result.messages),
        after.as_dict(),
    )


def describe(scenarios: Scenarios) -> str:
    """The mix in one line: ``mixed: complaint 4, booking 2, ...; 4.8 messages on average``."""
    kinds = ", ".join(f"{kind.name} {kind.weight:g}" for kind in scenarios.kinds)
    return f"scenarios {scenarios.name}: {kinds}; {scenarios.mean_turns:.1f} messages on average"
