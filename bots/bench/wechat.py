"""`yimen bench --channel wechat`: signed WeChat deliveries through a real server.

The server is the `yimen run` app with the WeChat channel on, in a process of its own
on loopback; this process plays WeChat. ``concurrency`` residents at a time each run
the pipeline bench's scripted conversation (bots.bench.script) as signed POSTs to
/wechat, in plain mode or AES safe mode, and each delivery is timed from the request
to its passive reply. Building, signing and encrypting the deliveries happens in this
process, outside the timing, as it happens at Tencent; checking the replies (their
signature, decryption, and that each is a real answer) happens after it.

``profile`` runs the server under pyinstrument and writes its report (HTML and text),
to see where the server's time goes; ``echo`` answers every message with its own text
instead of running the pipeline, which measures the webhook on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import string
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

import aiohttp
import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto

from bots.bench import BenchResult, Samples, Scenario, Scenarios, house_numbers, script, wrk
from bots.bench.counters import Snapshot
from bots.loop import run as run_loop
from bots.settings import Settings
from bots.wechat.security import signature

TOKEN = "yimenbench"  # noqa: S105 (the benchmark's own throwaway account)
APP_ID = "wx00000000bench000"
ACCOUNT = "gh_yimen_bench"
# WeChat's API is not called on the passive path; a dead port makes any late reply fail fast.
DEAD_API = "http://127.0.0.1:9/cgi-bin/"


@dataclass(frozen=True, slots=True)
class WeChatBenchResult:
    """One mode's measurements, and how many answers missed the passive reply."""

    mode: str
    result: BenchResult
    late: int
    workers: int = 1
    costs: Snapshot | None = None  # the workers' totals while measured
    samples: Samples | None = None  # every message's send time and latency
    errors: int = 0  # without samples (wrk): messages with no good answer

    def per_message(self) -> dict[str, float]:
        """SQL statements, commits, Redis round trips and server CPU ms per message."""
        return self.costs.per(self.result.messages) if self.costs else {}

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data: latency, rates, and what a message cost the server."""
        result = self.result
        return {
            "mode": self.mode,
            "workers": self.workers,
            "messages": result.messages,
            "seconds": result.seconds,
            "messages_per_second": result.rate,
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            "max_ms": result.max_ms,
            "p95_ms": result.p95_ms,
            "late": self.late,
            "errors": len(self.samples.errors) if self.samples else self.errors,
            "messages_by_scenario": self.samples.by_scenario() if self.samples else {},
            "per_message": self.per_message(),
            "server": self.costs.as_dict() if self.costs else None,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _aes_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(43))


def _echo_app(settings: Settings) -> Any:
    """The webhook alone: the WeChat channel answering each message with its own text."""
    from aiohttp import web

    from bots.runtime import open_services
    from bots.wechat import WECHAT, open_wechat, wechat_routes
    from handlers.messages import Inbound, Outbound

    async def echo(inbound: Inbound) -> list[Outbound] | None:
        return [Outbound(inbound.text)]

    async def lifespan(app: web.Application) -> Any:
        async with (
            open_services(settings, with_nlu=False) as services,
            open_wechat(settings, services, echo) as channel,
        ):
            app[WECHAT] = channel
            yield

    app = web.Application()
    app.cleanup_ctx.append(lifespan)
    app.add_routes(wechat_routes(settings))
    return app


def _serve(
    values: dict[str, Any],
    port: int,
    ready: ProcessEvent,
    stop: ProcessEvent,
    profile: str,
    echo: bool,
    reuse_port: bool = False,
    measuring: ProcessEvent | None = None,
    counts: str = "",
) -> None:
    """A server process: the app on 127.0.0.1:port until ``stop`` is set (with
    ``reuse_port``, one of several sharing the port, as `yimen run --workers` runs).

    With ``counts``, the SQL statements, Redis round trips and CPU time the server
    spends from ``measuring`` being set until ``stop`` are written there as JSON.
    """
    from aiohttp import web

    from bots.app import create_app
    from bots.bench.counters import Counters
    from bots.logs import configure

    settings = Settings(**values)
    configure(settings.log_level)
    parent = os.getppid()
    counters = Counters().install() if counts else None
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")

    async def run() -> None:
        app = _echo_app(settings) if echo else create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None).start()
        ready.set()
        loop = asyncio.get_running_loop()
        try:
            if measuring is not None:  # startup and the warm-up are not measured
                await loop.run_in_executor(None, _wait_for, measuring, parent)
            if counters is not None:
                counters.reset()
            if profiler is not None:
                profiler.start()
            await loop.run_in_executor(None, _wait_for, stop, parent)
            if profiler is not None:
                profiler.stop()
            if counters is not None:
                written = json.dumps(counters.snapshot().as_dict())
                await loop.run_in_executor(None, Path(counts).write_text, written, "utf-8")
        finally:
            await runner.cleanup()

    run_loop(run())
    if profiler is not None and profiler.last_session is not None:
        Path(profile).with_suffix(".txt").write_text(
            profiler.output_text(unicode=True, show_all=False), encoding="utf-8"
        )
        Path(profile).write_text(profiler.output_html(), encoding="utf-8")


def _wait_for(event: ProcessEvent, parent: int) -> None:
    """Wait until ``event`` is set, or until the bench that started this server is gone
    (killed, it would never set it: the server must not outlive it)."""
    while not event.wait(1.0):
        if os.getppid() != parent:
            return


class _WeChat:
    """Builds, signs and (in safe mode) encrypts deliveries; opens the replies."""

    def __init__(self, aes_key: str, token: str = TOKEN, app_id: str = APP_ID) -> None:
        self.token, self.app_id = token, app_id
        self.crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None
        self.prp = PrpCrypto(self.crypto.key) if self.crypto else None
        self.ids = itertools.count(int(time.time() * 1000) * 1000)

    def delivery(self, openid: str, text: str) -> tuple[dict[str, str], str]:
        msg_id = next(self.ids)
        xml = (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
        )
        timestamp, nonce = str(int(time.time())), str(msg_id % 10**9)
        query = {"signature": signature(self.token, timestamp, nonce), "timestamp": timestamp}
        query |= {"nonce": nonce, "openid": openid}
        if self.prp is None:
            return query, xml
        ciphertext = self.prp.encrypt(xml, self.app_id).decode()
        query |= {
            "encrypt_type": "aes",
            "msg_signature": signature(self.token, timestamp, nonce, ciphertext),
        }
        body = (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{ciphertext}]]></Encrypt></xml>"
        )
        return query, body

    def answer(self, body: str) -> str | None:
        """The reply's text; None for ``success`` (answered later, by customer service)."""
        if body in ("success", ""):
            return None
        fields = xmltodict.parse(body)["xml"]
        if self.prp is not None:
            expected = signature(
                self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
            )
            if fields["MsgSignature"] != expected:
                raise RuntimeError("reply signature does not verify")
            fields = xmltodict.parse(self.prp.decrypt(fields["Encrypt"], self.app_id))["xml"]
        content = fields.get("Content")
        if fields.get("MsgType") != "text" or not content:
            raise RuntimeError(f"not a text reply: {body[:200]}")
        return str(content)


