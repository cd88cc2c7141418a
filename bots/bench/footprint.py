"""What a benchmark's conversations leave behind: PostgreSQL (or SQLite) rows and
Redis memory, per conversation.

Rows: every table's ``count(*)`` before and after the run; the difference divided by
the conversations (the warm-up conversation excluded by counting after it).
Redis: after the run, ``MEMORY USAGE`` of every key that belongs to one of the run's
conversations (their hash tag or their id in the key), summed per conversation; a
conversation whose state holds a flow under way is *active*, one without a state, or
whose state keeps only what a finished flow left (``recent``: the last report's place),
*idle*. A finished conversation is idle, so the pipeline bench also starts
a few conversations after the measured run and leaves them mid-flow (the probes), to
measure active ones. ``INFO memory``'s used_memory
before and after, divided by the conversations, is reported beside it (it also counts
what is not keyed by conversation, and moves with everything else on the server).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from integration.state.keys import KeyBuilder


async def table_rows(engine: AsyncEngine) -> dict[str, int]:
    """Rows in each table of the database (Alembic's bookkeeping excepted)."""
    metadata = MetaData()
    async with engine.connect() as connection:
        await connection.run_sync(metadata.reflect)
        counts = {}
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            counts[table.name] = int(
                (await connection.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return counts


async def used_memory(redis: Any) -> int | None:
    """Redis's used_memory in bytes (None without Redis, or on a cluster)."""
    if redis is None or not hasattr(redis, "info"):
        return None
    try:
        info = await redis.info("memory")
    except Exception:  # a cluster client answers per node; not summed here
        return None
    value = info.get("used_memory") if isinstance(info, dict) else None
    return int(value) if isinstance(value, int) else None


@dataclass(slots=True)
class Footprint:
    """Rows and Redis memory per conversation, as measured around one run."""

    conversations: int
    rows_before: dict[str, int]
    rows_after: dict[str, int] = field(default_factory=dict)
    memory_before: int | None = None
    memory_after: int | None = None
    active: list[int] = field(default_factory=list)  # bytes of each active conversation
    idle: list[int] = field(default_factory=list)  # bytes of each idle conversation

    def rows_per_conversation(self) -> dict[str, float]:
        """New rows per conversation, by table (tables that grew)."""
        n = max(1, self.conversations)
        grown = {
            name: (after - self.rows_before.get(name, 0)) / n
            for name, after in self.rows_after.items()
        }
        return {name: rows for name, rows in sorted(grown.items()) if rows}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: rows per conversation (total and by table) and Redis bytes."""
        rows = self.rows_per_conversation()

        def mean(values: list[int]) -> float | None:
            return sum(values) / len(values) if values else None

        delta = None
        if self.memory_before is not None and self.memory_after is not None:
            delta = (self.memory_after - self.memory_before) / max(1, self.conversations)
        return {
            "conversations": self.conversations,
            "rows_per_conversation": sum(rows.values()),
            "rows_per_conversation_by_table": rows,
            "redis": {
                "method": "MEMORY USAGE of each conversation's keys after the run (SCAN of the "
                "prefix); active = its state holds a flow under way (probes left mid-flow), "
                "idle = finished; "
                "used_memory_delta = INFO memory after - before, over the measured conversations",
                "active_conversations": len(self.active),
                "idle_conversations": len(self.idle),
                "bytes_per_active_conversation": mean(self.active),
                "bytes_per_idle_conversation": mean(self.idle),
                "used_memory_delta_per_conversation": delta,
            }
            if self.memory_before is not None
            else None,
        }


async def begin(engine: AsyncEngine, redis: Any, conversations: int) -> Footprint:
    """The counts before a run."""
    return Footprint(
        conversations, await table_rows(engine), memory_before=await used_memory(redis)
    )


async def rows_after(footprint: Footprint, engine: AsyncEngine, redis: Any) -> None:
    """The counts right after the measured run."""
    footprint.rows_after = await table_rows(engine)
    footprint.memory_after = await used_memory(redis)


async def redis_bytes(
    footprint: Footprint, redis: Any, keys: KeyBuilder, channel: str, chats: Iterable[str]
) -> Footprint:
    """Each of the conversations ``chats`` on ``channel``: its keys' bytes, as active
    (its state holds a flow under way) or idle."""
    if redis is None or footprint.memory_before is None:
        return footprint
    wanted = {keys.conversation(channel, chat): chat for chat in chats}
    sizes = dict.fromkeys(wanted.values(), 0)
    async for raw in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        chat = _owner(key, wanted)
        if chat is not None:
            sizes[chat] += int(await redis.memory_usage(key) or 0)
    for tag, chat in wanted.items():
        raw = await redis.get(keys.state(*tag.split(":", 1)))
        active = bool(raw) and bool(json.loads(raw).get("flow"))
        (footprint.active if active else footprint.idle).append(sizes[chat])
    return footprint


def _owner(key: str, wanted: dict[str, str]) -> str | None:
    """The conversation a key belongs to: its hash tag, or its channel and id at the end."""
    if "{" in key:
        tag = key[key.index("{") + 1 : key.find("}", key.index("{"))]
        if tag in wanted:
            return wanted[tag]
    tail = key.split(":", 2)[-1] if key.count(":") >= 2 else ""
    return wanted.get(tail)
