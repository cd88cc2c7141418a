"""Satisfaction after resolution: one question per resolution, at most one reminder.

The question row is written with the ``resolved`` change (integration.cases). An
answer is stored once; 满意 and 基本满意 close the case, 不满意 reopens it: on the
platform when it can reopen (an outbox job in the same transaction), else raised to
staff (a dead-letter entry that names the reason), and always in our own lifecycle so
the resident sees it open again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.cases import LOCAL_DESK
from integration.changes import (
    count_jobs,
    lock_case,
    notification_row,
    queue_job,
    record_change,
)
from integration.errors import IntegrationError
from integration.lifecycle import can_move
from integration.models import (
    Case,
    CaseStatus,
    Notification,
    NotificationKind,
    OutboxKind,
    OutboxState,
    Rating,
    utcnow,
)

STAFF_REASON = "platform cannot reopen: resident dissatisfied, raised to staff"


class Score(enum.StrEnum):
    """The three answers a resident can give."""

    satisfied = "satisfied"  # 满意
    basically = "basically"  # 基本满意
    dissatisfied = "dissatisfied"  # 不满意


class Reopened(enum.StrEnum):
    """Where a dissatisfied case went."""

    desk = "desk"  # the local desk: reopened in place
    platform = "platform"  # a reopen request queued for the platform
    staff = "staff"  # the platform cannot reopen: staff were asked to take it up


class AlreadyRated(IntegrationError):
    """This question was answered before."""


@dataclass(frozen=True, slots=True)
class RatingRequest:
    """A question waiting for (or having had) its answer."""

    id: int
    number: str
    category: str
    score: Score | None
    address: str = ""  # the case's place


@dataclass(frozen=True, slots=True)
class RatingSummary:
    """Ratings for the console dashboard: every answer counted, and the silent ones too."""

    asked: int
    answered: int
    satisfied: int
    basically: int
    dissatisfied: int

    @property
    def satisfaction(self) -> float | None:
        """满意 + 基本满意 among the answers; None before any answer."""
        return (self.satisfied + self.basically) / self.answered if self.answered else None

    @property
    def response_rate(self) -> float | None:
        """Answers among questions asked: a high satisfaction on few answers means little."""
        return self.answered / self.asked if self.asked else None


class RatingBook:
    """Asks, records and counts ratings; reopens dissatisfied cases."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        platform: str = LOCAL_DESK,
        can_reopen: bool = True,
    ) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._platform = platform
        self._can_reopen = can_reopen

    async def request(
        self, channel: str, chat_id: str, number: str | None = None
    ) -> RatingRequest | None:
        """The latest question to this chat (about ``number`` if given), answered or not.

        Without a number, only an unanswered question is returned.
        """
        query = (
            select(Rating.id, Rating.score, Case.number, Case.category, Case.address)
            .join(Case, Case.id == Rating.case_id)
            .where(Rating.channel == channel, Rating.chat_id == chat_id)
            .order_by(Rating.id.desc())
            .limit(1)
        )
        if number is None:
            query = query.where(Rating.answered_at.is_(None))
        else:
            query = query.where(Case.number == number.upper())
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        score = Score(row.score) if row.score else None
        return RatingRequest(row.id, row.number, row.category, score, row.address)

    async def rate(self, rating_id: int, score: Score) -> Reopened | None:
        """Store the answer once; close or reopen the case. Raises ``AlreadyRated``."""
        now = utcnow()
        async with self._engine.begin() as connection:
            case_id = await connection.scalar(
                update(Rating)
                .where(Rating.id == rating_id, Rating.answered_at.is_(None))
                .values(score=score.value, answered_at=now, reopened=score is Score.dissatisfied)
                .returning(Rating.case_id)
            )
            if case_id is None:
                raise AlreadyRated(str(rating_id))
            case = await lock_case(connection, Case.id == case_id)
            assert case is not None  # ratings cascade with their case
            current = CaseStatus(case.status)
            if score is not Score.dissatisfied:
                if current is CaseStatus.resolved:
                    await record_change(
                        connection,
                        case,
                        CaseStatus.closed,
                        "",
                        "resident",
                        now,
                        notify_reporter=False,
                    )
                return None
            if can_move(current, CaseStatus.reopened):
                await record_change(
                    connection,
                    case,
                    CaseStatus.reopened,
                    "",
                    "resident",
                    now,
                    notify_reporter=False,
                )
            if self._platform == LOCAL_DESK:
                return Reopened.desk
            round_ = await count_jobs(connection, case.id, OutboxKind.reopen) + 1
            if self._can_reopen:
                await queue_job(
                    connection, case.id, case.number, OutboxKind.reopen, now, round_=round_
                )
                return Reopened.platform
            await queue_job(
                connection,
                case.id,
                case.number,
                OutboxKind.reopen,
                now,
                round_=round_,
                state=OutboxState.dead,
                error=STAFF_REASON,
            )
            return Reopened.staff

    async def comment(self, rating_id: int, text: str) -> None:
        """Keep the resident's optional comment with their answer."""
        async with self._engine.begin() as connection:
            await connection.execute(
                update(Rating).where(Rating.id == rating_id).values(comment=text[:2000])
            )

    async def remind(self, older_than: timedelta) -> int:
        """Queue the one reminder of questions unanswered for ``older_than``; how many."""
        now = utcnow()
        query = (
            select(Rating.id, Rating.event_id, Rating.channel, Rating.chat_id, Case.status)
            .join(Case, Case.id == Rating.case_id)
            .where(
                Rating.answered_at.is_(None),
                Rating.reminded_at.is_(None),
                Rating.asked_at <= now - older_than,
            )
            .order_by(Rating.id)
            .limit(500)
            .with_for_update(of=Rating, skip_locked=True)
        )
        async with self._engine.begin() as connection:
            rows = (await connection.execute(query)).all()
            if not rows:
                return 0
            await connection.execute(
                update(Rating).where(Rating.id.in_([r.id for r in rows])).values(reminded_at=now)
            )
            # A case reopened meanwhile is no longer waiting for its rating.
            due = [r for r in rows if r.status in (CaseStatus.resolved, CaseStatus.closed)]
            if due:
                await connection.execute(
                    insert(Notification),
                    [
                        notification_row(
                            r.event_id, r.channel, r.chat_id, NotificationKind.reminder, now
                        )
                        for r in due
                    ],
                )
        return len(due)

    async def summary(self, since: datetime | None = None) -> RatingSummary:
        """Counts of questions and answers, for the dashboard."""
        query = select(Rating.score, func.count()).group_by(Rating.score)
        if since is not None:
            query = query.where(Rating.asked_at >= since)
        async with self._engine.connect() as connection:
            counts = {score: int(n) for score, n in await connection.execute(query)}
        answered = sum(n for score, n in counts.items() if score is not None)
        return RatingSummary(
            asked=sum(counts.values()),
            answered=answered,
            satisfied=counts.get(Score.satisfied.value, 0),
            basically=counts.get(Score.basically.value, 0),
            dissatisfied=counts.get(Score.dissatisfied.value, 0),
        )