async def _resident(
    session: aiohttp.ClientSession,
    url: str,
    wechat: _WeChat,
    openid: str,
    scenario: Scenario,
    house: int,
    samples: Samples,
    late: list[int],
) -> None:
    for text in script(scenario, house):
        query, body = wechat.delivery(openid, text)
        with samples.timing(scenario.name):
            async with session.post(url, params=query, data=body.encode()) as response:
                answer = await response.text()
                status = response.status
        if status != 200:
            raise RuntimeError(f"HTTP {status} for {text!r}: {answer[:200]}")
        if wechat.answer(answer) is None:
            late.append(1)


async def _warm_up(
    session: aiohttp.ClientSession, url: str, wechat: _WeChat, scenarios: Scenarios
) -> None:
    """Each kind of conversation played once, unmeasured (first parses, first cases)."""
    houses, run = house_numbers(), uuid.uuid4().hex[:8]
    for kind in scenarios.kinds:
        openid = f"o-warmup-{run}-{kind.name}"
        await _resident(session, url, wechat, openid, kind, next(houses), Samples(), [])


async def _warm_up_alone(url: str, wechat: _WeChat, scenarios: Scenarios) -> None:
    async with aiohttp.ClientSession() as session:
        await _warm_up(session, url, wechat, scenarios)


