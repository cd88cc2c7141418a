"""The PostgreSQL pool without pre-ping: a connection the server closed is replaced at
checkout, not handed to a resident's turn (integration.db._refuse_closed)."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text

from integration.db import autocommit, create_engine
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
