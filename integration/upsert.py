"""Dialect-aware INSERT ... ON CONFLICT helpers shared by the stores."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from integration.models import Conversation, Resident

T = TypeVar("T")


def insert_for(connection: AsyncConnection | AsyncEngine, table: Any) -> Any:
    """An INSERT for ``table`` that supports ``on_conflict_*`` on this database's dialect."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    return insert(table)


# The counters' upserts, built once per dialect and counter (building one costs more
# than running it).
_NEXT_IN_DAY: dict[tuple[str, Any], Any] = {}


async def next_in_day(connection: AsyncConnection, counter: Any, day: date) -> int:
    """Atomically take the next number of ``day`` from a day counter (a model with ``day``
    and ``last``): an upsert, safe across workers. Case and booking numbers use it."""
    key = (connection.dialect.name, counter)
    statement = _NEXT_IN_DAY.get(key)
    if statement is None:
        statement = _NEXT_IN_DAY[key] = (
            insert_for(connection, counter)
            .values(day=bindparam("day", type_=counter.day.type), last=1)
            .on_conflict_do_update(index_elements=[counter.day], set_={"last": counter.last + 1})
            .returning(counter.last)
        )
    return int((await connection.execute(statement, {"day": day})).scalar_one())


class ResidentIds:
    """An in-process cache of resident ids by channel identity, for one database.

    Residents' turns need their resident id (transcript rows, cases, bookings); the rows
    are created once and then only read, so a process remembers the ids it has read.
    Only ids read back from committed rows are cached (never one this transaction just
    inserted, which a rollback would undo). Forgetting a resident deletes its row: the
    forgetting process drops its entry (``drop``); another process's cached id fails
    its insert on the foreign key, and ``retry_stale`` clears the cache and runs the
    transaction again.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._ids: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._size = size

    def get(self, channel: str, external_id: str) -> int | None:
        """The cached id, if any."""
        found = self._ids.get((channel, external_id))
        if found is not None:
            self._ids.move_to_end((channel, external_id))
        return found

    def put(self, channel: str, external_id: str, resident_id: int) -> None:
        """Remember a committed resident's id."""
        self._ids[(channel, external_id)] = resident_id
        self._ids.move_to_end((channel, external_id))
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def drop(self, channel: str, external_id: str) -> None:
        """Forget one identity's id (the resident was forgotten)."""
        self._ids.pop((channel, external_id), None)

    def clear(self) -> None:
        """Forget every id (one of them turned out stale)."""
        self._ids.clear()


_resident_ids: WeakKeyDictionary[Engine, ResidentIds] = WeakKeyDictionary()


def resident_ids(connection: AsyncConnection | AsyncEngine) -> ResidentIds:
    """The resident id cache of the database ``connection`` talks to."""
    sync = connection.sync_engine
    cache = _resident_ids.get(sync)
    if cache is None:
        cache = _resident_ids[sync] = ResidentIds()
    return cache


async def retry_stale(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in a transaction; when it fails on a constraint, clear the cached
    resident ids (one may name a resident another process forgot) and run it once more."""
    try:
        async with engine.begin() as connection:
            return await work(connection)
    except IntegrityError:
        resident_ids(engine).clear()
    async with engine.begin() as connection:
        return await work(connection)


async def ensure_resident(
    connection: AsyncConnection, channel: str, external_id: str, *, cached: bool = False
) -> int:
    """The id of the resident with this channel identity, created if new (race-free).

    ``cached``: use and fill the process's cache of ids (``ResidentIds``); the caller
    then runs its transaction with ``retry_stale``. A new resident costs one statement
    (INSERT … RETURNING), a known one a SELECT, or nothing when cached.
    """
    resident_id, _ = await resident(connection, channel, external_id, cached=cached)
    return resident_id


async def resident(
    connection: AsyncConnection, channel: str, external_id: str, *, cached: bool = False
) -> tuple[int, bool]:
    """``ensure_resident``, and whether this transaction created the row (the caller may
    cache its id once committed)."""
    cache = resident_ids(connection) if cached else None
    if cache is not None and (known := cache.get(channel, external_id)) is not None:
        return known, False
    query = select(Resident.id).where(
        Resident.channel == channel, Resident.external_id == external_id
    )
    found = await connection.scalar(query)
    if found is None:
        found = await connection.scalar(
            insert_for(connection, Resident)
            .values(channel=channel, external_id=external_id, display_name="", phone="")
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
            .returning(Resident.id)
        )
        if found is not None:
            return int(found), True  # not cached: the transaction may still roll back
        found = await connection.scalar(query)  # inserted meanwhile by another transaction
    resident_id = int(found)  # type: ignore[arg-type]
    if cache is not None:
        cache.put(channel, external_id, resident_id)
    return resident_id, False


async def ensure_conversation(
    connection: AsyncConnection,
    resident_id: int,
    channel: str,
    chat_id: str,
    *,
    new_resident: bool = False,
) -> int:
    """The id of the conversation for this chat, created if new (race-free).

    ``new_resident``: the resident was created just now, so the chat is most likely new
    too; it is inserted without looking first.
    """
    query = select(Conversation.id).where(
        Conversation.channel == channel, Conversation.chat_id == chat_id
    )
    if not new_resident:
        found = await connection.scalar(query)
        if found is not None:
            return int(found)
    created = await connection.scalar(
        insert_for(connection, Conversation)
        .values(resident_id=resident_id, channel=channel, chat_id=chat_id)
        .on_conflict_do_nothing(index_elements=["channel", "chat_id"])
        .returning(Conversation.id)
    )
    if created is not None:
        return int(created)
    return await connection.scalar(query)  # type: ignore[return-value]
