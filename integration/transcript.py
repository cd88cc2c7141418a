"""The transcript: every inbound and outbound message, kept in the relational store.

Inbound messages are unique by (channel, platform message id), so the store itself is
the last line of defence against a redelivered message being processed twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import DuplicateMessage
from integration.models import Conversation, Direction, Message, utcnow
from integration.upsert import ensure_conversation, ensure_resident

# How SQLite and PostgreSQL name the violated (channel, external_id) constraint.
_DUPLICATE_MARKS = ("uq_messages_external", "messages.channel, messages.external_id")


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """The facts of an inbound message the transcript keeps."""

    channel: str
    user_id: str
    chat_id: str
    message_id: str
    text: str
    time: datetime
    latitude: float | None = None
    longitude: float | None = None
    location_label: str = ""
    media_ref: str = ""


@dataclass(frozen=True, slots=True)
class StoredInbound:
    """Where an inbound message was stored."""

    message_id: int
    conversation_id: int
    channel: str


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One message of a conversation as staff and tests read it back."""

    direction: Direction
    text: str
    intent: str | None
    created_at: datetime


_INSERT_INBOUND = insert(Message).returning(Message.id)
_INSERT_OUTBOUND = insert(Message)
_SET_INTENT = (
    update(Message)
    .where(Message.id == bindparam("message_id"))
    .values(intent=bindparam("intent"), confidence=bindparam("confidence"))
)


class Transcript:
    """Appends to and reads conversations' transcripts.

    Conversation ids are cached per chat: rows are never deleted, so the cache is safe
    to share across workers and saves two lookups per message. The hot path runs
    prebuilt Core statements on a plain connection: one statement per transaction for
    an inbound message, one or two for its outcome, and no ORM unit of work.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache_size: int = 10_000
    ) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._conversations: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._cache_size = cache_size

    async def record_inbound(self, record: InboundRecord) -> StoredInbound:
        """Store an inbound message, or raise ``DuplicateMessage`` if already stored."""
        key = (record.channel, record.chat_id)
        try:
            async with self._engine.begin() as connection:
                conversation_id = await self._conversation(connection, key, record.user_id)
                message_id = await connection.scalar(
                    _INSERT_INBOUND,
                    {
                        "conversation_id": conversation_id,
                        "channel": record.channel,
                        "direction": Direction.inbound.value,
                        "external_id": record.message_id,
                        "text": record.text,
                        "latitude": record.latitude,
                        "longitude": record.longitude,
                        "location_label": record.location_label,
                        "media_ref": record.media_ref,
                        "created_at": record.time,
                    },
                )
        except IntegrityError as exc:
            if any(mark in str(exc.orig) for mark in _DUPLICATE_MARKS):
                raise DuplicateMessage(f"{record.channel}:{record.message_id}") from exc
            raise
        # Cache only committed ids: a rolled-back conversation row must not be remembered.
        self._remember(key, conversation_id)
        return StoredInbound(int(message_id), conversation_id, record.channel)

    async def record_outcome(
        self,
        stored: StoredInbound,
        intent: str | None,
        confidence: float | None,
        replies: Sequence[str],
    ) -> None:
        """Store what was understood of an inbound message and the replies it got."""
        now = utcnow()
        async with self._engine.begin() as connection:
            if intent is not None:
                await connection.execute(
                    _SET_INTENT,
                    {"message_id": stored.message_id, "intent": intent, "confidence": confidence},
                )
            if replies:
                await connection.execute(
                    _INSERT_OUTBOUND,
                    [
                        {
                            "conversation_id": stored.conversation_id,
                            "channel": stored.channel,
                            "direction": Direction.outbound.value,
                            "external_id": None,
                            "text": text,
                            "latitude": None,
                            "longitude": None,
                            "location_label": "",
                            "media_ref": "",
                            "created_at": now,
                        }
                        for text in replies
                    ],
                )

    async def lines(self, channel: str, chat_id: str, limit: int = 200) -> list[TranscriptLine]:
        """The newest ``limit`` messages of a chat, oldest first."""
        query = (
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.channel == channel, Conversation.chat_id == chat_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = list(await session.scalars(query))
        return [
            TranscriptLine(Direction(m.direction), m.text, m.intent, m.created_at)
            for m in reversed(rows)
        ]

    async def _conversation(
        self, connection: AsyncConnection, key: tuple[str, str], user_id: str
    ) -> int:
        cached = self._conversations.get(key)
        if cached is not None:
            self._conversations.move_to_end(key)
            return cached
        channel, chat_id = key
        resident_id = await ensure_resident(connection, channel, user_id)
        return await ensure_conversation(connection, resident_id, channel, chat_id)

    def _remember(self, key: tuple[str, str], conversation_id: int) -> None:
        self._conversations[key] = conversation_id
        self._conversations.move_to_end(key)
        if len(self._conversations) > self._cache_size:
            self._conversations.popitem(last=False)
