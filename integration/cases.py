"""The case book: creating cases, reading them, changing their status, following them.

Every status change goes through integration.changes, which writes its history entry
and the notifications of the reporter and every follower in one transaction. When cases
go to an outside dispatch platform, creating a case also queues its forwarding job (the
outbox) in the same transaction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration import case_reads as reads
from integration.changes import lock_case, queue_job, record_change
from integration.db import autocommit, fetch_rows, sqlite_checkout
from integration.errors import CaseNotFound, InvalidTransition
from integration.lifecycle import can_move
from integration.models import (
    Case,
    CaseCounter,
    CaseEvent,
    CaseFollower,
    CaseMedia,
    CaseStatus,
    OutboxKind,
    ProxyConsent,
    utcnow,
)
from integration.opening import OPEN_CASE, open_on_sqlite, sqlite_opening
from integration.sqlite_driver import committed
from integration.upsert import (
    ensure_resident,
    insert_for,
    next_in_day,
    resident_ids,
    retry_stale,
)
from integration.urges import Urged, record_urge

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
NUMBER_PREFIX = "YM"
LOCAL_DESK = "local"
DUPLICATE_RADIUS_M = 200.0
DUPLICATE_WINDOW = timedelta(hours=24)


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
    consent: Consent | None = None  # an errand (代办): what the resident agreed to
    grid: str = ""  # filed by a linked grid worker (网格员): their grid id


@dataclass(frozen=True, slots=True)
class Consent:
    """A resident's explicit consent that staff act for them: the words shown, and when."""

    words: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CaseView:
    """A read-only snapshot of a case.

    ``followers`` are the (channel, chat id) of residents who joined the case.
    """

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
    followers: tuple[tuple[str, str], ...] = ()
    grid: str = ""

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
            grid=draft.grid,
        )

    @classmethod
    def of(cls, row: Any, followers: tuple[tuple[str, str], ...] = ()) -> CaseView:
        """Snapshot a row of ``case_reads.VIEW_COLUMNS`` and the case's followers."""
        return cls(
            number=row.number,
            category=row.category,
            status=CaseStatus(row.status),
            description=row.description,
            address=row.address,
            channel=row.channel,
            chat_id=row.chat_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            media_count=row.media_count,
            last_note=row.last_note or "",
            followers=followers,
            grid=row.grid,
        )

    def readable_by(self, channel: str, chat_id: str) -> bool:
        """Whether this chat reported or follows the case."""
        return (self.channel, self.chat_id) == (channel, chat_id) or (
            channel,
            chat_id,
        ) in self.followers


_INSERT_CASE = insert(Case).returning(Case.id)


def local_minute(moment: datetime) -> str:
    """A time as residents and staff read it: Asia/Shanghai, to the minute."""
    return moment.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def format_number(day: date, sequence: int) -> str:
    """A short case number: YM, the local date as yymmdd, and the day's sequence."""
    return f"{number_prefix(day)}{sequence:04d}"


def number_prefix(day: date) -> str:
    """What every case number of ``day`` starts with."""
    return f"{NUMBER_PREFIX}{day:%y%m%d}"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine; plenty for a 200 m test)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(a))


