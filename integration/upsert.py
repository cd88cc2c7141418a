"""Dialect-aware INSERT ... ON CONFLICT helpers shared by the stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from integration.models import Conversation, Resident


def insert_for(session: AsyncSession, table: Any) -> Any:
    """An INSERT for ``table`` that supports ``on_conflict_*`` on this session's dialect."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(table)


async def ensure_resident(session: AsyncSession, channel: str, external_id: str) -> int:
    """The id of the resident with this channel identity, created if new (race-free)."""
    found = await session.scalar(
        select(Resident.id).where(Resident.channel == channel, Resident.external_id == external_id)
    )
    if found is not None:
        return found
    await session.execute(
        insert_for(session, Resident)
        .values(channel=channel, external_id=external_id, display_name="", phone="")
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
    )
    return await session.scalar(
        select(Resident.id).where(Resident.channel == channel, Resident.external_id == external_id)
    )  # type: ignore[return-value]


async def ensure_conversation(
    session: AsyncSession, resident_id: int, channel: str, chat_id: str
) -> int:
    """The id of the conversation for this chat, created if new (race-free)."""
    query = select(Conversation.id).where(
        Conversation.channel == channel, Conversation.chat_id == chat_id
    )
    found = await session.scalar(query)
    if found is not None:
        return found
    await session.execute(
        insert_for(session, Conversation)
        .values(resident_id=resident_id, channel=channel, chat_id=chat_id)
        .on_conflict_do_nothing(index_elements=["channel", "chat_id"])
    )
    return await session.scalar(query)  # type: ignore[return-value]
