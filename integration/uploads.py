"""The record of kept photos: whose they are, whether a message used them, and orphans.

Every photo kept in the media directory has a row here. A web-chat upload is the
uploading visitor's alone until one of their messages names it (``claim``); one that no
message used within its time to live is an orphan, which ``claim_orphans`` hands to the
sweeper with a lease (SELECT … FOR UPDATE SKIP LOCKED), like every later job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.models import MediaUpload, utcnow


@dataclass(frozen=True, slots=True)
class Usage:
    """What one sender kept in a period: photos and bytes."""

    count: int
    size: int


@dataclass(frozen=True, slots=True)
class Orphan:
    """A claimed orphan: its row and its file name."""

    id: int
    name: str


class UploadBook:
    """Records, claims and sweeps kept photos."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def usage(self, channel: str, chat_id: str, since: datetime) -> Usage:
        """How many photos (and bytes) a chat kept since ``since``."""
        query = select(func.count(), func.coalesce(func.sum(MediaUpload.size), 0)).where(
            MediaUpload.channel == channel,
            MediaUpload.chat_id == chat_id,
            MediaUpload.created_at >= since,
        )
        async with self._engine.connect() as connection:
            count, size = (await connection.execute(query)).one()
        return Usage(int(count), int(size))

    async def add(
        self, name: str, channel: str, chat_id: str, size: int, *, ttl: float, used: bool
    ) -> None:
        """Record a kept photo; ``used`` when a message already carries it (Telegram)."""
        now = utcnow()
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(MediaUpload).values(
                    name=name,
                    channel=channel,
                    chat_id=chat_id,
                    size=size,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                    used_at=now if used else None,
                    sweep_until=None,
                )
            )

    async def claim(self, channel: str, chat_id: str, names: Sequence[str]) -> set[str]:
        """Mark a chat's own photos used by its message; the names that were its own.

        A name someone else uploaded, an unknown one, or an unused one past its time
        to live (the sweeper's) is not claimed.
        """
        if not names:
            return set()
        now = utcnow()
        mine = and_(
            MediaUpload.name.in_(list(names)),
            MediaUpload.channel == channel,
            MediaUpload.chat_id == chat_id,
        )
        async with self._engine.begin() as connection:
            await connection.execute(
                update(MediaUpload)
                .where(mine, MediaUpload.used_at.is_(None), MediaUpload.expires_at > now)
                .values(used_at=now)
            )
            rows = await connection.execute(
                select(MediaUpload.name).where(mine, MediaUpload.used_at.is_not(None))
            )
            return {str(name) for (name,) in rows}

    async def claim_orphans(self, limit: int = 100, lease: float = 300.0) -> list[Orphan]:
        """Lease up to ``limit`` photos no message used in time, for deletion."""
        now = utcnow()
        due = (
            select(MediaUpload.id)
            .where(
                MediaUpload.used_at.is_(None),
                MediaUpload.expires_at <= now,
                or_(MediaUpload.sweep_until.is_(None), MediaUpload.sweep_until <= now),
            )
            .order_by(MediaUpload.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._engine.begin() as connection:
            ids = [int(i) for (i,) in await connection.execute(due)]
            if not ids:
                return []
            await connection.execute(
                update(MediaUpload)
                .where(MediaUpload.id.in_(ids))
                .values(sweep_until=now + timedelta(seconds=lease))
            )
            rows = await connection.execute(
                select(MediaUpload.id, MediaUpload.name).where(MediaUpload.id.in_(ids))
            )
            return [Orphan(int(i), str(name)) for i, name in rows]

    async def forget(self, ids: Sequence[int]) -> None:
        """Drop the rows of swept photos (their files are gone)."""
        if ids:
            async with self._engine.begin() as connection:
                await connection.execute(delete(MediaUpload).where(MediaUpload.id.in_(list(ids))))
