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
from integration.db import driver_errors, postgres_driver, sqlite_checkout
from integration.errors import DuplicateMessage
from integration.models import Conversation, Direction, Message, utcnow
from integration.privacy import mask
from integration.sqlite_driver import committed
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


# PostgreSQL: a whole batch in one statement, atomic on its own, so one round trip and
# no BEGIN/COMMIT: the finished turns' intents (UPDATE) and replies (INSERT), and the
# new inbound rows (INSERT ... ON CONFLICT DO NOTHING RETURNING what was stored). An
# outcome only ever names an inbound row an earlier batch committed.
_PG_BATCH = """
WITH outcome AS (
    UPDATE messages AS m SET intent = o.intent, confidence = o.confidence
    FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS o(id, intent, confidence)
    WHERE m.id = o.id
), reply AS (
    INSERT INTO messages (conversation_id, channel, direction, external_id, text,
                          latitude, longitude, location_label, media_ref, created_at)
    SELECT r.conversation_id, r.channel, 'out', NULL, r.text, NULL, NULL, '', '', $4
    FROM unnest($5::bigint[], $6::text[], $7::text[]) WITH ORDINALITY
         AS r(conversation_id, channel, text, n)
    ORDER BY r.n
)
INSERT INTO messages (conversation_id, channel, direction, external_id, text,
                      latitude, longitude, location_label, media_ref, created_at)
SELECT i.conversation_id, i.channel, 'in', i.external_id, i.text,
       i.latitude, i.longitude, i.location_label, i.media_ref, i.created_at
FROM unnest($8::bigint[], $9::text[], $10::text[], $11::text[], $12::float8[],
            $13::float8[], $14::text[], $15::text[], $16::timestamptz[]) WITH ORDINALITY
     AS i(conversation_id, channel, external_id, text, latitude, longitude,
          location_label, media_ref, created_at, n)
ORDER BY i.n
ON CONFLICT (channel, external_id) DO NOTHING
RETURNING id, channel, external_id
"""

# PostgreSQL: a chat's resident and conversation, found or created, in one statement
# (atomic on its own). A row another transaction commits while it runs is invisible to
# its snapshot and not inserted either: both ids come back NULL, and it is run again.
_PG_CHAT = """
WITH found AS (
    SELECT id FROM residents WHERE channel = $1 AND external_id = $2
), created AS (
    INSERT INTO residents (channel, external_id, display_name, phone, created_at)
    SELECT $1, $2, '', '', $4 WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (channel, external_id) DO NOTHING
    RETURNING id
), who AS (
    SELECT id FROM found UNION ALL SELECT id FROM created
), chat AS (
    INSERT INTO conversations (resident_id, channel, chat_id, started_at)
    SELECT id, $1, $3, $4 FROM who
    ON CONFLICT (channel, chat_id) DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM who LIMIT 1) AS resident_id,
       COALESCE((SELECT id FROM chat),
                (SELECT id FROM conversations WHERE channel = $1 AND chat_id = $3))
           AS conversation_id
"""

# SQLite: the same batch as statements run one after another on sqlite3, in one
# hand-off to aiosqlite's thread (integration.sqlite_driver): a chat's resident and
# conversation found or created, the finished turns' intents and replies, and the new
# inbound rows, in one transaction.
_SQ_RESIDENT = "SELECT id FROM residents WHERE channel = ? AND external_id = ?"
_SQ_NEW_RESIDENT = (
    "INSERT INTO residents (channel, external_id, display_name, phone, created_at) "
    "VALUES (?, ?, '', '', ?) ON CONFLICT (channel, external_id) DO NOTHING RETURNING id"
)
_SQ_CONVERSATION = "SELECT id FROM conversations WHERE channel = ? AND chat_id = ?"
_SQ_NEW_CONVERSATION = (
    "INSERT INTO conversations (resident_id, channel, chat_id, started_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (channel, chat_id) DO NOTHING RETURNING id"
)
_SQ_INTENT = "UPDATE messages SET intent = ?, confidence = ? WHERE id = ?"
_SQ_REPLY = (
    "INSERT INTO messages (conversation_id, channel, direction, external_id, text, "
    "latitude, longitude, location_label, media_ref, created_at) "
    "VALUES (?, ?, 'out', NULL, ?, NULL, NULL, '', '', ?)"
)
_SQ_INBOUND = (
    "INSERT INTO messages (conversation_id, channel, direction, external_id, text, "
    "latitude, longitude, location_label, media_ref, created_at) VALUES {rows} "
    "ON CONFLICT (channel, external_id) DO NOTHING RETURNING id, channel, external_id"
)
_SQ_INBOUND_ROW = "(?, ?, 'in', ?, ?, ?, ?, ?, ?, ?)"


