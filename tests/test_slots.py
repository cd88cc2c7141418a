"""Appointment slots from the shipped catalogue and calendar: hours, lunch, holidays, 调休.

The clock is always given, so nothing depends on today's date. 2026-12-07 is a Monday.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from itertools import islice

import pytest

from integration.services import ServiceCatalogue, load_catalogue
from integration.services.calendar import LOCAL_TZ
from integration.services.slots import HORIZON_DAYS, Refusal, SlotPlanner


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LOCAL_TZ)


@pytest.fixture(scope="module")
def services() -> ServiceCatalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def planner(services: ServiceCatalogue) -> SlotPlanner:
    return SlotPlanner(services)


def test_a_working_day_has_slots_in_both_sessions_and_none_at_lunch(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    permit = services.service("residence_permit")  # 15-minute slots
    slots = planner.day_slots(permit, at("2026-12-07").date())
    clocks = [s.time() for s in slots]
    assert clocks[0] == time(9, 0) and time(11, 45) in clocks and time(13, 30) in clocks
    assert clocks[-1] == time(17, 15)
    assert not [c for c in clocks if time(11, 46) <= c < time(13, 30)]
    assert len(slots) == 12 + 16


def test_no_slot_runs_into_lunch_or_past_closing(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    sessions = services.hours.sessions
    for service in services.services.values():
        length = timedelta(minutes=service.slot_minutes or 0)
        for start in planner.day_slots(service, at("2026-12-07").date()):
            end = (start + length).time()
            assert any(a <= start.time() and end <= b for a, b in sessions), (service.id, start)


def test_holidays_and_weekends_have_none_but_a_make_up_saturday_has(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    permit = services.service("residence_permit")
    assert planner.day_slots(permit, at("2026-10-01").date()) == []  # 国庆节
    assert planner.day_slots(permit, at("2026-12-05").date()) == []  # a plain Saturday
    make_up = planner.day_slots(permit, at("2026-10-10").date())  # 国庆节调休, a Saturday
    assert make_up and make_up[0] == at("2026-10-10T09:00")


@pytest.mark.parametrize(
    ("wanted", "refusal"),
    [
        ("2026-12-08T12:30", Refusal.lunch),
        ("2026-12-08T18:00", Refusal.outside_hours),
        ("2026-12-08T08:00", Refusal.outside_hours),
        ("2026-12-12T10:00", Refusal.closed_day),  # Saturday
        ("2026-12-07T09:00", Refusal.past),  # earlier the same morning
        ("2026-12-07T10:05", Refusal.past),  # the slot under way
        ("2027-02-10T10:00", Refusal.too_far),
    ],
)
def test_why_a_time_cannot_be_booked(
    planner: SlotPlanner, services: ServiceCatalogue, wanted: str, refusal: Refusal
) -> None:
    permit = services.service("residence_permit")
    verdict = planner.check(permit, at(wanted), at("2026-12-07T10:07"))
    assert verdict.slot is None and verdict.refusal is refusal


def test_a_holiday_is_named(planner: SlotPlanner, services: ServiceCatalogue) -> None:
    verdict = planner.check(
        services.service("residence_permit"), at("2026-10-02T10:00"), at("2026-09-28T10:00")
    )
    assert (verdict.refusal, verdict.holiday) == (Refusal.holiday, "国庆节")


def test_a_time_inside_a_slot_books_that_slot(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    verdict = planner.check(
        services.service("residence_permit"), at("2026-12-08T14:05"), at("2026-12-07T10:07")
    )
    assert verdict.slot == at("2026-12-08T14:00") and verdict.refusal is None


def test_a_service_that_cannot_be_booked_has_no_slots(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    walk_in = services.service("residence_permit").model_copy(update={"bookable": False})
    assert planner.day_slots(walk_in, at("2026-12-08").date()) == []
    verdict = planner.check(walk_in, at("2026-12-08T10:00"), at("2026-12-07T10:07"))
    assert verdict.refusal is Refusal.not_bookable


def test_upcoming_never_offers_a_past_slot(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    permit = services.service("residence_permit")
    now = at("2026-12-07T10:07")
    first = list(islice(planner.upcoming(permit, now - timedelta(days=3), now), 2))
    assert first == [at("2026-12-07T10:15"), at("2026-12-07T10:30")]


def test_upcoming_crosses_the_month_end(planner: SlotPlanner, services: ServiceCatalogue) -> None:
    permit = services.service("residence_permit")
    now = at("2026-11-30T17:20")  # Monday, after the last slot
    assert next(planner.upcoming(permit, now, now)) == at("2026-12-01T09:00")


def test_upcoming_skips_new_year_and_the_weekend(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    permit = services.service("residence_permit")
    now = at("2026-12-31T17:20")  # 元旦 2027-01-01 (Friday), then a weekend
    assert next(planner.upcoming(permit, now, now)) == at("2027-01-04T09:00")


def test_upcoming_stops_at_the_horizon(planner: SlotPlanner, services: ServiceCatalogue) -> None:
    permit = services.service("residence_permit")
    now = at("2026-12-07T10:07")
    last = list(planner.upcoming(permit, now, now))[-1]
    assert last.date() <= (now + timedelta(days=HORIZON_DAYS)).date()


def test_the_window_capacity_defaults_to_five(
    planner: SlotPlanner, services: ServiceCatalogue
) -> None:
    assert planner.capacity(services.service("residence_permit")) == 5
