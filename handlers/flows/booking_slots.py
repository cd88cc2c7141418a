"""What the booking flows share: reading the wanted time, finding free slots, naming them.

The ``time`` entity is resolved again from its words against the message's own time
(``Inbound.time``), so a booking is read against the moment the resident wrote, not
the moment the model ran (and tests can fix the clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from re import Pattern
from typing import Protocol

from handlers.catalog import Catalog
from handlers.flows.base import Turn
from handlers.messages import Button
from handlers.words import ORDINAL, AnyOf, ordinal, words
from integration.appointments import Booking, BookingDraft
from integration.services import Service, ServiceCatalogue
from integration.services.calendar import LOCAL_TZ
from integration.services.slots import SlotPlanner, Verdict
from nlu.timeparse import TimeParseError, TimeValue, resolve

# A booking that also asks what to bring (还有身份证要带吗): told the list comes with it.
ASKS_PAPERS = words(
    "asks_papers", "要带|带什么|带啥|什么材料|啥材料|哪些材料|需要什么|需要哪些|要什么"
)
# Asked which service, a question about one instead of a choice (就是想问问低保, 居住证要带
# 什么材料): its card, which offers 预约办理. 社保卡可以吗 or 低保能约明天吗 choose.
ASKING_FIRST = words(
    "asking_first",
    "^(?!.*(约|挂号|排号|取号)).*(想问问|问一下|问问|咨询|了解|打听|怎么|怎样|如何|咋|要带|带什么|"
    "带啥|什么材料|啥材料|需要什么|需要哪些|要什么|流程|条件|手续)",
)
OFFERED = 4  # free slots offered as buttons
SLOT = "booking:slot:"  # + the slot's ISO start; shared by booking and moving
# 越早越好 / 随便 / 都行 at the slots offered: the first (the soonest) of them.
EARLIEST = words("earliest", "越早越好|越快越好|最早|最快|尽早|尽快|早点的|随便|都行|都可以|无所谓")
# 第二个 / 最后一个 / 越早越好, among the slots offered
PICKED = AnyOf("picked", (words("slot_ordinal", ORDINAL.pattern), EARLIEST))


def slot_position(text: str, count: int) -> int | None:
    """The position among ``count`` slots offered that ``text`` picks, if any."""
    position = ordinal(text, count)
    if position is None and count and EARLIEST.search(text):
        return 0
    return position


_WEEKDAYS = "一二三四五六日"


class AppointmentDesk(Protocol):
    """Where the booking flows take, list, cancel and move bookings."""

    async def book(self, draft: BookingDraft) -> Booking:
        """Take a place (raises ``SlotFull``) and return the booking with its number."""
        ...

    async def taken(self, window: str, first: datetime, last: datetime) -> dict[datetime, int]:
        """Places taken per slot start of a window, from ``first`` up to ``last``."""
        ...

    async def upcoming(self, channel: str, user_id: str, now: datetime) -> list[Booking]:
        """The resident's own bookings still to come."""
        ...

    async def cancel(self, number: str, channel: str, user_id: str) -> Booking:
        """Cancel the resident's own booking (raises ``AppointmentNotFound``)."""
        ...

    async def move(
        self, number: str, channel: str, user_id: str, starts_at: datetime, capacity: int
    ) -> Booking:
        """Move the resident's own booking to another slot (raises ``SlotFull``)."""
        ...


@dataclass(frozen=True, slots=True)
class Wanted:
    """A time the resident asked for: a point, or the interval ``[start, end)``."""

    start: datetime
    end: datetime | None
    day_only: bool  # a day with no time of day (后天, 11月28日)
    said_until: int = 0  # where its words end in the message's text
    said_from: int = 0  # where they begin


def wanted_time(
    turn: Turn, offered: Sequence[datetime] = (), *, span: tuple[int, int] | None = None
) -> Wanted | None:
    """The first time the message names (within the characters ``span`` of its text,
    when given), read against the message's time.

    A time of day alone (10点, 下午) falls on a day of the ``offered`` slots: the first
    on which it is not before the first slot offered (后天上午 offered 09:00…, then
    10点 is 后天 10:00), else the first day offered; today when nothing was offered.
    Periods (连续一周, 每晚10点至凌晨2点) do not resolve and are passed over: a
    duration is never a slot.
    """
    now = turn.inbound.time.astimezone(LOCAL_TZ)
    for entity in turn.parse.entities:
        if entity.entity != "time":
            continue
        if span is not None and not span[0] <= entity.start < span[1]:
            continue
        expression = turn.parse.text[entity.start : entity.end]
        try:
            value = _on_offered_day(expression, now, offered) or resolve(expression, now)
        except TimeParseError:
            continue
        break
    else:
        return None
    start, end, grain = value.start, value.end, value.grain
    if end is None and grain in ("day", "week"):
        end = start + timedelta(days=1 if grain == "day" else 7)
    day_only = grain in ("day", "week")
    return Wanted(
        start.astimezone(LOCAL_TZ), end, day_only, said_until=entity.end, said_from=entity.start
    )


