"""The Rasa backend: the client against a loopback Rasa emulator.

The emulator answers /model/parse with responses recorded from a real Rasa 3.6.21
server (tests/payloads/rasa/). The tests against a live server join CI with the
step that installs, trains and starts one (see the NLU issue).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from nlu.contract import INTENTS
from nlu.embedded import EmbeddedInterpreter
from nlu.rasa_client import (
    FallbackInterpreter,
    RasaError,
    RasaInterpreter,
    RasaRejected,
    RasaUnavailable,
    check_response,
    to_parse,
)
from nlu.types import FALLBACK_INTENT, Entity, Parse

ROOT = Path(__file__).parent.parent
PAYLOADS = Path(__file__).parent / "payloads" / "rasa"
RECORDED_PARSES = ("parse_greet", "parse_report_noise", "parse_book_appointment")


def payload(name: str) -> dict[str, Any]:
    """A recorded Rasa response body."""
    document: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text("utf-8"))
    return document


class RasaEmulator:
    """A loopback server speaking Rasa 3.6's ``POST /model/parse`` from recorded answers.

    ``token`` demands ``?token=`` as ``rasa run --auth-token`` does; the next ``failures``
    requests get Rasa's 500; ``delay`` seconds pass before each answer; ``status`` forces
    a recorded error (401, 409) for every request.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.failures = 0
        self.delay = 0.0
        self.status: int | None = None
        self.requests: list[dict[str, Any]] = []
        self.answers = {body["text"]: body for body in map(payload, RECORDED_PARSES)}
        self.app = web.Application()
        self.app.router.add_post("/model/parse", self.parse)

    async def parse(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"query": dict(request.query), "json": body})
        if self.token and request.query.get("token") != self.token:
            return web.json_response(payload("error_401"), status=401)
        if self.status is not None:
            return web.json_response(payload(f"error_{self.status}"), status=self.status)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            return web.json_response(payload("error_500"), status=500)
        return web.json_response(self.answers[body["text"]])


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[RasaEmulator, str]]:
    """A running Rasa emulator (token ``secret``) and its base URL."""
    rasa = RasaEmulator(token="secret")
    server = TestServer(rasa.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield rasa, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


NOISE = "金辉小区3号楼楼下烧烤店每天半夜还很吵"
NOW = datetime.fromisoformat("2026-11-25T10:00:00+08:00")
BOOKING = "我要预约办理社会保障卡，电话13912345678"


# --- mapping Rasa's answer into Parse -------------------------------------------------


def test_recorded_booking_maps_to_parse_with_rule_spans_winning() -> None:
    parse = to_parse(BOOKING, payload("parse_book_appointment"))
    assert parse.intent == "book_appointment"
    assert parse.confidence == pytest.approx(0.9396552443504333)
    assert parse.ranking[0] == ("book_appointment", parse.confidence)
    assert all(name in INTENTS for name, _ in parse.ranking)
    # DIET and the lookup both found the service; DIET called the phone number a time,
    # the phone regex wins that span.
    assert parse.entities == (
        Entity("service", 6, 11, "社保卡", "RegexEntityExtractor"),
        Entity("phone", 14, 25, "13912345678", "RegexEntityExtractor"),
    )
    assert BOOKING[6:11] == "社会保障卡"


def test_recorded_noise_report_keeps_the_wider_address_and_resolves_the_time() -> None:
    parse = to_parse(NOISE, payload("parse_report_noise"), now=NOW)
    assert parse.intent == "report_noise"
    # Rasa gives the time as written; we give it as the embedded extractor does, in ISO.
    assert [(e.entity, NOISE[e.start : e.end], e.value) for e in parse.entities] == [
        ("address", "金辉小区3号楼", "金辉小区3号楼"),
        ("time", "半夜", "2026-11-25T22:00:00+08:00/2026-11-26T02:00:00+08:00"),
    ]


def test_rasa_times_resolve_like_embedded_ones_and_undatable_ones_are_dropped() -> None:
    text = "改天吧 明天上午 138-1234-5678"
    body = payload("parse_greet")
    body["entities"] = [
        {"entity": "time", "start": 0, "end": 2, "value": "改天", "extractor": "DIETClassifier"},
        {
            "entity": "time",
            "start": 4,
            "end": 8,
            "value": "明天上午",
            "extractor": "DIETClassifier",
        },
        {
            "entity": "phone",
            "start": 9,
            "end": 22,
            "value": "138-1234-5678",
            "extractor": "RegexEntityExtractor",
        },
    ]
    assert to_parse(text, body, now=NOW).entities == (
        Entity(
            "time", 4, 8, "2026-11-26T09:00:00+08:00/2026-11-26T12:00:00+08:00", "DIETClassifier"
        ),
        Entity("phone", 9, 22, "13812345678", "RegexEntityExtractor"),
    )


def test_intent_outside_the_contract_becomes_fallback_with_best_contract_confidence() -> None:
    body = payload("parse_greet")
    body["intent"] = {"name": "nlu_fallback", "confidence": 0.3}
    body["intent_ranking"] = [body["intent"], *body["intent_ranking"]]
    parse = to_parse("你好", body)
    assert parse.intent == FALLBACK_INTENT
    assert parse.confidence == body["intent_ranking"][1]["confidence"]
    assert "nlu_fallback" not in dict(parse.ranking)


def test_low_confidence_becomes_fallback() -> None:
    parse = to_parse("你好", payload("parse_greet"), threshold=0.999)
    assert (parse.intent, parse.ranking[0][0]) == (FALLBACK_INTENT, "greet")


def test_empty_text_answer_becomes_fallback() -> None:
    # What Rasa 3.6 answers for {"text": ""}.
    body = {
        "text": "",
        "intent": {"name": None, "confidence": 0.0},
        "entities": [],
        "text_tokens": [],
        "intent_ranking": [],
    }
    assert to_parse("", body) == Parse("", FALLBACK_INTENT, 0.0)


def test_community_entities_are_addresses_and_unknown_entities_dropped() -> None:
    body = payload("parse_greet")
    body["entities"] = [
        {
            "entity": "community",
            "start": 0,
            "end": 4,
            "value": "金辉小区",
            "extractor": "RegexEntityExtractor",
        },
        {"entity": "mood", "start": 5, "end": 6, "value": "x", "extractor": "DIETClassifier"},
    ]
    assert to_parse("金辉小区 x", body).entities == (
        Entity("address", 0, 4, "金辉小区", "RegexEntityExtractor"),
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, RasaRejected), (409, RasaUnavailable), (500, RasaUnavailable)],
)
def test_check_response_maps_recorded_errors(status: int, error: type[RasaError]) -> None:
    with pytest.raises(error) as raised:
        check_response(status, json.dumps(payload(f"error_{status}")))
    assert raised.value.status == status
    assert payload(f"error_{status}")["message"] in str(raised.value)


