"""The `yimen` command line: run the server, chat in a terminal, train NLU, work cases."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from aiohttp import web

from bots import loop
from bots.commands import describe_db, load_settings, run_async, staff_services
from bots.commands.admin import admin_app
from bots.commands.appointments import appointments_app
from bots.commands.dispatch import describe_dispatch, dispatch_app, worker
from bots.commands.handoff import handoff_app
from bots.commands.items import items_app
from bots.commands.nlu import nlu_app
from bots.commands.residents import residents_app
from bots.commands.services import check_catalogue, services_app
from bots.commands.volunteers import volunteers_app
from bots.commands.wechat import WeChatMode, bench_url_report, bench_wechat_report, wechat_app
from bots.logs import configure
from bots.runtime import finish, open_services
from bots.settings import Settings
from bots.terminal import TerminalChannel, read_lines
from handlers.messages import Outbound
from handlers.notifier import NotificationPump
from integration.cases import local_minute
from integration.errors import IntegrationError
from integration.models import CaseStatus

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Yimen (一门): the messaging front door of a street office.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cases_app = typer.Typer(help="Work cases at the local dispatch desk.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(nlu_app, name="nlu")
app.add_typer(cases_app, name="cases")
app.add_typer(db_app, name="db")
app.add_typer(wechat_app, name="wechat")
app.add_typer(dispatch_app, name="dispatch")
app.add_typer(residents_app, name="residents")
app.add_typer(appointments_app, name="appointments")
app.add_typer(services_app, name="services")
app.add_typer(items_app, name="items")
app.add_typer(handoff_app, name="handoff")
app.add_typer(admin_app, name="admin")
app.add_typer(volunteers_app, name="volunteers")
app.command()(worker)


def main() -> None:
    """Entry point of the `yimen` console script."""
    app()


def _describe_nlu(settings: Settings) -> str:
    if settings.nlu_backend == "rasa":
        return f"Rasa at {settings.rasa_url}, embedded model when it is unreachable"
    return "embedded"


def _describe_wechat(settings: Settings) -> str:
    if not settings.wechat_token:
        return "off (set YIMEN_WECHAT_TOKEN)"
    mode = "safe mode (AES)" if settings.wechat_aes_key else "plain mode"
    return f"webhook GET/POST /wechat, {mode}"


def _describe_telegram(settings: Settings) -> str:
    if not settings.telegram_token:
        return "off (set YIMEN_TELEGRAM_TOKEN)"
    if settings.telegram_webhook_url:
        return f"webhook {settings.telegram_webhook_url} -> POST /telegram"
    return "long polling"


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Address to bind (YIMEN_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (YIMEN_PORT).")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes sharing the port (needs PostgreSQL and Redis)."),
    ] = 1,
) -> None:
    """Start the server: web chat, health check and webhooks."""
    settings = load_settings(host=host, port=port)
    check_catalogue(settings)
    if workers == 1:
        run_async(_serve(settings))
        return
    from bots.workers import refusal, supervise

    problem = refusal(settings, workers)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(supervise(settings, workers, _worker))


def _worker(settings: Settings, index: int, workers: int) -> None:
    """One of `run --workers N`'s processes (spawned: logging is set up again here)."""
    configure(settings.log_level, settings.log_format)
    with contextlib.suppress(KeyboardInterrupt):  # interrupted while still starting
        loop.run(_serve(settings, workers=workers, banner=index == 0))


async def _serve(settings: Settings, *, workers: int = 1, banner: bool = True) -> None:
    from bots.app import create_app  # the channels' SDKs (aiogram: 3 s) only for the server

    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=workers > 1 or None)
    await site.start()
    if banner:
        print(_banner(settings, workers), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)  # shut down cleanly on either
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _banner(settings: Settings, workers: int) -> str:
    """What `yimen run` prints once it serves: where, and with what."""
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"Yimen is serving on {base}\n"
        f"  web chat   {base}/chat\n"
        f"  health     {base}/healthz  {base}/readyz  {base}/metrics\n"
        f"  database   {describe_db(settings.resolved_database_url)}\n"
        f"  state      {'redis' if settings.redis_url else 'in-process memory (one worker)'}\n"
        f"  workers    {workers}\n"
        f"  NLU        {_describe_nlu(settings)}\n"
        f"  telegram   {_describe_telegram(settings)}\n"
        f"  wechat     {_describe_wechat(settings)}\n"
        f"  dispatch   {describe_dispatch(settings)}"
    )


