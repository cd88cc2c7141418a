"""Regressions of the dispatch-callback defects (issue 10, Low), each attack replayed.

A non-ASCII signature header, absurd nesting and unreadable times are 400s, not 500s;
a signed ``updated_at`` far in the future is refused, so it cannot freeze a case; and
replay receipts live at least twice the signature tolerance, so a replay is refused
for as long as its signature would be accepted.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from integration.db import create_engine, session_factory
from integration.dispatch import DispatchConfig, open_dispatch
from integration.dispatch.callbacks import CALLBACK_PATH, CallbackReceiver
from integration.dispatch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from integration.dispatch.sync import StatusSync
from integration.models import CallbackReceipt, utcnow
from tests.conftest import DISPATCH_SECRET
from tests.emulators.dispatch import DispatchEmulator, send_callback
from tests.test_dispatch_sync import Sessions, forwarded, history


@pytest.fixture
async def sqlite_sessions(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Sessions]:
    """Sessions on a migrated SQLite file."""
    shutil.copy(sqlite_template, tmp_path / "callbacks.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'callbacks.db'}")
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def callback_url(sqlite_sessions: Sessions) -> AsyncIterator[str]:
    """The callback handler served over HTTP, applying to the SQLite database."""
    receiver = CallbackReceiver(StatusSync(sqlite_sessions, "webhook"), DISPATCH_SECRET)
    app = web.Application()
    app.add_routes(receiver.routes())
    async with TestServer(app) as server:
        yield str(server.make_url(CALLBACK_PATH))


async def raw_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status


async def test_a_non_ascii_signature_header_is_a_400(
    sqlite_sessions: Sessions, callback_url: str
) -> None:
    body = b'{"id": "D1", "status": "accepted"}'
    for headers in (
        {TIMESTAMP_HEADER: str(int(time.time())), SIGNATURE_HEADER: "sha256=签名"},
        {TIMESTAMP_HEADER: "１７６４００００００", SIGNATURE_HEADER: "sha256=00"},
    ):
        encoded = {k: v.encode().decode("latin-1") for k, v in headers.items()}
        assert await raw_post(callback_url, body, encoded) == 400


async def test_deeply_nested_json_is_a_400(sqlite_sessions: Sessions, callback_url: str) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    status, answer = await send_callback(callback_url, {}, DISPATCH_SECRET, raw=body)
    assert status == 400 and "unreadable" in answer["error"]


@pytest.mark.parametrize(
    "updated_at",
    ["0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59+00:00"],
    ids=["year-1-west", "year-9999-west", "year-9999"],
)
async def test_absurd_times_are_refused_and_the_case_not_frozen(
    sqlite_sessions: Sessions,
    http: aiohttp.ClientSession,
    dispatch_platform: DispatchEmulator,
    callback_url: str,
    updated_at: str,
) -> None:
    [(_, platform_id)] = await forwarded(sqlite_sessions, http, dispatch_platform)
    forged = {"id": platform_id, "status": "dispatched", "note": "", "updated_at": updated_at}
    status, _ = await send_callback(callback_url, forged, DISPATCH_SECRET)
    assert status == 400
    # A genuine update that follows is applied, not "stale".
    genuine = {
        "id": platform_id,
        "status": "in_progress",
        "note": "已派城管中队",
        "updated_at": datetime.now(UTC).isoformat(),
    }
    assert await send_callback(callback_url, genuine, DISPATCH_SECRET) == (
        200,
        {"result": "applied"},
    )
    assert [s for s, _ in await history(sqlite_sessions)][-1] == "in_progress"


async def test_a_time_just_ahead_of_our_clock_is_still_accepted(
    sqlite_sessions: Sessions,
    http: aiohttp.ClientSession,
    dispatch_platform: DispatchEmulator,
    callback_url: str,
) -> None:
    """Clocks differ a little: up to the tolerance ahead is fine."""
    [(_, platform_id)] = await forwarded(sqlite_sessions, http, dispatch_platform)
    ahead = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    update_ = {"id": platform_id, "status": "dispatched", "updated_at": ahead}
    assert await send_callback(callback_url, update_, DISPATCH_SECRET) == (
        200,
        {"result": "applied"},
    )


async def test_replays_are_refused_for_as_long_as_the_signature_is_accepted(
    sqlite_sessions: Sessions, http: aiohttp.ClientSession, dispatch_platform: DispatchEmulator
) -> None:
    tolerance = 3600.0  # far beyond the 900 s receipts used to be kept, whatever it said
    config = DispatchConfig(
        platform="webhook",
        url=dispatch_platform.url,
        secret=DISPATCH_SECRET,
        callback_tolerance=tolerance,
    )
    [(_, platform_id)] = await forwarded(sqlite_sessions, http, dispatch_platform)
    async with AsyncExitStack() as stack:
        dispatch = await open_dispatch(config, sqlite_sessions, stack)
        app = web.Application()
        app.add_routes(dispatch.callbacks.routes())
        server = await stack.enter_async_context(TestServer(app))
        url = str(server.make_url(CALLBACK_PATH))

        document: dict[str, Any] = {"id": platform_id, "status": "dispatched", "note": "已派单"}
        body = json.dumps(document).encode()
        signed = signed_headers(DISPATCH_SECRET, body, now=time.time() - 1000)
        assert await send_callback(url, document, "", headers=signed, raw=body) == (
            200,
            {"result": "applied"},
        )
        async with sqlite_sessions.begin() as session:  # received 1,000 s ago
            await session.execute(
                update(CallbackReceipt).values(received_at=utcnow() - timedelta(seconds=1000))
            )
        await dispatch.worker.housekeeping()
        replay = await send_callback(url, document, "", headers=signed, raw=body)
        assert replay == (409, {"error": "replayed callback"})
