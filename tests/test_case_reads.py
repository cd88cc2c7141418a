"""The case reads built once (integration.case_reads) give the same rows whether they
run through SQLAlchemy or on the driver directly (integration.db.fetch_rows: asyncpg, or
sqlite3 in one hand-off to aiosqlite's thread)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integration import case_reads as reads
from integration.cases import CaseBook
from integration.db import autocommit, fetch_rows
from integration.grid import _WORKER
from integration.models import CaseMedia, CaseStatus, StaffAccount, StaffChat, utcnow
from tests.test_storage import draft

Sessions = async_sessionmaker[AsyncSession]


async def _both(sessions: Sessions, statement: Any, params: dict[str, Any]) -> tuple[list, list]:
    """The rows as tuples, through SQLAlchemy and through ``fetch_rows``."""
    async with autocommit(sessions.kw["bind"]).connect() as connection:
        through_sqlalchemy = [tuple(row) for row in await connection.execute(statement, params)]
        fetched = await fetch_rows(connection, statement, params)
    return through_sqlalchemy, [tuple(row) for row in fetched]


async def test_each_read_gives_the_same_rows_on_both_paths(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    mine = await book.create_case(draft("r1"))
    await book.create_case(draft("r1", category="parking", address="幸福路14号"))
    other = await book.create_case(draft("r2"))
    await book.change_status(other.number, CaseStatus.in_progress, "已派城管中队")
    await book.follow(other.number, "webchat", "r1", "chat-r1")
    async with sessions() as session:
        session.add(CaseMedia(case_id=1, kind="photo", ref="p1", url=""))
        await session.commit()

    cases = {"channel": "webchat", "user_id": "r1"}
    sqlalchemy_rows, fetched = await _both(sessions, reads.OPEN_OF_RESIDENT, cases)
    assert len(fetched) == 3 and fetched == sqlalchemy_rows
    sqlalchemy_rows, fetched = await _both(sessions, reads.BY_NUMBER, {"number": other.number})
    assert fetched == sqlalchemy_rows
    row = (await fetch_rows_of(sessions, reads.BY_NUMBER, {"number": other.number}))[0]
    assert (row.number, row.status, row.last_note, row.follower_count) == (
        other.number,
        "in_progress",
        "已派城管中队",
        1,
    )
    assert row.created_at.tzinfo is not None
    assert (await fetch_rows_of(sessions, reads.BY_NUMBER, {"number": mine.number}))[
        0
    ].media_count == 1

    near = {
        "channel": "webchat",
        "user_id": "r3",
        "category": "lighting",
        "since": utcnow() - timedelta(hours=24),
        "address": "幸福路12号3单元",
        "lat_lo": 31.22,
        "lat_hi": 31.24,
        "lon_lo": 121.46,
        "lon_hi": 121.48,
    }
    for at_address, by_point in ((True, False), (False, True), (True, True)):
        sqlalchemy_rows, fetched = await _both(sessions, reads.similar(at_address, by_point), near)
        assert len(fetched) == 2 and fetched == sqlalchemy_rows


async def fetch_rows_of(sessions: Sessions, statement: Any, params: dict[str, Any]) -> list[Any]:
    async with autocommit(sessions.kw["bind"]).connect() as connection:
        return list(await fetch_rows(connection, statement, params))


async def test_the_grid_worker_read_finds_only_an_active_linked_grid_worker(
    sessions: Sessions,
) -> None:
    async with sessions() as session:
        await session.execute(
            insert(StaffAccount),
            [
                {"username": "wang", "password_hash": "x", "role": "grid", "grid": "G1"},
                {"username": "li", "password_hash": "x", "role": "staff", "grid": ""},
            ],
        )
        await session.execute(
            insert(StaffChat),
            [
                {"staff": "wang", "channel": "wechat", "chat_id": "o-wang"},
                {"staff": "li", "channel": "wechat", "chat_id": "o-li"},
            ],
        )
        await session.commit()
    for chat, expected in (("o-wang", [("wang", "G1")]), ("o-li", []), ("o-none", [])):
        params = {"channel": "wechat", "chat_id": chat}
        sqlalchemy_rows, fetched = await _both(sessions, _WORKER, params)
        assert fetched == sqlalchemy_rows
        assert [
            (row.username, row.grid) for row in await fetch_rows_of(sessions, _WORKER, params)
        ] == expected


async def test_a_statement_with_an_in_list_is_refused_on_the_driver_path(
    sessions: Sessions,
) -> None:
    params = {"ids": [1, 2]}
    async with autocommit(sessions.kw["bind"]).connect() as connection:
        with pytest.raises(ValueError, match="expanding"):  # on both drivers
            await fetch_rows(connection, reads.FOLLOWERS, params)
