"""Operations endpoints: /readyz names each part, /metrics counts what happened."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from bots.app import SERVICES, create_app, nlu_status
from bots.settings import Settings
from integration.state import KeyBuilder
from nlu.rasa_client import FallbackInterpreter, RasaUnavailable
from nlu.types import Parse
from tests.conftest import REDIS_URL
from tests.test_webchat import chat, say
from tests.webchat_client import Visitor


@pytest.fixture
async def client(backend: dict[str, Any], data_dir: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(data_dir=data_dir, push_poll_interval=0.1, **backend)
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value in a text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "")
    found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_readyz_names_each_part(client: TestClient[Any, Any]) -> None:
    response = await client.get("/readyz")
    report = await response.json()
    assert response.status == 200 and report["status"] == "ready"
    assert report["database"] == "ok"
    assert report["nlu"] == "embedded"
    assert report["platform"] == {"name": "local", "state": "ok"}
    assert report["pump"]["running"] is True
    if client.app[SERVICES].settings.redis_url:
        assert report["redis"] == "ok"


async def test_readyz_is_not_ready_when_redis_is_gone(
    postgres: str, keys: KeyBuilder, data_dir: Path
) -> None:
    settings = Settings(
        data_dir=data_dir, database_url=postgres, redis_url=REDIS_URL, redis_prefix=keys.prefix
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        redis = client.app[SERVICES].redis
        assert redis is not None
        await _without_redis(client, redis)


async def _without_redis(client: TestClient[Any, Any], redis: Redis) -> None:
    pool = redis.connection_pool
    port = pool.connection_kwargs["port"]
    pool.connection_kwargs["port"] = 1  # nothing listens there
    await pool.disconnect()
    try:
        response = await client.get("/readyz")
        report = await response.json()
    finally:
        pool.connection_kwargs["port"] = port
        await pool.disconnect()
    assert response.status == 503 and report["status"] == "not ready"
    assert report["redis"].startswith("error:")
    assert report["database"] == "ok"


async def test_readyz_says_when_the_embedded_model_stands_in_for_rasa() -> None:
    class Down:
        async def parse(self, text: str) -> Parse:
            raise RasaUnavailable("connection refused")

    class Embedded:
        async def parse(self, text: str) -> Parse:
            return Parse(text, "greet", 0.9)

    interpreter = FallbackInterpreter(Down(), Embedded())
    assert nlu_status(interpreter) == "rasa"  # nothing has failed yet
    await interpreter.parse("你好")
    assert nlu_status(interpreter).startswith("embedded (rasa unavailable: ")


async def test_metrics_count_messages_by_channel_and_intent(
    client: TestClient[Any, Any],
) -> None:
    before = await (await client.get("/metrics")).text()
    async with Visitor(client) as browser, chat(client, browser) as ws:
        await say(ws, "你好")
        await say(ws, "楼下烧烤店每天半夜还很吵")
    response = await client.get("/metrics")
    after = await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")

    greet = {"channel": "webchat", "intent": "greet"}
    noise = {"channel": "webchat", "intent": "report_noise"}
    assert (
        sample(after, "yimen_messages_total", **greet)
        == sample(before, "yimen_messages_total", **greet) + 1
    )
    assert (
        sample(after, "yimen_messages_total", **noise)
        == sample(before, "yimen_messages_total", **noise) + 1
    )
    assert sample(after, "yimen_nlu_seconds_count") >= sample(before, "yimen_nlu_seconds_count") + 2
    assert sample(after, "yimen_outbox_depth", state="pending") == 0  # the local desk
    assert "yimen_outbox_oldest_pending_seconds 0.0" in after
    assert REGISTRY.get_sample_value("yimen_messages_total", greet) == sample(
        after, "yimen_messages_total", **greet
    )
