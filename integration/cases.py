"""The case book: creating cases, changing their status, and queueing the pushes.

Every status change writes its history entry and the notifications of the reporter and
every follower in one transaction, so a change is never recorded without its pushes
being durably queued. When cases go to an outside dispatch platform, creating a case
also queues its forwarding job (the outbox) in the same transaction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from integration.errors import CaseNotFound, InvalidTransition
from integration.lifecycle import OPEN, can_move
from integration.models import (
    Case,
    CaseCounter,
    CaseEvent,
    CaseFollower,
    CaseMedia,
    CaseStatus,
    Notification,
    NotificationKind,
    OutboxJob,
    OutboxKind,
    OutboxState,
    Rating,
    Resident,
    UTCDateTime,
    utcnow,
)
from integration.upsert import ensure_resident, insert_for

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
        """Snapshot a loaded case (with its media, events and followers loaded)."""
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
            followers=tuple((f.channel, f.chat_id) for f in case.followers),
        )

    def readable_by(self, channel: str, chat_id: str) -> bool:
        """Whether this chat reported or follows the case."""
        return (self.channel, self.chat_id) == (channel, chat_id) or (
            channel,
            chat_id,
        ) in self.followers


_INSERT_CASE = insert(Case).returning(Case.id)
_INSERT_EVENT = insert(CaseEvent).returning(CaseEvent.id, sort_by_parameter_order=True)
_LOCKED_COLUMNS = (
    Case.id,
    Case.number,
    Case.status,
    Case.channel,
    Case.chat_id,
    Case.platform,
    Case.platform_id,
    Case.platform_updated_at,
)


def format_number(day: date, sequence: int) -> str:
    """A short case number: YM, the local date as yymmdd, and the day's sequence."""
    return f"{NUMBER_PREFIX}{day:%y%m%d}{sequence:04d}"


def outbox_key(number: str, kind: OutboxKind, round_: int = 1) -> str:
    """The idempotency key of a forwarding job: the same on every attempt, unique per job."""
    return f"yimen-{number}-{kind.value}-{round_}"


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
    ) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.platform = platform

    async def create_case(self, draft: CaseDraft) -> CaseView:
        """Open a case in ``received`` and give it its number, in one transaction.

        Core statements rather than the ORM: this runs inside residents' turns. The
        forwarding job, when there is a platform, is one more insert in the same
        transaction: the case and its forwarding exist together or not at all.
        """
        now = utcnow()
        async with self._engine.begin() as connection:
            resident_id = await ensure_resident(connection, draft.channel, draft.user_id)
            number = format_number(*await _next_sequence(connection, now))
            local = self.platform == LOCAL_DESK
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
            if not local:
                await queue_job(connection, cast(int, case_id), number, OutboxKind.create, now)
        return CaseView.opened(draft, number, now)

    async def change_status(
        self,
        number: str,
        status: CaseStatus,
        note: str = "",
        actor: str = "staff",
        *,
        notify_reporter: bool = True,
    ) -> CaseView:
        """Move a case to ``status`` and queue the notifications, atomically."""
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
        return await self.get(number)

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
        """A resident's open cases, reported or followed, newest first."""
        resident = _resident_id(channel, user_id)
        followed = select(CaseFollower.case_id).where(CaseFollower.resident_id == resident)
        query = (
            _loaded(select(Case))
            .where(or_(Case.resident_id == resident, Case.id.in_(followed)))
            .where(Case.status.in_([s.value for s in OPEN]))
            .order_by(Case.id.desc())
        )
        async with self._sessions() as session:
            return [CaseView.of(c) for c in await session.scalars(query)]

    async def similar_open(self, draft: CaseDraft) -> list[CaseView]:
        """Open cases of others that ``draft`` likely repeats, nearest first.

        Same category, opened within the last 24 hours, and within 200 m of the draft's
        coordinates or at exactly its address. The resident's own and followed cases
        are left out: they are already theirs.
        """
        now = utcnow()
        resident = _resident_id(draft.channel, draft.user_id)
        followed = select(CaseFollower.case_id).where(CaseFollower.resident_id == resident)
        places = []
        if draft.address.strip():
            places.append(Case.address == draft.address.strip())
        lat, lon = draft.latitude, draft.longitude
        if lat is not None and lon is not None:
            dlat = DUPLICATE_RADIUS_M / 111_000.0
            dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
            places.append(
                and_(
                    Case.latitude.between(lat - dlat, lat + dlat),
                    Case.longitude.between(lon - dlon, lon + dlon),
                )
            )
        if not places:
            return []
        query = (
            _loaded(select(Case))
            .where(
                Case.category == draft.category,
                Case.created_at >= now - DUPLICATE_WINDOW,
                Case.status.in_([s.value for s in OPEN]),
                or_(*places),
                or_(Case.resident_id != resident, resident.is_(None)),
                Case.id.not_in(followed),
            )
            .order_by(Case.id.desc())
            .limit(20)
        )
        async with self._sessions() as session:
            cases = list(await session.scalars(query))
        found: list[tuple[float, CaseView]] = []
        for case in cases:
            if case.address == draft.address.strip() and draft.address.strip():
                found.append((0.0, CaseView.of(case)))
            elif None not in (lat, lon, case.latitude, case.longitude):
                meters = distance_m(lat, lon, case.latitude, case.longitude)  # type: ignore[arg-type]
                if meters <= DUPLICATE_RADIUS_M:
                    found.append((meters, CaseView.of(case)))
        return [view for _, view in sorted(found, key=lambda pair: pair[0])]

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


def _resident_id(channel: str, user_id: str) -> Any:
    return (
        select(Resident.id)
        .where(Resident.channel == channel, Resident.external_id == user_id)
        .scalar_subquery()
    )


