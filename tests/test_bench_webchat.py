"""`yimen bench --url ws://…/chat/ws`: a running server's web chat, driven from outside."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bots.app import create_app
from bots.bench import Scenarios
from bots.bench.webchat import drive, page_url
from bots.settings import Settings
from tests.test_cli import Env, env, yimen

__all__ = ["env"]  # the CLI test's fixture, used here too

COMPLAINT = Scenarios.load("complaint")  # 7 turns: opens a case, asks its progress


@pytest.fixture
async def server(data_dir: Path) -> AsyncIterator[str]:
    """The app on its embedded defaults, its limits raised for one machine's visitors;
    the web chat's WebSocket URL."""
    settings = Settings(
        data_dir=data_dir, webchat_address_limit=10_000, rate_limit=10_000, push_poll_interval=0.1
    )
    client: TestClient[Any, Any]
    async with TestClient(TestServer(create_app(settings))) as client:
        yield f"ws://{client.server.host}:{client.server.port}/chat/ws"


def test_the_page_is_found_beside_the_socket_and_other_urls_are_refused() -> None:
    page, origin = page_url("ws://127.0.0.1:8080/chat/ws")
    assert (str(page), origin) == ("http://127.0.0.1:8080/chat", "http://127.0.0.1:8080")
    assert str(page_url("wss://example.org/chat/ws")[0]) == "https://example.org/chat"
    with pytest.raises(ValueError):
        page_url("http://127.0.0.1:8080/wechat")


async def test_every_message_of_every_conversation_is_answered(server: str) -> None:
    measured = await drive(server, conversations=3, concurrency=2, scenarios=COMPLAINT)
    assert measured.samples.errors == []
    assert measured.answered == measured.result.messages == 3 * 7
    assert measured.samples.by_scenario() == {"complaint": 21}
    assert measured.as_dict()["errors"] == 0


async def test_a_refusing_server_is_counted_as_errors(data_dir: Path) -> None:
    # The default per-address limit (120 a minute) is far above 7 messages: a
    # per-connection limit of 3 leaves each visitor's later messages unanswered.
    settings = Settings(data_dir=data_dir, webchat_connection_limit=3, rate_limit=10_000)
    async with TestClient(TestServer(create_app(settings))) as client:
        url = f"ws://{client.server.host}:{client.server.port}/chat/ws"
        measured = await drive(url, conversations=1, concurrency=1, scenarios=COMPLAINT)
    assert measured.answered == 3
    assert len(measured.samples.errors) == 4


@pytest.mark.slow
async def test_yimen_bench_drives_the_web_chat_and_writes_json(
    server: str, env: Env, tmp_path: Path
) -> None:
    report = tmp_path / "webchat.json"
    args = ["bench", "--url", server, "--conversations", "2", "--concurrency", "2"]
    bench = await yimen(env, *args, "--scenarios", "complaint", "--json", str(report))
    assert bench.returncode == 0, bench.stderr
    assert "14 answered, 0 errors" in bench.stdout
    [run] = json.loads(report.read_text())["runs"]
    assert (run["mode"], run["answered"], run["errors"]) == ("webchat", 14, 0)
    assert report.with_suffix(".png").stat().st_size > 0