def _one(db: Any, sql: str, args: tuple[Any, ...]) -> Any:
    cursor = db.execute(sql, args)
    try:
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else row[0]


@dataclass(frozen=True, slots=True)
class _SqliteChat:
    """A chat whose conversation id is not cached: found or created on the thread."""

    channel: str
    chat_id: str
    user_id: str
    resident_id: int | None  # cached, else looked up


def _sqlite_batch(
    db: Any,
    now: str,
    chats: Sequence[_SqliteChat],
    intents: Sequence[tuple[str, float | None, int]],
    replies: Sequence[tuple[int, str, str]],
    inbound: Sequence[tuple[Any, ...]],
) -> tuple[dict[tuple[str, str], int], list[tuple[str, str, int]], dict[tuple[str, str], int]]:
    """On aiosqlite's thread, in the caller's transaction: the chats' conversation ids,
    the residents created, and the ids of the inbound rows stored (not those stored
    before) by (channel, message id). An inbound row's first value is its chat's
    conversation id, or the chat's key for the chats found here. The inbound rows go in
    one statement."""
    conversations: dict[tuple[str, str], int] = {}
    created: list[tuple[str, str, int]] = []
    for chat in chats:
        resident_id = chat.resident_id
        if resident_id is None:
            resident_id = _one(db, _SQ_RESIDENT, (chat.channel, chat.user_id))
        if resident_id is None:
            resident_id = _one(db, _SQ_NEW_RESIDENT, (chat.channel, chat.user_id, now))
            if resident_id is None:  # inserted meanwhile by another process
                resident_id = _one(db, _SQ_RESIDENT, (chat.channel, chat.user_id))
            else:
                created.append((chat.channel, chat.user_id, resident_id))
        conversation = _one(
            db, _SQ_NEW_CONVERSATION, (resident_id, chat.channel, chat.chat_id, now)
        ) or _one(db, _SQ_CONVERSATION, (chat.channel, chat.chat_id))
        conversations[(chat.channel, chat.chat_id)] = conversation
    if intents:
        db.executemany(_SQ_INTENT, intents).close()
    if replies:
        db.executemany(_SQ_REPLY, [(*reply, now) for reply in replies]).close()
    if not inbound:
        return conversations, created, {}
    args = [
        value
        for row in inbound
        for value in (row[0] if isinstance(row[0], int) else conversations[row[0]], *row[1:])
    ]
    sql = _SQ_INBOUND.format(rows=", ".join([_SQ_INBOUND_ROW] * len(inbound)))
    cursor = db.execute(sql, args)
    try:
        stored = {(channel, external): i for i, channel, external in cursor.fetchall()}
    finally:
        cursor.close()
    return conversations, created, stored


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
            async with self._engine.connect() as connection, driver_errors(connection):
                pg = await postgres_driver(connection)
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
        transaction in one hand-off to aiosqlite's thread (``_sqlite_batch``)."""
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
            chats: dict[tuple[str, str], _SqliteChat] = {}
            inbound: dict[tuple[str, str], tuple[Any, ...]] = {}
            for r in records:
                key = (r.channel, r.chat_id)
                conversation: Any = self._conversations.get(key)
                if conversation is None:
                    conversation = key
                    if key not in chats:
                        resident_id = known.get(r.channel, r.user_id)
                        chats[key] = _SqliteChat(r.channel, r.chat_id, r.user_id, resident_id)
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
                    _sqlite_batch,
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
            row = await pg.fetchrow(_PG_CHAT, channel, user_id, chat_id, utcnow())
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
            _PG_BATCH,
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
