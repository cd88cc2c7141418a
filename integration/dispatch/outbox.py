"""The transactional outbox: forwarding jobs written with the change that needs them.

A worker claims due jobs with a lease in one statement (``UPDATE … WHERE id IN
(SELECT … FOR UPDATE SKIP LOCKED) RETURNING``; on SQLite the UPDATE alone takes the
write lock), so two workers never hold one job. Claiming counts the attempt and
stamps ``first_attempt_at`` before any request leaves: a worker killed between the
platform's answer and our commit leaves a job whose next attempt knows the platform
may already have the case. Completions of concurrent forwards share a transaction
(group commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.batch import GroupCommit
from integration.changes import Change, locked_cases, record_changes
from integration.dispatch.errors import DuplicatePlatformId
from integration.dispatch.types import CaseTicket
from integration.models import (
    Case,
    CaseMedia,
    CaseStatus,
    OutboxJob,
    OutboxKind,
    OutboxState,
    UTCDateTime,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed job with what the platform needs.

    ``maybe_sent``: an earlier attempt began, so the platform may already have it.
    ``platform_id`` is the case's id on the platform (known for reopen jobs).
    """

    id: int
    case_id: int
    kind: OutboxKind
    attempts: int
    maybe_sent: bool
    token: str | None
    note: str
    ticket: CaseTicket
    platform_id: str | None


@dataclass(frozen=True, slots=True)
class DeadJob:
    """A job that gave up, as staff see it."""

    number: str
    kind: OutboxKind
    attempts: int
    last_error: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Completion:
    job: Job
    platform_id: str | None


