"""A chat's recent transcript as a resident reads it back (the web chat's history).

Inbound lines carry the message id the channel gave them, and each reply line the id
of the inbound message it answers (the last one before it), so a page that reloads
can tell a reply it already shows from a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.models import Conversation, Direction, Message


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One stored message of a chat."""

    id: int
    direction: Direction
    text: str
    time: datetime
    message_id: str  # inbound: the channel's id; outbound: the id of the message answered
    media: tuple[str, ...] = ()
    location_label: str | None = None  # set (maybe empty) when the message was a pin
    intent: str | None = None  # inbound: what the NLU understood, and how sure it was
    confidence: float | None = None
    latitude: float | None = None
    longitude: float | None = None


class TranscriptTail:
    """Reads the newest messages of one chat."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def recent(self, channel: str, chat_id: str, limit: int = 100) -> list[TranscriptEntry]:
        """The newest ``limit`` messages of a chat, oldest first."""
        query = (
            select(
                Message.id,
                Message.direction,
                Message.text,
                Message.created_at,
                Message.external_id,
                Message.media_ref,
                Message.latitude,
                Message.longitude,
                Message.location_label,
                Message.intent,
                Message.confidence,
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.channel == channel, Conversation.chat_id == chat_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = list(await connection.execute(query))
        entries: list[TranscriptEntry] = []
        answering = ""
        for row in reversed(rows):
            direction = Direction(row.direction)
            if direction is Direction.inbound:
                answering = row.external_id or ""
            entries.append(
                TranscriptEntry(
                    id=int(row.id),
                    direction=direction,
                    text=row.text,
                    time=row.created_at,
                    message_id=answering,
                    media=tuple(ref for ref in (row.media_ref or "").split(",") if ref),
                    location_label=row.location_label if row.latitude is not None else None,
                    intent=row.intent,
                    confidence=row.confidence,
                    latitude=row.latitude,
                    longitude=row.longitude,
                )
            )
        return entries
