"""The PostgreSQL pool without pre-ping: a connection the server closed is replaced at
checkout, not handed to a resident's turn (integration.db._refuse_closed)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from integration.db import autocommit, create_engine, postgres_checkout
from tests.conftest import POSTGRES_URL


async def backend_pid(engine: object) -> int:
    async with engine.connect() as connection:  # type: ignore[attr-defined]
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def terminate(pid: int) -> None:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_a_pooled_connection_killed_by_the_server_is_replaced(postgres: str) -> None:
    engine = create_engine(postgres)
    try:
        first = await backend_pid(engine)
        assert await backend_pid(engine) == first  # pooled: the same server process
        await terminate(first)
        await asyncio.sleep(0.2)  # the loop reads the closed socket

        second = await backend_pid(engine)  # no error: the dead one was refused

        assert second != first
        assert await backend_pid(autocommit(engine)) == second
    finally:
        await engine.dispose()


async def transaction_time_moves(engine: object) -> bool:
    """Whether two statements on one connection see different ``now()``: each ran in
    a transaction of its own (autocommit), not in one around both."""
    async with engine.connect() as connection:  # type: ignore[attr-defined]
        first = await connection.scalar(text("SELECT now()"))
        await asyncio.sleep(0.02)
        second = await connection.scalar(text("SELECT now()"))
    return bool(second > first)


async def test_autocommit_reads_run_without_a_transaction_on_the_same_pool(
    postgres: str,
) -> None:
    engine = create_engine(postgres)
    try:
        assert await transaction_time_moves(autocommit(engine))
        assert not await transaction_time_moves(engine)  # the pool's connection is reset
        assert await backend_pid(autocommit(engine)) == await backend_pid(engine)
    finally:
        await engine.dispose()


async def burst_pids(engine: object, size: int) -> set[int]:
    """The server processes of ``size`` connections checked out at once."""
    started = asyncio.Event()
    waiting = 0

    async def hold() -> int:
        nonlocal waiting
        async with engine.connect() as connection:  # type: ignore[attr-defined]
            pid = int(await connection.scalar(text("SELECT pg_backend_pid()")))
            waiting += 1
            if waiting == size:
                started.set()
            await started.wait()  # every connection is out of the pool at once
            return pid

    return set(await asyncio.gather(*(hold() for _ in range(size))))


async def test_the_pool_keeps_as_many_connections_as_its_size(postgres: str) -> None:
    """A burst within ``pool_size`` reuses its connections on the next burst; past it,
    the extra connections are closed on return and the next burst opens new ones
    (a TCP and TLS handshake and a server process each): why the default covers a
    worker's usual concurrency (integration.db.POOL_SIZE)."""
    engine = create_engine(postgres, pool_size=6)
    try:
        first = await burst_pids(engine, 6)
        assert len(first) == 6
        assert await burst_pids(engine, 6) == first  # all six kept open

        wider = await burst_pids(engine, 9)  # three overflow connections
        assert len(wider) == 9 and first <= wider
        again = await burst_pids(engine, 9)
        assert len(again & wider) == 6  # the overflow three were closed and reopened
    finally:
        await engine.dispose()


async def test_the_pool_size_is_a_setting(monkeypatch: pytest.MonkeyPatch, postgres: str) -> None:
    from bots.settings import Settings
    from integration.db import POOL_SIZE

    monkeypatch.delenv("YIMEN_DATABASE_POOL_SIZE", raising=False)
    assert Settings().database_pool_size is None
    engine = create_engine(postgres, pool_size=Settings().database_pool_size)
    assert engine.pool.size() == POOL_SIZE >= 16  # type: ignore[attr-defined]
    await engine.dispose()
    monkeypatch.setenv("YIMEN_DATABASE_POOL_SIZE", "40")
    assert Settings().database_pool_size == 40
    monkeypatch.setenv("YIMEN_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="database_pool_size"):
        Settings()


async def test_a_connection_lost_under_a_hot_path_is_invalidated_and_replaced(
    postgres: str,
) -> None:
    engine = create_engine(postgres)
    try:
        with pytest.raises(DBAPIError) as caught:
            async with postgres_checkout(engine) as pg:
                pid = await pg.fetchval("SELECT pg_backend_pid()")
                await terminate(pid)
                await asyncio.sleep(0.2)  # the loop reads the closed socket
                await pg.fetchval("SELECT 1")

        assert caught.value.connection_invalidated
        async with postgres_checkout(engine) as pg:  # a new connection, no error
            assert await pg.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await engine.dispose()
