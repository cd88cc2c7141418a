"""Status queries: what a resident has under way — open cases (reported or joined),
window bookings to come, help-at-home requests — or one case by number.

With two or more open cases the list is numbered and the flow waits at the optional
``pick`` step: 第二个, 最后一个, the case number, or words of its place or description
(就是鄂托克西街那个, 路灯那个怎么样了) show that case. Anything else ends the step
quietly and is routed as usual.

A query that presses for speed (催一下, 能不能快点, 还要等多久: ``URGE``) is a 催办: the
case it names, or the only open one, is urged (``CaseDesk.urge``: recorded for staff
and passed to the platform); with several and none named, the list asks which, and
the pick urges it. A report that presses (路灯还是不亮，你们到底修不修) while the resident
has an open case of that kind urges that case instead of opening the same one again
(``pressed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from handlers.catalog import Catalog
from handlers.flows.base import OFFER_INTERRUPTS, CaseDesk, Expect, RatingDesk, Turn, rating_buttons
from handlers.flows.booking_slots import AppointmentDesk, slot_label
from handlers.flows.chat import MENU_HUMAN
from handlers.flows.guide_match import STRONG, ServiceMatcher
from handlers.flows.home import ItemDesk
from handlers.flows.report_steps import category_of
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import clean, ordinal
from integration.appointments import Booking
from integration.cases import CaseView
from integration.errors import CaseNotFound
from integration.items import ItemView
from integration.privacy import mask
from integration.services import ServiceCatalogue

CASE_NUMBER = re.compile(r"(?<![A-Za-z0-9])YM\d{10,}(?!\d)", re.IGNORECASE)
# Words too common in residents' cases to tell one from another.
_COMMON = re.compile(
    "小区|社区|街道|我家|楼下|楼上|那个|这个|怎么|还没|没有|一直|已经|问题|处理|情况|进度|现在|"
    "什么|时候|反映|工单|怎样|样了|么样|了吗|好了|是不|不是|就是|那边|这边|附近|旁边|一下|"
    "好几|几天|天了|你们|帮我|帮忙|能不|不能"
)
_CJK = re.compile(r"[\u4e00-\u9fff]{2,}")
# Characters that make a pair of characters say nothing of a topic (我的, 了没, 那个).
_FUNCTION = re.compile("[的了吗呢吧啊呀没是我你他她这那个么还也都就在有]")
# Pressing for speed (催办), as residents write it: not a plain 进度怎么样了.
URGE = re.compile(
    "催|加急|加快|尽快|赶紧|赶快|抓紧|快点|快一点|快些|快一些|上点心|等不起|督促|还管不管|"
    "怎么这么慢|太慢了|还要等?多久|要等多久|拖了?(这么|太|很)久|好几次了|再不来|还不来|还没人|没人管|"
    "到底(修|管|处理|来)不"
)


@dataclass(frozen=True, slots=True)
class Listed:
    """One case of the numbered list, as kept in the state: number, place, and the
    category's name with the description (so 噪音的呢 picks a 噪音扰民 case)."""

    number: str
    address: str
    description: str


def _bigrams(text: str) -> set[str]:
    grams: set[str] = set()
    for run in _CJK.findall(_COMMON.sub(" ", URGE.sub(" ", clean(text)))):
        grams |= {run[i : i + 2] for i in range(len(run) - 1)}
    return grams


def same_place(said: str, address: str) -> bool:
    """Whether a place a resident names shares a word with a case's address."""
    return bool(_bigrams(said) & _bigrams(address))


def which(text: str, listed: list[Listed]) -> int | None:
    """The position in ``listed`` that ``text`` picks, if it picks exactly one."""
    position = ordinal(text, len(listed))
    if position is not None:
        return position
    match = CASE_NUMBER.search(text)
    if match:
        numbers = [c.number for c in listed]
        number = match.group().upper()
        return numbers.index(number) if number in numbers else None
    return _best(_bigrams(text), listed)


def named_topic(text: str, listed: list[Listed]) -> int | None:
    """The position of the one listed case a status question names by its kind, place or
    words (路灯那个修好了没, 噪音的呢), by pairs of characters that carry a topic; None
    for a plain 我的进度."""
    return _best({g for g in _bigrams(text) if not _FUNCTION.search(g)}, listed)