def test_check_response_rejects_a_body_that_is_not_rasa() -> None:
    with pytest.raises(RasaError):
        check_response(200, "<html>proxy page</html>")
    with pytest.raises(RasaError):
        check_response(200, '{"status": "ok"}')


# --- the HTTP client against the emulator ---------------------------------------------


async def test_parse_passes_the_token_and_maps_the_answer(
    emulator: tuple[RasaEmulator, str],
) -> None:
    rasa, url = emulator
    async with RasaInterpreter(url, token="secret") as interpreter:
        parse = await interpreter.parse(NOISE)
    assert parse.intent == "report_noise"
    assert rasa.requests == [{"query": {"token": "secret"}, "json": {"text": NOISE}}]


async def test_a_shared_session_is_used_and_left_open(emulator: tuple[RasaEmulator, str]) -> None:
    _, url = emulator
    async with aiohttp.ClientSession() as session:
        interpreter = RasaInterpreter(url, token="secret", session=session)
        assert (await interpreter.parse("你好")).intent == "greet"
        await interpreter.close()
        assert not session.closed


async def test_wrong_token_is_rejected_without_retry(emulator: tuple[RasaEmulator, str]) -> None:
    rasa, url = emulator
    async with RasaInterpreter(url, token="wrong", backoff=0) as interpreter:
        with pytest.raises(RasaRejected) as raised:
            await interpreter.parse("你好")
    assert raised.value.status == 401
    assert len(rasa.requests) == 1


async def test_server_errors_are_retried_until_success(emulator: tuple[RasaEmulator, str]) -> None:
    rasa, url = emulator
    rasa.failures = 2
    async with RasaInterpreter(url, token="secret", retries=2, backoff=0.01) as interpreter:
        assert (await interpreter.parse("你好")).intent == "greet"
    assert len(rasa.requests) == 3


async def test_server_errors_past_the_retries_mean_unavailable(
    emulator: tuple[RasaEmulator, str],
) -> None:
    rasa, url = emulator
    rasa.failures = 3
    async with RasaInterpreter(url, token="secret", retries=2, backoff=0.01) as interpreter:
        with pytest.raises(RasaUnavailable) as raised:
            await interpreter.parse("你好")
    assert raised.value.status == 500
    assert len(rasa.requests) == 3


async def test_no_model_loaded_is_unavailable_at_once(emulator: tuple[RasaEmulator, str]) -> None:
    rasa, url = emulator
    rasa.status = 409
    async with RasaInterpreter(url, token="secret", backoff=0.01) as interpreter:
        with pytest.raises(RasaUnavailable):
            await interpreter.parse("你好")
    assert len(rasa.requests) == 1


async def test_connection_refused_is_unavailable() -> None:
    async with RasaInterpreter(closed_port_url(), retries=2, backoff=0.01) as interpreter:
        with pytest.raises(RasaUnavailable) as raised:
            await interpreter.parse("你好")
    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectionError)
    assert raised.value.status is None


