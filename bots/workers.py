"""`yimen run --workers N`: N server processes on one port, under one supervisor.

Each worker is a whole Yimen process (the app, its push pump and its dispatch worker)
listening on the same address with SO_REUSEPORT, so the kernel spreads connections
over them. They share nothing but PostgreSQL and Redis: conversation state, dedupe
marks, rate limits and locks are in Redis, and the outbox, reminders and push queue
are claimed with leases (SKIP LOCKED), so any worker may take any job. The embedded
defaults hold state in the process (memory) or allow one writer (SQLite), so they are
refused with a reason.

The supervisor forwards SIGINT and SIGTERM to the workers, waits for them to finish
their in-flight work, and exits non-zero if any of them did. Prometheus metrics use
the client's multiprocess mode: every worker writes its samples to a shared directory
that /metrics, answered by whichever worker, reads as a whole.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from bots.settings import Settings

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client at import


def refusal(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve with these settings; None when they can."""
    if workers <= 1:
        return None
    if settings.resolved_database_url.startswith("sqlite"):
        return (
            f"--workers {workers} needs PostgreSQL (YIMEN_DATABASE_URL): SQLite takes one "
            "writer at a time, so more processes only wait for each other"
        )
    if not settings.redis_url:
        return (
            f"--workers {workers} needs Redis (YIMEN_REDIS_URL): without it each process "
            "keeps its own conversations, and a resident's next message may reach another"
        )
    if settings.telegram_token and not settings.telegram_webhook_url:
        return (
            f"--workers {workers} needs the Telegram webhook (YIMEN_TELEGRAM_WEBHOOK_URL): "
            "Telegram allows one long-polling client per bot"
        )
    return None


def supervise(settings: Settings, workers: int, serve: Callable[[Settings, int, int], None]) -> int:
    """Run ``serve(settings, index, workers)`` in ``workers`` processes; the exit status.

    Processes are spawned, not forked: each loads its own model and opens its own
    pools after start, with no event loop or connection inherited from the parent.
    """
    metrics = Path(settings.data_dir) / "metrics"
    shutil.rmtree(metrics, ignore_errors=True)  # samples of an earlier run are stale
    metrics.mkdir(parents=True)
    os.environ[METRICS_ENV] = str(metrics)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=serve, args=(settings, index, workers), name=f"yimen-worker-{index}")
        for index in range(workers)
    ]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.start()
        failed = False
        for process in processes:
            process.join()
            if process.pid is not None:
                multiprocess.mark_process_dead(process.pid)
            failed = failed or process.exitcode != 0
            if process.exitcode not in (0, None):
                print(
                    f"{process.name} exited with {process.exitcode}",
                    file=sys.stderr,
                    flush=True,
                )
        return 1 if failed else 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(metrics, ignore_errors=True)