class Outbox:
    """Claims, completes, reschedules and buries forwarding jobs for one platform."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], platform: str) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.platform = platform
        self._completions: GroupCommit[_Completion, bool] = GroupCommit(self._write_completions)

    async def claim(
        self, *, limit: int = 50, lease: float = 60.0, due_by: datetime | None = None
    ) -> list[Job]:
        """Lease up to ``limit`` jobs due by ``due_by`` (default now), oldest first."""
        now = utcnow()
        stamp = literal(now, UTCDateTime())
        due = (
            select(OutboxJob.id)
            .where(
                OutboxJob.state == OutboxState.pending.value,
                OutboxJob.next_attempt_at <= (due_by or now),
            )
            .order_by(OutboxJob.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(OutboxJob)
            .where(OutboxJob.id.in_(due.scalar_subquery()))
            .values(
                next_attempt_at=now + timedelta(seconds=lease),
                attempts=OutboxJob.attempts + 1,
                first_attempt_at=func.coalesce(OutboxJob.first_attempt_at, stamp),
            )
            .returning(
                OutboxJob.id,
                OutboxJob.case_id,
                OutboxJob.kind,
                OutboxJob.attempts,
                OutboxJob.first_attempt_at,
                OutboxJob.token,
                OutboxJob.note,
                OutboxJob.key,
            )
        )
        async with self._engine.begin() as connection:
            claimed = (await connection.execute(claim)).all()
            if not claimed:
                return []
            cases = {row.id: row for row in await _cases(connection, [c.case_id for c in claimed])}
            media = await _media(connection, list(cases))
        jobs = []
        for row in sorted(claimed, key=lambda r: r.id):
            case = cases[row.case_id]
            ticket = CaseTicket(
                key=row.key,
                number=case.number,
                category=case.category,
                description=case.description,
                address=case.address,
                latitude=case.latitude,
                longitude=case.longitude,
                media_urls=tuple(media.get(case.id, ())),
                created_at=case.created_at,
            )
            jobs.append(
                Job(
                    id=row.id,
                    case_id=row.case_id,
                    kind=OutboxKind(row.kind),
                    attempts=row.attempts,
                    maybe_sent=row.first_attempt_at is not None and row.first_attempt_at < now,
                    token=row.token,
                    note=row.note,
                    ticket=ticket,
                    platform_id=case.platform_id,
                )
            )
        return jobs

    async def complete(self, job: Job, platform_id: str | None = None) -> bool:
        """Record a job done; for a create, keep the platform id against the case.

        A created case moves from received to accepted (the platform has it) in the
        same transaction, and that change is pushed. True when a status changed.
        Raises ``DuplicatePlatformId`` when another case already holds the id.
        """
        try:
            return await self._completions.submit(_Completion(job, platform_id))
        except IntegrityError:
            if platform_id is None:
                raise
            raise DuplicatePlatformId(platform_id, await self._holder(job, platform_id)) from None

    async def save_token(self, job: Job, token: str, delay: float) -> None:
        """Keep a create's token; the next attempt exchanges it for the id."""
        await self._set(
            job.id,
            token=token,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            last_error="waiting for the platform to turn its token into an id",
        )

    async def retry_later(self, job: Job, error: str, delay: float) -> None:
        """Reschedule a failed attempt."""
        await self._set(
            job.id, next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=error[:500]
        )

    async def bury(self, job: Job, error: str) -> None:
        """Give up on a job: it waits in the dead-letter list for staff."""
        await self._set(job.id, state=OutboxState.dead.value, last_error=error[:500])

    async def dead(self, limit: int = 100) -> list[DeadJob]:
        """The dead-letter list, oldest first."""
        query = (
            select(Case.number, OutboxJob)
            .join(Case, Case.id == OutboxJob.case_id)
            .where(OutboxJob.state == OutboxState.dead.value)
            .order_by(OutboxJob.id)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            DeadJob(r.number, OutboxKind(r.kind), r.attempts, r.last_error, r.created_at)
            for r in rows
        ]

    async def requeue(self, number: str | None = None) -> int:
        """Put dead jobs (of one case, or all) back in the queue, due now."""
        query = update(OutboxJob).where(OutboxJob.state == OutboxState.dead.value)
        if number is not None:
            case_ids = select(Case.id).where(Case.number == number.upper())
            query = query.where(OutboxJob.case_id.in_(case_ids))
        async with self._engine.begin() as connection:
            result = await connection.execute(
                query.values(state=OutboxState.pending.value, attempts=0, next_attempt_at=utcnow())
            )
        return int(result.rowcount or 0)

    async def oldest_pending_age(self) -> float:
        """Seconds since the oldest job still pending was queued (0 when none is)."""
        query = select(func.min(OutboxJob.created_at)).where(
            OutboxJob.state == OutboxState.pending.value
        )
        async with self._engine.connect() as connection:
            oldest = (await connection.execute(query)).scalar()
        return max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        query = select(OutboxJob.state, func.count()).group_by(OutboxJob.state)
        async with self._engine.connect() as connection:
            return {state: int(n) for state, n in await connection.execute(query)}

    async def _set(self, job_id: int, **values: object) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                update(OutboxJob)
                .where(OutboxJob.id == job_id, OutboxJob.state == OutboxState.pending.value)
                .values(**values)
            )

    async def _write_completions(self, items: Sequence[_Completion]) -> list[bool]:
        """Record a batch of finished jobs in a handful of statements.

        One platform id held twice violates the unique constraint and fails the whole
        batch; group commit then retries each item alone, so only the culprit fails.
        """
        now = utcnow()
        created = {i.job.case_id: i.platform_id for i in items if i.job.kind is OutboxKind.create}
        created = {case_id: pid for case_id, pid in created.items() if pid}
        changed: set[int] = set()
        async with self._engine.begin() as connection:
            if created:
                await connection.execute(
                    _SET_PLATFORM_ID,
                    [
                        {"case_id": case_id, "platform_id": pid, "platform": self.platform}
                        for case_id, pid in created.items()
                    ],
                )
                rows = await locked_cases(connection, list(created))
                received = [r for r in rows if CaseStatus(r.status) is CaseStatus.received]
                await record_changes(
                    connection,
                    [Change(r, CaseStatus.accepted, "", self.platform) for r in received],
                    now,
                )
                changed = {r.id for r in received}
            await connection.execute(
                update(OutboxJob)
                .where(OutboxJob.id.in_([i.job.id for i in items]))
                .values(state=OutboxState.done.value, done_at=now, last_error="")
            )
        return [i.job.kind is OutboxKind.create and i.job.case_id in changed for i in items]

    async def _holder(self, job: Job, platform_id: str) -> str:
        """The number of the case that already holds ``platform_id``."""
        query = select(Case.number).where(
            Case.platform == self.platform, Case.platform_id == platform_id, Case.id != job.case_id
        )
        async with self._engine.connect() as connection:
            return str(await connection.scalar(query) or "?")


_SET_PLATFORM_ID = (
    update(Case)
    .where(Case.id == bindparam("case_id"))
    .values(platform=bindparam("platform"), platform_id=bindparam("platform_id"))
)


async def _cases(connection: AsyncConnection, case_ids: list[int]) -> Sequence[Any]:
    query = select(
        Case.id,
        Case.number,
        Case.category,
        Case.description,
        Case.address,
        Case.latitude,
        Case.longitude,
        Case.created_at,
        Case.platform_id,
    ).where(Case.id.in_(case_ids))
    return (await connection.execute(query)).all()


async def _media(connection: AsyncConnection, case_ids: list[int]) -> dict[int, list[str]]:
    query = (
        select(CaseMedia.case_id, CaseMedia.url, CaseMedia.ref)
        .where(CaseMedia.case_id.in_(case_ids))
        .order_by(CaseMedia.id)
    )
    media: dict[int, list[str]] = {}
    for case_id, url, ref in await connection.execute(query):
        media.setdefault(case_id, []).append(url or ref)
    return media