def _play_wrk(
    url: str,
    wechat: _WeChat,
    scenarios: Scenarios | None,
    connections: int,
    seconds: int,
    on_start: Callable[[], None] = lambda: None,
    advance: Callable[[int], None] = lambda _n: None,
) -> wrk.WrkRun:
    """Each kind of conversation once (unmeasured), then wrk for ``seconds``."""
    mix = scenarios or Scenarios.load()
    run_loop(_warm_up_alone(url, wechat, mix))
    return wrk.play(url, wechat.delivery, mix, connections, seconds, on_start, advance)


async def _drive(
    url: str,
    wechat: _WeChat,
    conversations: int,
    concurrency: int,
    rate: float | None,
    on_start: Callable[[], None] = lambda: None,
    scenarios: Scenarios | None = None,
    advance: Callable[[int], None] = lambda _n: None,
) -> tuple[BenchResult, int, Samples]:
    """Closed loop: ``concurrency`` residents at a time. Open loop with ``rate``: a new
    resident every (mean turns)/``rate`` seconds however many are still waiting, so the
    offered load is ``rate`` messages/s and queueing shows up in the latencies."""
    scenarios = scenarios or Scenarios.load()
    plan = scenarios.plan(conversations)
    run = uuid.uuid4().hex[:8]
    samples = Samples()
    late: list[int] = []
    connector = aiohttp.TCPConnector(limit=0 if rate else concurrency + 1)
    async with aiohttp.ClientSession(connector=connector) as session:
        houses = house_numbers()
        await _warm_up(session, url, wechat, scenarios)

        async def resident(index: int) -> None:
            openid = f"o-bench-{run}-{index}"
            await _resident(session, url, wechat, openid, plan[index], next(houses), samples, late)
            advance(1)

        on_start()
        samples.restart()
        started = samples.started
        if rate:
            interval, residents = scenarios.mean_turns / rate, []
            for index in range(conversations):
                residents.append(asyncio.create_task(resident(index)))
                await asyncio.sleep(
                    max(0.0, started + (index + 1) * interval - time.perf_counter())
                )
            await asyncio.gather(*residents)
        else:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for index in range(conversations):
                queue.put_nowait(index)

            async def worker() -> None:
                while not queue.empty():
                    await resident(queue.get_nowait())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return BenchResult.of(samples.latencies, elapsed), len(late), samples


