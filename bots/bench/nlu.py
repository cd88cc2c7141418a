"""`yimen nlu bench`: train both NLU backends on nlu/data and measure them on test files.

Each backend trains once and is evaluated on every test file given. For each backend and
file: macro-F1 and accuracy, exact-span F1 of the address and time entities, parses per
second and p50/p99 latency of one message at a time in one process, and training time.
The embedded model trains in this process; Rasa trains and serves through
scripts/rasa-server.sh, in its own venv, on a port of its own so a server already
running is left alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bots.progress import TrainingReport
from bots.runtime import settle_heap
from nlu.embedded import EmbeddedInterpreter, train
from nlu.entities import EntityExtractor
from nlu.evaluation import Evaluation, evaluate, write_reports
from nlu.rasa_client import RasaInterpreter
from nlu.training_data import Example, load
from nlu.types import Interpreter

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rasa-server.sh"

Progress = Callable[[str, int], Any]  # label, total -> context manager yielding advance(n)


@dataclass(frozen=True, slots=True)
class BackendScore:
    """What the benchmark measured for one backend."""

    backend: str
    test_set: str
    macro_f1: float
    accuracy: float
    address_f1: float | None
    time_f1: float | None
    parses_per_second: float
    p50_ms: float
    p99_ms: float
    training_seconds: float

    @classmethod
    def of(
        cls, backend: str, test_set: str, result: Evaluation, training_seconds: float
    ) -> BackendScore:
        """Score an evaluation."""
        report = result.intent_report()
        entities = result.entity_report()

        def f1(entity: str) -> float | None:
            scores = entities.get(entity)
            return round(scores["f1-score"], 4) if scores else None

        return cls(
            backend=backend,
            test_set=test_set,
            macro_f1=round(report["macro avg"]["f1-score"], 4),
            accuracy=round(report["accuracy"], 4),
            address_f1=f1("address"),
            time_f1=f1("time"),
            parses_per_second=round(len(result.latencies) / sum(result.latencies), 1),
            p50_ms=round(result.latency_ms(0.50), 2),
            p99_ms=round(result.latency_ms(0.99), 2),
            training_seconds=round(training_seconds, 1),
        )


TestSets = dict[str, list[Example]]  # name (the file's stem) -> its examples


async def bench_embedded(
    sets: TestSets, unsure: tuple[float, float], progress: Progress, out: Path | None
) -> list[BackendScore]:
    """Train the embedded model on nlu/data here and evaluate it on every set."""
    data = load()
    started = time.perf_counter()
    with TrainingReport() as report:
        model = await asyncio.to_thread(train, data, "", report.step)
    trained = time.perf_counter() - started
    interpreter = EmbeddedInterpreter(
        model, EntityExtractor.from_training_data(data), threshold=unsure[0], margin=unsure[1]
    )
    # As the server runs it (bots.runtime): training's garbage collected, and the model
    # out of the collector's sight, so no parse is timed with a full collection in it.
    del model, data
    settle_heap()
    return await _evaluate_all("embedded", interpreter, sets, trained, progress, out)


async def bench_rasa(
    sets: TestSets,
    unsure: tuple[float, float],
    epochs: int,
    progress: Progress,
    out: Path | None,
) -> list[BackendScore]:
    """Train Rasa (DIET, ``epochs``) through scripts/rasa-server.sh, serve it, evaluate it
    on every set."""
    if not SCRIPT.exists():
        raise FileNotFoundError(f"{SCRIPT} is missing: `yimen nlu bench` runs from a checkout")
    await _script("install")
    started = time.perf_counter()
    trained_model = await _script("train", "--epochs", str(epochs), "--force", output=True)
    model = trained_model.strip().splitlines()[-1]
    trained = time.perf_counter() - started
    port = _free_port()
    env = {"RASA_MODEL": model, "RASA_PORT": str(port)}
    await _script("start", env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        async with RasaInterpreter(url, threshold=unsure[0], margin=unsure[1]) as rasa:
            return await _evaluate_all("rasa", rasa, sets, trained, progress, out)
    finally:
        await _script("stop", env=env)


def write_scores(scores: list[BackendScore], out: Path) -> Path:
    """Write the scores as JSON; returns the file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "nlu_bench.json"
    path.write_text(json.dumps([asdict(s) for s in scores], indent=2), encoding="utf-8")
    return path


def score_table(scores: list[BackendScore]) -> str:
    """The scores side by side, a row per backend and test set."""

    def entity(f1: float | None) -> str:
        return f"{f1:>9.3f}" if f1 is not None else f"{'-':>9}"

    lines = [
        f"{'backend':<10}{'test set':<12}{'macro F1':>9}{'accuracy':>9}{'address':>9}{'time':>9}"
        f"{'parses/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'train s':>9}"
    ]
    lines += [
        f"{s.backend:<10}{s.test_set:<12}{s.macro_f1:>9.3f}{s.accuracy:>9.3f}"
        f"{entity(s.address_f1)}{entity(s.time_f1)}{s.parses_per_second:>9.0f}"
        f"{s.p50_ms:>8.2f}{s.p99_ms:>8.2f}{s.training_seconds:>9.1f}"
        for s in scores
    ]
    return "\n".join(lines)


async def _evaluate_all(
    name: str,
    interpreter: Interpreter,
    sets: TestSets,
    trained: float,
    progress: Progress,
    out: Path | None,
) -> list[BackendScore]:
    """Evaluate one trained backend on every set; reports go to ``out/<backend>/<set>``."""
    scores = []
    for test_set, examples in sets.items():
        await interpreter.parse(examples[0].text)  # warm up: first-call costs are not latency
        with progress(f"evaluating {name} on {test_set}", len(examples)) as advance:
            result = await evaluate(interpreter, examples, advance)
        if out is not None:
            write_reports(result, out / name / test_set)
        scores.append(BackendScore.of(name, test_set, result, trained))
    return scores


async def _script(*args: str, env: dict[str, str] | None = None, output: bool = False) -> str:
    """Run scripts/rasa-server.sh; its log goes to our stderr; with ``output``, its
    stdout is returned.

    Only ``train`` is asked for its output: ``start`` leaves the server running, and a
    server that inherited the end of our stdout pipe would keep it open, so waiting for
    that pipe to close would wait for the server (it did, for ever, under uvloop).
    """
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE if output else asyncio.subprocess.DEVNULL,
        stderr=sys.stderr,
        env={**os.environ, **(env or {})},
    )
    stdout, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"scripts/rasa-server.sh {' '.join(args)} failed ({process.returncode})")
    return stdout.decode() if stdout else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
