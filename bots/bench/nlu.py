"""`yimen nlu bench`: train both NLU backends on nlu/data and measure them on one test file.

For each backend: macro-F1 and accuracy on the file, parses per second and p50/p99
latency of one message at a time in one process, and training time. The embedded
model trains in this process; Rasa trains and serves through scripts/rasa-server.sh,
in its own venv, on a port of its own so a server already running is left alone.
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
    macro_f1: float
    accuracy: float
    parses_per_second: float
    p50_ms: float
    p99_ms: float
    training_seconds: float

    @classmethod
    def of(cls, backend: str, result: Evaluation, training_seconds: float) -> BackendScore:
        """Score an evaluation."""
        report = result.intent_report()
        return cls(
            backend=backend,
            macro_f1=round(report["macro avg"]["f1-score"], 4),
            accuracy=round(report["accuracy"], 4),
            parses_per_second=round(len(result.latencies) / sum(result.latencies), 1),
            p50_ms=round(result.latency_ms(0.50), 2),
            p99_ms=round(result.latency_ms(0.99), 2),
            training_seconds=round(training_seconds, 1),
        )


async def bench_embedded(
    examples: list[Example], unsure: tuple[float, float], progress: Progress, out: Path | None
) -> BackendScore:
    """Train the embedded model on nlu/data here and evaluate it."""
    data = load()
    started = time.perf_counter()
    with TrainingReport() as report:
        model = await asyncio.to_thread(train, data, "", report.step)
    trained = time.perf_counter() - started
    interpreter = EmbeddedInterpreter(
        model, EntityExtractor.from_training_data(data), threshold=unsure[0], margin=unsure[1]
    )
    result = await _evaluate("embedded", interpreter, examples, progress, out)
    return BackendScore.of("embedded", result, trained)


async def bench_rasa(
    examples: list[Example],
    unsure: tuple[float, float],
    epochs: int,
    progress: Progress,
    out: Path | None,
) -> BackendScore:
    """Train Rasa (DIET, ``epochs``) through scripts/rasa-server.sh, serve it, evaluate it."""
    if not SCRIPT.exists():
        raise FileNotFoundError(f"{SCRIPT} is missing: `yimen nlu bench` runs from a checkout")
    await _script("install")
    started = time.perf_counter()
    model = (await _script("train", "--epochs", str(epochs), "--force")).strip().splitlines()[-1]
    trained = time.perf_counter() - started
    port = _free_port()
    env = {"RASA_MODEL": model, "RASA_PORT": str(port)}
    await _script("start", env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        async with RasaInterpreter(url, threshold=unsure[0], margin=unsure[1]) as rasa:
            result = await _evaluate("rasa", rasa, examples, progress, out)
    finally:
        await _script("stop", env=env)
    return BackendScore.of("rasa", result, trained)


def write_scores(scores: list[BackendScore], out: Path) -> Path:
    """Write the scores as JSON; returns the file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "nlu_bench.json"
    path.write_text(json.dumps([asdict(s) for s in scores], indent=2), encoding="utf-8")
    return path


def score_table(scores: list[BackendScore]) -> str:
    """The scores side by side."""
    lines = [
        f"{'backend':<10}{'macro F1':>10}{'accuracy':>10}{'parses/s':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'train s':>9}"
    ]
    lines += [
        f"{s.backend:<10}{s.macro_f1:>10.3f}{s.accuracy:>10.3f}{s.parses_per_second:>10.0f}"
        f"{s.p50_ms:>9.2f}{s.p99_ms:>9.2f}{s.training_seconds:>9.1f}"
        for s in scores
    ]
    return "\n".join(lines)


async def _evaluate(
    name: str,
    interpreter: Interpreter,
    examples: list[Example],
    progress: Progress,
    out: Path | None,
) -> Evaluation:
    await interpreter.parse(examples[0].text)  # warm up: first-call costs are not latency
    with progress(f"evaluating {name}", len(examples)) as advance:
        result = await evaluate(interpreter, examples, advance)
    if out is not None:
        write_reports(result, out / name)
    return result


async def _script(*args: str, env: dict[str, str] | None = None) -> str:
    """Run scripts/rasa-server.sh; its log goes to our stderr, its stdout is returned."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=sys.stderr,
        env={**os.environ, **(env or {})},
    )
    stdout, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"scripts/rasa-server.sh {' '.join(args)} failed ({process.returncode})")
    return stdout.decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
