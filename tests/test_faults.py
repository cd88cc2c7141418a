"""Faults in the stores under a running app (issue 16, item 5): nothing accepted is lost.

PostgreSQL's connections are killed under the app (pg_terminate_backend); Redis is a
server of the test's own, on a port of its own, killed and started again (the shared
Redis other tests use is never touched). Two workers share PostgreSQL and Redis while
WeChat redelivers to both. Every server started here is stopped here.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bots.app import SERVICES, create_app
from bots.settings import Settings
from handlers.catalog import Catalog
from integration.models import Notification, OutboxJob
from integration.state import KeyBuilder
from tests.conftest import DISPATCH_SECRET
from tests.emulators.dispatch import DispatchEmulator
from tests.emulators.dispatch_base import free_port
from tests.emulators.wechat import WeChatAPIEmulator
from tests.emulators.wechat_app import far_away, number_in, serve, wechat_settings
from tests.test_webchat import (
    ADDRESS,
    COMPLAINT,
    chat,
    labels_of,
    payload_of,
    press,
    receive,
    say,
    send,
    text_of,
)
from tests.webchat_client import Visitor

pytestmark = pytest.mark.fault

T = Catalog.load()


class RedisServer:
    """A redis-server of the test's own: no persistence, like the machine's."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (.ci/run installs it)"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self._process = subprocess.Popen(  # noqa: ASYNC220 - it starts at once; we poll below
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise AssertionError(f"redis-server did not open port {self.port}")

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    try:
        yield server
    finally:
        server.kill()


async def kill_connections(database_url: str) -> int:
    """Terminate every other connection to the test's database; how many there were."""
    plain = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(plain)
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return len(rows)


def pg_settings(postgres: str, keys: KeyBuilder, data_dir: Path, **more: Any) -> Settings:
    """The app on the test's PostgreSQL database and the shared Redis (its own prefix)."""
    return Settings(
        data_dir=data_dir,
        database_url=postgres,
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix=keys.prefix,
        push_poll_interval=0.1,
        **more,
    )


@pytest.fixture
async def pg_client(
    postgres: str, keys: KeyBuilder, data_dir: Path
) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(pg_settings(postgres, keys, data_dir)))) as client:
        yield client


async def filed(ws: Any) -> dict[str, Any]:
    """The whole noise report over a chat socket, submitted: the case's confirmation."""
    await say(ws, COMPLAINT)
    reply = await say(ws, ADDRESS)
    reply = await press(ws, reply, T("button.skip"))
    return await press(ws, reply, T("button.submit"))


async def as_the_page(ws: Any, text: str, **fields: Any) -> dict[str, Any]:
    """Send a message as bots/static/assets/chat.js does: a "busy" answer (nothing was
    stored) is resent with the same id, up to the page's three tries; the reply."""
    message_id = uuid.uuid4().hex
    for _ in range(3):
        answer = await send(ws, text, id=message_id, **fields)
        if answer != {"type": "error", "error": "busy", "in_reply_to": message_id}:
            break
    assert answer["type"] == "reply", answer
    return answer


async def test_postgres_connections_killed_mid_report_lose_nothing(
    postgres: str, pg_client: TestClient[Any, Any]
) -> None:
    """A turn whose statement meets a killed connection is answered "busy" and resent
    by the page (or succeeds at once, when the pool already knew): either way the
    report goes on, and exactly one case is filed."""
    services = pg_client.app[SERVICES]
    async with Visitor(pg_client) as browser, chat(pg_client, browser) as ws:
        await say(ws, COMPLAINT)
        assert await kill_connections(postgres) >= 1  # the app's pooled connections
        reply = await as_the_page(ws, ADDRESS)
        assert text_of(reply) == T("complaint.ask_photo", address=ADDRESS)
        reply = await press(ws, reply, T("button.skip"))
        assert T("button.submit") in labels_of(reply)
        await kill_connections(postgres)
        submit = T("button.submit")
        reply = await as_the_page(ws, submit, payload=payload_of(reply, submit))
        assert "YM" in text_of(reply)
    cases = await services.cases.list_cases()
    assert [(c.category, c.address) for c in cases] == [("noise", ADDRESS)]


