"""The audit log: every staff action, append-only.

``record`` writes one entry inside the caller's transaction (so an action and its
entry are kept together or not at all); ``AuditLog.write`` opens its own. Before and
after are JSON. There is no update or delete here, and the database's triggers (see
migration 0009) refuse them from anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from integration.models import AuditEntry, utcnow

State = Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a console account (its name and role) from an address, or a command."""

    name: str
    role: str = ""
    address: str = ""


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One entry as the audit page shows it."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    before: str
    after: str
    address: str


def _json(state: State) -> str:
    return (
        "" if state is None else json.dumps(state, ensure_ascii=False, sort_keys=True, default=str)
    )


async def record(
    connection: AsyncConnection | AsyncSession,
    actor: Actor,
    action: str,
    target: str = "",
    before: State = None,
    after: State = None,
) -> None:
    """Append an entry in the caller's transaction."""
    await connection.execute(
        insert(AuditEntry).values(
            at=utcnow(),
            actor=actor.name,
            role=actor.role,
            action=action,
            target=target,
            before=_json(before),
            after=_json(after),
            address=actor.address,
        )
    )


class AuditLog:
    """Reading the log, and writing an entry on its own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def write(
        self,
        actor: Actor,
        action: str,
        target: str = "",
        before: State = None,
        after: State = None,
    ) -> None:
        """Append an entry in its own transaction."""
        async with self._sessions.begin() as session:
            await record(session, actor, action, target, before, after)

    async def recent(
        self,
        limit: int = 100,
        *,
        before_id: int | None = None,
        actor: str = "",
        action: str = "",
        target: str = "",
    ) -> list[AuditRow]:
        """The newest entries first, optionally older than ``before_id`` and filtered."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(AuditEntry.id < before_id)
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if action:
            query = query.where(AuditEntry.action == action)
        if target:
            query = query.where(AuditEntry.target == target)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [
            AuditRow(r.id, r.at, r.actor, r.role, r.action, r.target, r.before, r.after, r.address)
            for r in rows
        ]