@app.command()
def chat(
    user: Annotated[str, typer.Option(help="The resident identity to chat as.")] = "resident",
) -> None:
    """Chat as a resident in this terminal; also reads piped input, one message per line."""
    settings = load_settings()
    check_catalogue(settings)
    run_async(_chat(settings, user))


async def _chat(settings: Settings, user: str) -> None:
    terminal = TerminalChannel(user)
    async with open_services(settings) as services:
        pipeline = services.pipeline
        assert pipeline is not None
        pump = NotificationPump(
            services.notifications,
            {terminal.name: terminal},
            services.catalog,
            poll_interval=settings.push_poll_interval,
        )
        # Updates queued while this resident was away are due now.
        await services.notifications.release(terminal.name, user)
        pusher = asyncio.create_task(pump.run(), name="notification-pump")
        interactive = sys.stdin.isatty()
        if interactive:
            print(services.catalog("terminal.banner"), flush=True)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        await read_lines(sys.stdin, lines)
        try:
            while (line := await lines.get()) is not None:
                inbound = terminal.to_inbound(line)
                if inbound is None:
                    continue
                try:
                    replies = await pipeline.handle(inbound)
                except Exception:
                    log.exception("terminal message failed")
                    replies = [Outbound(services.catalog("chat.retry"))]
                await terminal.reply(inbound, replies or [])
        finally:
            pump.stop()
            await finish([pusher])
        await pump.deliver_due()  # anything that arrived while we were finishing