class CaseBook:
    """Cases in the relational store; the local dispatch desk works on these directly.

    ``platform`` names where new cases go: the local desk keeps them here; any other
    platform gets a forwarding job queued with each new case.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        platform: str = LOCAL_DESK,
        can_urge: bool = False,
    ) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._reads = autocommit(self._engine)
        self.platform = platform
        self._can_urge = can_urge and platform != LOCAL_DESK

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The store's session factory (other books of the same store share it)."""
        return self._sessions

    async def create_case(self, draft: CaseDraft) -> CaseView:
        """Open a case in ``received`` and give it its number, in one transaction.

        Core statements rather than the ORM: this runs inside residents' turns. The
        forwarding job, when there is a platform, is one more insert in the same
        transaction: the case and its forwarding exist together or not at all.
        """
        now = utcnow()
        if not draft.media and not draft.consent:
            number = await self._open_at_once(draft, now)
            if number is not None:
                return CaseView.opened(draft, number, now)

        async def write(connection: AsyncConnection) -> str:
            resident_id = await ensure_resident(
                connection, draft.channel, draft.user_id, cached=True
            )
            number = format_number(*await _next_sequence(connection, now))
            local = self.platform == LOCAL_DESK
            case_id = await connection.scalar(
                _INSERT_CASE,
                {
                    **_reported(draft),
                    "number": number,
                    "resident_id": resident_id,
                    "status": CaseStatus.received.value,
                    "platform": self.platform,
                    "platform_id": number if local else None,
                    "platform_updated_at": None,
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
            if draft.consent is not None:
                await connection.execute(
                    insert(ProxyConsent),
                    {
                        "case_id": case_id,
                        "words": draft.consent.words,
                        "consented_at": draft.consent.at,
                    },
                )
            await connection.execute(
                insert(CaseEvent),
                {
                    "case_id": case_id,
                    "status": CaseStatus.received.value,
                    "note": "",
                    "actor": f"grid:{draft.grid}" if draft.grid else "resident",
                    "created_at": now,
                },
            )
            if not local:
                await queue_job(connection, cast(int, case_id), number, OutboxKind.create, now)
            return number

        number = await retry_stale(self._engine, write)
        return CaseView.opened(draft, number, now)

    async def _open_at_once(self, draft: CaseDraft, now: datetime) -> str | None:
        """The new case's number, opened in one statement on PostgreSQL, or in one
        hand-off on SQLite (integration.opening); None when the resident's id is not
        cached, the cached one turned out stale, or the database is neither."""
        known = resident_ids(self._engine)
        resident_id = known.get(draft.channel, draft.user_id)
        dialect = self._engine.dialect
        if resident_id is None or dialect.name not in ("postgresql", "sqlite"):
            return None
        local = self.platform == LOCAL_DESK
        day = now.astimezone(LOCAL_TZ).date()
        if dialect.name == "sqlite":
            row = {
                **_reported(draft),
                "resident_id": resident_id,
                "status": CaseStatus.received.value,
                "platform": self.platform,
                "platform_updated_at": None,
                "created_at": now,
                "updated_at": now,
            }
            try:
                async with sqlite_checkout(self._engine) as driver:
                    return str(
                        await driver.run(
                            committed,
                            open_on_sqlite,
                            sqlite_opening(dialect),
                            day,
                            partial(format_number, day),
                            row,
                            not local,
                        )
                    )
            except IntegrityError:  # the resident was forgotten by another process
                known.clear()
                return None
        params = {
            **_reported(draft),
            "day": day,
            "prefix": number_prefix(day),
            "resident_id": resident_id,
            "platform": self.platform,
            "local": local,
            "now": now,
            "actor": f"grid:{draft.grid}" if draft.grid else "resident",
            "forward": not local,
        }
        try:
            async with self._reads.connect() as connection:
                (row,) = await fetch_rows(connection, OPEN_CASE, params)
        except IntegrityError:  # the resident was forgotten by another process
            known.clear()
            return None
        return str(row.number)

    async def change_status(
        self,
        number: str,
        status: CaseStatus,
        note: str = "",
        actor: str = "staff",
        *,
        notify_reporter: bool = True,
        media: Sequence[tuple[str, str, str]] = (),
    ) -> CaseView:
        """Move a case to ``status`` and queue the notifications, atomically.

        ``media`` (kind, ref, url) is kept as the case's, in the same transaction: a
        grid worker's photo of the finished work (integration.grid).
        """
        now = utcnow()
        async with self._engine.begin() as connection:
            row = await lock_case(connection, Case.number == number.upper())
            if row is None:
                raise CaseNotFound(number)
            current = CaseStatus(row.status)
            if not can_move(current, status):
                raise InvalidTransition(row.number, current.value, status.value)
            await record_change(
                connection, row, status, note, actor, now, notify_reporter=notify_reporter
            )
            if media:
                await connection.execute(
                    insert(CaseMedia),
                    [{"case_id": row.id, "kind": k, "ref": r, "url": u} for k, r, u in media],
                )
        return await self.get(number)

    async def get(self, number: str) -> CaseView:
        """One case by number (case-insensitive)."""
        views = await self._views(reads.BY_NUMBER, {"number": number.upper()})
        if not views:
            raise CaseNotFound(number)
        return views[0][1]

    async def list_cases(
        self, statuses: Sequence[CaseStatus] = (), limit: int = 100
    ) -> list[CaseView]:
        """The newest cases first, optionally only those in ``statuses``."""
        query = select(*reads.VIEW_COLUMNS).order_by(Case.id.desc()).limit(limit)
        if statuses:
            query = query.where(Case.status.in_([s.value for s in statuses]))
        return [view for _, view in await self._views(query)]

    async def open_cases(self, channel: str, user_id: str) -> list[CaseView]:
        """A resident's open cases, reported or followed, newest first."""
        found = await self._views(reads.OPEN_OF_RESIDENT, {"channel": channel, "user_id": user_id})
        return [view for _, view in found]

    async def _views(
        self, query: Select[Any], params: dict[str, Any] | None = None
    ) -> list[tuple[Any, CaseView]]:
        """Run a query of ``reads.VIEW_COLUMNS``: each row with its view, followers
        included.

        One query for the cases and, only when any of them has followers, one for those.
        """
        async with self._reads.connect() as connection:
            rows = await fetch_rows(connection, query, params or {})
            if not any(row.follower_count for row in rows):
                return [(row, CaseView.of(row)) for row in rows]
            followers: dict[int, list[tuple[str, str]]] = {}
            found = await connection.execute(reads.FOLLOWERS, {"ids": [row.id for row in rows]})
            for case_id, channel, chat_id in found:
                followers.setdefault(case_id, []).append((channel, chat_id))
        return [(row, CaseView.of(row, tuple(followers.get(row.id, ())))) for row in rows]

    async def similar_open(self, draft: CaseDraft) -> list[CaseView]:
        """Open cases of others that ``draft`` likely repeats, nearest first.

        Same category, opened within the last 24 hours, and within 200 m of the draft's
        coordinates or at exactly its address. The resident's own and followed cases
        are left out: they are already theirs.
        """
        address = draft.address.strip()
        lat, lon = draft.latitude, draft.longitude
        near = lat is not None and lon is not None
        if not address and not near:
            return []
        params: dict[str, Any] = {
            "channel": draft.channel,
            "user_id": draft.user_id,
            "category": draft.category,
            "since": utcnow() - DUPLICATE_WINDOW,
        }
        if address:
            params["address"] = address
        if lat is not None and lon is not None:
            dlat = DUPLICATE_RADIUS_M / 111_000.0
            dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
            params.update(lat_lo=lat - dlat, lat_hi=lat + dlat)
            params.update(lon_lo=lon - dlon, lon_hi=lon + dlon)
        query = reads.similar(at_address=bool(address), near=near)
        found: list[tuple[float, CaseView]] = []
        for row, view in await self._views(query, params):
            if address and row.address == address:
                found.append((0.0, view))
            elif None not in (lat, lon, row.latitude, row.longitude):
                meters = distance_m(lat, lon, row.latitude, row.longitude)  # type: ignore[arg-type]
                if meters <= DUPLICATE_RADIUS_M:
                    found.append((meters, view))
        return [view for _, view in sorted(found, key=lambda pair: pair[0])]

    async def urge(
        self, number: str, channel: str, chat_id: str, text: str, now: datetime | None = None
    ) -> Urged:
        """Record a resident's 催办 of an open case (integration.urges.record_urge)."""
        async with self._engine.begin() as connection:
            return await record_urge(
                connection, number, channel, chat_id, text, now or utcnow(), self._can_urge
            )

    async def follow(self, number: str, channel: str, user_id: str, chat_id: str) -> CaseView:
        """Make a resident a follower of a case (idempotent): they receive its updates."""
        async with self._engine.begin() as connection:
            case_id = await connection.scalar(select(Case.id).where(Case.number == number.upper()))
            if case_id is None:
                raise CaseNotFound(number)
            resident_id = await ensure_resident(connection, channel, user_id)
            await connection.execute(
                insert_for(connection, CaseFollower)
                .values(
                    case_id=case_id,
                    resident_id=resident_id,
                    channel=channel,
                    chat_id=chat_id,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["case_id", "channel", "chat_id"])
            )
        return await self.get(number)


def _reported(draft: CaseDraft) -> dict[str, Any]:
    """A new case's columns that come from the resident's draft as they are."""
    return {
        "channel": draft.channel,
        "chat_id": draft.chat_id,
        "category": draft.category,
        "description": draft.description,
        "address": draft.address,
        "latitude": draft.latitude,
        "longitude": draft.longitude,
        "grid": draft.grid,
    }


async def _next_sequence(connection: AsyncConnection, now: datetime) -> tuple[date, int]:
    """Atomically take the next number of the local day (an upsert, safe across workers)."""
    day = now.astimezone(LOCAL_TZ).date()
    return day, await next_in_day(connection, CaseCounter, day)
