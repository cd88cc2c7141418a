"""`yimen bench --channel wechat --wrk SECONDS`: wrk plays the prebuilt deliveries."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import xmltodict
from aiohttp import web
from aiohttp.test_utils import TestServer

from bots.app import create_app
from bots.bench import Scenario, Scenarios, wrk
from bots.bench.wechat import _aes_key, _WeChat, bench_wechat_url
from bots.settings import Settings
from tests.test_cli import Env, env, yimen

__all__ = ["env"]  # the CLI test's fixture, used here too

TURNS = ("你好 {house}", "late", "bad", "谢谢")
SCRIPT = Scenarios("four", (Scenario("four", 1, TURNS),))
COMPLAINT = Scenarios.load("complaint")


class Recorder:
    """A webhook that answers by the text: ``late`` → success, ``bad`` → HTTP 500; and
    records what each resident sent, and whether two of one resident's messages were
    ever in flight at once."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = defaultdict(list)
        self.busy: set[str] = set()
        self.overlaps = 0
        self.answered = {"xml": 0, "late": 0, "bad": 0}

    async def handle(self, request: web.Request) -> web.Response:
        fields = xmltodict.parse(await request.text())["xml"]
        openid, text = request.query["openid"], fields["Content"]
        assert fields["FromUserName"] == openid
        if openid in self.busy:
            self.overlaps += 1
        self.busy.add(openid)
        try:
            await asyncio.sleep(0.005)  # at most 200 a second a connection: within the budget
            self.sent[openid].append(text)
        finally:
            self.busy.discard(openid)
        if text == "late":
            self.answered["late"] += 1
            return web.Response(text="success")
        if text == "bad":
            self.answered["bad"] += 1
            return web.Response(status=500, text="boom")
        self.answered["xml"] += 1
        return web.Response(text="<xml><Content>ok</Content></xml>", content_type="text/xml")


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/wechat", recorder.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield recorder, f"http://127.0.0.1:{server.port}/wechat"


async def test_wrk_plays_each_resident_in_order_and_counts_what_came_back(
    recorder: tuple[Recorder, str],
) -> None:
    server, url = recorder
    played = await asyncio.to_thread(wrk.play, url, _WeChat("").delivery, SCRIPT, 3, 2)

    assert server.overlaps == 0
    # Each resident's messages came one after another, in the script's order, on
    # the resident's own connection: a prefix of the script, numbered by its house.
    assert len(server.sent) >= 3
    for texts in server.sent.values():
        house = texts[0].removeprefix("你好 ")
        assert house.isdigit()
        assert texts == [turn.format(house=house) for turn in TURNS][: len(texts)]
    first = [texts[0] for texts in server.sent.values()]
    assert len(set(first)) == len(first)  # every resident at a house of their own
    received = sum(len(texts) for texts in server.sent.values())
    # wrk counts the answers it read; at the end up to one a connection is cut short.
    assert received - 3 <= played.result.messages <= received
    assert server.answered["late"] - 3 <= played.late <= server.answered["late"]
    assert server.answered["bad"] - 3 <= played.errors <= server.answered["bad"]
    assert played.late > 0 and played.errors > 0
    assert 0 < played.result.p50_ms <= played.result.p99_ms <= played.result.max_ms


def test_a_connection_that_ran_out_of_messages_voids_the_run() -> None:
    line = {
        "requests": 10, "duration_us": 1_000_000, "connect": 0, "read": 0, "write": 0,
        "timeout": 0, "late": 0, "bad": 0, "ran_out": 1,
        "p50_us": 1000, "p95_us": 2000, "p99_us": 3000, "max_us": 4000,
    }  # fmt: skip
    with pytest.raises(RuntimeError, match="ran out of messages"):
        wrk.parse(json.dumps({"yimen_wrk": line}))
    line["ran_out"] = 0
    run = wrk.parse("Running 1s test\n" + json.dumps({"yimen_wrk": line}))
    assert (run.result.messages, run.result.rate, run.result.p99_ms) == (10, 10.0, 3.0)
    with pytest.raises(RuntimeError, match="no result"):
        wrk.parse("Running 1s test\n")


async def test_bench_with_wrk_opens_a_case_per_conversation_through_the_webhook(
    env: Env, tmp_path: Path
) -> None:
    database = tmp_path / "bench.db"
    env.vars["YIMEN_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    report = tmp_path / "wrk.json"
    args = ["--channel", "wechat", "--mode", "safe", "--wrk", "2", "--concurrency", "2"]
    bench = await yimen(env, "bench", *args, "--scenarios", "complaint", "--json", str(report))
    assert bench.returncode == 0, bench.stderr
    assert "wrk, 2 connections for 2 s" in bench.stdout
    [line] = [line for line in bench.stdout.splitlines() if line.strip().startswith("safe")]
    assert line.endswith("0 answered late (custom/send), 0 errors"), line
    [run] = json.loads(report.read_text())["runs"]
    assert run["errors"] == 0 and run["messages"] > 0
    assert run["per_message"]["statements"] > 0  # the server's own counts
    assert not report.with_suffix(".png").exists()  # wrk keeps no per-message times

    # The 7-turn complaint opens its case at the 5th turn: every whole conversation
    # (and a cut one past its 5th turn) left exactly one case, the warm-up's one more.
    with sqlite3.connect(database) as db:
        [(cases,)] = db.execute("SELECT count(*) FROM cases").fetchall()
    whole = run["messages"] // 7
    assert whole - 2 <= cases - 1 <= whole + 2, (cases, run["messages"])


async def test_wrk_drives_a_running_server_by_url(data_dir: Path) -> None:
    """`--url` with `--wrk`: signed and encrypted with the server's own account settings,
    every message answered in its passive reply."""
    settings = Settings(
        data_dir=data_dir,
        rate_limit=10_000,
        wechat_token="wrkbench",
        wechat_app_id="wx1234567890abcdef",
        wechat_app_secret="secret",
        wechat_aes_key=_aes_key(),
        wechat_api_base="http://127.0.0.1:9/cgi-bin/",
    )
    async with TestServer(create_app(settings), host="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.port}/wechat"
        measured = await asyncio.to_thread(
            bench_wechat_url, settings, url, 0, 2, None, COMPLAINT, lambda _n: None, 2
        )
    assert (measured.mode, measured.late, measured.errors) == ("safe", 0, 0)
    assert measured.result.messages > 7
    assert measured.as_dict()["errors"] == 0


async def test_wrk_is_for_the_wechat_webhook_only(env: Env) -> None:
    refused = await yimen(env, "bench", "--wrk", "2")
    assert refused.returncode == 2
    assert "--wrk plays the WeChat webhook" in refused.stderr