@cases_app.command("list")
def cases_list(
    status: Annotated[
        list[CaseStatus] | None, typer.Option(help="Only cases in this status (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
) -> None:
    """One line per case: number, category, status, address, created time."""

    async def go() -> None:
        async with staff_services(load_settings()) as services:
            cases = await services.cases.list_cases(status or (), limit)
        if not cases:
            print("no cases")
        for case in cases:
            created = local_minute(case.created_at)
            print(
                f"{case.number}  {case.category:<12} {case.status.value:<11} "
                f"{case.address or '-'}  {created}"
            )

    run_async(go())


@cases_app.command("set-status")
def cases_set_status(
    case: Annotated[str, typer.Argument(help="The case number, e.g. YM2611250001.")],
    status: Annotated[CaseStatus, typer.Argument(help="The new status.")],
    note: Annotated[str, typer.Option(help="A note for the resident.")] = "",
    actor: Annotated[str, typer.Option(help="Who made the change.")] = "staff",
) -> None:
    """Move a case along its lifecycle; the resident is notified on their channel."""

    async def go() -> None:
        async with staff_services(load_settings()) as services:
            view = await services.cases.change_status(case, status, note, actor)
        print(f"{view.number} -> {view.status.value}; the resident will be notified")

    try:
        run_async(go())
    except IntegrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


class BenchChannel(enum.StrEnum):
    """What `yimen bench` drives."""

    pipeline = "pipeline"
    wechat = "wechat"
    rasa_rest = "rasa-rest"


@app.command("bench")
def bench_command(
    conversations: Annotated[int, typer.Option(min=1, help="Simulated residents.")] = 300,
    concurrency: Annotated[int, typer.Option(min=1, help="Residents talking at once.")] = 50,
    scratch: Annotated[
        bool, typer.Option(help="Use a throwaway SQLite file unless YIMEN_DATABASE_URL is set.")
    ] = True,
    channel: Annotated[
        BenchChannel,
        typer.Option(
            help="pipeline: in process; wechat: signed POSTs to /wechat; rasa-rest: a stock "
            "Rasa REST channel at --url, played with --wrk, to measure beside Yimen "
            "(nlu/rasa/stock/)."
        ),
    ] = BenchChannel.pipeline,
    mode: Annotated[
        list[WeChatMode] | None, typer.Option(help="WeChat modes to measure (default both).")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="WeChat: write the server's pyinstrument report here.")
    ] = None,
    echo: Annotated[
        bool, typer.Option(help="WeChat: echo instead of the pipeline (the webhook alone).")
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="WeChat: offer this many messages/s (open loop; --concurrency is ignored).",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="WeChat: drive a running server's /wechat at this URL instead of starting "
            "one (signed with YIMEN_WECHAT_TOKEN, _APP_ID and _AES_KEY, as the server is). "
            "A ws:// or wss:// URL (…/chat/ws) drives its web chat WebSocket instead.",
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write each run's figures (latency, errors, SQL statements, Redis round "
            "trips and CPU per message; in process also rows and Redis bytes per "
            "conversation) to this JSON file, and the latency PNG beside it.",
        ),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(help="Write the PNG of latency over time here (default: beside --json)."),
    ] = None,
    scenarios: Annotated[
        str,
        typer.Option(
            help="Scenario file, or the name of one in bots/bench/scenarios/ (mixed: "
            "complaints, a booking, a guide question, greetings; complaint: the one script).",
        ),
    ] = "mixed",
    workers: Annotated[
        list[int] | None,
        typer.Option(
            min=1,
            help="WeChat: server processes on one port; repeat to compare (--workers 1 "
            "--workers 2). More than one needs PostgreSQL and Redis.",
        ),
    ] = None,
    wrk_seconds: Annotated[
        int | None,
        typer.Option(
            "--wrk",
            min=1,
            help="WeChat: play new residents with wrk (C; Debian's wrk) for this many "
            "seconds instead of the aiohttp client, which takes CPU from the server "
            "(--concurrency connections; --conversations and --rate do not apply).",
        ),
    ] = None,
) -> None:
    """Measure throughput and latency with whole resident conversations from a scenario file."""
    import tempfile

    from bots.bench import Scenarios, bench, describe
    from bots.bench.report import write
    from bots.progress import counting
    from bots.workers import refusal

    settings = load_settings(log_level="WARNING")
    try:
        mix = Scenarios.load(scenarios)
    except (ValueError, KeyError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    problem = refusal(settings, max(workers or [1]))
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        if scratch and not settings.database_url:
            settings = settings.model_copy(
                update={"database_url": f"sqlite+aiosqlite:///{tmp}/bench.db"}
            )
        if channel is BenchChannel.rasa_rest:
            if not (url and wrk_seconds):
                typer.echo("error: --channel rasa-rest needs --url and --wrk", err=True)
                raise typer.Exit(2)
            from bots.bench.rasa_rest import report as rasa_report

            raise typer.Exit(rasa_report(url, concurrency, wrk_seconds, json_path, mix))
        if wrk_seconds and (channel is not BenchChannel.wechat or (url or "").startswith("ws")):
            typer.echo("error: --wrk plays the WeChat webhook: add --channel wechat", err=True)
            raise typer.Exit(2)
        if url and url.startswith(("ws://", "wss://")):
            from bots.bench.webchat import report

            raise typer.Exit(report(url, conversations, concurrency, json_path, mix, png))
        if channel is BenchChannel.wechat and url:
            bench_url_report(
                settings, url, conversations, concurrency, rate, json_path, mix, png, wrk_seconds
            )
            return
        if channel is BenchChannel.wechat:
            modes = mode or list(WeChatMode)
            bench_wechat_report(
                settings,
                conversations,
                concurrency,
                modes,
                profile,
                echo,
                rate,
                workers,
                json_path,
                mix,
                png,
                wrk_seconds,
            )
            return
        with counting("pipeline", conversations) as advance:
            run = run_async(bench(settings, conversations, concurrency, mix, advance))
    result = run.result
    print(
        f"pipeline: {result.messages} messages ({conversations} conversations, "
        f"{concurrency} at once; {describe(mix)})\n"
        f"  database {describe_db(settings.resolved_database_url)}; "
        f"state {'redis' if settings.redis_url else 'memory'}; NLU {settings.nlu_backend}\n"
        f"  {result.summary()}; {len(run.samples.errors)} errors"
    )
    cost = run.per_message
    print(
        f"  per message: {cost['statements']:.2f} SQL statements in "
        f"{cost['transactions']:.2f} transactions, {cost['redis_round_trips']:.2f} Redis "
        f"round trips, {cost['cpu_ms']:.2f} ms CPU (client and server in this process)"
    )
    footprint = run.footprint
    print(f"  per conversation: {footprint['rows_per_conversation']:.2f} database rows")
    memory = footprint["redis"]
    if memory is not None:

        def size(value: float | None) -> str:
            return "-" if value is None else f"{value:,.0f} bytes"

        print(
            f"  Redis per conversation: active {size(memory['bytes_per_active_conversation'])} "
            f"({memory['active_conversations']}), idle "
            f"{size(memory['bytes_per_idle_conversation'])} ({memory['idle_conversations']}); "
            f"used_memory grew {size(memory['used_memory_delta_per_conversation'])} each"
        )
    for line in write([("pipeline", run.as_dict(), run.samples)], json_path, png):
        print(line)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database, or apply new migrations (`yimen run` does this at start too)."""
    settings = load_settings()

    async def go() -> None:
        async with open_services(settings, with_nlu=False):
            pass

    run_async(go())
    print(f"database is up to date: {describe_db(settings.resolved_database_url)}")
