"""Status sync: signed callbacks and polling record each change once, in order.

Callbacks go to the real ``/dispatch/callback`` handler over HTTP; polling reads the
emulated GeoReport server. Duplicated, reordered, stale and replayed updates never
notify twice or move a case backwards.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.notifier import NotificationPump
from integration.cases import CaseBook, CaseDraft
from integration.db import create_engine, session_factory
from integration.dispatch.callbacks import CALLBACK_PATH, CallbackReceiver
from integration.dispatch.open311 import Open311Platform
from integration.dispatch.outbox import Outbox
from integration.dispatch.ratings import RatingBook
from integration.dispatch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from integration.dispatch.sync import Outcome, StatusSync
from integration.dispatch.types import StatusReport
from integration.dispatch.webhook import WebhookPlatform
from integration.dispatch.worker import DispatchWorker
from integration.models import CaseEvent, CaseStatus, Notification, Rating
from integration.notifications import NotificationQueue
from tests.conftest import DISPATCH_SECRET
from tests.emulators.dispatch import DispatchEmulator, send_callback
from tests.emulators.open311 import Open311Emulator
from tests.fakes import CollectingChannel

Sessions = async_sessionmaker[AsyncSession]
S = CaseStatus
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def draft(user: str = "r1") -> CaseDraft:
    return CaseDraft(
        "collect", user, user, "noise", "广场舞音响声音太大", "金辉小区3号楼", 39.6, 109.7
    )


@pytest.fixture
async def sqlite_sessions(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Sessions]:
    """Sessions on a migrated SQLite file (for tests about HTTP, not the database)."""
    shutil.copy(sqlite_template, tmp_path / "sync.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}")
    yield session_factory(engine)
    await engine.dispose()


async def forwarded(
    sessions: Sessions, http: aiohttp.ClientSession, platform: DispatchEmulator, count: int = 1
) -> list[tuple[str, str]]:
    """Open cases for the webhook platform and forward them: (case number, platform id)."""
    book = CaseBook(sessions, platform="webhook")
    numbers = [(await book.create_case(draft(f"r{i}"))).number for i in range(count)]
    webhook = WebhookPlatform(http, platform.url, secret=DISPATCH_SECRET)
    worker = DispatchWorker(
        Outbox(sessions, "webhook"), webhook, StatusSync(sessions, "webhook"), RatingBook(sessions)
    )
    assert await worker.forward_due() == count
    return [(n, platform.created_for(n)[0]["id"]) for n in numbers]


@pytest.fixture
async def callback_url(sqlite_sessions: Sessions) -> AsyncIterator[str]:
    """The callback handler served over HTTP, applying to the SQLite database."""
    receiver = CallbackReceiver(StatusSync(sqlite_sessions, "webhook"), DISPATCH_SECRET)
    app = web.Application()
    app.add_routes(receiver.routes())
    async with TestServer(app) as server:
        yield str(server.make_url(CALLBACK_PATH))


async def history(sessions: Sessions) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(CaseEvent.status, CaseEvent.note).order_by(CaseEvent.id)
        )
        return [(s, n) for s, n in rows]


async def push_count(sessions: Sessions) -> int:
    async with sessions() as session:
        return len(list(await session.scalars(select(Notification.id))))


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


# --- callbacks ------------------------------------------------------------------------------


async def test_a_signed_callback_records_the_change_and_pushes_it_once(
    sqlite_sessions: Sessions,
    http: aiohttp.ClientSession,
    dispatch_platform: DispatchEmulator,
    callback_url: str,
    catalog: Catalog,
) -> None:
    [(number, platform_id)] = await forwarded(sqlite_sessions, http, dispatch_platform)
    update = dispatch_platform.set_status(platform_id, "in_progress", "已派城管中队")

    assert await send_callback(callback_url, update, DISPATCH_SECRET) == (
        200,
        {"result": "applied"},
    )
    # The platform sends it again a second later (its retry, signed anew): recorded once.
    body = json.dumps(update).encode()
    resent = signed_headers(DISPATCH_SECRET, body, now=time.time() + 1)
    assert await send_callback(callback_url, update, "", headers=resent, raw=body) == (
        200,
        {"result": "stale"},
    )

    assert await history(sqlite_sessions) == [
        ("received", ""),
        ("accepted", ""),
        ("in_progress", "已派城管中队"),
    ]
    channel = CollectingChannel()
    pump = NotificationPump(NotificationQueue(sqlite_sessions), {channel.name: channel}, catalog)
    assert await pump.deliver_due() == 2
    text = channel.pushes[-1][1].text
    assert number in text and "正在处理" in text and "已派城管中队" in text


async def test_unsigned_forged_stale_and_replayed_callbacks_are_refused(
    sqlite_sessions: Sessions,
    http: aiohttp.ClientSession,
    dispatch_platform: DispatchEmulator,
    callback_url: str,
) -> None:
    [(_, platform_id)] = await forwarded(sqlite_sessions, http, dispatch_platform)
    update = dispatch_platform.set_status(platform_id, "dispatched", "已派单")
    body = json.dumps(update).encode()
    signed = signed_headers(DISPATCH_SECRET, body)
    old = signed_headers(DISPATCH_SECRET, body, now=time.time() - 3600)

    unsigned = await send_callback(callback_url, update, "", headers={})
    forged = await send_callback(callback_url, update, "", headers=signed_headers("guess", body))
    tampered = await send_callback(callback_url, update, "", headers=signed, raw=body + b" ")
    stale = await send_callback(callback_url, update, "", headers=old, raw=body)
    first = await send_callback(callback_url, update, "", headers=signed, raw=body)
    replay = await send_callback(callback_url, update, "", headers=signed, raw=body)

    assert unsigned == (401, {"error": "unsigned callback"})
    assert forged == (401, {"error": "bad signature"}) == tampered
    assert stale == (401, {"error": "stale callback"})
    assert first == (200, {"result": "applied"})
    assert replay == (409, {"error": "replayed callback"})
    assert [s for s, _ in await history(sqlite_sessions)] == ["received", "accepted", "dispatched"]


async def test_bad_callbacks_get_clear_answers(
    sqlite_sessions: Sessions, callback_url: str
) -> None:
    await CaseBook(sqlite_sessions, platform="webhook").create_case(draft())

    unknown = await send_callback(
        callback_url, {"id": "D404", "status": "accepted"}, DISPATCH_SECRET
    )
    bad_status = await send_callback(callback_url, {"id": "D1", "status": "??"}, DISPATCH_SECRET)
    garbage = await send_callback(callback_url, {}, DISPATCH_SECRET, raw=b"{not json")

    assert unknown == (404, {"error": "no case D404"})
    assert bad_status[0] == 400 and "unknown status" in bad_status[1]["error"]
    assert garbage[0] == 400


async def test_callbacks_need_a_configured_secret(sqlite_sessions: Sessions) -> None:
    app = web.Application()
    app.add_routes(CallbackReceiver(StatusSync(sqlite_sessions, "webhook"), "").routes())
    async with TestServer(app) as server:
        status, body = await send_callback(
            str(server.make_url(CALLBACK_PATH)), {"id": "D1", "status": "accepted"}, "any"
        )
    assert status == 503 and "YIMEN_DISPATCH_SECRET" in body["error"]


def test_the_signing_string_is_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    headers = signed_headers("s3cret", b'{"id":"D1"}', now=1764000000)

    expected = hmac.new(b"s3cret", b'1764000000.{"id":"D1"}', hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: "1764000000", SIGNATURE_HEADER: f"sha256={expected}"}


# --- ordering -----------------------------------------------------------------------------------


async def test_reordered_duplicated_and_backward_reports_never_go_back(sessions: Sessions) -> None:
    book = CaseBook(sessions, platform="webhook")
    number = (await book.create_case(draft())).number
    sync = StatusSync(sessions, "webhook")

    def report(status: CaseStatus, minute: int, note: str = "") -> StatusReport:
        return StatusReport("", status, note, T0 + timedelta(minutes=minute), number)

    outcomes = [
        await sync.apply(report(S.in_progress, 2, "处理中")),
        await sync.apply(report(S.dispatched, 1)),  # arrives late: stale
        await sync.apply(report(S.in_progress, 2, "处理中")),  # duplicated
        await sync.apply(report(S.in_progress, 3, "还在处理")),  # same status, newer
        await sync.apply(report(S.accepted, 4)),  # newer but backwards
        await sync.apply(report(S.resolved, 5, "已办结")),
    ]

    assert outcomes == [
        Outcome.applied,
        Outcome.stale,
        Outcome.stale,
        Outcome.duplicate,
        Outcome.backwards,
        Outcome.applied,
    ]
    assert await history(sessions) == [
        ("received", ""),
        ("in_progress", "处理中"),
        ("resolved", "已办结"),
    ]
    assert await push_count(sessions) == 2  # one per recorded change
    # A newer open status after the resolution means the platform reopened the case.
    assert await sync.apply(report(S.in_progress, 9, "复查未整改")) is Outcome.applied
    assert (await book.get(number)).status is S.reopened


# --- polling --------------------------------------------------------------------------------------


async def test_polling_brings_each_georeport_change_once(
    sessions: Sessions, http: aiohttp.ClientSession, open311: Open311Emulator
) -> None:
    book = CaseBook(sessions, platform="open311")
    numbers = [(await book.create_case(draft(f"r{i}"))).number for i in range(2)]
    platform = Open311Platform(http, open311.base, api_key="test-key")
    sync = StatusSync(sessions, "open311")
    worker = DispatchWorker(Outbox(sessions, "open311"), platform, sync, RatingBook(sessions))
    await worker.forward_due()
    first, second = (open311.created_for(n)[0]["service_request_id"] for n in numbers)
    later = datetime.now(UTC) + timedelta(minutes=1)
    open311.set_status(first, "open", "已派城管中队", at=later)
    open311.set_status(second, "closed", "已劝导商户夜间停业", at=later)

    assert await worker.poll_statuses() == 2
    assert await worker.poll_statuses() == 0

    assert [(await book.get(n)).status for n in numbers] == [S.in_progress, S.resolved]
    async with sessions() as session:
        kinds = list(await session.scalars(select(Notification.kind).order_by(Notification.id)))
        [rating] = list(await session.scalars(select(Rating)))
    assert kinds == ["status", "status", "status", "rating"]  # 2 accepted, then the changes
    assert rating.chat_id == "r1" and rating.score is None
