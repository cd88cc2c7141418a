"""Dialect-aware INSERT ... ON CONFLICT helpers shared by the stores."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from integration.models import Conversation, Resident


def insert_for(connection: AsyncConnection | AsyncEngine, table: Any) -> Any:
    """An INSERT for ``table`` that supports ``on_conflict_*`` on this database's dialect."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    return insert(table)


async def next_in_day(connection: AsyncConnection, counter: Any, day: date) -> int:
    """Atomically take the next number of ``day`` from a day counter (a model with ``day``
    and ``last``): an upsert, safe across workers. Case and booking numbers use it."""
    statement = (
        insert_for(connection, counter)
        .values(day=day, last=1)
        .on_conflict_do_update(index_elements=[counter.day], set_={"last": counter.last + 1})
        .returning(counter.last)
    )
    return int((await connection.execute(statement)).scalar_one())


async def ensure_resident(connection: AsyncConnection, channel: str, external_id: str) -> int:
    """The id of the resident with this channel identity, created if new (race-free)."""
    found = await connection.scalar(
        select(Resident.id).where(Resident.channel == channel, Resident.external_id == external_id)
    )
    if found is not None:
        return found
    await connection.execute(
        insert_for(connection, Resident)
        .values(channel=channel, external_id=external_id, display_name="", phone="")
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
    )
    return await connection.scalar(
        select(Resident.id).where(Resident.channel == channel, Resident.external_id == external_id)
    )  # type: ignore[return-value]


async def ensure_conversation(
    connection: AsyncConnection, resident_id: int, channel: str, chat_id: str
) -> int:
    """The id of the conversation for this chat, created if new (race-free)."""
    query = select(Conversation.id).where(
        Conversation.channel == channel, Conversation.chat_id == chat_id
    )
    found = await connection.scalar(query)
    if found is not None:
        return found
    await connection.execute(
        insert_for(connection, Conversation)
        .values(resident_id=resident_id, channel=channel, chat_id=chat_id)
        .on_conflict_do_nothing(index_elements=["channel", "chat_id"])
    )
    return await connection.scalar(query)  # type: ignore[return-value]
