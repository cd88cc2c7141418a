"""Regression: one web-chat page that stops reading must not stop anyone else's pushes.

The attack (issue 10, High 1): a visitor opens the chat socket with a tiny receive
buffer and never reads; the server's sends to it fill the kernel's buffers and then
aiohttp's, and every send to that socket waits. Before the fix the send had no time
limit and the notifier's pass waited for every chat, so a status change of any
other resident's case was never pushed. Here the stuck page is a real TCP socket
that completes the WebSocket handshake and then never reads, and the status changes
queued for it carry megabyte notes, so the server's buffers fill for real.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bots.app import PUMP, SERVICES, WEBCHAT, create_app
from bots.identity import COOKIE
from bots.settings import Settings
from handlers.catalog import Catalog
from handlers.notifier import NotificationPump
from integration.cases import CaseDraft
from integration.models import CaseStatus, Notification, NotificationState
from integration.notifications import NotificationQueue, PendingPush
from tests.fakes import CollectingChannel
from tests.webchat_client import Visitor

T = Catalog.load()
PUSH_DEADLINE = 2.0  # the acceptance: another resident's push within 2 s


@pytest.fixture
async def client(backend: dict[str, Any], data_dir: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(
        data_dir=data_dir, push_poll_interval=0.1, webchat_send_timeout=1.0, **backend
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


def stuck_socket(host: str, port: int, cookie: str) -> socket.socket:
    """A WebSocket client that shakes hands and then never reads again.

    Its receive buffer is as small as the kernel allows, so what the server sends piles
    up on the server's side.
    """
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    raw.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            "GET /chat/ws HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{host}:{port}\r\n"
            f"Cookie: {COOKIE}={cookie}\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += raw.recv(1)  # the handshake's headers only, byte by byte
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return raw


async def test_a_stuck_page_does_not_hold_back_another_residents_push(
    client: TestClient[Any, Any],
) -> None:
    services = client.app[SERVICES]
    channel = client.app[WEBCHAT]
    async with Visitor(client) as attacker, Visitor(client) as resident:
        await attacker.load_page()
        cookie = attacker.session.cookie_jar.filter_cookies(client.make_url("/chat"))[COOKIE]
        stuck_case = await services.cases.create_case(
            CaseDraft("webchat", attacker.id, attacker.id, "noise", "楼上装修太吵", "金辉小区3号楼")
        )
        ws, _ = await resident.connect()
        own_case = await services.cases.create_case(
            CaseDraft("webchat", resident.id, resident.id, "facility", "路灯不亮", "金辉小区5号楼")
        )
        server = client.server
        raw = await asyncio.to_thread(stuck_socket, server.host, server.port, cookie.value)
        try:
            # Megabytes of notes for the stuck page: its sends fill every buffer and wait.
            huge = "噪" * 1_000_000
            for status in (CaseStatus.accepted, CaseStatus.dispatched, CaseStatus.in_progress):
                await services.cases.change_status(stuck_case.number, status, huge)
            for _ in range(100):  # until the pump is in the middle of sending to it
                if client.app[PUMP].status().sending:
                    break
                await asyncio.sleep(0.05)
            assert client.app[PUMP].status().sending >= 1

            await services.cases.change_status(own_case.number, CaseStatus.accepted, "已受理")
            push = await ws.receive_json(timeout=PUSH_DEADLINE)
            assert push["type"] == "push"
            assert own_case.number in push["message"]["text"]

            # The stuck page is cut off once its send times out; its pushes stay queued.
            for _ in range(100):
                if not channel.online(attacker.id):
                    break
                await asyncio.sleep(0.05)
            assert not channel.online(attacker.id)
            assert not client.app[PUMP].status().stalled
        finally:
            raw.close()
            await ws.close()

    async with services.sessions() as session:
        states = (
            await session.execute(
                select(Notification.chat_id, Notification.state).order_by(Notification.id)
            )
        ).all()
    assert [state for chat, state in states if chat == attacker.id] == [
        NotificationState.pending.value
    ] * 3
    assert [state for chat, state in states if chat == resident.id] == [
        NotificationState.sent.value
    ]


async def test_healthz_shows_the_pump(client: TestClient[Any, Any]) -> None:
    async with asyncio.timeout(10):  # the first pass may still be under way at startup
        while True:
            response = await client.get("/healthz")
            assert response.status == 200
            report = await response.json()
            assert report["pump"]["running"] is True
            assert report["pump"]["stalled"] is False
            if report["pump"]["last_pass"] is not None:
                break
            await asyncio.sleep(0.05)
    assert report["pump"]["last_pass_age"] >= 0


class HangingQueue(NotificationQueue):
    """A queue whose database never answers (a claim that hangs)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def claim_due(self, *args: Any, **kwargs: Any) -> list[PendingPush]:
        await self.release.wait()
        return []


async def test_a_pump_that_cannot_finish_a_pass_reports_itself_stalled() -> None:
    queue = HangingQueue()
    pump = NotificationPump(
        queue, {"collect": CollectingChannel()}, T, poll_interval=0.01, stall_after=0.2
    )
    task = asyncio.create_task(pump.run())
    try:
        await asyncio.sleep(0.05)
        assert pump.status().running and not pump.status().stalled
        await asyncio.sleep(0.3)
        assert pump.status().stalled
    finally:
        pump.stop()
        queue.release.set()
        await asyncio.wait_for(task, 5)
    assert not pump.status().running
