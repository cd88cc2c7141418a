"""The `yimen` command line: run the server, chat in a terminal, train NLU, work cases."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from aiohttp import web
from sqlalchemy.engine import make_url

from bots.app import create_app
from bots.logs import configure
from bots.runtime import load_embedded, open_services
from bots.settings import Settings
from bots.terminal import TerminalChannel, read_lines
from handlers.messages import Outbound
from handlers.notifier import NotificationPump
from integration.cases import LOCAL_TZ
from integration.errors import IntegrationError
from integration.models import CaseStatus
from nlu.types import Interpreter

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Yimen (一门): the messaging front door of a street office.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
nlu_app = typer.Typer(help="Train and inspect the NLU model.", no_args_is_help=True)
cases_app = typer.Typer(help="Work cases at the local dispatch desk.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(nlu_app, name="nlu")
app.add_typer(cases_app, name="cases")
app.add_typer(db_app, name="db")
wechat_app = typer.Typer(help="The WeChat Official Account.", no_args_is_help=True)
app.add_typer(wechat_app, name="wechat")
dispatch_app = typer.Typer(help="The dispatch platform's outbox and ratings.", no_args_is_help=True)
app.add_typer(dispatch_app, name="dispatch")


def main() -> None:
    """Entry point of the `yimen` console script."""
    app()


def _settings(**overrides: Any) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure(settings.log_level)
    return settings


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _describe_nlu(settings: Settings) -> str:
    if settings.nlu_backend == "rasa":
        return f"Rasa at {settings.rasa_url}, embedded model when it is unreachable"
    return "embedded"


def _describe_db(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


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
) -> None:
    """Start the server: web chat, health check and webhooks."""
    settings = _settings(host=host, port=port)
    _run(_serve(settings))


async def _serve(settings: Settings) -> None:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"Yimen is serving on {base}\n"
        f"  web chat   {base}/chat\n"
        f"  health     {base}/healthz\n"
        f"  database   {_describe_db(settings.resolved_database_url)}\n"
        f"  state      {'redis' if settings.redis_url else 'in-process memory (one worker)'}\n"
        f"  NLU        {_describe_nlu(settings)}\n"
        f"  telegram   {_describe_telegram(settings)}\n"
        f"  wechat     {_describe_wechat(settings)}\n"
        f"  dispatch   {_describe_dispatch(settings)}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)  # shut down cleanly on either
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@app.command()
def chat(
    user: Annotated[str, typer.Option(help="The resident identity to chat as.")] = "resident",
) -> None:
    """Chat as a resident in this terminal; also reads piped input, one message per line."""
    _run(_chat(_settings(), user))


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
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        await pump.deliver_due()  # anything that arrived while we were finishing


@nlu_app.command("train")
def nlu_train() -> None:
    """Train the embedded model from nlu/data and cache it under the data directory."""
    from nlu.embedded import load_or_train
    from nlu.training_data import load

    settings = _settings()
    data = load()
    started = time.perf_counter()
    model = load_or_train(settings.model_dir, force=True)
    elapsed = time.perf_counter() - started
    path = settings.model_dir / f"embedded-{model.fingerprint}.joblib"
    print(
        f"trained on {len(data.examples)} examples, {len(model.intents)} intents "
        f"in {elapsed:.1f}s -> {path}"
    )


class Backend(enum.StrEnum):
    """The NLU backends `yimen nlu eval` can measure."""

    embedded = "embedded"
    rasa = "rasa"


@nlu_app.command("eval")
def nlu_eval(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Rasa 3.x NLU YAML.")],
    out: Annotated[Path, typer.Option(help="Directory for the reports.")] = Path("results"),
    backend: Annotated[Backend, typer.Option(help="Which backend to evaluate.")] = Backend.embedded,
) -> None:
    """Evaluate a backend on a test file; writes Rasa's intent, error and entity reports."""
    from nlu.evaluation import evaluate, summary_table, write_reports
    from nlu.training_data import load_file

    settings = _settings()
    examples = load_file(data).examples
    if not examples:
        print(f"error: {data} has no intent examples", file=sys.stderr)
        raise typer.Exit(1)

    async def go() -> dict[str, Any]:
        async with _backend(settings, backend) as interpreter:
            with _progress(f"parsing with {backend.value}", len(examples)) as advance:
                result = await evaluate(interpreter, examples, advance)
        return write_reports(result, out)

    report = _run(go())
    print(summary_table(report))
    print(f"reports written to {out}/")


