"""Residents' contact phones, kept only with their consent.

A flow asks 要不要记住这个号码 before ``remember``; ``forget`` (忘记我的电话) clears the
number at once. The number lives on the resident's identity row, so forgetting the
resident (``yimen residents forget``) removes it too. Staff lists and logs show it
masked (integration.privacy).
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.db import autocommit
from integration.models import Resident
from integration.upsert import ensure_resident


class ContactBook:
    """Remembered phones per resident identity (channel, user id)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def phone(self, channel: str, user_id: str) -> str:
        """The remembered phone, or "" when the resident asked for none to be kept."""
        async with autocommit(self._engine).connect() as connection:
            found = await connection.scalar(
                select(Resident.phone).where(
                    Resident.channel == channel, Resident.external_id == user_id
                )
            )
        return found or ""

    async def remember(self, channel: str, user_id: str, phone: str) -> None:
        """Keep ``phone`` for the resident (they said yes to keeping it)."""
        async with self._engine.begin() as connection:
            resident_id = await ensure_resident(connection, channel, user_id)
            await connection.execute(
                update(Resident).where(Resident.id == resident_id).values(phone=phone)
            )

    async def forget(self, channel: str, user_id: str) -> bool:
        """Clear the remembered phone; False when none was kept."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(Resident)
                .where(
                    Resident.channel == channel,
                    Resident.external_id == user_id,
                    Resident.phone != "",
                )
                .values(phone="")
            )
        return bool(result.rowcount)


class MemoryContacts:
    """Remembered phones in process memory (flows tested without a database)."""

    def __init__(self) -> None:
        self.phones: dict[tuple[str, str], str] = {}

    async def phone(self, channel: str, user_id: str) -> str:
        """The remembered phone, or ""."""
        return self.phones.get((channel, user_id), "")

    async def remember(self, channel: str, user_id: str, phone: str) -> None:
        """Keep ``phone``."""
        self.phones[(channel, user_id)] = phone

    async def forget(self, channel: str, user_id: str) -> bool:
        """Clear the phone; False when none was kept."""
        return self.phones.pop((channel, user_id), "") != ""