def _best(words: set[str], listed: list[Listed]) -> int | None:
    if not words:
        return None
    scores = [
        (2 * len(words & _bigrams(c.address)) + len(words & _bigrams(c.description)), i)
        for i, c in enumerate(listed)
    ]
    best = max(scores)
    if best[0] == 0 or [s for s, _ in scores].count(best[0]) > 1:
        return None
    return best[1]


@dataclass(frozen=True, slots=True)
class _Picks:
    """The pick step's matcher: whether a message picks one of the listed cases."""

    listed: tuple[Listed, ...]

    def search(self, text: str) -> bool:
        return which(text, list(self.listed)) is not None


class UnderWayDesk(Protocol):
    """What a resident has under way besides cases (integration.under_way.UnderWayBook)."""

    async def under_way(
        self, channel: str, user_id: str, now: datetime
    ) -> tuple[list[Booking], list[ItemView]]:
        """Bookings to come (soonest first) and help-at-home requests (newest first)."""
        ...


@dataclass(frozen=True, slots=True)
class DesksUnderWay:
    """Each desk asked in turn: for pipelines without the relational store's shortcut."""

    appointments: AppointmentDesk | None
    items: ItemDesk

    async def under_way(
        self, channel: str, user_id: str, now: datetime
    ) -> tuple[list[Booking], list[ItemView]]:
        """Bookings to come and requests under way."""
        desk = self.appointments
        bookings = await desk.upcoming(channel, user_id, now) if desk is not None else []
        return bookings, await self.items.requested_by(channel, user_id)