@nlu_app.command("bench")
def nlu_bench(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Rasa 3.x NLU YAML.")],
    out: Annotated[Path | None, typer.Option(help="Directory for JSON and reports.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="DIET epochs for Rasa.")] = 30,
    backend: Annotated[
        list[Backend] | None, typer.Option(help="Only these backends (repeatable).")
    ] = None,
) -> None:
    """Train both backends on nlu/data, evaluate both on a test file, and compare them."""
    from bots.nlubench import bench_embedded, bench_rasa, score_table, write_scores
    from nlu.training_data import load_file

    settings = _settings()
    examples = load_file(data).examples
    chosen = backend or list(Backend)
    unsure = (settings.nlu_threshold, settings.nlu_margin)

    async def go() -> list[Any]:
        scores = []
        if Backend.embedded in chosen:
            print("training the embedded model...", file=sys.stderr)
            scores.append(await bench_embedded(examples, unsure, _progress, out))
        if Backend.rasa in chosen:
            print(f"training Rasa ({epochs} DIET epochs)...", file=sys.stderr)
            scores.append(await bench_rasa(examples, unsure, epochs, _progress, out))
        return scores

    scores = _run(go())
    print(score_table(scores))
    if out is not None:
        print(f"written to {write_scores(scores, out)}")


@contextlib.asynccontextmanager
async def _backend(settings: Settings, backend: Backend) -> AsyncIterator[Interpreter]:
    """One backend, alone: no fallback, so its own accuracy is what gets measured."""
    if backend is Backend.embedded:
        yield await asyncio.to_thread(load_embedded, settings)
        return
    from nlu.rasa_client import RasaInterpreter

    async with RasaInterpreter(
        settings.rasa_url,
        token=settings.rasa_token or None,
        timeout=settings.rasa_timeout,
        threshold=settings.nlu_threshold,
        margin=settings.nlu_margin,
    ) as rasa:
        yield rasa


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields the function that advances it."""
    with typer.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


@cases_app.command("list")
def cases_list(
    status: Annotated[
        list[CaseStatus] | None, typer.Option(help="Only cases in this status (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
) -> None:
    """One line per case: number, category, status, address, created time."""

    async def go() -> None:
        async with open_services(_settings(), with_nlu=False) as services:
            cases = await services.cases.list_cases(status or (), limit)
        if not cases:
            print("no cases")
        for case in cases:
            created = case.created_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
            print(
                f"{case.number}  {case.category:<12} {case.status.value:<11} "
                f"{case.address or '-'}  {created}"
            )

    _run(go())


@cases_app.command("set-status")
def cases_set_status(
    case: Annotated[str, typer.Argument(help="The case number, e.g. YM2611250001.")],
    status: Annotated[CaseStatus, typer.Argument(help="The new status.")],
    note: Annotated[str, typer.Option(help="A note for the resident.")] = "",
    actor: Annotated[str, typer.Option(help="Who made the change.")] = "staff",
) -> None:
    """Move a case along its lifecycle; the resident is notified on their channel."""

    async def go() -> None:
        async with open_services(_settings(), with_nlu=False) as services:
            view = await services.cases.change_status(case, status, note, actor)
        print(f"{view.number} -> {view.status.value}; the resident will be notified")

    try:
        _run(go())
    except IntegrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


class BenchChannel(enum.StrEnum):
    """What `yimen bench` drives."""

    pipeline = "pipeline"
    wechat = "wechat"


class WeChatMode(enum.StrEnum):
    """WeChat's message modes."""

    plain = "plain"
    safe = "safe"


@app.command("bench")
def bench_command(
    conversations: Annotated[int, typer.Option(min=1, help="Simulated residents.")] = 300,
    concurrency: Annotated[int, typer.Option(min=1, help="Residents talking at once.")] = 50,
    scratch: Annotated[
        bool, typer.Option(help="Use a throwaway SQLite file unless YIMEN_DATABASE_URL is set.")
    ] = True,
    channel: Annotated[
        BenchChannel, typer.Option(help="pipeline: in process; wechat: signed POSTs to /wechat.")
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
) -> None:
    """Measure throughput and latency with scripted resident conversations."""
    import tempfile

    from bots.bench import SCRIPT, bench

    settings = _settings(log_level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        if scratch and not settings.database_url:
            settings = settings.model_copy(
                update={"database_url": f"sqlite+aiosqlite:///{tmp}/bench.db"}
            )
        if channel is BenchChannel.wechat:
            modes = mode or list(WeChatMode)
            _bench_wechat(settings, conversations, concurrency, modes, profile, echo)
            return
        result = _run(bench(settings, conversations, concurrency))
    print(
        f"pipeline: {result.messages} messages ({conversations} conversations x {len(SCRIPT)}, "
        f"{concurrency} at once)\n"
        f"  database {_describe_db(settings.resolved_database_url)}; "
        f"state {'redis' if settings.redis_url else 'memory'}; NLU {settings.nlu_backend}\n"
        f"  {result.rate:,.0f} messages/s; latency p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done automatically at start)."""

    async def go() -> None:
        async with open_services(_settings(), with_nlu=False):
            pass

    _run(go())
    print("database is up to date")


# -- the dispatch platform (integration/dispatch) ------------------------------------------


def _describe_dispatch(settings: Settings) -> str:
    if settings.dispatch == "open311":
        return f"Open311 GeoReport v2 at {settings.open311_url}"
    if settings.dispatch == "webhook":
        return f"webhook platform at {settings.dispatch_url}"
    return "local desk (yimen cases list / set-status)"


@app.command()
def worker() -> None:
    """Forward cases to the dispatch platform and bring statuses back, without a server."""
    _run(_work(_settings()))


async def _work(settings: Settings) -> None:
    async with open_services(settings, with_nlu=False) as services:
        task = asyncio.create_task(services.dispatch.worker.run(), name="dispatch-worker")
        print(f"dispatch worker: {_describe_dispatch(settings)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            services.dispatch.worker.stop()  # let it finish its step, briefly
            await asyncio.wait([task], timeout=5.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dispatch_app.command("dead")
def dispatch_dead(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 100,
) -> None:
    """Cases the platform has not taken (or cannot reopen), waiting for staff."""

    async def go() -> None:
        async with open_services(_settings(), with_nlu=False) as services:
            dead = await services.dispatch.outbox.dead(limit)
        if not dead:
            print("no dead letters")
        for job in dead:
            created = job.created_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
            print(
                f"{job.number}  {job.kind.value:<7} {job.attempts:>3} tries  {created}  "
                f"{job.last_error}"
            )

    _run(go())


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
        async with open_services(_settings(), with_nlu=False) as services:
            count: int = await services.dispatch.outbox.requeue(case)
            return count

    count = _run(go())
    if not count:
        print(f"error: no dead letter for {case or 'any case'}", file=sys.stderr)
        raise typer.Exit(1)
    print(f"{count} job(s) queued again")


@dispatch_app.command("ratings")
def dispatch_ratings() -> None:
    """Satisfaction with resolved cases: every answer, and how many never answered."""

    async def go() -> Any:
        async with open_services(_settings(), with_nlu=False) as services:
            return await services.dispatch.ratings.summary()

    summary = _run(go())
    rate = summary.satisfaction
    print(
        f"asked {summary.asked}, answered {summary.answered}"
        f" ({(summary.response_rate or 0) * 100:.0f}%)\n"
        f"  满意 {summary.satisfied}  基本满意 {summary.basically}  不满意 {summary.dissatisfied}\n"
        f"  satisfied or basically satisfied: "
        f"{'-' if rate is None else f'{rate * 100:.1f}% of answers'}"
    )


@wechat_app.command("menu")
def wechat_menu(
    show: Annotated[
        bool, typer.Option(help="Print the menu's JSON instead of installing it.")
    ] = False,
) -> None:
    """Install the account's custom menu (menu/create); shares the workers' access_token."""
    import json

    from bots.wechat import WeChatError, install_menu
    from bots.wechat.menu import menu_definition
    from handlers.catalog import Catalog

    menu = menu_definition(Catalog.load())
    if show:
        print(json.dumps(menu, ensure_ascii=False, indent=2))
        return
    settings = _settings()
    if not (settings.wechat_app_id and settings.wechat_app_secret):
        print("error: set YIMEN_WECHAT_APP_ID and YIMEN_WECHAT_APP_SECRET", file=sys.stderr)
        raise typer.Exit(1)
    try:
        _run(install_menu(settings, menu))
    except WeChatError as exc:
        print(f"error: WeChat refused the menu: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    entries = [
        b["name"]
        + (f" ({', '.join(s['name'] for s in b['sub_button'])})" if "sub_button" in b else "")
        for b in menu["button"]
    ]
    print(f"menu installed: {' | '.join(entries)}")


def _bench_wechat(
    settings: Settings,
    conversations: int,
    concurrency: int,
    modes: list[WeChatMode],
    profile: Path | None,
    echo: bool,
) -> None:
    """`yimen bench --channel wechat`: one server run per mode, one line each."""
    from bots.bench import SCRIPT
    from bots.wechatbench import bench_wechat

    print(
        f"wechat webhook: {conversations} conversations x {len(SCRIPT)} messages, "
        f"{concurrency} at once; database {_describe_db(settings.resolved_database_url)}; "
        f"state {'redis' if settings.redis_url else 'memory'}; "
        + ("echo instead of the pipeline" if echo else f"NLU {settings.nlu_backend}")
    )
    for mode in modes:
        report = (
            profile.with_name(f"{profile.stem}-{mode.value}{profile.suffix}") if profile else None
        )
        measured = bench_wechat(settings, conversations, concurrency, mode.value, report, echo)
        result = measured.result
        print(
            f"  {mode.value:<5} {result.rate:,.0f} messages/s; latency p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms; "
            f"{measured.late} answered late (custom/send)"
            + (f"; profile {report}" if report else "")
        )