def come_or_not(
    turn: Turn, offered: Sequence[datetime], cannot: Pattern[str]
) -> tuple[Wanted | None, Wanted | None]:
    """The time the resident can come and the one they cannot, as the message says them.

    A time is one they cannot come at when ``cannot`` words (有事, 去不了) follow it
    before the next time: 明天上午有事，下午可以 cannot come 明天上午 and can come
    下午, which falls on that same day; 后天上午可以，明天不行 can come 后天上午.
    """
    text, said, start = turn.parse.text, [], 0
    while (found := wanted_time(turn, offered, span=(start, len(text)))) is not None:
        said.append(found)
        start = found.said_until
    if not said:
        return None, None
    ends = [w.said_from for w in said[1:]] + [len(text)]
    refused = [
        w for w, end in zip(said, ends, strict=True) if cannot.search(text, w.said_until, end)
    ]
    if not refused:
        return said[0], None
    can = next((w for w in said if w not in refused), None)
    if can is not None:  # a time of day alone falls on the day refused
        on_that_day = wanted_time(turn, [refused[0].start], span=(can.said_from, can.said_until))
        can = on_that_day or can
    return can, refused[0]


def _on_offered_day(
    expression: str, now: datetime, offered: Sequence[datetime]
) -> TimeValue | None:
    """``expression`` on the first day of ``offered`` that suits it (see ``wanted_time``),
    or None when nothing was offered."""
    firsts: dict[date, datetime] = {}
    for start in sorted(s.astimezone(LOCAL_TZ) for s in offered):
        firsts.setdefault(start.date(), start)
    values = [(resolve(expression, now, on=day), first) for day, first in firsts.items()]
    suits = next((value for value, first in values if value.start >= first), None)
    return suits or (values[0][0] if values else None)


class Slots:
    """Free slots of a service, by the planner and the places the desk says are taken."""

    def __init__(self, services: ServiceCatalogue, desk: AppointmentDesk) -> None:
        self.services = services
        self.planner = SlotPlanner(services)
        self._desk = desk

    async def free(
        self,
        service: Service,
        after: datetime,
        now: datetime,
        *,
        before: datetime | None = None,
        count: int = OFFERED,
        skip: datetime | None = None,
    ) -> list[datetime]:
        """The first ``count`` slots from ``after`` (up to ``before``) with a place left."""
        starts = [s for s in self.planner.upcoming(service, after, now) if s != skip]
        if before is not None:
            starts = [s for s in starts if s < before]
        if not starts:
            return []
        taken = await self._desk.taken(service.window, starts[0], starts[-1])
        capacity = self.planner.capacity(service)
        return [s for s in starts if taken.get(s.astimezone(LOCAL_TZ), 0) < capacity][:count]

    async def has_room(self, service: Service, start: datetime) -> bool:
        """Whether one slot still has a place."""
        taken = await self._desk.taken(service.window, start, start)
        return next(iter(taken.values()), 0) < self.planner.capacity(service)

    def check(self, service: Service, wanted: datetime, now: datetime) -> Verdict:
        """The planner's verdict on one time."""
        return self.planner.check(service, wanted, now)


def slot_label(start: datetime) -> str:
    """A slot as residents read it: 12月7日 周一 09:00."""
    local = start.astimezone(LOCAL_TZ)
    return f"{local.month}月{local.day}日 周{_WEEKDAYS[local.weekday()]} {local:%H:%M}"


def day_label(start: datetime) -> str:
    """A day: 12月5日（周六）."""
    local = start.astimezone(LOCAL_TZ)
    return f"{local.month}月{local.day}日（周{_WEEKDAYS[local.weekday()]}）"


def slot_buttons(t: Catalog, starts: list[datetime], cancel: str) -> tuple[Button, ...]:
    """One button per slot, then 取消."""
    buttons = [Button(slot_label(s), f"{SLOT}{s.isoformat()}") for s in starts]
    return (*buttons, Button(t("button.cancel"), cancel))


def slot_of(payload: str) -> datetime | None:
    """The slot start a slot button carries."""
    if not payload.startswith(SLOT):
        return None
    try:
        return datetime.fromisoformat(payload.removeprefix(SLOT)).astimezone(LOCAL_TZ)
    except ValueError:
        return None


def refusal_text(t: Catalog, services: ServiceCatalogue, verdict: Verdict, wanted: datetime) -> str:
    """Why a wanted time cannot be booked, in the catalogue's words."""
    assert verdict.refusal is not None
    hours = services.hours.sessions
    return t(
        f"booking.why_{verdict.refusal.value}",
        day=day_label(wanted),
        time=slot_label(wanted),
        holiday=verdict.holiday,
        lunch=f"{hours[0][1]:%H:%M}-{hours[-1][0]:%H:%M}",
        hours="、".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in hours),
    )
