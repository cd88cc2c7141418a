"""When the service centre is open: working days, sessions and the lunch break between them.

A day is a working day when the calendar makes it one (a 调休 weekend), is not a
holiday, and otherwise falls on one of the working weekdays. Times are read in
Asia/Shanghai; a naive datetime is taken to be local time already.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from integration.services.models import CalendarFile, Hours

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
MAX_SEARCH_DAYS = 366  # next_working_days never looks further than a year ahead


@dataclass(frozen=True, slots=True)
class OfficeCalendar:
    """Opening hours, holidays and make-up working days."""

    weekdays: frozenset[int]
    sessions: tuple[tuple[time, time], ...]
    holidays: frozenset[date]
    workdays: frozenset[date]
    years: frozenset[int]  # the years the calendar file covers
    provisional: frozenset[int] = frozenset()  # years projected before their notice
    closures: tuple[tuple[str, date, date], ...] = ()  # each holiday: name, first, last day

    @classmethod
    def build(cls, hours: Hours, calendar: CalendarFile) -> OfficeCalendar:
        """The calendar from the catalogue's hours and the calendar file."""
        holidays: set[date] = set()
        workdays: set[date] = set()
        closures: list[tuple[str, date, date]] = []
        for year in calendar.years.values():
            for holiday in year.holidays:
                holidays |= set(_days(holiday.first, holiday.last))
                closures.append((holiday.name, holiday.first, holiday.last))
            workdays |= set(year.workdays)
        return cls(
            weekdays=frozenset(hours.weekdays),
            sessions=tuple(hours.sessions),
            holidays=frozenset(holidays),
            workdays=frozenset(workdays),
            years=frozenset(calendar.years),
            provisional=frozenset(n for n, y in calendar.years.items() if y.provisional),
            closures=tuple(sorted(closures, key=lambda c: c[1])),
        )

    def is_working_day(self, day: date) -> bool:
        """Whether the centre works on ``day`` (a 调休 Saturday does; a holiday does not)."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.isoweekday() in self.weekdays

    def is_open(self, moment: datetime) -> bool:
        """Whether the windows are open at ``moment`` (not at lunch, not after hours)."""
        local = _local(moment)
        if not self.is_working_day(local.date()):
            return False
        now = local.time()
        return any(start <= now < end for start, end in self.sessions)

    def next_working_days(self, after: date, count: int = 1) -> list[date]:
        """The first ``count`` working days strictly after ``after``."""
        found: list[date] = []
        day = after
        for _ in range(MAX_SEARCH_DAYS):
            if len(found) == count:
                break
            day += timedelta(days=1)
            if self.is_working_day(day):
                found.append(day)
        return found

    def next_opening(self, moment: datetime) -> datetime:
        """``moment`` itself when open, else when the windows next open (local time)."""
        local = _local(moment)
        if self.is_open(local):
            return local
        if self.is_working_day(local.date()):
            for start, _end in self.sessions:
                if local.time() < start:
                    return datetime.combine(local.date(), start, LOCAL_TZ)
        day = self.next_working_days(local.date())[0]
        return datetime.combine(day, self.sessions[0][0], LOCAL_TZ)

    def upcoming(
        self, today: date, days: int = 30
    ) -> tuple[list[tuple[str, date, date]], list[date]]:
        """Holidays (name, first, last) and make-up working days in the next ``days`` days.

        A holiday already under way on ``today`` is included.
        """
        until = today + timedelta(days=days)
        closures = [c for c in self.closures if c[2] >= today and c[1] <= until]
        workdays = sorted(d for d in self.workdays if today <= d <= until)
        return closures, workdays

    def covers(self, day: date) -> bool:
        """Whether the calendar file lists ``day``'s year (else only weekdays are known)."""
        return day.year in self.years


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=LOCAL_TZ)
    return moment.astimezone(LOCAL_TZ)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)
