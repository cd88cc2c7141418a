"""`yimen bench --channel rasa-rest`: a stock Rasa REST channel, played like the webhook.

The channel here is a small emulator of Rasa's REST channel (POST /webhooks/rest/webhook,
``{"sender", "message"}`` in, a JSON list of messages out); the stock assistant itself
(nlu/rasa/stock/) is checked as assembled for ``rasa train``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from bots.bench import Scenario, Scenarios, rasa_rest, wrk
from nlu.contract import ENTITIES, INTENTS
from tests.test_cli import Env, env, yimen

__all__ = ["env"]  # the CLI test's fixture, used here too

ROOT = Path(__file__).resolve().parents[1]
TURNS = ("你好 {house}", "late", "bad", "谢谢")
SCRIPT = Scenarios("four", (Scenario("four", 1, TURNS),))
PATH = "/webhooks/rest/webhook"


class RestChannel:
    """Rasa's REST channel as wrk meets it: ``late`` → ``[]`` (no answer), ``bad`` →
    HTTP 500, anything else one text message; records each sender's messages."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = defaultdict(list)
        self.content_types: set[str] = set()
        self.answered = {"text": 0, "late": 0, "bad": 0}

    async def handle(self, request: web.Request) -> web.Response:
        self.content_types.add(request.content_type)
        body = await request.json()
        sender, text = body["sender"], body["message"]
        await asyncio.sleep(0.005)  # at most 200 a second a connection: within the budget
        self.sent[sender].append(text)
        if text == "late":
            self.answered["late"] += 1
            return web.json_response([])
        if text == "bad":
            self.answered["bad"] += 1
            return web.Response(status=500, text="boom")
        self.answered["text"] += 1
        return web.json_response([{"recipient_id": sender, "text": "好的"}])


@pytest.fixture
async def channel() -> AsyncIterator[tuple[RestChannel, str]]:
    channel = RestChannel()
    app = web.Application()
    app.router.add_post(PATH, channel.handle)

    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>hi</html>", content_type="text/html")

    app.router.add_post("/html", html)
    async with TestServer(app, host="127.0.0.1") as server:
        yield channel, f"http://127.0.0.1:{server.port}"


async def test_wrk_plays_json_conversations_and_counts_empty_answers(
    channel: tuple[RestChannel, str],
) -> None:
    server, base = channel
    played = await asyncio.to_thread(
        wrk.play, base + PATH, rasa_rest.delivery, SCRIPT, 3, 2, answers="json"
    )
    assert server.content_types == {"application/json"}
    assert len(server.sent) >= 3
    for texts in server.sent.values():  # each sender's turns in the script's order
        house = texts[0].removeprefix("你好 ")
        assert house.isdigit()
        assert texts == [turn.format(house=house) for turn in TURNS][: len(texts)]
    assert server.answered["late"] - 3 <= played.late <= server.answered["late"]
    assert server.answered["bad"] - 3 <= played.errors <= server.answered["bad"]
    assert played.late > 0 and played.errors > 0


async def test_bench_command_measures_a_rest_channel(
    channel: tuple[RestChannel, str], env: Env, tmp_path: Path
) -> None:
    server, base = channel
    report = tmp_path / "rasa.json"
    args = ["--channel", "rasa-rest", "--url", base + PATH, "--wrk", "2", "--concurrency", "2"]
    bench = await yimen(env, "bench", *args, "--scenarios", "complaint", "--json", str(report))
    assert bench.returncode == 0, bench.stderr
    assert f"Rasa REST channel at {base}{PATH}: wrk, 2 connections for 2 s" in bench.stdout
    [line] = [line for line in bench.stdout.splitlines() if line.strip().startswith("rasa-rest")]
    assert line.endswith("0 unanswered ([]), 0 errors"), line
    [run] = json.loads(report.read_text())["runs"]
    assert run["mode"] == "rasa-rest" and run["errors"] == 0 and run["messages"] > 7
    # The complaint script, whole, new senders each: the warm-up's one and wrk's.
    complaint = Scenarios.load("complaint").kinds[0]
    assert len(server.sent) >= 3
    for sender, texts in server.sent.items():
        assert texts[0] == complaint.turns[0], sender
        assert len(texts) <= len(complaint.turns)


async def test_bench_command_refuses_what_is_not_a_rest_channel(
    channel: tuple[RestChannel, str], env: Env
) -> None:
    _, base = channel
    missing = await yimen(env, "bench", "--channel", "rasa-rest", "--wrk", "2")
    assert missing.returncode == 2
    assert "--channel rasa-rest needs --url and --wrk" in missing.stderr
    args = ["--channel", "rasa-rest", "--wrk", "2", "--scenarios", "complaint"]
    html = await yimen(env, "bench", *args, "--url", base + "/html")
    assert html.returncode == 2
    assert "is not a Rasa REST channel that answers" in html.stderr


def test_the_stock_assistant_answers_every_contract_intent_by_a_rule(tmp_path: Path) -> None:
    """What `scripts/rasa-server.sh train --stock` hands `rasa train`: the NLU data, a
    domain with a response for every contract intent, a rule each, and RulePolicy."""
    stock = ROOT / "nlu" / "rasa" / "stock"
    command = [
        sys.executable,
        str(ROOT / "nlu" / "rasa" / "assembly.py"),
        "--data", str(ROOT / "nlu" / "data"),
        "--config", str(ROOT / "nlu" / "rasa" / "config.yml"),
        "--epochs", "3", "--out", str(tmp_path), "--assistant", str(stock),
    ]  # fmt: skip
    key = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
    project = tmp_path / key

    domain = yaml.safe_load((project / "domain.yml").read_text(encoding="utf-8"))
    assert domain["intents"] == list(INTENTS)
    assert domain["entities"] == list(ENTITIES)
    assert set(domain["responses"]) == {f"utter_{i}" for i in INTENTS} | {"utter_default"}
    rules = yaml.safe_load((project / "data" / "rules.yml").read_text(encoding="utf-8"))
    answered = {rule["steps"][0]["intent"]: rule["steps"][1]["action"] for rule in rules["rules"]}
    assert answered == {i: f"utter_{i}" for i in INTENTS}
    config = yaml.safe_load((project / "config.yml").read_text(encoding="utf-8"))
    assert [policy["name"] for policy in config["policies"]] == ["RulePolicy"]
    [diet] = [c for c in config["pipeline"] if c["name"] == "DIETClassifier"]
    assert diet["epochs"] == 3  # the same NLU pipeline, its epochs rendered
    nlu_files = {p.name for p in (project / "data").glob("*.yml")} - {"rules.yml"}
    assert "reports.yml" in nlu_files

    # Without --assistant, the NLU-only project of Yimen's Rasa backend: another hash.
    nlu_only = [arg for arg in command if arg not in ("--assistant", str(stock))]
    other = subprocess.run(nlu_only, check=True, capture_output=True, text=True).stdout.strip()
    assert other != key and not (tmp_path / other / "domain.yml").exists()