async def test_a_slow_server_is_unavailable_without_retry(
    emulator: tuple[RasaEmulator, str],
) -> None:
    rasa, url = emulator
    rasa.delay = 1.0
    async with RasaInterpreter(url, token="secret", timeout=0.1, retries=2) as interpreter:
        with pytest.raises(RasaUnavailable, match="did not answer"):
            await interpreter.parse("你好")
    assert len(rasa.requests) == 1


# --- falling back to the embedded backend ---------------------------------------------


async def test_fallback_answers_and_counts_when_rasa_is_down(
    interpreter: EmbeddedInterpreter, caplog: pytest.LogCaptureFixture
) -> None:
    async with RasaInterpreter(closed_port_url(), retries=0) as rasa:
        nlu = FallbackInterpreter(rasa, interpreter, retry_after=0)
        with caplog.at_level(logging.WARNING, logger="nlu.rasa_client"):
            parses = [await nlu.parse(text) for text in ("你好", NOISE, "谢谢")]
    assert parses == [interpreter.parse_sync(t) for t in ("你好", NOISE, "谢谢")]
    assert nlu.fallbacks == 3
    warnings = [r for r in caplog.records if r.name == "nlu.rasa_client"]
    assert len(warnings) == 1  # rate-limited: once per log_interval
    assert warnings[0].levelno == logging.WARNING


async def test_fallback_skips_rasa_for_a_while_after_a_failure(
    emulator: tuple[RasaEmulator, str], interpreter: EmbeddedInterpreter
) -> None:
    rasa, url = emulator
    rasa.failures = 100
    async with RasaInterpreter(url, token="secret", retries=0) as primary:
        nlu = FallbackInterpreter(primary, interpreter, retry_after=60)
        await nlu.parse("你好")
        await nlu.parse("你好")
    assert len(rasa.requests) == 1
    assert nlu.fallbacks == 2


async def test_fallback_covers_a_rejected_token_and_logs_an_error(
    emulator: tuple[RasaEmulator, str],
    interpreter: EmbeddedInterpreter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, url = emulator
    async with RasaInterpreter(url, token="wrong") as primary:
        nlu = FallbackInterpreter(primary, interpreter)
        with caplog.at_level(logging.WARNING, logger="nlu.rasa_client"):
            assert (await nlu.parse("你好")).intent == "greet"
    assert nlu.fallbacks == 1
    assert [r.levelno for r in caplog.records if r.name == "nlu.rasa_client"] == [logging.ERROR]


async def test_fallback_is_unused_while_rasa_answers(
    emulator: tuple[RasaEmulator, str], interpreter: EmbeddedInterpreter
) -> None:
    _, url = emulator
    async with RasaInterpreter(url, token="secret") as primary:
        nlu = FallbackInterpreter(primary, interpreter)
        parse = await nlu.parse(BOOKING)
    assert parse.entities[0].extractor == "RegexEntityExtractor"  # Rasa's, not embedded's
    assert nlu.fallbacks == 0


# --- the training directory fed to Rasa -----------------------------------------------


def assemble(data: Path, out: Path, epochs: int) -> str:
    """Run nlu/rasa/assembly.py as scripts/rasa-server.sh does; the printed hash."""
    script, config = ROOT / "nlu" / "rasa" / "assembly.py", ROOT / "nlu" / "rasa" / "config.yml"
    args = ["--data", data, "--config", config, "--epochs", epochs, "--out", out]
    result = subprocess.run(
        [sys.executable, script, *map(str, args)], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def test_assembly_feeds_rasa_only_nlu_files(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "project"
    shutil.copytree(ROOT / "nlu" / "data", data, ignore=shutil.ignore_patterns("test"))
    nlu_files = sorted(p.name for p in data.glob("*.yml") if p.name != "communities.yml")
    (data / "communities.yml").write_text("communities:\n- name: 金辉小区\n", "utf-8")
    (data / "test").mkdir()
    (data / "test" / "test.yml").write_text("nlu:\n- intent: greet\n  examples: |\n    - 嗨\n")

    key = assemble(data, out, 7)
    assert assemble(data, out, 7) == key != assemble(data, out, 8)
    out = out / key

    fed = sorted(p.name for p in (out / "data").iterdir())
    assert fed == sorted([*nlu_files, "zz-generated-lookups.yml"])
    config = yaml.safe_load((out / "config.yml").read_text("utf-8"))
    diet = next(c for c in config["pipeline"] if c["name"] == "DIETClassifier")
    assert (config["language"], diet["epochs"]) == ("zh", 7)
    generated = yaml.safe_load((out / "data" / "zz-generated-lookups.yml").read_text("utf-8"))
    lookups = {e["lookup"]: e["examples"].split("\n") for e in generated["nlu"]}
    assert "- 金辉小区" in lookups["address"]
    assert "- 社会保障卡" in lookups["service"]  # a synonym of 社保卡
    assert "社会保障卡" in (out / "jieba" / "userdict.txt").read_text("utf-8").split()