def bench_wechat(
    settings: Settings,
    conversations: int,
    concurrency: int,
    mode: str,
    profile: Path | None = None,
    echo: bool = False,
    rate: float | None = None,
    workers: int = 1,
    scenarios: Scenarios | None = None,
    advance: Callable[[int], None] = lambda _n: None,
    wrk_seconds: int | None = None,
) -> WeChatBenchResult:
    """Serve the app in ``workers`` child processes and drive ``conversations`` through
    /wechat; with ``wrk_seconds``, let wrk play new residents for that long instead
    (bots/bench/wrk.py; ``conversations`` and ``rate`` do not apply).

    ``echo`` replaces the pipeline with an echo: what the webhook itself costs.
    """
    aes_key = _aes_key() if mode == "safe" else ""
    server_settings = settings.model_copy(
        update={
            "rate_limit": 10**9,
            "wechat_token": TOKEN,
            "wechat_app_id": APP_ID,
            "wechat_app_secret": "bench-secret",
            "wechat_aes_key": aes_key,
            "wechat_api_base": DEAD_API,
        }
    )
    context = multiprocessing.get_context("spawn")
    stop, measuring = context.Event(), context.Event()
    port = _free_port()
    servers = []
    scratch = Path(tempfile.mkdtemp(prefix="yimen-bench-"))
    counts = [scratch / f"counts-{index}.json" for index in range(workers)]
    for index in range(workers):
        ready = context.Event()
        server = context.Process(
            target=_serve,
            args=(
                server_settings.model_dump(),
                port,
                ready,
                stop,
                str(profile or "") if index == 0 else "",
                echo,
                workers > 1,
                measuring,
                str(counts[index]),
            ),
            name=f"yimen-bench-server-{index}",
        )
        servers.append((server, ready))
    try:
        for server, _ in servers:
            server.start()
        for server, ready in servers:
            while not ready.wait(0.5):
                if not server.is_alive():
                    raise RuntimeError("a bench server exited before it was ready")
        url, wechat = f"http://127.0.0.1:{port}/wechat", _WeChat(aes_key)
        errors = 0
        samples: Samples | None
        if wrk_seconds:
            played = _play_wrk(
                url, wechat, scenarios, concurrency, wrk_seconds, measuring.set, advance
            )
            result, late, errors, samples = played.result, played.late, played.errors, None
        else:
            result, late, samples = run_loop(
                _drive(
                    url, wechat, conversations, concurrency, rate, measuring.set, scenarios, advance
                )
            )
    finally:
        stop.set()
        for server, _ in servers:
            server.join(300 if profile else 60)  # writing a profile takes a while
            if server.is_alive():
                server.terminate()
                with contextlib.suppress(Exception):
                    server.join(5)
    costs = _total([json.loads(path.read_text()) for path in counts if path.exists()])
    shutil.rmtree(scratch, ignore_errors=True)
    return WeChatBenchResult(mode, result, late, workers, costs, samples, errors)


def _total(snapshots: list[dict[str, Any]]) -> Snapshot | None:
    """The workers' counts added up (peak RSS: the largest worker's)."""
    if not snapshots:
        return None
    total = Snapshot()
    for one in snapshots:
        total.statements += one["statements"]
        total.transactions += one["transactions"]
        total.redis_round_trips += one["redis_round_trips"]
        total.redis_commands += one["redis_commands"]
        total.cpu_seconds += one["cpu_seconds"]
        total.seconds = max(total.seconds, one["seconds"])
        total.peak_rss_kb = max(total.peak_rss_kb, one["peak_rss_kb"])
        for kind, count in one["by_statement"].items():
            total.by_statement[kind] = total.by_statement.get(kind, 0) + count
    return total


def bench_wechat_url(
    settings: Settings,
    url: str,
    conversations: int,
    concurrency: int,
    rate: float | None = None,
    scenarios: Scenarios | None = None,
    advance: Callable[[int], None] = lambda _n: None,
    wrk_seconds: int | None = None,
) -> WeChatBenchResult:
    """Drive a server that is already running at ``url`` (its /wechat webhook) from
    outside, signing (and, when it has an EncodingAESKey, encrypting) with the account
    settings it was started with: YIMEN_WECHAT_TOKEN, YIMEN_WECHAT_APP_ID and
    YIMEN_WECHAT_AES_KEY. Its rate limit must allow every message of the longest scenario.
    With ``wrk_seconds``, wrk plays new residents for that long instead.

    The server's own costs (statements, Redis, CPU) are not counted from outside.
    """
    if not settings.wechat_token:
        raise ValueError("set YIMEN_WECHAT_TOKEN (and the app id and AES key) as the server has")
    wechat = _WeChat(settings.wechat_aes_key, settings.wechat_token, settings.wechat_app_id)
    mode = "safe" if settings.wechat_aes_key else "plain"
    if wrk_seconds:
        played = _play_wrk(url, wechat, scenarios, concurrency, wrk_seconds, advance=advance)
        return WeChatBenchResult(mode, played.result, played.late, errors=played.errors)
    result, late, samples = run_loop(
        _drive(url, wechat, conversations, concurrency, rate, scenarios=scenarios, advance=advance)
    )
    return WeChatBenchResult(mode, result, late, samples=samples)
