"""Appointment slots: when a service can be booked, and why a given time cannot.

A slot starts at a session's start and every ``slot_minutes`` after, and ends within
the session, so none runs into the lunch break or past closing. Working days follow
the calendar (holidays closed, 调休 weekends open). Each slot of a window takes its
window's ``capacity`` residents. Booking is open from now (a slot already started is
past) to ``HORIZON_DAYS`` ahead. Times are Asia/Shanghai.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from integration.services import ServiceCatalogue
from integration.services.calendar import LOCAL_TZ
from integration.services.models import Service

HORIZON_DAYS = 30  # how far ahead a slot may be booked


class Refusal(enum.StrEnum):
    """Why a time cannot be booked (each has a catalogue text appointment.why_<name>)."""

    not_bookable = "not_bookable"
    past = "past"
    holiday = "holiday"
    closed_day = "closed_day"
    lunch = "lunch"
    outside_hours = "outside_hours"
    too_far = "too_far"
    full = "full"  # every place of the slot is taken (the desk knows, not the planner)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The slot a wanted time falls in, or why there is none (``holiday`` names it)."""

    slot: datetime | None
    refusal: Refusal | None = None
    holiday: str = ""


class SlotPlanner:
    """Slots of the catalogue's services, by the catalogue's hours and calendar."""

    def __init__(self, catalogue: ServiceCatalogue) -> None:
        self._catalogue = catalogue

    def capacity(self, service: Service) -> int:
        """Residents one slot of the service's window takes."""
        return self._catalogue.windows[service.window].capacity

    def day_slots(self, service: Service, day: date) -> list[datetime]:
        """Every slot start of ``service`` on ``day`` (none on a day the centre is closed)."""
        if not service.bookable or not self._catalogue.calendar.is_working_day(day):
            return []
        length = timedelta(minutes=service.slot_minutes or 0)
        starts: list[datetime] = []
        for opens, closes in self._catalogue.hours.sessions:
            start = datetime.combine(day, opens, LOCAL_TZ)
            end = datetime.combine(day, closes, LOCAL_TZ)
            while start + length <= end:
                starts.append(start)
                start += length
        return starts

    def upcoming(self, service: Service, after: datetime, now: datetime) -> Iterator[datetime]:
        """Bookable slot starts from ``after`` on (never before ``now``), within the horizon."""
        first = max(_local(after), _local(now))
        last_day = _local(now).date() + timedelta(days=HORIZON_DAYS)
        day = first.date()
        while day <= last_day:
            for start in self.day_slots(service, day):
                if start >= first and start > _local(now):
                    yield start
            day += timedelta(days=1)

    def check(self, service: Service, wanted: datetime, now: datetime) -> Verdict:
        """The slot holding ``wanted``, or why ``wanted`` cannot be booked."""
        if not service.bookable:
            return Verdict(None, Refusal.not_bookable)
        local, current = _local(wanted), _local(now)
        day = local.date()
        if local <= current:
            return Verdict(None, Refusal.past)
        if day > current.date() + timedelta(days=HORIZON_DAYS):
            return Verdict(None, Refusal.too_far)
        calendar = self._catalogue.calendar
        if not calendar.is_working_day(day):
            name = next((n for n, a, b in calendar.closures if a <= day <= b), "")
            if name and day in calendar.holidays:
                return Verdict(None, Refusal.holiday, name)
            return Verdict(None, Refusal.closed_day)
        length = timedelta(minutes=service.slot_minutes or 0)
        slot = next((s for s in self.day_slots(service, day) if s <= local < s + length), None)
        if slot is None:
            sessions = self._catalogue.hours.sessions
            inside_day = sessions[0][0] <= local.time() < sessions[-1][1]
            return Verdict(None, Refusal.lunch if inside_day else Refusal.outside_hours)
        if slot <= current:
            return Verdict(None, Refusal.past)
        return Verdict(slot)


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=LOCAL_TZ)
    return moment.astimezone(LOCAL_TZ)
