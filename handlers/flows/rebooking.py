"""Cancelling or moving a booking (cancel_appointment): 取消我明天的预约 / 改一下时间.

Only the resident's own upcoming bookings are listed or touched: a typed booking
number that is not among them gets the same answer whether it exists or not.

Steps: ``pick`` (several bookings: which, by button, number, position, its day or
its booking number) → ``action`` (取消预约 / 改时间, when the message said neither) →
``time`` (moving: the nearest free slots of the same window, or a time said). Cancelling
and moving both release the place held.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Expect, Turn
from handlers.flows.booking_slots import (
    PICKED,
    SLOT,
    AppointmentDesk,
    Slots,
    Wanted,
    day_label,
    refusal_text,
    slot_buttons,
    slot_label,
    slot_of,
    slot_position,
    wanted_time,
)
from handlers.flows.guide_match import ServiceMatcher
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import ordinal, words
from integration.appointments import AppointmentNotFound, Booking, SlotFull
from integration.services import ServiceCatalogue
from integration.services.calendar import LOCAL_TZ
from integration.services.slots import Refusal, Verdict
from nlu.timeparse import resolve

PICK = "rebooking:pick:"  # + a booking number
DROP, MOVE = "rebooking:cancel", "rebooking:move"
MOVE_WORDS = words("move", "改|换|调|挪|推迟|提前|延后")
DROP_WORDS = words("drop", "(?<!不)取消|不去了|不约了|不用了|退掉|退号")
# Not coming, which says neither cancel nor move: asked which, unless a new time is
# said too (我后天去不了了，下周一行吗 moves it). 取消吧 at the move's time question used to
# leave the booking as it was (预约没有改动) when the resident meant to cancel it.
CANT_COME = words("cant_come", "去不了|来不了|没空|没时间|有事|去不成|来不成|赶不上|赶不过来")
# At the move's time question: cancelling the booking itself, not the move.
DROP_BOOKING = words(
    "drop_booking", "取消(这个|我的|该|整个)?预约|预约(取消|不要了|退了)|退号|不约了|不去了"
)
_NUMBER = re.compile(r"yy\d{10}", re.IGNORECASE)
# 改到周二 / 换成下周三上午 / 推迟到周五: the time after these is the new time, not the
# booking's day (周二的预约改一下).
_TO_TIME = re.compile("(?:改|换|调|挪|推迟|延后|延期|提前|推|延)(?:到|成|在)")
# 后天同一时间 / 下周一还是这个点: the new day at the booking's time of day.
_SAME_CLOCK = re.compile("同一?个?时间|同样的?时间|一样的?时间|原来的?时间|原时间|同一个?点|这个点")


class RebookingFlow:
    """Cancels or moves the resident's own bookings."""

    name = "rebooking"

    def __init__(self, services: ServiceCatalogue, desk: AppointmentDesk, catalog: Catalog) -> None:
        self._services = services
        self._desk = desk
        self._t = catalog
        self._slots = Slots(services, desk)
        self._matcher = ServiceMatcher(services)

    # -- the Flow protocol -------------------------------------------------------------

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Find the booking meant, then cancel or move it."""
        inbound = turn.inbound
        mine = await self._desk.upcoming(inbound.channel, inbound.user_id, _now(turn))
        state.begin(self.name, "pick", {"action": _action(turn)})
        typed = _NUMBER.search(turn.text)
        if typed is not None:
            mine = [b for b in mine if b.number == typed.group().upper()]
            if not mine:
                state.finish()
                return [Outbound(self._t("rebooking.not_yours", number=typed.group().upper()))]
        if not mine:
            state.finish()
            return [Outbound(self._t("rebooking.none"))]
        wanted, to = _days_said(turn, state.slots["action"])
        if not state.slots["action"] and CANT_COME.search(turn.text):
            wanted, to = _days_said(turn, "move")
            state.slots["action"] = "move" if to is not None else ""
        if to is not None:
            # The new time, kept until the booking is known (several: the resident picks).
            end = to.end.isoformat() if to.end is not None else None
            state.slots.update(action="move", to=[to.start.isoformat(), end])
            if not to.day_only:  # 改到下午: read again on the booking's day, once known
                state.slots["to_words"] = turn.parse.text[to.said_from : to.said_until]
            if to.day_only and _SAME_CLOCK.search(turn.text):
                state.slots["same_clock"] = True
        lead = ""
        if wanted is not None:
            on_day = [b for b in mine if _day(b) == wanted.start.date()]
            if not on_day:  # 取消我明天的预约 with none tomorrow: never another day's
                lead = self._t("rebooking.none_that_day", day=day_label(wanted.start))
            mine = on_day or mine
        if len(mine) == 1 and not lead:
            return await self._picked(mine[0], turn, state)
        state.slots["offered"] = [b.number for b in mine[:6]]
        listing = self._list(mine[:6])
        return [Outbound(f"{lead}\n{listing.text}".strip(), listing.buttons)]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Continue at the current step."""
        if state.step == "pick":
            return await self._on_pick(turn, state)
        if state.step == "action":
            return await self._on_action(turn, state)
        return await self._on_time(turn, state)

    def expect(self, state: ConversationState) -> Expect:
        """Buttons, days and numbers (pick), cancel/move words (action), times (time)."""
        if state.step == "pick":
            return Expect(prefixes=(PICK,), entities=frozenset({"time", "service"}), text=True)
        if state.step == "action":
            return Expect(  # 要取消，还是改时间？ — 取消 answers it; 不改了 withdraws
                payloads=frozenset({DROP, MOVE}),
                words=(MOVE_WORDS, DROP_WORDS),
                intents=frozenset({"cancel_appointment"}),
                withdrawal_answers=DROP_WORDS,
            )
        return Expect(
            payloads=frozenset({DROP}),
            prefixes=(SLOT,),
            entities=frozenset({"time"}),
            words=(PICKED, DROP_BOOKING),
            withdrawal_answers=DROP_BOOKING,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The active step's question again."""
        if state.step == "action":
            return [self._action_question(state)]
        if state.step == "time":
            offered = [datetime.fromisoformat(s) for s in state.slots.get("free", [])]
            text = self._t("rebooking.ask_time", time=state.slots["label"])
            return [Outbound(text, self._time_buttons(offered))]
        buttons = [Button(n, f"{PICK}{n}") for n in state.slots.get("offered", [])]
        return [Outbound(self._t("rebooking.ask_which"), (*buttons, self._cancel()))]

    # -- steps -------------------------------------------------------------------------

    async def _on_pick(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        inbound = turn.inbound
        mine = await self._desk.upcoming(inbound.channel, inbound.user_id, _now(turn))
        offered = [b for b in mine if b.number in state.slots.get("offered", [])]
        number = turn.payload.removeprefix(PICK) if turn.payload.startswith(PICK) else ""
        typed = _NUMBER.search(turn.text)
        if typed is not None:
            number = typed.group().upper()
        chosen = [b for b in offered if b.number == number]
        if not number:
            wanted = wanted_time(turn)
            position = ordinal(turn.text, len(offered))
            if wanted is not None:
                chosen = [b for b in offered if _day(b) == wanted.start.date()]
            elif position is not None:  # 第二个 / 最后一个
                chosen = [offered[position]]
            else:  # 社保卡那个
                service = self._service_named(turn)
                chosen = [b for b in offered if service is not None and b.service == service]
        if len(chosen) != 1:
            state.reprompts += 1
            if number:
                return [Outbound(self._t("rebooking.not_yours", number=number)), *self.ask(state)]
            return self.ask(state)
        if not state.slots.get("action"):
            state.slots["action"] = _action(turn)
        return await self._picked(chosen[0], turn, state)

    def _service_named(self, turn: Turn) -> str | None:
        found = self._matcher.in_turn(turn)
        return found.key if found is not None and found.kind == "service" else None

    async def _on_action(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        action = {DROP: "cancel", MOVE: "move"}.get(turn.payload) or _action(turn)
        if not action:
            state.reprompts += 1
            return [self._action_question(state)]
        state.slots["action"] = action
        return await self._act(turn, state)

    async def _on_time(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if turn.payload == DROP or (not turn.payload and DROP_BOOKING.search(turn.text)):
            state.slots["action"] = "cancel"  # 取消预约 instead of a new time
            return await self._act(turn, state)
        chosen = slot_of(turn.payload)
        if chosen is None:
            offered = state.slots.get("free", [])
            wanted = wanted_time(turn, [datetime.fromisoformat(s) for s in offered])
            if wanted is not None and wanted.day_only and wanted.end is not None:
                if _SAME_CLOCK.search(turn.text):  # 后天同一时间
                    current = datetime.fromisoformat(state.slots["starts_at"])
                    at = _at_clock_of(current, wanted.start, wanted.end)
                    return await self._move_to(at, None, turn, state)
            if wanted is not None:
                return await self._move_to(wanted.start, wanted.end, turn, state)
            position = slot_position(turn.text, len(offered))
            if position is None:
                state.reprompts += 1
                return self.ask(state)
            chosen = datetime.fromisoformat(offered[position])  # 第一个 / 最后一个
        return await self._move_to(chosen, None, turn, state)

    async def _move_to(
        self, chosen: datetime, before: datetime | None, turn: Turn, state: ConversationState
    ) -> list[Outbound]:
        """Move the booking to ``chosen``, or offer the free slots up to ``before`` (a
        stretch of time such as 周二上午) or near it."""
        service = self._services.service(state.slots["service"])
        now = _now(turn)
        current = datetime.fromisoformat(state.slots["starts_at"])
        if before is not None:
            free = await self._slots.free(service, chosen, now, before=before, skip=current)
            if free:
                return self._offer(state, free, "")
        verdict = self._slots.check(service, chosen, now)
        if verdict.slot == current:  # the time it already has: offer the nearest others
            why = self._t("rebooking.same_time", time=slot_label(current))
            free = await self._slots.free(service, current, now, skip=current)
            return self._offer(state, free, why)
        if verdict.slot is not None and not await self._slots.has_room(service, verdict.slot):
            verdict = Verdict(None, Refusal.full)
        if verdict.slot is None:
            why = refusal_text(self._t, self._services, verdict, chosen)
            free = await self._slots.free(service, max(chosen, now), now, skip=current)
            free = free or await self._slots.free(service, now, now, skip=current)
            return self._offer(state, free, why)
        inbound = turn.inbound
        capacity = self._slots.planner.capacity(service)
        try:
            moved = await self._desk.move(
                state.slots["number"], inbound.channel, inbound.user_id, verdict.slot, capacity
            )
        except SlotFull:
            why = refusal_text(self._t, self._services, Verdict(None, Refusal.full), chosen)
            free = await self._slots.free(service, chosen, now, skip=current)
            return self._offer(state, free, why)
        except AppointmentNotFound:
            state.finish()
            return [Outbound(self._t("rebooking.gone"))]
        state.finish()
        window = self._services.window_for(service.id)
        text = self._t(
            "rebooking.moved",
            number=moved.number,
            name=service.name,
            time=slot_label(moved.starts_at),
            window=window.name,
            place=window.place,
        )
        return [Outbound(text)]

    # -- transitions -------------------------------------------------------------------

    async def _picked(
        self, booking: Booking, turn: Turn, state: ConversationState
    ) -> list[Outbound]:
        """The booking is known: ask what to do, or do it (to the new time when the
        resident named one, 我想改到周二)."""
        state.slots.update(
            number=booking.number,
            service=booking.service,
            starts_at=booking.starts_at.isoformat(),
            label=f"{self._services.service(booking.service).name} {slot_label(booking.starts_at)}",
        )
        if not state.slots.get("action"):
            state.step, state.reprompts = "action", 0
            return [self._action_question(state)]
        to = state.slots.pop("to", None)
        same_clock = state.slots.pop("same_clock", False)
        to_words = state.slots.pop("to_words", "")
        if to and state.slots["action"] == "move":
            state.step, state.reprompts = "time", 0
            start = datetime.fromisoformat(to[0])
            before = datetime.fromisoformat(to[1]) if to[1] else None
            if to_words:  # a time of day alone (改到下午) falls on the booking's own day
                start, before = _on_day_of(to_words, booking.starts_at, _now(turn))
            if same_clock and before is not None:
                start, before = _at_clock_of(booking.starts_at, start, before), None
            return await self._move_to(start, before, turn, state)
        return await self._act(turn, state)

    async def _act(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        inbound = turn.inbound
        if state.slots["action"] == "cancel":
            number = str(state.slots["number"])
            state.finish()
            try:
                booking = await self._desk.cancel(number, inbound.channel, inbound.user_id)
            except AppointmentNotFound:
                return [Outbound(self._t("rebooking.gone"))]
            name = self._services.service(booking.service).name
            text = self._t(
                "rebooking.cancelled_booking",
                number=booking.number,
                name=name,
                time=slot_label(booking.starts_at),
            )
            return [Outbound(text)]
        service = self._services.service(state.slots["service"])
        now = _now(turn)
        current = datetime.fromisoformat(state.slots["starts_at"])
        free = await self._slots.free(service, now, now, skip=current)
        return self._offer(state, free, "")

    def _offer(self, state: ConversationState, free: list[datetime], lead: str) -> list[Outbound]:
        if not free:
            state.finish()
            return [Outbound(f"{lead}\n{self._t('booking.none_free')}".strip())]
        state.step, state.reprompts = "time", 0
        state.slots["free"] = [s.isoformat() for s in free]
        question = self._t("rebooking.ask_time", time=state.slots["label"])
        return [Outbound(f"{lead}\n{question}".strip(), self._time_buttons(free))]

    def _time_buttons(self, free: list[datetime]) -> tuple[Button, ...]:
        """The free slots, then 取消预约 (the booking) and 不改了 (the move)."""
        *slots, _ = slot_buttons(self._t, free, CANCEL)
        return (*slots, Button(self._t("button.cancel_booking"), DROP), self._cancel())

    # -- texts -------------------------------------------------------------------------

    def _list(self, mine: list[Booking]) -> Outbound:
        lines = [
            self._t(
                "rebooking.item",
                position=n,
                number=b.number,
                name=self._services.service(b.service).name,
                time=slot_label(b.starts_at),
            )
            for n, b in enumerate(mine, 1)
        ]
        text = f"{self._t('rebooking.ask_which')}\n" + "\n".join(lines)
        buttons = [Button(b.number, f"{PICK}{b.number}") for b in mine]
        return Outbound(text, (*buttons, self._cancel()))

    def _action_question(self, state: ConversationState) -> Outbound:
        buttons = (
            Button(self._t("button.cancel_booking"), DROP),
            Button(self._t("button.move_booking"), MOVE),
            self._cancel(),
        )
        return Outbound(self._t("rebooking.ask_action", booking=state.slots["label"]), buttons)

    def _cancel(self) -> Button:
        return Button(self._t("button.keep_booking"), CANCEL)


def _action(turn: Turn) -> str:
    """ "move" for 改一下 / 推迟, "cancel" for 取消 / 不去了, else "" (去不了 alone says
    neither: ``CANT_COME``)."""
    if MOVE_WORDS.search(turn.text):
        return "move"
    if DROP_WORDS.search(turn.text):
        return "cancel"
    return ""


def _days_said(turn: Turn, action: str) -> tuple[Wanted | None, Wanted | None]:
    """The booking's day and the new time the message names, either None.

    After 改到 / 换成 (``_TO_TIME``) comes the new time, and a time before it is the
    booking's (周二的预约改到周三). Without such words, a move that names two times
    keeps the first for the booking and takes the second as the new one (我后天去不了了，
    下周一行吗); one time alone is the booking's day (后天的预约我去不了)."""
    text = turn.parse.text
    marker = _TO_TIME.search(text)
    if marker is not None:
        before = wanted_time(turn, span=(0, marker.start()))
        return before, wanted_time(turn, span=(marker.end(), len(text)))
    said = wanted_time(turn)
    if said is None or action != "move":
        return said, None
    return said, wanted_time(turn, span=(said.said_until, len(text)))


def _on_day_of(words: str, booking: datetime, now: datetime) -> tuple[datetime, datetime | None]:
    """A time's words read on the day of ``booking`` when they name no day of their own
    (下午 → that day's afternoon; 周三下午 stays Wednesday's)."""
    value = resolve(words, now, on=booking.astimezone(LOCAL_TZ).date())
    return value.start, value.end


def _at_clock_of(current: datetime, start: datetime, end: datetime) -> datetime:
    """The day ``[start, end)`` names at ``current``'s time of day: 后天 at the booking's
    10:00; a week (下周同一时间) at the booking's weekday in it."""
    was, day = current.astimezone(LOCAL_TZ), start.astimezone(LOCAL_TZ)
    if end - start >= timedelta(days=7):
        day += timedelta(days=(was.weekday() - day.weekday()) % 7)
    return day.replace(hour=was.hour, minute=was.minute, second=0, microsecond=0)


def _day(booking: Booking) -> date:
    return booking.starts_at.astimezone(LOCAL_TZ).date()


def _now(turn: Turn) -> datetime:
    return turn.inbound.time.astimezone(LOCAL_TZ)
