"""The booking flow (预约): a service, a slot, a confirmation, a booking number.

Started by book_appointment, or by the guide's 预约办理 button for the service shown.
Steps: ``service`` (which one, when the message names none: bookable services as
buttons; 社保窗口 offers that window's) → ``time`` (the next free slots as buttons, or
those in the time asked for) → ``confirm`` (确认 / 修改 / 取消) → the booking number,
the window and the materials.

A time that cannot be booked (past, a holiday or weekend, lunch, after hours, full,
beyond the horizon) is answered with the reason and the nearest free slots. A time
said at ``time`` or ``confirm`` (不对，是后天) changes the slot; a day alone keeps the
time of day already chosen when that slot is free. A slot filled by someone else
between the offer and 确认 is answered the same way (``SlotFull``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Expect, Turn
from handlers.flows.booking_slots import (
    ASKING_FIRST,
    ASKS_PAPERS,
    PICKED,
    SLOT,
    AppointmentDesk,
    Slots,
    Wanted,
    come_or_not,
    refusal_text,
    slot_buttons,
    slot_label,
    slot_of,
    slot_position,
    wanted_time,
)
from handlers.flows.contact import with_lead
from handlers.flows.guide_match import STRONG, Match, ServiceMatcher, out_of_remit
from handlers.flows.proxy_steps import reason_of
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import NO, YES, words
from integration.appointments import BookingDraft, SlotFull
from integration.services import Service, ServiceCatalogue
from integration.services.calendar import LOCAL_TZ
from integration.services.slots import Refusal, Verdict

if TYPE_CHECKING:
    from handlers.flows.guide import GuideFlow
    from handlers.flows.proxy import ProxyFlow

PICK = "booking:service:"  # + a service id
PROXY_INSTEAD = "booking:proxy"  # 代办 instead of coming in person
# 申请代办 / 还是代办吧 switch to 代办; 不用代办 stays with the booking (the step's question again)
PROXY_WORDS = words("proxy_instead", "^(?!.*(不用|不要|不需要|不想|别|不)代办).*代办")
NO_PROXY_WORDS = words("no_proxy", "(不用|不要|不需要|不想|别|不)代办")
CONFIRM, EDIT = "booking:confirm", "booking:edit"
CONFIRM_WORDS = words("confirm", "(?<![不别没])(确认|确定|提交|就这个|就这样|可以|行)")
EDIT_WORDS = words("edit", "修改|改一下|改下|改个|换个|换一个|重新选|别的时间|其他时间")
WINDOW_WORD = "窗口"
_TIME_INTENTS = frozenset({"book_appointment"})
# A day the resident cannot come after all (我明天去不了了, 周三有事): the days after it.
CANNOT_COME = words(
    "cannot_come", "去不了|来不了|去不成|来不成|不能去|不能来|没空|有事|不方便|不行"
)


class BookingFlow:
    """Books a slot at a service window."""

    name = "booking"

    def __init__(
        self,
        services: ServiceCatalogue,
        desk: AppointmentDesk,
        catalog: Catalog,
        reminder_hour: int = 16,
    ) -> None:
        self._services = services
        self._desk = desk
        self._t = catalog
        self._slots = Slots(services, desk)
        self._matcher = ServiceMatcher(services)
        self._reminder_hour = reminder_hour
        self.proxy: ProxyFlow | None = None  # the 代办 flow, which 申请代办 switches to
        self.guide: GuideFlow | None = None  # the guide, whose card answers a question

    # -- the Flow protocol -------------------------------------------------------------

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin with what the message names: a service, a time, both or neither."""
        state.begin(self.name, "service", {})
        wanted = wanted_time(turn)
        if wanted is not None:
            state.slots["wanted"] = [wanted.start.isoformat(), _iso(wanted.end), wanted.day_only]
        found = self._matcher.in_turn(turn)
        if found is not None and found.kind == "remit":  # 开个无犯罪证明: not booked here
            return self._not_ours(found, state)
        service = self._service_of(found, turn)
        if service is None:
            return [self._which(turn, state)]
        return await self.book(service, turn, state)

    async def book(self, service: Service, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Go on with ``service`` chosen (also the guide's 预约办理, pressed or typed:
        帮我约个号 明天上午 already names the time). A booking for someone who cannot
        come (给我爸预约…，他行动不便) is told that 代办 is there too, when it is allowed."""
        replies = await self._book(service, turn, state)
        if not turn.payload and state.step == "time" and self._asks_papers(turn):
            replies = with_lead(self._t("booking.papers_later"), replies)
        cannot_come = not turn.payload and bool(reason_of(turn.text, service.words))
        if service.proxy and self.proxy and cannot_come and state.step == "time":
            first, *rest = with_lead(self._t("booking.proxy_hint", name=service.name), replies)
            switch = Button(self._t("button.guide_proxy"), PROXY_INSTEAD)
            state.slots["said"] = turn.text[:200]  # whom and why, should 代办 be chosen
            return [replace(first, buttons=(*first.buttons, switch)), *rest]
        return replies

    async def _book(self, service: Service, turn: Turn, state: ConversationState) -> list[Outbound]:
        if state.flow != self.name:
            state.begin(self.name, "service", {})
        if not service.bookable:
            state.finish()
            return [Outbound(self._why_not_bookable(service))]
        state.slots["service"] = service.id
        saved = state.slots.pop("wanted", None)
        if saved:
            wanted = Wanted(
                datetime.fromisoformat(saved[0]),
                datetime.fromisoformat(saved[1]) if saved[1] else None,
                bool(saved[2]),
            )
            return await self._at(wanted, turn, state)
        typed = wanted_time(turn)
        if typed is not None:
            return await self._at(typed, turn, state)
        return await self._offer(turn, state, self._now(turn))

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Continue at the current step; 申请代办 once the service is chosen hands it over."""
        typed = not turn.payload and PROXY_WORDS.search(turn.text)
        if self.proxy is not None and (turn.payload == PROXY_INSTEAD or typed):
            if state.step != "service":
                service, said = self._service(state), str(state.slots.get("said", ""))
                state.finish()
                return await self.proxy.begin_for(service, turn, state, said)
        if state.step == "service":
            return await self._on_service(turn, state)
        if state.step == "time":
            return await self._on_time(turn, state)
        return await self._on_confirm(turn, state)

    def expect(self, state: ConversationState) -> Expect:
        """Buttons, service names, times, and yes/no at the confirmation."""
        if state.step == "service":
            return Expect(
                prefixes=(PICK,),
                entities=frozenset({"service", "time"}),
                words=(self._matcher,),
                intents=_TIME_INTENTS,
            )
        if state.step == "time":
            return Expect(
                prefixes=(SLOT,),
                payloads=frozenset({PROXY_INSTEAD}),
                entities=frozenset({"time"}),
                words=(PICKED, PROXY_WORDS, NO_PROXY_WORDS, CONFIRM_WORDS, YES),
                intents=_TIME_INTENTS,
            )
        return Expect(
            payloads=frozenset({CONFIRM, EDIT, PROXY_INSTEAD}),
            entities=frozenset({"time"}),
            words=(EDIT_WORDS, CONFIRM_WORDS, YES, NO, PROXY_WORDS, NO_PROXY_WORDS),
            intents=frozenset({"affirm", "deny"}),
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The active step's question again."""
        if state.step == "service":
            return [Outbound(self._t("booking.ask_service"), self._service_buttons(None))]
        if state.step == "time":
            offered = [datetime.fromisoformat(s) for s in state.slots.get("offered", [])]
            service = self._service(state)
            return [
                Outbound(self._t("booking.ask_time", name=service.name), self._buttons(offered))
            ]
        return [self._summary(state)]

    # -- steps -------------------------------------------------------------------------

    async def _on_service(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        wanted = wanted_time(turn)
        if wanted is not None:
            state.slots["wanted"] = [wanted.start.isoformat(), _iso(wanted.end), wanted.day_only]
        if turn.payload.startswith(PICK):
            service = self._services.services.get(turn.payload.removeprefix(PICK))
        else:
            service = self._service_named(turn)
        if service is None and not turn.payload:
            found = self._matcher.in_turn(turn)  # 身份证丢了补办: the police's, not booked
            if found is not None and found.kind == "remit" and found.score >= STRONG:
                return self._not_ours(found, state)
        if service is None:
            if wanted is not None:
                return [Outbound(self._t("booking.noted_time"), self._service_buttons(None))]
            state.reprompts += 1
            return [Outbound(self._t("booking.ask_service"), self._service_buttons(None))]
        if self.guide and not turn.payload and wanted is None and ASKING_FIRST.search(turn.text):
            return with_lead(self._t("booking.card_first"), self.guide.show(service, state))
        return await self.book(service, turn, state)

    def _not_ours(self, found: Match, state: ConversationState) -> list[Outbound]:
        """A topic the street does not handle: who does, and the booking ends."""
        state.finish()
        return [out_of_remit(self._t, self._services, int(found.key))]

    async def _on_time(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        chosen = slot_of(turn.payload)
        if chosen is not None:
            return await self._chose(chosen, turn, state)
        offered = state.slots.get("offered", [])
        wanted, refused = come_or_not(
            turn, [datetime.fromisoformat(s) for s in offered], CANNOT_COME.pattern
        )
        if wanted is None and refused is not None:
            return await self._another_day(refused, turn, state)
        if wanted is not None:
            return await self._at(wanted, turn, state)
        position = slot_position(turn.text, len(offered))
        if position is not None:  # 第二个 / 最后一个 / 越早越好
            return await self._chose(datetime.fromisoformat(offered[position]), turn, state)
        if (
            offered
            and not turn.payload
            and (CONFIRM_WORDS.search(turn.text) or YES.search(turn.text))
        ):
            # 确认 / 好的 with times offered: the first, to be confirmed at the summary
            return await self._chose(datetime.fromisoformat(offered[0]), turn, state)
        state.reprompts += 1
        return self.ask(state)

    async def _on_confirm(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        text = turn.text
        if turn.payload == CONFIRM:
            return await self._submit(turn, state)
        if turn.payload == EDIT:
            return await self._offer(turn, state, self._now(turn))
        slot = state.slots.get("slot")
        wanted, refused = come_or_not(
            turn, [datetime.fromisoformat(slot)] if slot else [], CANNOT_COME.pattern
        )
        if wanted is None and refused is not None:
            return await self._another_day(refused, turn, state)
        if wanted is not None:  # 不对，是后天 / 改成10点 (on the day chosen)
            return await self._at(wanted, turn, state)
        if EDIT_WORDS.search(text):
            return await self._offer(turn, state, self._now(turn))
        if NO.search(text) or turn.means("deny"):
            state.finish()
            return [Outbound(self._t("booking.cancelled"))]
        if CONFIRM_WORDS.search(text) or YES.search(text) or turn.means("affirm"):
            return await self._submit(turn, state)
        state.reprompts += 1
        return [self._summary(state)]

    # -- transitions -------------------------------------------------------------------

    async def _at(self, wanted: Wanted, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The slot at a wanted time, the free ones within it, or why not and the nearest."""
        service, now = self._service(state), self._now(turn)
        if wanted.day_only and state.slots.get("slot"):
            # 不对，是后天: the same time of day on the other day, when it can be booked.
            clock = datetime.fromisoformat(state.slots["slot"]).timetz()
            moved = datetime.combine(wanted.start.date(), clock).astimezone(LOCAL_TZ)
            verdict = self._slots.check(service, moved, now)
            if verdict.slot is not None and await self._slots.has_room(service, verdict.slot):
                return self._confirm(verdict.slot, state)
        if wanted.end is None:
            verdict = self._slots.check(service, wanted.start, now)
            if verdict.slot is not None:
                if await self._slots.has_room(service, verdict.slot):
                    return self._confirm(verdict.slot, state)
                verdict = Verdict(None, Refusal.full)
            why = refusal_text(self._t, self._services, verdict, wanted.start)
            return await self._offer(turn, state, wanted.start, lead=why)
        free = await self._slots.free(service, wanted.start, now, before=wanted.end)
        if free:
            return self._offer_these(
                free, state, self._t("booking.pick_in_range", name=service.name)
            )
        verdict = self._range_verdict(service, wanted, now)
        why = refusal_text(self._t, self._services, verdict, wanted.start)
        return await self._offer(turn, state, wanted.start, lead=why)

    def _range_verdict(self, service: Service, wanted: Wanted, now: datetime) -> Verdict:
        """Why nothing in an interval can be booked: its start's reason, else full."""
        assert wanted.end is not None
        if wanted.end <= now:
            return Verdict(None, Refusal.past)
        if self._slots.planner.day_slots(service, wanted.start.date()):
            verdict = self._slots.check(service, max(wanted.start, now), now)
            if verdict.refusal in (Refusal.lunch, Refusal.outside_hours, Refusal.too_far):
                return verdict
            return Verdict(None, Refusal.full)
        return self._slots.check(service, max(wanted.start, now + timedelta(minutes=1)), now)

    async def _chose(self, start: datetime, turn: Turn, state: ConversationState) -> list[Outbound]:
        service, now = self._service(state), self._now(turn)
        verdict = self._slots.check(service, start, now)
        if verdict.slot is None:
            why = refusal_text(self._t, self._services, verdict, start)
            return await self._offer(turn, state, now, lead=why)
        if not await self._slots.has_room(service, verdict.slot):
            why = refusal_text(self._t, self._services, Verdict(None, Refusal.full), start)
            return await self._offer(turn, state, start, lead=why)
        return self._confirm(verdict.slot, state)

    async def _another_day(
        self, wanted: Wanted, turn: Turn, state: ConversationState
    ) -> list[Outbound]:
        """我明天去不了了: the free slots from the day after the one named."""
        day = wanted.start.astimezone(LOCAL_TZ).date() + timedelta(days=1)
        after = datetime.combine(day, datetime.min.time(), LOCAL_TZ)
        return await self._offer(turn, state, after, self._t("booking.not_that_day"))

    async def _offer(
        self, turn: Turn, state: ConversationState, after: datetime, lead: str = ""
    ) -> list[Outbound]:
        """The nearest free slots from ``after`` as buttons (step ``time``)."""
        service, now = self._service(state), self._now(turn)
        free = await self._slots.free(service, after, now)
        if not free and after > now:
            free = await self._slots.free(service, now, now)
        if not free:
            state.finish()
            return [Outbound(f"{lead}\n{self._t('booking.none_free')}".strip())]
        question = self._t("booking.ask_time", name=service.name)
        return self._offer_these(free, state, f"{lead}\n{question}".strip())

    def _offer_these(
        self, free: list[datetime], state: ConversationState, text: str
    ) -> list[Outbound]:
        state.step, state.reprompts = "time", 0
        state.slots["offered"] = [s.isoformat() for s in free]
        return [Outbound(text, self._buttons(free))]

    def _confirm(self, start: datetime, state: ConversationState) -> list[Outbound]:
        state.step, state.reprompts = "confirm", 0
        state.slots["slot"] = start.isoformat()
        return [self._summary(state)]

    async def _submit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        service, inbound = self._service(state), turn.inbound
        start = datetime.fromisoformat(state.slots["slot"])
        verdict = self._slots.check(service, start, self._now(turn))
        if verdict.slot is None:  # the slot went by while the resident thought
            why = refusal_text(self._t, self._services, verdict, start)
            return await self._offer(turn, state, self._now(turn), lead=why)
        draft = BookingDraft(
            channel=inbound.channel,
            user_id=inbound.user_id,
            chat_id=inbound.chat_id,
            service=service.id,
            window=service.window,
            starts_at=start,
            minutes=service.slot_minutes or 0,
            capacity=self._slots.planner.capacity(service),
            remind_at=self._remind_at(start, self._now(turn)),
        )
        try:
            booking = await self._desk.book(draft)
        except SlotFull:
            why = refusal_text(self._t, self._services, Verdict(None, Refusal.full), start)
            return await self._offer(turn, state, start, lead=why)
        state.finish()
        window = self._services.window_for(service.id)
        text = self._t(
            "booking.booked",
            number=booking.number,
            name=service.name,
            time=slot_label(start),
            window=window.name,
            place=window.place,
            materials="\n".join(
                self._t("guide.material", number=n, item=item)
                for n, item in enumerate(service.materials, 1)
            ),
        )
        return [Outbound(text)]

    # -- helpers -----------------------------------------------------------------------

    def _asks_papers(self, turn: Turn) -> bool:
        """Whether the message asks what to bring, itself or in its second request
        (帮我约社保卡，还有身份证要带吗) when that names no other service's card."""
        also = turn.also
        if also is not None and (self.guide is None or self.guide.also_asked(also) is None):
            return bool(ASKS_PAPERS.search(turn.text) or ASKS_PAPERS.search(also.text))
        return bool(ASKS_PAPERS.search(turn.text))

    def _service_named(self, turn: Turn) -> Service | None:
        return self._service_of(self._matcher.in_turn(turn), turn)

    def _service_of(self, found: Match | None, turn: Turn) -> Service | None:
        """The service ``found`` in ``turn``, unless it names a window or a topic."""
        if found is None or found.kind != "service":
            return None
        service = self._services.service(found.key)
        if WINDOW_WORD in turn.text and found.word != service.name:
            return None  # 社保窗口: a window, whose services are offered
        return service

    def _which(self, turn: Turn, state: ConversationState) -> Outbound:
        window = None
        if WINDOW_WORD in turn.text:
            found = self._matcher.in_turn(turn)
            if found is not None and found.kind == "service":
                window = self._services.service(found.key).window
        if window is not None:
            name = self._services.windows[window].name
            text = self._t("booking.ask_service_at", window=name)
        else:
            text = self._t("booking.ask_service")
        return Outbound(text, self._service_buttons(window))

    def _service_buttons(self, window: str | None) -> tuple[Button, ...]:
        services = self._services
        if window is not None:
            ids = [s.id for s in services.services.values() if s.window == window and s.bookable]
        else:
            ids = [i for i in services.common if services.service(i).bookable]
        buttons = [Button(services.service(i).name, f"{PICK}{i}") for i in ids[:6]]
        return (*buttons, Button(self._t("button.cancel"), CANCEL))

    def _buttons(self, starts: list[datetime]) -> tuple[Button, ...]:
        return slot_buttons(self._t, starts, CANCEL)

    def _summary(self, state: ConversationState) -> Outbound:
        service = self._service(state)
        window = self._services.window_for(service.id)
        text = self._t(
            "booking.confirm",
            name=service.name,
            time=slot_label(datetime.fromisoformat(state.slots["slot"])),
            window=window.name,
            place=window.place,
        )
        buttons = (
            Button(self._t("button.confirm"), CONFIRM),
            Button(self._t("button.edit"), EDIT),
            Button(self._t("button.cancel"), CANCEL),
        )
        return Outbound(text, buttons)

    def _why_not_bookable(self, service: Service) -> str:
        window = self._services.window_for(service.id)
        return self._t(
            "booking.why_not_bookable",
            name=service.name,
            window=window.name,
            place=window.place,
            phone=window.phone,
        )

    def _service(self, state: ConversationState) -> Service:
        return self._services.service(state.slots["service"])

    def _remind_at(self, start: datetime, now: datetime) -> datetime | None:
        """The day before, at the configured hour (Asia/Shanghai); None once that is past.

        A booking made after that hour (for today, or for tomorrow late in the day) has
        just been confirmed with everything the reminder would say.
        """
        day = start.astimezone(LOCAL_TZ).date() - timedelta(days=1)
        remind = datetime.combine(day, datetime.min.time(), LOCAL_TZ).replace(
            hour=self._reminder_hour
        )
        return remind if remind > now else None

    @staticmethod
    def _now(turn: Turn) -> datetime:
        return turn.inbound.time.astimezone(LOCAL_TZ)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""