def _loaded(query: Select[Any]) -> Select[Any]:
    """The query with each case's media, history and followers loaded alongside."""
    return query.options(
        selectinload(Case.media), selectinload(Case.events), selectinload(Case.followers)
    )


async def lock_case(connection: AsyncConnection, where: Any) -> Any:
    """The case row matching ``where`` (or None), locked for this transaction on PostgreSQL."""
    result = await connection.execute(select(*_LOCKED_COLUMNS).where(where).with_for_update())
    return result.first()


async def locked_cases(connection: AsyncConnection, case_ids: Sequence[int]) -> Sequence[Any]:
    """Several cases' rows, locked for this transaction on PostgreSQL (in id order)."""
    query = (
        select(*_LOCKED_COLUMNS).where(Case.id.in_(case_ids)).order_by(Case.id).with_for_update()
    )
    return (await connection.execute(query)).all()


async def queue_job(
    connection: AsyncConnection,
    case_id: int,
    number: str,
    kind: OutboxKind,
    now: datetime,
    *,
    note: str = "",
    round_: int = 1,
    state: OutboxState = OutboxState.pending,
    error: str = "",
) -> None:
    """Queue a forwarding job in the caller's transaction."""
    await connection.execute(
        insert(OutboxJob),
        {
            "case_id": case_id,
            "kind": kind.value,
            "key": outbox_key(number, kind, round_),
            "note": note,
            "state": state.value,
            "attempts": 0,
            "next_attempt_at": now,
            "first_attempt_at": None,
            "token": None,
            "last_error": error,
            "created_at": now,
            "done_at": None,
        },
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One status change of a locked case (a row from ``lock_case``), to be recorded."""

    case: Any
    status: CaseStatus
    note: str = ""
    actor: str = "staff"
    notify_reporter: bool = True  # False when the reporter caused it and was answered
    platform_time: datetime | None = None  # the platform's time of the change


_UPDATE_STATUS = (
    update(Case)
    .where(Case.id == bindparam("case_id"))
    .values(
        status=bindparam("new_status"),
        updated_at=bindparam("now"),
        platform_updated_at=func.coalesce(
            bindparam("platform_time", type_=UTCDateTime()), Case.platform_updated_at
        ),
    )
)


async def record_change(
    connection: AsyncConnection,
    case: Any,
    status: CaseStatus,
    note: str,
    actor: str,
    now: datetime,
    *,
    notify_reporter: bool = True,
    platform_time: datetime | None = None,
) -> int:
    """Write one status change of a locked case in the caller's transaction; its event id."""
    change = Change(case, status, note, actor, notify_reporter, platform_time)
    [event_id] = await record_changes(connection, [change], now)
    return event_id


async def record_changes(
    connection: AsyncConnection, changes: Sequence[Change], now: datetime
) -> list[int]:
    """Write status changes of distinct locked cases in the caller's transaction.

    Each gets its history entry, its new status and one notification for the reporter
    (unless they caused it) and each follower. A ``resolved`` change asks the reporter
    for a rating: their push carries the question and a rating row waits for the
    answer. A handful of statements for the whole list, however long: the outbox
    records a batch of forwarded cases at once. Returns the event ids, in order.
    """
    if not changes:
        return []
    events = await connection.execute(
        _INSERT_EVENT,
        [
            {
                "case_id": c.case.id,
                "status": c.status.value,
                "note": c.note,
                "actor": c.actor,
                "created_at": now,
            }
            for c in changes
        ],
    )
    event_ids = [int(row[0]) for row in events]
    await connection.execute(
        _UPDATE_STATUS,
        [
            {
                "case_id": c.case.id,
                "new_status": c.status.value,
                "now": now,
                "platform_time": c.platform_time,
            }
            for c in changes
        ],
    )
    followers: dict[int, list[tuple[str, str]]] = {}
    query = select(CaseFollower.case_id, CaseFollower.channel, CaseFollower.chat_id).where(
        CaseFollower.case_id.in_([c.case.id for c in changes])
    )
    for case_id, channel, chat_id in await connection.execute(query):
        followers.setdefault(case_id, []).append((channel, chat_id))
    notifications, ratings = [], []
    for change, event_id in zip(changes, event_ids, strict=True):
        case, resolved = change.case, change.status == CaseStatus.resolved
        recipients: dict[tuple[str, str], NotificationKind] = {}
        if change.notify_reporter or resolved:
            kind = NotificationKind.rating if resolved else NotificationKind.status
            recipients[(case.channel, case.chat_id)] = kind
        for chat in followers.get(case.id, ()):
            recipients.setdefault(chat, NotificationKind.status)
        notifications += [
            {
                "event_id": event_id,
                "channel": channel,
                "chat_id": chat_id,
                "kind": kind.value,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": "",
                "created_at": now,
                "sent_at": None,
            }
            for (channel, chat_id), kind in recipients.items()
        ]
        if resolved:
            ratings.append(
                {
                    "case_id": case.id,
                    "event_id": event_id,
                    "channel": case.channel,
                    "chat_id": case.chat_id,
                    "score": None,
                    "comment": "",
                    "reopened": False,
                    "asked_at": now,
                    "reminded_at": None,
                    "answered_at": None,
                }
            )
    if notifications:
        await connection.execute(insert(Notification), notifications)
    if ratings:
        await connection.execute(insert(Rating), ratings)
    return event_ids


async def count_jobs(connection: AsyncConnection, case_id: int, kind: OutboxKind) -> int:
    """How many jobs of ``kind`` a case has had (the round of the next one is this + 1)."""
    return int(
        await connection.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(OutboxJob.case_id == case_id, OutboxJob.kind == kind.value)
        )
        or 0
    )


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
