#!/usr/bin/env python
"""CPU time of one full embedded parse (intent and entities), per message of test sets.

    PYTHONPATH=$PWD python scripts/nlu-cpu.py nlu/data/test/formal.yml nlu/data/test/test.yml

Loads (or trains, into --cache) the model for the checkout on PYTHONPATH, parses a
warm-up of training messages, then parses every message of each file exactly once,
timing each parse with ``time.thread_time`` (CPU of this thread, so less noisy than
wall time on a shared machine). Each message is new to the process, as in
``yimen nlu bench``: caches keyed by a whole text never help; the warm-up (by default
every training message not in the files) stands for the traffic a running process has
seen, and for the training that ``yimen nlu bench`` does in the same process. ``--runs N`` repeats
the whole thing in N fresh processes and reports each run and the median of runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def one_run(files: list[str], cache: Path, warmup: int, profile: str | None) -> dict[str, dict]:
    from datetime import datetime

    from nlu.embedded import EmbeddedInterpreter, load_or_train
    from nlu.entities import EntityExtractor
    from nlu.timeparse import SHANGHAI
    from nlu.training_data import load, load_file

    data = load()
    model = load_or_train(cache)
    now = datetime(2026, 12, 5, 10, 0, tzinfo=SHANGHAI)
    extractor = EntityExtractor.from_training_data(data, clock=lambda: now)
    interpreter = EmbeddedInterpreter(model, extractor)
    test_texts = {e.text for f in files for e in load_file(Path(f)).examples}
    warm = [e.text for e in data.examples if e.text not in test_texts]
    warm = warm[:: max(1, len(warm) // warmup)] if warmup else []
    for text in warm:
        interpreter.parse_sync(text)
    out: dict[str, dict] = {}
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    for name in files:
        texts = [e.text for e in load_file(Path(name)).examples]
        times = []
        for text in texts:
            if profiler is not None:
                profiler.enable()
            started = time.thread_time()
            interpreter.parse_sync(text)
            times.append(time.thread_time() - started)
            if profiler is not None:
                profiler.disable()
        times.sort()
        out[name] = {
            "n": len(times),
            "mean_ms": 1000 * sum(times) / len(times),
            "p50_ms": 1000 * times[len(times) // 2],
            "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
        }
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--cache", type=Path, default=Path("var/nlu-cpu-cache"))
    parser.add_argument("--warmup", type=int, default=5000, help="training messages parsed first")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", help="write cProfile stats of the timed parses here")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json or (args.runs == 1 and args.profile):
        result = one_run(args.files, args.cache, args.warmup, args.profile)
        if args.json:
            print(json.dumps(result))
            return
        runs = [result]
    else:
        runs = []
        for _ in range(args.runs):
            command = [sys.executable, __file__, *args.files, "--cache", str(args.cache)]
            command += ["--warmup", str(args.warmup), "--json"]
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)  # noqa: S603
            if done.returncode:
                sys.exit(done.stderr)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"load average {os.getloadavg()[0]:.2f}; CPU ms per parse (thread time)")
    for name in args.files:
        row = [r[name] for r in runs]
        each = ", ".join(f"{r['mean_ms']:.3f}" for r in row)
        print(
            f"{name}: n={row[0]['n']} mean {statistics.median(r['mean_ms'] for r in row):.3f}"
            f" p50 {statistics.median(r['p50_ms'] for r in row):.3f}"
            f" p99 {statistics.median(r['p99_ms'] for r in row):.3f}"
            f" (median of {len(row)} runs; means {each})"
        )


if __name__ == "__main__":
    main()
