"""`yimen worker` and `yimen dispatch`: the dispatch platform's outbox and ratings."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated, Any

import typer

from bots.commands import load_settings, run_async, staff_services
from bots.runtime import finish
from bots.settings import Settings
from integration.cases import local_minute

dispatch_app = typer.Typer(help="The dispatch platform's outbox and ratings.", no_args_is_help=True)


def describe_dispatch(settings: Settings) -> str:
    if settings.dispatch == "open311":
        return f"Open311 GeoReport v2 at {settings.open311_url}"
    if settings.dispatch == "webhook":
        return f"webhook platform at {settings.dispatch_url}"
    return "local desk (yimen cases list / set-status)"


def worker() -> None:
    """Forward cases to the dispatch platform and bring statuses back, without a server."""
    run_async(_work(load_settings()))


async def _work(settings: Settings) -> None:
    async with staff_services(settings) as services:
        task = asyncio.create_task(services.dispatch.worker.run(), name="dispatch-worker")
        print(f"dispatch worker: {describe_dispatch(settings)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            services.dispatch.worker.stop()
            await finish([task])


@dispatch_app.command("dead")
def dispatch_dead(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 100,
) -> None:
    """Cases the platform has not taken (or cannot reopen), waiting for staff."""

    async def go() -> None:
        async with staff_services(load_settings()) as services:
            dead = await services.dispatch.outbox.dead(limit)
        if not dead:
            print("no dead letters")
        for job in dead:
            created = local_minute(job.created_at)
            print(
                f"{job.number}  {job.kind.value:<7} {job.attempts:>3} tries  {created}  "
                f"{job.last_error}"
            )

    run_async(go())


@dispatch_app.command("retry")
def dispatch_retry(
    case: Annotated[str | None, typer.Argument(help="The case number; omit with --all.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every dead letter.")] = False,
) -> None:
    """Put a dead case (or all of them) back in the outbox; the worker forwards it."""
    if (case is None) == (not all_):
        print("error: give a case number or --all", file=sys.stderr)
        raise typer.Exit(2)

    async def go() -> int:
        async with staff_services(load_settings()) as services:
            count: int = await services.dispatch.outbox.requeue(case)
            return count

    count = run_async(go())
    if not count:
        print(f"error: no dead letter for {case or 'any case'}", file=sys.stderr)
        raise typer.Exit(1)
    print(f"{count} job(s) queued again")


@dispatch_app.command("ratings")
def dispatch_ratings() -> None:
    """Satisfaction with resolved cases: every answer, and how many never answered."""

    async def go() -> Any:
        async with staff_services(load_settings()) as services:
            return await services.dispatch.ratings.summary()

    summary = run_async(go())
    rate = summary.satisfaction
    print(
        f"asked {summary.asked}, answered {summary.answered}"
        f" ({(summary.response_rate or 0) * 100:.0f}%)\n"
        f"  满意 {summary.satisfied}  基本满意 {summary.basically}  不满意 {summary.dissatisfied}\n"
        f"  satisfied or basically satisfied: "
        f"{'-' if rate is None else f'{rate * 100:.1f}% of answers'}"
    )
