"""The transcript: every inbound and outbound message, kept in the relational store.

Inbound messages are unique by (channel, platform message id), so the store itself is
the last line of defence against a redelivered message being processed twice. ID
and phone numbers are masked in every line stored (integration.privacy), whoever
writes it: a phone staff need is kept where it belongs (the case, or the resident's
remembered contact, with their consent), not in the chat log.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.batch import GroupCommit
from integration.db import postgres_checkout, sqlite_checkout
from integration.errors import DuplicateMessage
from integration.models import Conversation, Direction, Message, utcnow
from integration.privacy import mask
from integration.sqlite_driver import committed
from integration.transcript_batch import PG_BATCH, PG_CHAT, SqliteChat, sqlite_batch
from integration.upsert import ensure_conversation, insert_for, resident, resident_ids


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


_SET_INTENT = (
    update(Message)
    .where(Message.id == bindparam("message_id"))
    .values(intent=bindparam("intent"), confidence=bindparam("confidence"))
)


@dataclass(frozen=True, slots=True)
class _Outcome:
    stored: StoredInbound
    intent: str | None
    confidence: float | None
    replies: Sequence[str]


class Transcript:
    """Appends to and reads conversations' transcripts.

    Writes go through group commit (integration.batch): concurrent turns share one
    transaction for everything they write (new messages, and the intents and replies
    of finished turns), and each still learns whether its own row was stored. The hot
    path runs prebuilt Core statements, not the ORM's unit of work. Conversation ids
    are cached per chat; only forgetting a resident deletes the row, and a stale id
    then fails the batch on its foreign key, which drops it and looks it up again.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache_size: int = 10_000
    ) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._insert_inbound = (
            insert_for(self._engine, Message)
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
            .returning(Message.id, Message.external_id)
        )
        self._writes: GroupCommit[InboundRecord | _Outcome, StoredInbound | None] = GroupCommit(
            self._write
        )
        self._conversations: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._cache_size = cache_size
        # Residents the batch being written created: cached once it commits.
        self._created_residents: list[tuple[str, str, int]] = []
        self._stamp: Callable[[datetime], str] | None = None

    async def record_inbound(self, record: InboundRecord) -> StoredInbound:
        """Store an inbound message, or raise ``DuplicateMessage`` if already stored."""
        stored = await self._writes.submit(record)
        assert stored is not None
        return stored

    async def record_outcome(
        self,
        stored: StoredInbound,
        intent: str | None,
        confidence: float | None,
        replies: Sequence[str],
    ) -> None:
        """Store what was understood of an inbound message and the replies it got."""
        await self._writes.submit(_Outcome(stored, intent, confidence, replies))

    async def _run(
        self,
        write: Callable[[], Awaitable[tuple[dict[tuple[str, str], int], list[int]]]],
        items: Sequence[InboundRecord | _Outcome],
        records: Sequence[InboundRecord],
    ) -> list[StoredInbound | BaseException | None]:
        """Run a batch's ``write``, and again once if a cached id was stale.

        A cached conversation or resident id may be stale (the resident was forgotten,
        by another process): the failed write left nothing behind (one transaction, or
        one statement), so the ids are looked up again and the batch written once more.
        A batch that still fails is retried row by row by the group commit.
        """
        try:
            stored, conversations = await write()
        except IntegrityError:
            for record in records:
                self._conversations.pop((record.channel, record.chat_id), None)
            resident_ids(self._engine).clear()
            stored, conversations = await write()
        known = resident_ids(self._engine)
        for channel, user_id, resident_id in self._created_residents:  # committed now
            known.put(channel, user_id, resident_id)
        inbound = iter(self._claim(records, conversations, stored))
        return [next(inbound) if isinstance(item, InboundRecord) else None for item in items]

    async def _write(
        self, items: Sequence[InboundRecord | _Outcome]
    ) -> list[StoredInbound | BaseException | None]:
        """One transaction for every pending write: new messages and finished turns."""
        records = [item for item in items if isinstance(item, InboundRecord)]
        outcomes = [item for item in items if isinstance(item, _Outcome)]
        if self._engine.dialect.name == "postgresql":
            return await self._write_postgres(items, records, outcomes)
        if self._engine.dialect.name == "sqlite":
            return await self._write_sqlite(items, records, outcomes)

        async def write() -> tuple[dict[tuple[str, str], int], list[int]]:
            self._created_residents = []
            async with self._engine.begin() as connection:
                written = await self._write_inbound(connection, records)
                await self._write_outcomes(connection, outcomes)
            return written

        return await self._run(write, items, records)

    async def _write_postgres(
        self,
        items: Sequence[InboundRecord | _Outcome],
        records: Sequence[InboundRecord],
        outcomes: Sequence[_Outcome],
    ) -> list[StoredInbound | BaseException | None]:
        """``_write`` on PostgreSQL: asyncpg directly, one statement for the batch, in
        autocommit; with a chat whose conversation id is not cached yet, one statement
        more for each such chat, and all in one transaction (one commit to wait for)."""

        async def write() -> tuple[dict[tuple[str, str], int], list[int]]:
            self._created_residents = []
            async with postgres_checkout(self._engine) as pg:
                if all((r.channel, r.chat_id) in self._conversations for r in records):
                    conversations = [self._pg_cached((r.channel, r.chat_id)) for r in records]
                    batch = await self._pg_batch(pg, records, conversations, outcomes)
                    return batch, conversations
                # A new chat: its rows and the batch in one transaction (one commit).
                async with pg.transaction():
                    conversations = [
                        await self._pg_conversation(pg, (r.channel, r.chat_id), r.user_id)
                        for r in records
                    ]
                    batch = await self._pg_batch(pg, records, conversations, outcomes)
                    return batch, conversations

        return await self._run(write, items, records)

    async def _write_sqlite(
        self,
        items: Sequence[InboundRecord | _Outcome],
        records: Sequence[InboundRecord],
        outcomes: Sequence[_Outcome],
    ) -> list[StoredInbound | BaseException | None]:
        """``_write`` on SQLite: the whole batch, with any new chat's rows, as one
        transaction in one hand-off to aiosqlite's thread (``sqlite_batch``)."""
        stamp = self._sqlite_stamp()
        known = resident_ids(self._engine)
        intents = [
            (o.intent, o.confidence, o.stored.message_id) for o in outcomes if o.intent is not None
        ]
        replies = [
            (o.stored.conversation_id, o.stored.channel, mask(text))
            for o in outcomes
            for text in o.replies
        ]

        async def write() -> tuple[dict[tuple[str, str], int], list[int]]:
            self._created_residents = []
            chats: dict[tuple[str, str], SqliteChat] = {}
            inbound: dict[tuple[str, str], tuple[Any, ...]] = {}
            for r in records:
                key = (r.channel, r.chat_id)
                conversation: Any = self._conversations.get(key)
                if conversation is None:
                    conversation = key
                    if key not in chats:
                        resident_id = known.get(r.channel, r.user_id)
                        chats[key] = SqliteChat(r.channel, r.chat_id, r.user_id, resident_id)
                # A message delivered twice within one batch is stored once.
                inbound.setdefault(
                    (r.channel, r.message_id),
                    (
                        conversation,
                        r.channel,
                        r.message_id,
                        mask(r.text),
                        r.latitude,
                        r.longitude,
                        r.location_label,
                        r.media_ref,
                        stamp(_utc(r.time)),
                    ),
                )
            async with sqlite_checkout(self._engine) as driver:
                found, created, stored = await driver.run(
                    committed,
                    sqlite_batch,
                    stamp(utcnow()),
                    list(chats.values()),
                    intents,
                    replies,
                    list(inbound.values()),
                )
            self._created_residents = created
            conversations = [
                self._conversations.get((r.channel, r.chat_id)) or found[(r.channel, r.chat_id)]
                for r in records
            ]
            return stored, conversations

        return await self._run(write, items, records)

    def _sqlite_stamp(self) -> Callable[[datetime], str]:
        """A UTC datetime as SQLAlchemy stores it in SQLite (UTCDateTime's text)."""
        if self._stamp is None:
            process = Message.__table__.c.created_at.type._cached_bind_processor(
                self._engine.dialect
            )
            assert process is not None
            self._stamp = process
        return self._stamp

    def _pg_cached(self, key: tuple[str, str]) -> int:
        self._conversations.move_to_end(key)
        return self._conversations[key]

    async def _pg_conversation(self, pg: Any, key: tuple[str, str], user_id: str) -> int:
        cached = self._conversations.get(key)
        if cached is not None:
            self._conversations.move_to_end(key)
            return cached
        channel, chat_id = key
        for _ in range(3):
            row = await pg.fetchrow(PG_CHAT, channel, user_id, chat_id, utcnow())
            if row["resident_id"] is not None and row["conversation_id"] is not None:
                # Cached once the transaction commits.
                self._created_residents.append((channel, user_id, int(row["resident_id"])))
                return int(row["conversation_id"])
        raise RuntimeError(f"could not find or create the conversation of {channel}:{chat_id}")

    @staticmethod
    async def _pg_batch(
        pg: Any,
        records: Sequence[InboundRecord],
        conversations: Sequence[int],
        outcomes: Sequence[_Outcome],
    ) -> dict[tuple[str, str], int]:
        intents = [o for o in outcomes if o.intent is not None]
        replies = [(o.stored, text) for o in outcomes for text in o.replies]
        rows: dict[tuple[str, str], tuple[int, InboundRecord]] = {}
        for record, conversation_id in zip(records, conversations, strict=True):
            # A message delivered twice within one batch is stored once.
            rows.setdefault((record.channel, record.message_id), (conversation_id, record))
        inbound = list(rows.values())
        found = await pg.fetch(
            PG_BATCH,
            [o.stored.message_id for o in intents],
            [o.intent for o in intents],
            [o.confidence for o in intents],
            utcnow(),
            [stored.conversation_id for stored, _ in replies],
            [stored.channel for stored, _ in replies],
            [mask(text) for _, text in replies],
            [conversation_id for conversation_id, _ in inbound],
            [r.channel for _, r in inbound],
            [r.message_id for _, r in inbound],
            [mask(r.text) for _, r in inbound],
            [r.latitude for _, r in inbound],
            [r.longitude for _, r in inbound],
            [r.location_label for _, r in inbound],
            [r.media_ref for _, r in inbound],
            [_utc(r.time) for _, r in inbound],
        )
        return {(channel, external): int(i) for i, channel, external in found}

    async def _write_inbound(
        self, connection: AsyncConnection, records: Sequence[InboundRecord]
    ) -> tuple[dict[tuple[str, str], int], list[int]]:
        rows: dict[tuple[str, str], dict[str, object]] = {}
        conversations = [
            await self._conversation(connection, (r.channel, r.chat_id), r.user_id) for r in records
        ]
        for record, conversation_id in zip(records, conversations, strict=True):
            # A message delivered twice within one batch is stored once.
            rows.setdefault(
                (record.channel, record.message_id),
                {
                    "conversation_id": conversation_id,
                    "channel": record.channel,
                    "direction": Direction.inbound.value,
                    "external_id": record.message_id,
                    "text": mask(record.text),
                    "latitude": record.latitude,
                    "longitude": record.longitude,
                    "location_label": record.location_label,
                    "media_ref": record.media_ref,
                    "created_at": record.time,
                },
            )
        stored: dict[tuple[str, str], int] = {}
        for channel in {key[0] for key in rows}:
            batch = [row for key, row in rows.items() if key[0] == channel]
            result = await connection.execute(self._insert_inbound, batch)
            stored.update(((channel, external), int(i)) for i, external in result.all())
        return stored, conversations

    def _claim(
        self,
        records: Sequence[InboundRecord],
        conversations: Sequence[int],
        stored: dict[tuple[str, str], int],
    ) -> list[StoredInbound | BaseException]:
        """Each record's stored row, or ``DuplicateMessage``; caches committed ids."""
        results: list[StoredInbound | BaseException] = []
        claimed: set[tuple[str, str]] = set()
        for record, conversation_id in zip(records, conversations, strict=True):
            key = (record.channel, record.message_id)
            if key in stored and key not in claimed:
                claimed.add(key)
                # Cache only committed ids: a rolled-back conversation row must not be
                # remembered.
                self._remember((record.channel, record.chat_id), conversation_id)
                results.append(StoredInbound(stored[key], conversation_id, record.channel))
            else:
                results.append(DuplicateMessage(f"{record.channel}:{record.message_id}"))
        return results

    @staticmethod
    async def _write_outcomes(connection: AsyncConnection, outcomes: Sequence[_Outcome]) -> None:
        now = utcnow()
        intents = [
            {"message_id": o.stored.message_id, "intent": o.intent, "confidence": o.confidence}
            for o in outcomes
            if o.intent is not None
        ]
        replies = [
            {
                "conversation_id": o.stored.conversation_id,
                "channel": o.stored.channel,
                "direction": Direction.outbound.value,
                "external_id": None,
                "text": mask(text),
                "latitude": None,
                "longitude": None,
                "location_label": "",
                "media_ref": "",
                "created_at": now,
            }
            for o in outcomes
            for text in o.replies
        ]
        if intents:
            await connection.execute(_SET_INTENT, intents)
        if replies:
            await connection.execute(insert(Message), replies)

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
        resident_id, created = await resident(connection, channel, user_id, cached=True)
        if created:
            self._created_residents.append((channel, user_id, resident_id))
        return await ensure_conversation(
            connection, resident_id, channel, chat_id, new_resident=created
        )

    def _remember(self, key: tuple[str, str], conversation_id: int) -> None:
        self._conversations[key] = conversation_id
        self._conversations.move_to_end(key)
        if len(self._conversations) > self._cache_size:
            self._conversations.popitem(last=False)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:  # as the UTCDateTime column refuses them
        message = "naive datetime given to a UTC column"
        raise StatementError(message, None, None, ValueError(message))
    return value.astimezone(UTC)
