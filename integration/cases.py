"""The case book: creating cases, changing their status, and queueing the pushes.

Every status change writes its history entry and the resident's notification in one
transaction, so a change is never recorded without its push being durably queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from integration.errors import CaseNotFound, InvalidTransition
from integration.lifecycle import OPEN, can_move
from integration.models import (
    Case,
    CaseCounter,
    CaseEvent,
    CaseMedia,
    CaseStatus,
    Notification,
    Resident,
    utcnow,
)
from integration.upsert import ensure_resident, insert_for

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
NUMBER_PREFIX = "YM"


@dataclass(frozen=True, slots=True)
class CaseDraft:
    """What a flow knows when it asks for a case to be opened."""

    channel: str
    user_id: str
    chat_id: str
    category: str
    description: str
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    media: tuple[tuple[str, str, str], ...] = ()  # (kind, ref, url)


@dataclass(frozen=True, slots=True)
class CaseView:
    """A read-only snapshot of a case."""

    number: str
    category: str
    status: CaseStatus
    description: str
    address: str
    channel: str
    chat_id: str
    created_at: datetime
    updated_at: datetime
    media_count: int = 0
    last_note: str = ""

    @classmethod
    def opened(cls, draft: CaseDraft, number: str, now: datetime) -> CaseView:
        """The view of a case just opened from ``draft``."""
        return cls(
            number=number,
            category=draft.category,
            status=CaseStatus.received,
            description=draft.description,
            address=draft.address,
            channel=draft.channel,
            chat_id=draft.chat_id,
            created_at=now,
            updated_at=now,
            media_count=len(draft.media),
        )

    @classmethod
    def of(cls, case: Case) -> CaseView:
        """Snapshot a loaded case (with its media and events loaded)."""
        return cls(
            number=case.number,
            category=case.category,
            status=CaseStatus(case.status),
            description=case.description,
            address=case.address,
            channel=case.channel,
            chat_id=case.chat_id,
            created_at=case.created_at,
            updated_at=case.updated_at,
            media_count=len(case.media),
            last_note=case.events[-1].note if case.events else "",
        )


_INSERT_CASE = insert(Case).returning(Case.id)


def format_number(day: date, sequence: int) -> str:
    """A short case number: YM, the local date as yymmdd, and the day's sequence."""
    return f"{NUMBER_PREFIX}{day:%y%m%d}{sequence:04d}"


class CaseBook:
    """Cases in the relational store; the local dispatch desk works on these directly."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def create_case(self, draft: CaseDraft) -> CaseView:
        """Open a case in ``received`` and give it its number, in one transaction.

        Core statements rather than the ORM: this runs inside residents' turns.
        """
        now = utcnow()
        async with self._engine.begin() as connection:
            resident_id = await ensure_resident(connection, draft.channel, draft.user_id)
            number = format_number(*await _next_sequence(connection, now))
            case_id = await connection.scalar(
                _INSERT_CASE,
                {
                    "number": number,
                    "resident_id": resident_id,
                    "channel": draft.channel,
                    "chat_id": draft.chat_id,
                    "category": draft.category,
                    "description": draft.description,
                    "address": draft.address,
                    "latitude": draft.latitude,
                    "longitude": draft.longitude,
                    "status": CaseStatus.received.value,
                    "platform": "local",
                    "platform_id": None,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if draft.media:
                await connection.execute(
                    insert(CaseMedia),
                    [
                        {"case_id": case_id, "kind": k, "ref": r, "url": u}
                        for k, r, u in draft.media
                    ],
                )
            await connection.execute(
                insert(CaseEvent),
                {
                    "case_id": case_id,
                    "status": CaseStatus.received.value,
                    "note": "",
                    "actor": "resident",
                    "created_at": now,
                },
            )
        return CaseView.opened(draft, number, now)

    async def change_status(
        self, number: str, status: CaseStatus, note: str = "", actor: str = "staff"
    ) -> CaseView:
        """Move a case to ``status`` and queue the resident's notification, atomically."""
        now = utcnow()
        async with self._sessions.begin() as session:
            case = await session.scalar(
                _loaded(select(Case).where(Case.number == number.upper())).with_for_update()
            )
            if case is None:
                raise CaseNotFound(number)
            current = CaseStatus(case.status)
            if not can_move(current, status):
                raise InvalidTransition(case.number, current.value, status.value)
            event = CaseEvent(status=status.value, note=note, actor=actor, created_at=now)
            case.events.append(event)
            case.status = status.value
            case.updated_at = now
            await session.flush()
            session.add(Notification(event_id=event.id, channel=case.channel, chat_id=case.chat_id))
            return CaseView.of(case)

    async def get(self, number: str) -> CaseView:
        """One case by number (case-insensitive)."""
        async with self._sessions() as session:
            case = await session.scalar(_loaded(select(Case).where(Case.number == number.upper())))
            if case is None:
                raise CaseNotFound(number)
            return CaseView.of(case)

    async def list_cases(
        self, statuses: Sequence[CaseStatus] = (), limit: int = 100
    ) -> list[CaseView]:
        """The newest cases first, optionally only those in ``statuses``."""
        query = _loaded(select(Case)).order_by(Case.id.desc()).limit(limit)
        if statuses:
            query = query.where(Case.status.in_([s.value for s in statuses]))
        async with self._sessions() as session:
            return [CaseView.of(c) for c in await session.scalars(query)]

    async def open_cases(self, channel: str, user_id: str) -> list[CaseView]:
        """A resident's cases that are still open, newest first."""
        query = (
            _loaded(select(Case))
            .join(Resident, Resident.id == Case.resident_id)
            .where(Resident.channel == channel, Resident.external_id == user_id)
            .where(Case.status.in_([s.value for s in OPEN]))
            .order_by(Case.id.desc())
        )
        async with self._sessions() as session:
            return [CaseView.of(c) for c in await session.scalars(query)]


def _loaded(query: Select[Any]) -> Select[Any]:
    """The query with each case's media and history loaded alongside."""
    return query.options(selectinload(Case.media), selectinload(Case.events))


async def _next_sequence(connection: AsyncConnection, now: datetime) -> tuple[date, int]:
    """Atomically take the next number of the local day (an upsert, safe across workers)."""
    day = now.astimezone(LOCAL_TZ).date()
    statement = (
        insert_for(connection, CaseCounter)
        .values(day=day, last=1)
        .on_conflict_do_update(
            index_elements=[CaseCounter.day], set_={"last": CaseCounter.last + 1}
        )
        .returning(CaseCounter.last)
    )
    return day, int((await connection.execute(statement)).scalar_one())