async def test_redis_restarted_mid_conversation_loses_no_confirmed_case(
    postgres: str, keys: KeyBuilder, data_dir: Path, own_redis: RedisServer
) -> None:
    await own_redis.start()
    settings = Settings(
        data_dir=data_dir,
        database_url=postgres,
        redis_url=own_redis.url,
        redis_prefix=keys.prefix,
        push_poll_interval=0.1,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        services = client.app[SERVICES]
        async with Visitor(client) as browser, chat(client, browser) as ws:
            reply = await filed(ws)
            assert "YM" in text_of(reply)

            own_redis.kill()
            # While Redis is down: a plain "busy" answer (the page resends), never silence.
            answer = await send(ws, "路灯不亮了")
            assert (answer["type"], answer.get("error")) == ("error", "busy")

            await own_redis.start()  # empty: the conversation state is gone
            reply = await say(ws, "鄂托克西街的路灯不亮了")
            assert text_of(reply)  # answered again, as a new conversation
        cases = await services.cases.list_cases()
        assert [c.category for c in cases] == ["noise"]  # the confirmed case is kept


async def test_wechat_redelivering_to_two_workers_gets_one_case_and_one_answer_a_turn(
    postgres: str, keys: KeyBuilder, data_dir: Path, wechat_api: WeChatAPIEmulator
) -> None:
    """WeChat delivers each message three times within 15 s; a load balancer sends the
    copies to either of two workers sharing PostgreSQL and Redis."""
    settings = wechat_settings(
        data_dir,
        wechat_api,
        database_url=postgres,
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix=keys.prefix,
    )
    async with serve(settings, wechat_api) as one, serve(settings, wechat_api) as two:
        openid = "o-two-workers"
        lat, lon = far_away()
        turns = [
            one.tencent.text(openid, COMPLAINT),
            one.tencent.location(openid, lat, lon, "测试路1号"),
            one.tencent.text(openid, T("button.skip")),
            one.tencent.text(openid, T("button.submit")),
        ]
        answers = []
        for xml in turns:
            deliveries = [
                await one.tencent.deliver(xml),
                await two.tencent.deliver(xml),
                await one.tencent.deliver(xml),
            ]
            answered = [d for d in deliveries if not d.empty]
            assert len(answered) == 1, [d.body for d in deliveries]
            answers.append(answered[0].text)
        number = number_in(answers[-1])
        cases = await one.services.cases.open_cases("wechat", openid)
        assert [c.number for c in cases] == [number]
        assert wechat_api.texts == []  # every answer went once, passively


async def test_a_whole_report_through_the_app_on_a_redis_cluster(
    postgres: str, redis_cluster_url: str, data_dir: Path
) -> None:
    """YIMEN_REDIS_CLUSTER: conversation state, dedupe, locks and throttles on a cluster."""
    settings = Settings(
        data_dir=data_dir,
        database_url=postgres,
        redis_url=redis_cluster_url,
        redis_cluster=True,
        redis_prefix=f"cluster-{uuid.uuid4().hex[:8]}",
        push_poll_interval=0.1,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        services = client.app[SERVICES]
        async with Visitor(client) as browser, chat(client, browser) as ws:
            reply = await filed(ws)
            frame_id = uuid.uuid4().hex
            assert "YM" in text_of(reply)
            # The same frame sent twice (the page's resend) is answered as a duplicate.
            first = await send(ws, "我的进度", id=frame_id)
            again = await send(ws, "我的进度", id=frame_id)
            assert first["type"] == "reply" and again["type"] == "duplicate"
        report = await (await client.get("/readyz")).json()
        assert report["redis"] == "ok"
        assert [c.category for c in await services.cases.list_cases()] == ["noise"]


async def test_a_case_filed_while_the_platform_is_down_is_forwarded_once_when_it_is_back(
    postgres: str, keys: KeyBuilder, data_dir: Path, dispatch_platform: DispatchEmulator
) -> None:
    """The platform down through many retries (minutes at the default backoff, here
    compressed to tenths of a second): the resident's report is confirmed at once, waits
    in the outbox, and reaches the platform exactly once when it is back, with one
    已受理 push. The worker-level variants (both platforms, both databases, a GeoReport
    server that needs a place) are in tests/test_dispatch_outbox.py."""
    await dispatch_platform.stop()
    settings = pg_settings(
        postgres,
        keys,
        data_dir,
        dispatch="webhook",
        dispatch_url=dispatch_platform.url,
        dispatch_secret=DISPATCH_SECRET,
        dispatch_timeout=0.5,
        dispatch_lease=2.0,
        dispatch_poll_interval=0.05,
        dispatch_backoff=0.05,
        dispatch_backoff_max=0.2,
        dispatch_status_interval=0,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        services = client.app[SERVICES]
        async with Visitor(client) as browser, chat(client, browser) as ws:
            reply = await filed(ws)
            number = number_in(text_of(reply))

            await until_attempted(services, 4)  # refused again and again, never given up
            report = await (await client.get("/readyz")).json()
            assert report["status"] == "ready"  # the platform does not decide readiness
            assert report["platform"]["state"] == "unreachable"

            await dispatch_platform.start()
            push = await receive(ws)  # forwarded: the platform accepted it
            assert push["type"] == "push" and number in push["message"]["text"]
        assert len(dispatch_platform.created_for(number)) == 1
        assert dict(await services.dispatch.outbox.counts()) == {"done": 1}
        async with services.sessions() as session:
            pushes = list(await session.scalars(select(Notification.chat_id)))
        assert pushes == [browser.id]  # one 已受理 push, to the resident


async def until_attempted(services: Any, count: int) -> None:
    """Wait until the outbox job has been tried (and refused) ``count`` times."""
    async with asyncio.timeout(30):
        while True:
            async with services.sessions() as session:
                attempts = await session.scalar(select(OutboxJob.attempts))
            if (attempts or 0) >= count:
                return
            await asyncio.sleep(0.05)


async def test_a_flood_of_one_message_gets_one_slow_down_reply_and_no_second_case(
    postgres: str, keys: KeyBuilder, data_dir: Path, wechat_api: WeChatAPIEmulator
) -> None:
    """30 copies of one report from one resident in a few seconds (a stuck client, or
    an angry resident pasting), each a new WeChat message: at most one case, and one
    polite request to slow down among the answers."""
    settings = wechat_settings(
        data_dir,
        wechat_api,
        database_url=postgres,
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix=keys.prefix,
    )
    async with serve(settings, wechat_api) as yimen:
        openid = "o-flood"
        answers = []
        for _ in range(30):
            delivery = await yimen.tencent.deliver(yimen.tencent.text(openid, COMPLAINT))
            answers.append("" if delivery.empty else delivery.text)
        answers += wechat_api.texts  # anything sent later through the API
        notices = [T("chat.rate_limited"), T("chat.repeated")]
        assert sum(answers.count(text) for text in notices) == 1, answers
        notice = next(i for i, text in enumerate(answers) if text in notices)
        assert notice <= 10 and not any(answers[notice + 1 :])  # by the 11th, then silence
        assert len(await yimen.services.cases.open_cases("wechat", openid)) <= 1