class StatusFlow:
    """Answers 我的进度 with every open case and its latest status, or the typed case."""

    name = "status"

    def __init__(
        self,
        desk: CaseDesk,
        catalog: Catalog,
        *,
        under_way: UnderWayDesk | None = None,
        services: ServiceCatalogue | None = None,
        ratings: RatingDesk | None = None,
    ) -> None:
        self._desk = desk
        self._t = catalog
        self._under_way = under_way
        self._services = services
        self._ratings = ratings
        self._matcher = ServiceMatcher(services) if services is not None else None

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """One case by number, or what the resident has under way: the open cases (with
        two or more, the pick step), then bookings and help-at-home requests. Pressing
        words (``URGE``) urge the case named, or the only one, instead."""
        inbound = turn.inbound
        urging = URGE.search(turn.text) is not None
        match = CASE_NUMBER.search(turn.text)
        if match:
            return await self._one(turn, match.group().upper(), urging=urging)
        cases = await self._desk.open_cases(inbound.channel, inbound.user_id)
        others = [] if urging else await self._others(turn)
        if not cases:  # 井盖那个事弄好了吗, once it was finished: how, and the rating asked
            finished = await self._finished(turn)
            if finished is not None:
                text = "\n\n".join([finished.text, "\n".join(others)]).strip()
                return [Outbound(text, finished.buttons)]
        if not cases and others:
            return [Outbound("\n".join(others))]
        if not cases and (window := self._at_window(turn)) is not None:
            return [Outbound(window)]  # 我的居住证办好了没有: the window knows, not Yimen
        if not cases:  # 能不能快点 at a report's confirmation: nothing is filed yet
            pressing = urging and bool(state.paused)
            key = "status_query.none_yet" if pressing else "status_query.none"
            return [Outbound(self._t(key))]
        replies = await self._listing(turn, state, cases, urging=urging)
        if others:
            last = replies[-1]
            replies[-1] = Outbound("\n\n".join([last.text, "\n".join(others)]), last.buttons)
        return replies

    def _at_window(self, turn: Turn) -> str | None:
        """Where to ask after a service applied for at a window (低保批下来没有), when the
        message names one and the resident has nothing of it under way here; else None."""
        if self._matcher is None or self._services is None:
            return None
        found = self._matcher.in_turn(turn)
        if found is None or found.kind != "service" or found.score < STRONG:
            return None
        service = self._services.service(found.key)
        window = self._services.window_for(service.id)
        return self._t(
            "status_query.at_window",
            name=service.name,
            window=window.name,
            phone=window.phone,
            time_limit=service.time_limit,
        )

    async def _finished(self, turn: Turn) -> Outbound | None:
        """The resident's finished case still waiting for their rating (its question went
        out with the news), with the rating buttons; None when there is none."""
        if self._ratings is None:
            return None
        inbound = turn.inbound
        request = await self._ratings.request(inbound.channel, inbound.chat_id)
        if request is None:
            return None
        try:
            case = await self._desk.get(request.number)
        except CaseNotFound:
            return None
        if not case.readable_by(inbound.channel, inbound.chat_id):
            return None
        detail = self._detail(case, (inbound.channel, inbound.chat_id))
        text = self._t("status_query.finished", detail=detail)
        return Outbound(text, rating_buttons(self._t, case.number))

    async def _others(self, turn: Turn) -> list[str]:
        """The resident's bookings to come and help-at-home requests under way, as lines
        (none when this pipeline has no such desks)."""
        if self._under_way is None or self._services is None:
            return []
        inbound = turn.inbound
        services = self._services
        bookings, requests = await self._under_way.under_way(
            inbound.channel, inbound.user_id, inbound.time
        )
        lines: list[str] = []
        if bookings:
            lines.append(self._t("status_query.bookings", count=len(bookings)))
            lines += [
                self._t(
                    "status_query.booking_line",
                    number=b.number,
                    name=services.service(b.service).name,
                    time=slot_label(b.starts_at),
                )
                for b in bookings
            ]
        if requests:
            lines.append(self._t("status_query.home_requests", count=len(requests)))
            lines += [
                self._t(
                    "status_query.home_line",
                    number=item.id,
                    kind=self._t(f"home.kind.{item.kind}"),
                    when=item.when,
                    status=self._t(f"status_query.home_status.{item.status.value}"),
                )
                for item in requests
            ]
        return lines

    async def pressed(self, turn: Turn, state: ConversationState) -> list[Outbound] | None:
        """A report that presses for speed (路灯还是不亮，你们到底修不修) about a kind of
        problem the resident already has open: that case is urged, or the list of those
        asks which. None when it is news: no open case of the kind, or a place named
        that is none of theirs (then it is a new report)."""
        if URGE.search(turn.text) is None:
            return None
        inbound = turn.inbound
        category = category_of(turn.parse)
        cases = await self._desk.open_cases(inbound.channel, inbound.user_id)
        same = [c for c in cases if c.category == category]
        if not same:
            return None
        place = turn.parse.first("address")
        if place is not None:  # only cases at the place named (幸福路的路灯也坏了 is news)
            same = [c for c in same if same_place(place.value, c.address)]
            if not same:
                return None
        return await self._listing(turn, state, same, urging=True)

    async def _listing(
        self, turn: Turn, state: ConversationState, cases: list[CaseView], *, urging: bool
    ) -> list[Outbound]:
        """``cases`` listed (numbered, with the pick step, when several); when urging,
        the one case, or the one the message names, is urged at once instead."""
        inbound = turn.inbound
        chat = (inbound.channel, inbound.chat_id)
        listed = [self._listed_case(c) for c in cases[:20]]
        if urging:
            position = 0 if len(cases) == 1 else which(turn.text, listed)
            if position is not None:
                return await self._one(turn, listed[position].number, urging=True)
        elif len(cases) > 1 and (position := named_topic(turn.text, listed)) is not None:
            return await self._one(turn, listed[position].number)  # 路灯那个修好了没
        numbered = len(cases) > 1
        lines = [self._t("status_query.header", count=len(cases))]
        lines += [
            (f"{i}. " if numbered else "") + self._line(c, chat) for i, c in enumerate(cases, 1)
        ]
        if numbered:
            lines.append(self._t("status_query.urge_hint" if urging else "status_query.pick_hint"))
            rows = [[c.number, c.address, c.description] for c in listed]
            state.begin(self.name, "pick", {"cases": rows, "urge": urging})
        return [Outbound("\n".join(lines))]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """A pick from the list: that case's details (the list stays open for another);
        urged when the list was asked for by a 催办, or the pick itself presses."""
        listed = self._listed(state)
        position = which(turn.text, listed)
        if position is None:  # 我的进度 again, or a case number not in the list
            state.finish()
            return await self.start(turn, state)
        urging = bool(state.slots.get("urge")) or URGE.search(turn.text) is not None
        return await self._one(turn, listed[position].number, urging=urging)

    async def withdrawal(self, turn: Turn) -> list[Outbound]:
        """算了不报了 / 撤销投诉 with nothing under way: a case the resident reported is
        submitted already and cannot be withdrawn in chat; staff can close it."""
        own = await self._own_open(turn)
        if not own:
            return [Outbound(self._t("chat.nothing_to_cancel"))]
        return [self._for_staff("status_query.withdraw", max(own, key=lambda c: c.created_at))]

    async def fixed_meanwhile(self, turn: Turn) -> list[Outbound] | None:
        """路灯已经修好了，谢谢: the open case it is about (named, or the newest) and how it
        gets closed; None when the resident has no open case, or a rating question
        waits (修好了，很满意 answers it): the words are then routed as they are."""
        inbound = turn.inbound
        if self._ratings and await self._ratings.request(inbound.channel, inbound.chat_id):
            return None
        own = await self._own_open(turn)
        if not own:
            return None
        position = named_topic(turn.text, [self._listed_case(c) for c in own])
        return [self._for_staff("status_query.fixed_meanwhile", own[position or 0])]

    async def _own_open(self, turn: Turn) -> list[CaseView]:
        """The open cases the resident reported from this chat (not those they joined)."""
        inbound = turn.inbound
        cases = await self._desk.open_cases(inbound.channel, inbound.user_id)
        return [c for c in cases if (c.channel, c.chat_id) == (inbound.channel, inbound.chat_id)]

    def _for_staff(self, key: str, case: CaseView) -> Outbound:
        """A text about ``case`` that staff must act on (withdraw, close), with 转人工."""
        text = self._t(
            key,
            number=case.number,
            category=self._t(f"category.{case.category}"),
            address=case.address,
        )
        return Outbound(text, (Button(self._t("button.menu_human"), MENU_HUMAN),))

    def expect(self, state: ConversationState) -> Expect:
        """A pick: a position, a case number, words of a listed case; or 我的进度 again."""
        return Expect(
            words=(_Picks(tuple(self._listed(state))),),
            intents=frozenset({"check_status"}),
            interrupts=OFFER_INTERRUPTS,
            optional=True,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """How to pick."""
        return [Outbound(self._t("status_query.pick_again"))]

    async def _one(self, turn: Turn, number: str, *, urging: bool = False) -> list[Outbound]:
        inbound = turn.inbound
        try:
            case = await self._desk.get(number)
        except CaseNotFound:
            case = None
        # Only the resident who reported a case, or joined it, may read it here.
        if case is None or not case.readable_by(inbound.channel, inbound.chat_id):
            return [Outbound(self._t("status_query.not_found", number=number))]
        detail = Outbound(self._detail(case, (inbound.channel, inbound.chat_id)))
        if not urging:
            return [detail]
        try:
            urged = await self._desk.urge(number, inbound.channel, inbound.chat_id, turn.text)
        except CaseNotFound:  # finished meanwhile: its details say how it ended
            return [detail]
        key = "status_query.urged" if urged.counted else "status_query.urged_again"
        said = self._t(key, number=case.number, count=urged.count)
        return [Outbound(f"{detail.text}\n\n{said}")]

    @staticmethod
    def _listed(state: ConversationState) -> list[Listed]:
        return [Listed(*row) for row in state.slots.get("cases") or []]

    def _listed_case(self, case: CaseView) -> Listed:
        category = self._t(f"category.{case.category}")
        return Listed(case.number, case.address, f"{category} {case.description[:60]}")

    def _line(self, case: CaseView, chat: tuple[str, str]) -> str:
        joined = (case.channel, case.chat_id) != chat
        last_note = note_for(case, chat)
        note = self._t("status_query.line_note", note=last_note) if last_note else ""
        return self._t(
            "status_query.line",
            number=case.number,
            category=self._t(f"category.{case.category}"),
            status=self._t(f"status.{case.status.value}"),
            address=case.address,
            note=note,
            followed=self._t("status_query.followed") if joined else "",
        )

    def _detail(self, case: CaseView, chat: tuple[str, str]) -> str:
        last_note = note_for(case, chat)
        note = self._t("status_query.note_line", note=last_note) if last_note else ""
        return self._t(
            "status_query.detail",
            number=case.number,
            category=self._t(f"category.{case.category}"),
            status=self._t(f"status.{case.status.value}"),
            address=case.address,
            note=note,
        ).rstrip()


def note_for(case: CaseView, chat: tuple[str, str]) -> str:
    """The case's latest staff note as ``chat`` may read it: whole for the reporter,
    with phone and ID numbers masked for a follower (the note may be for the reporter)."""
    if (case.channel, case.chat_id) == chat:
        return case.last_note
    return mask(case.last_note)
