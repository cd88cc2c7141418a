"""The centre's opening hours as the guide says them: the weekly sessions (周一至周五
09:00-12:00、13:30-17:30) and, asked about the centre, its address, phone and the closures
and make-up working days coming up."""

from __future__ import annotations

from datetime import date

from handlers.catalog import Catalog
from integration.services import ServiceCatalogue

_WEEKDAYS = "一二三四五六日"


def opening_hours(t: Catalog, services: ServiceCatalogue) -> str:
    """The weekly opening sessions (周一至周五 09:00-12:00、13:30-17:30)."""
    hours = services.hours
    days = sorted(hours.weekdays)
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
        named = f"周{_WEEKDAYS[days[0] - 1]}至周{_WEEKDAYS[days[-1] - 1]}"
    else:
        named = "、".join(f"周{_WEEKDAYS[d - 1]}" for d in days)
    sessions = "、".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in hours.sessions)
    return t("guide.hours", days=named, sessions=sessions)


def centre_hours(t: Catalog, services: ServiceCatalogue, today: date) -> str:
    """The centre's address, hours and phone, with the closures and make-up working
    days coming up after ``today``."""
    centre = services.centre
    text = t(
        "guide.centre_hours",
        centre=centre.name,
        address=centre.address,
        hours=opening_hours(t, services),
        phone=centre.phone,
    )
    closures, workdays = services.calendar.upcoming(today)
    items = [
        t("guide.closure", name=name, first=_day(first), last=_day(last))
        if first != last
        else t("guide.closure_day", name=name, day=_day(first))
        for name, first, last in closures
    ]
    items += [t("guide.make_up", day=_day(d), weekday=_WEEKDAYS[d.weekday()]) for d in workdays]
    if not items:
        return text
    return f"{text}\n{t('guide.upcoming', items='；'.join(items))}"


def _day(day: date) -> str:
    return f"{day.month}月{day.day}日"
