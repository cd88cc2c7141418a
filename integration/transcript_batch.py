"""The transcript's batch as the drivers run it, past SQLAlchemy's execution layer.

``integration.transcript.Transcript`` writes every pending message of concurrent turns
in one batch (group commit). On PostgreSQL the batch is one statement on asyncpg, and a
new chat's rows one more; on SQLite it is plain statements on sqlite3, all in one
hand-off to aiosqlite's thread (integration.sqlite_driver). Both are here, beside each
other, so that a change to one is seen against the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from integration.sqlite_driver import fetch, first

# PostgreSQL: a whole batch in one statement, atomic on its own, so one round trip and
# no BEGIN/COMMIT: the finished turns' intents (UPDATE) and replies (INSERT), and the
# new inbound rows (INSERT ... ON CONFLICT DO NOTHING RETURNING what was stored). An
# outcome only ever names an inbound row an earlier batch committed.
PG_BATCH = """
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
PG_CHAT = """
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
    row = first(db, sql, args)
    return None if row is None else row[0]


@dataclass(frozen=True, slots=True)
class SqliteChat:
    """A chat whose conversation id is not cached: found or created on the thread."""

    channel: str
    chat_id: str
    user_id: str
    resident_id: int | None  # cached, else looked up


def sqlite_batch(
    db: Any,
    now: str,
    chats: Sequence[SqliteChat],
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
    stored = {(channel, external): i for i, channel, external in fetch(db, sql, args)}
    return conversations, created, stored
