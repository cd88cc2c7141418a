"""SQLite through integration.sqlite_driver: the same results as SQLAlchemy's aiosqlite
adapter, in one hand-off to aiosqlite's thread a statement."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bots.runtime import SWITCH_INTERVAL, open_services
from bots.settings import Settings
from integration import sqlite_driver
from integration.db import autocommit, create_engine, sqlite_checkout


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
        )
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def handoffs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of every function sent to aiosqlite's thread, in order."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: object, *args: object) -> object:
        inner = args[3] if fn is sqlite_driver._apply else fn
        sent.append(getattr(inner, "__name__", repr(inner)))
        return await original(self, fn, *args)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    yield sent


async def test_the_engine_uses_the_driver(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection, sqlite_driver.Connection)


async def test_rows_columns_and_counts_come_back(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(
            text("INSERT INTO item (name) VALUES (:name)"), [{"name": "甲"}, {"name": "乙"}]
        )
        assert inserted.rowcount == 2  # executemany
        one = await connection.execute(text("INSERT INTO item (name) VALUES ('丙')"))
        assert one.lastrowid == 3
        returned = await connection.execute(
            text("INSERT INTO item (name) VALUES ('丁') RETURNING id, name")
        )
        assert returned.mappings().all() == [{"id": 4, "name": "丁"}]
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT id, name FROM item ORDER BY id"))
        assert list(result.keys()) == ["id", "name"]
        assert result.first() == (1, "甲")  # the rest of the buffered rows are dropped
        assert (
            await connection.execute(text("SELECT name FROM item WHERE id = 3"))
        ).scalar() == "丙"
        updated = await connection.execute(text("UPDATE item SET name = name || '!' WHERE id > 2"))
        assert updated.rowcount == 2
        assert (await connection.execute(text("SELECT 1 WHERE 0"))).all() == []


async def test_a_transaction_commits_or_rolls_back_as_a_whole(engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO item (name) VALUES ('甲')"))
            await connection.execute(text("INSERT INTO item (name) VALUES ('甲')"))
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES ('乙')"))
        # no commit: the pool's reset on return rolls it back
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES ('丙')"))
    async with engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM item"))).scalars().all()
    assert names == ["丙"]


async def test_autocommit_writes_stay_and_the_level_is_reset(engine: AsyncEngine) -> None:
    async with autocommit(engine).connect() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES ('甲')"))
        raw = await connection.get_raw_connection()
        assert raw.dbapi_connection.isolation_level is None
    async with engine.connect() as connection:  # the same pooled connection, reset
        raw = await connection.get_raw_connection()
        assert raw.dbapi_connection.isolation_level is not None
        await connection.execute(text("INSERT INTO item (name) VALUES ('乙')"))
        await connection.rollback()
    async with engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM item"))).scalars().all()
    assert names == ["甲"]


async def test_a_server_side_cursor_runs_at_the_pending_level(engine: AsyncEngine) -> None:
    async with autocommit(engine).connect() as connection:
        result = await connection.stream(text("INSERT INTO item (name) VALUES ('甲') RETURNING id"))
        assert [tuple(row) async for row in result] == [(1,)]
        raw = await connection.get_raw_connection()
        assert not raw.dbapi_connection.in_transaction()  # autocommit: no BEGIN was sent
    async with engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM item"))).scalars().all()
    assert names == ["甲"]


async def test_a_read_is_one_handoff_and_a_transaction_one_more(
    engine: AsyncEngine, handoffs: list[str]
) -> None:
    async with engine.connect() as connection:  # the pool's first connection, set up
        await connection.execute(text("SELECT 1"))
    handoffs.clear()

    async with autocommit(engine).connect() as connection:
        await connection.execute(text("SELECT count(*) FROM item"))
    assert handoffs == ["_statement"]  # no cursor, fetch, close, rollback or level calls

    handoffs.clear()
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES ('甲')"))
        await connection.execute(text("SELECT name FROM item"))
    assert handoffs == ["_statement", "_statement", "_commit"]

    handoffs.clear()
    async with engine.begin() as connection:
        await connection.execute(text("SELECT name FROM item"))  # no transaction opened
    assert handoffs == ["_statement"]


async def test_errors_are_sqlalchemys(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        with pytest.raises(OperationalError, match="no such table"):
            await connection.execute(text("SELECT * FROM missing"))
        # the connection is still usable after the error
        assert (await connection.execute(text("SELECT 2"))).scalar() == 2


async def test_concurrent_turns_share_the_one_connection(engine: AsyncEngine) -> None:
    async def add(name: str) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO item (name) VALUES (:n)"), {"n": name})
            await asyncio.sleep(0)
            await connection.execute(
                text("UPDATE item SET name = name || '.' WHERE name = :n"), {"n": name}
            )

    await asyncio.gather(*(add(f"n{i}") for i in range(40)))
    async with autocommit(engine).connect() as connection:
        names = (await connection.execute(text("SELECT name FROM item"))).scalars().all()
    assert sorted(names) == sorted(f"n{i}." for i in range(40))


async def test_a_hot_path_cancelled_mid_run_leaves_its_work_whole(engine: AsyncEngine) -> None:
    started = threading.Event()

    def slow_insert(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO item (name) VALUES ('甲')")
        started.set()
        time.sleep(0.3)  # still on the thread when the caller gives up

    async def hot_path() -> None:
        async with sqlite_checkout(engine) as driver:
            await driver.run(sqlite_driver.committed, slow_insert)

    task = asyncio.create_task(hot_path())
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The connection went back to the pool; the next user queues behind the work.
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO item (name) VALUES ('乙')"))
    async with autocommit(engine).connect() as connection:
        names = (await connection.execute(text("SELECT name FROM item ORDER BY id"))).all()
    assert [name for (name,) in names] == ["甲", "乙"]  # committed by its own work


async def test_the_services_shorten_the_wait_for_the_gil(tmp_path: Path) -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default, whatever an earlier test left
    try:
        async with open_services(Settings(data_dir=tmp_path), with_nlu=False):
            # aiosqlite's thread waits at most this long for a busy loop's GIL
            assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        assert SWITCH_INTERVAL < 0.005
    finally:
        sys.setswitchinterval(before)
