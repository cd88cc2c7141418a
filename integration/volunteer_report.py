"""Volunteers' records: items done, hours and residents helped, per volunteer and in totals.

Only confirmed items count (by the resident or staff). A month's report (the one a
street office sends upward) counts the items done in that month (local time), one
row per volunteer, with totals per community and per party branch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.models import ClaimStatus, ItemClaim, ItemStatus, ServiceItem, Volunteer
from integration.services.calendar import LOCAL_TZ


@dataclass(frozen=True, slots=True)
class Record:
    """What one volunteer (or a group of them) did."""

    items: int = 0
    hours: float = 0.0
    residents: int = 0


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One volunteer's line of a report."""

    volunteer_id: int
    name: str
    community: str
    branch: str
    record: Record


@dataclass(frozen=True, slots=True)
class MonthReport:
    """A month's rows and their totals per community and per branch."""

    month: str
    rows: tuple[ReportRow, ...]
    communities: tuple[tuple[str, Record], ...]
    branches: tuple[tuple[str, Record], ...]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instants of ``YYYY-MM`` and of the month after, in local time."""
    first = date.fromisoformat(f"{month}-01")
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (
        datetime(first.year, first.month, 1, tzinfo=LOCAL_TZ),
        datetime(after.year, after.month, 1, tzinfo=LOCAL_TZ),
    )


class VolunteerRecords:
    """Reads records from the relational store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    def _query(self, *where: ColumnElement[bool]) -> Any:
        resident = func.nullif(ServiceItem.channel + ":" + ServiceItem.user_id, ":")
        return (
            select(
                Volunteer.id,
                Volunteer.name,
                Volunteer.community,
                Volunteer.branch,
                func.count(ItemClaim.id),
                func.coalesce(func.sum(ItemClaim.hours), 0.0),
                func.count(distinct(resident)),
            )
            .join(ItemClaim, ItemClaim.volunteer_id == Volunteer.id)
            .join(ServiceItem, ServiceItem.id == ItemClaim.item_id)
            .where(
                ItemClaim.status == ClaimStatus.done.value,
                ServiceItem.status == ItemStatus.confirmed.value,
                *where,
            )
            .group_by(Volunteer.id, Volunteer.name, Volunteer.community, Volunteer.branch)
            .order_by(Volunteer.community, Volunteer.branch, Volunteer.id)
        )

    async def record(self, volunteer_id: int) -> Record:
        """The volunteer's whole record."""
        async with self._engine.connect() as connection:
            row = (await connection.execute(self._query(Volunteer.id == volunteer_id))).first()
        return Record(int(row[4]), float(row[5]), int(row[6])) if row else Record()

    async def month(self, month: str) -> MonthReport:
        """The report of ``YYYY-MM``: items done in that month and since confirmed."""
        start, end = month_bounds(month)
        query = self._query(ItemClaim.done_at >= start, ItemClaim.done_at < end)
        async with self._engine.connect() as connection:
            rows = tuple(
                ReportRow(r[0], r[1], r[2], r[3], Record(int(r[4]), float(r[5]), int(r[6])))
                for r in await connection.execute(query)
            )
        return MonthReport(
            month,
            rows,
            _totals((row.community, row.record) for row in rows),
            _totals((row.branch, row.record) for row in rows),
        )


def _totals(pairs: Iterable[tuple[str, Record]]) -> tuple[tuple[str, Record], ...]:
    totals: dict[str, Record] = {}
    for key, record in pairs:
        was = totals.get(key, Record())
        totals[key] = Record(
            was.items + record.items,
            round(was.hours + record.hours, 2),
            was.residents + record.residents,
        )
    return tuple(sorted(totals.items()))
