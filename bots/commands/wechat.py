"""`yimen wechat` and `yimen bench --channel wechat`: the Official Account's tools."""

from __future__ import annotations

import enum
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bots.commands import describe_db, load_settings, run_async
from bots.settings import Settings

if TYPE_CHECKING:
    from bots.bench import Samples, Scenarios

wechat_app = typer.Typer(help="The WeChat Official Account.", no_args_is_help=True)


class WeChatMode(enum.StrEnum):
    """WeChat's message modes."""

    plain = "plain"
    safe = "safe"


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
    settings = load_settings()
    if not (settings.wechat_app_id and settings.wechat_app_secret):
        print("error: set YIMEN_WECHAT_APP_ID and YIMEN_WECHAT_APP_SECRET", file=sys.stderr)
        raise typer.Exit(1)
    try:
        run_async(install_menu(settings, menu))
    except WeChatError as exc:
        print(f"error: WeChat refused the menu: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    entries = [
        b["name"]
        + (f" ({', '.join(s['name'] for s in b['sub_button'])})" if "sub_button" in b else "")
        for b in menu["button"]
    ]
    print(f"menu installed: {' | '.join(entries)}")


def bench_wechat_report(
    settings: Settings,
    conversations: int,
    concurrency: int,
    modes: list[WeChatMode],
    profile: Path | None,
    echo: bool,
    rate: float | None = None,
    workers: list[int] | None = None,
    json_path: Path | None = None,
    scenarios: Scenarios | None = None,
    png: Path | None = None,
    wrk_seconds: int | None = None,
) -> None:
    """`yimen bench --channel wechat`: one server run per mode (and worker count), one
    line each; with ``json_path``, every run's figures as JSON too."""

    from bots.bench import Scenarios
    from bots.bench.report import write
    from bots.bench.wechat import bench_wechat
    from bots.progress import counting

    scenarios = scenarios or Scenarios.load()
    load = _load(scenarios, conversations, concurrency, rate, wrk_seconds)
    print(
        f"wechat webhook: {load}; database {describe_db(settings.resolved_database_url)}; "
        f"state {'redis' if settings.redis_url else 'memory'}; "
        + ("echo instead of the pipeline" if echo else f"NLU {settings.nlu_backend}")
    )
    runs: list[tuple[str, dict[str, Any], Samples | None]] = []
    for mode, count in itertools.product(modes, workers or [1]):
        report = (
            profile.with_name(f"{profile.stem}-{mode.value}{profile.suffix}") if profile else None
        )
        label = f"{mode.value}, {count} worker{'s' if count > 1 else ''}"
        with counting(f"wechat {label}", wrk_seconds or conversations) as advance:
            measured = bench_wechat(
                settings,
                conversations,
                concurrency,
                mode.value,
                report,
                echo,
                rate,
                count,
                scenarios,
                advance,
                wrk_seconds,
            )
        result = measured.result
        print(
            f"  {mode.value:<5} {count} worker{'s' if count > 1 else ' '} "
            f"{result.summary()}; {measured.late} answered late (custom/send)"
            + (f", {measured.errors} errors" if wrk_seconds else "")
            + (f"; profile {report}" if report else "")
        )
        cost = measured.per_message()
        runs.append((label, measured.as_dict(), measured.samples))
        if cost:
            print(
                f"        per message: {cost['statements']:.2f} SQL statements in "
                f"{cost['transactions']:.2f} transactions, {cost['redis_round_trips']:.2f} "
                f"Redis round trips ({cost['redis_commands']:.2f} commands), "
                f"{cost['cpu_ms']:.2f} ms server CPU" + (" (profiled)" if report else "")
            )
        if measured.costs is not None:
            print(f"        server peak RSS {measured.costs.peak_rss_kb / 1024:,.0f} MiB")
    for line in write(runs, json_path, png):
        print(line)


def _load(
    scenarios: Scenarios,
    conversations: int,
    concurrency: int,
    rate: float | None,
    wrk_seconds: int | None,
) -> str:
    """What load a WeChat bench offers, in words; exits when wrk is asked for and missing."""
    from bots.bench import describe

    if not wrk_seconds:
        return f"{conversations} conversations ({describe(scenarios)}), " + (
            f"offered at {rate:,.0f} messages/s" if rate else f"{concurrency} at once"
        )
    from bots.bench.wrk import available

    problem = available()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(2)
    return (
        f"wrk, {concurrency} connections for {wrk_seconds} s, new residents ({describe(scenarios)})"
    )


def bench_url_report(
    settings: Settings,
    url: str,
    conversations: int,
    concurrency: int,
    rate: float | None,
    json_path: Path | None,
    scenarios: Scenarios | None = None,
    png: Path | None = None,
    wrk_seconds: int | None = None,
) -> None:
    """`yimen bench --channel wechat --url URL`: a running server, driven from outside."""
    from bots.bench import Scenarios
    from bots.bench.report import write
    from bots.bench.wechat import bench_wechat_url
    from bots.progress import counting

    scenarios = scenarios or Scenarios.load()
    load = _load(scenarios, conversations, concurrency, rate, wrk_seconds)
    print(f"wechat webhook at {url}: {load}")
    try:
        with counting("wechat", wrk_seconds or conversations) as advance:
            measured = bench_wechat_url(
                settings, url, conversations, concurrency, rate, scenarios, advance, wrk_seconds
            )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    print(
        f"  {measured.mode:<5} {measured.result.summary()}; "
        f"{measured.late} answered late (custom/send)"
        + (f", {measured.errors} errors" if wrk_seconds else "")
    )
    for line in write([(measured.mode, measured.as_dict(), measured.samples)], json_path, png):
        print(line)
