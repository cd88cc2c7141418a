"""When staff answer handoffs: opening sessions per weekday (错时服务), minus holidays.

Staff hours are not the windows' hours: a street office answers chats on Saturday
mornings too (错时服务), so they are configured on their own
(``YIMEN_HANDOFF_HOURS``), e.g. ``"1-5 08:30-12:00 14:00-18:00; 6 09:00-12:00"``.
Holidays and 调休 working days come from the service calendar (integration.services):
a holiday is closed whatever its weekday, and a make-up working day keeps Monday's hours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from integration.errors import IntegrationError
from integration.services.calendar import LOCAL_TZ, OfficeCalendar

DEFAULT_HOURS = "1-5 08:30-12:00 14:00-18:00; 6 09:00-12:00"
_SESSION = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DAYS = re.compile(r"^([1-7])(?:-([1-7]))?$")
MAX_DAYS = 400  # next_opening never looks further than this


class HoursError(IntegrationError):
    """A staff-hours setting that cannot be read; the message says where."""


Sessions = tuple[tuple[time, time], ...]


@dataclass(frozen=True, slots=True)
class StaffHours:
    """Staff answering sessions by ISO weekday, with the office calendar's holidays."""

    sessions: Mapping[int, Sessions]
    calendar: OfficeCalendar | None = None

    @classmethod
    def parse(cls, text: str, calendar: OfficeCalendar | None = None) -> StaffHours:
        """Read ``"1-5 08:30-12:00 14:00-18:00; 6 09:00-12:00"`` (ISO weekdays; 1 is Monday)."""
        sessions: dict[int, Sessions] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            days, *spans = part.split()
            found = _DAYS.match(days)
            if found is None or not spans:
                raise HoursError(f"staff hours: {part!r} is not 'DAYS HH:MM-HH:MM ...'")
            first, last = int(found.group(1)), int(found.group(2) or found.group(1))
            parsed = tuple(_session(span, part) for span in spans)
            for day in range(first, last + 1):
                sessions[day] = parsed
        if not sessions:
            raise HoursError("staff hours: no session given")
        return cls(sessions, calendar)

    def _today(self, moment: datetime) -> Sessions:
        day = moment.date()
        if self.calendar is not None:
            if day in self.calendar.workdays:  # 调休: a weekend worked as a weekday
                return self.sessions.get(1, ())
            if day in self.calendar.holidays:
                return ()
        return self.sessions.get(day.isoweekday(), ())

    def is_open(self, moment: datetime) -> bool:
        """Whether staff are answering at ``moment``."""
        local = moment.astimezone(LOCAL_TZ)
        return any(start <= local.time() < end for start, end in self._today(local))

    def next_opening(self, moment: datetime) -> datetime:
        """``moment`` when open, else when staff next start answering (local time)."""
        local = moment.astimezone(LOCAL_TZ)
        if self.is_open(local):
            return local
        day = local
        for _ in range(MAX_DAYS):
            for start, _end in self._today(day):
                opening = datetime.combine(day.date(), start, LOCAL_TZ)
                if opening > local:
                    return opening
            day = datetime.combine(day.date() + timedelta(days=1), time(), LOCAL_TZ)
        raise HoursError("staff hours: no opening within a year")


def _session(span: str, part: str) -> tuple[time, time]:
    found = _SESSION.match(span)
    if found is None:
        raise HoursError(f"staff hours: {span!r} in {part!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    try:
        start, end = time(h1, m1), time(h2, m2)
    except ValueError as exc:
        raise HoursError(f"staff hours: {span!r} is not a time of day") from exc
    if not start < end:
        raise HoursError(f"staff hours: {span!r} ends before it starts")
    return start, end
