"""Status sync: platform reports become status changes, each recorded once, in order.

Callbacks and polling both end here. A report is applied in one transaction with the
case locked:

- older than (or as old as) the last report applied, by the platform's own clock: stale;
- the status the case already has: a duplicate;
- a move the lifecycle allows: recorded, and the reporter and followers are notified;
- backwards: ignored, except that a *newer* report of an open status for a finished
  case means the platform reopened it, which is recorded as ``reopened``.

So duplicated, reordered and stale reports never notify twice or go back.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.changes import lock_case, record_change
from integration.dispatch.errors import CallbackRefused
from integration.dispatch.types import StatusReport
from integration.errors import CaseNotFound
from integration.lifecycle import FINISHED, OPEN, can_move
from integration.models import CallbackReceipt, Case, CaseStatus, utcnow
from integration.upsert import insert_for


class Outcome(enum.StrEnum):
    """What applying a report did."""

    applied = "applied"
    duplicate = "duplicate"
    stale = "stale"
    backwards = "backwards"


class StatusSync:
    """Applies platform status reports to cases of one platform."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], platform: str) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.platform = platform

    async def apply(self, report: StatusReport, *, receipt: str | None = None) -> Outcome:
        """Apply one report; ``receipt`` (a callback's signature) refuses replays.

        The receipt is stored in the same transaction, so a callback that failed to
        apply can be delivered again. Raises ``CaseNotFound`` for an unknown case and
        ``CallbackRefused`` (409) for a replay.
        """
        now = utcnow()
        async with self._engine.begin() as connection:
            if receipt is not None:
                stored = await connection.scalar(
                    insert_for(connection, CallbackReceipt)
                    .values(digest=receipt, received_at=now)
                    .on_conflict_do_nothing(index_elements=["digest"])
                    .returning(CallbackReceipt.digest)
                )
                if stored is None:
                    raise CallbackRefused("replayed callback", status=409)
            matches: list[Any] = []
            if report.platform_id:
                matches.append(
                    (Case.platform == self.platform) & (Case.platform_id == report.platform_id)
                )
            if report.reference:  # before our commit of the platform id, the number finds it
                matches.append(Case.number == report.reference.upper())
            case = await lock_case(connection, or_(*matches)) if matches else None
            if case is None:
                raise CaseNotFound(report.reference or report.platform_id)
            current, target = CaseStatus(case.status), report.status
            at, last = report.updated_at, case.platform_updated_at
            newer = at is not None and (last is None or at > last)
            if at is not None and last is not None and at <= last:
                return Outcome.stale
            if target == current:
                outcome = Outcome.duplicate
            elif can_move(current, target):
                await record_change(
                    connection,
                    case,
                    target,
                    report.note,
                    f"platform:{self.platform}",
                    now,
                    platform_time=at,
                )
                return Outcome.applied
            elif current in FINISHED and target in OPEN and newer and last is not None:
                await record_change(
                    connection,
                    case,
                    CaseStatus.reopened,
                    report.note,
                    f"platform:{self.platform}",
                    now,
                    platform_time=at,
                )
                return Outcome.applied
            else:
                outcome = Outcome.backwards
            if newer:
                await connection.execute(
                    update(Case).where(Case.id == case.id).values(platform_updated_at=at)
                )
            return outcome

    async def tracked(self, limit: int = 5000) -> dict[str, tuple[CaseStatus, datetime | None]]:
        """This platform's cases that may still change (open or resolved), by platform id,
        with the status and platform time we hold for each."""
        statuses = [s.value for s in (*OPEN, CaseStatus.resolved)]
        query = (
            select(Case.platform_id, Case.status, Case.platform_updated_at)
            .where(
                Case.platform == self.platform,
                Case.platform_id.is_not(None),
                Case.status.in_(statuses),
            )
            .order_by(Case.id)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = await connection.execute(query)
            return {str(pid): (CaseStatus(status), at) for pid, status, at in rows}

    async def forget_receipts(self, older_than: timedelta) -> int:
        """Drop replay receipts past the signature tolerance (those are refused as stale)."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(CallbackReceipt).where(CallbackReceipt.received_at < utcnow() - older_than)
            )
        return int(result.rowcount or 0)


def news(
    reports: Sequence[StatusReport], known: dict[str, tuple[CaseStatus, datetime | None]]
) -> list[StatusReport]:
    """The reports that may change something, oldest first: a poll of thousands of cases
    touches the database only for those (``apply`` decides for certain)."""
    fresh = []
    for report in reports:
        status, at = known.get(report.platform_id, (None, None))
        if report.status == status:
            continue
        if report.updated_at is not None and at is not None and report.updated_at <= at:
            continue
        fresh.append(report)
    return in_order(fresh)


def in_order(reports: Sequence[StatusReport]) -> list[StatusReport]:
    """Reports sorted by the platform's time (undated ones keep their place at the end)."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(reports, key=lambda r: (r.updated_at is None, r.updated_at or floor))
