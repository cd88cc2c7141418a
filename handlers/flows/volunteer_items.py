"""Browsing and claiming service items (volunteer_browse, volunteer_claim), and withdrawing.

Browsing lists open items (the volunteer's community first, then the nearest, fitting
their skills and availability) a page at a time, with a claim button per item and
下一页. While the list is shown, 第3个, a button, or 这个我来 (the item shown last,
when a page shows one) claims. Anyone may browse; only approved volunteers claim.

A claim is atomic (integration.claims). Full, cancelled, expired, begun, already
held or unknown items are answered clearly and nothing changes; a full one comes with
similar items to pick instead. The resident is told who is coming as 王师傅（党员志愿者）
and never given the volunteer's phone; the volunteer sees the resident's phone only
after claiming and only if the resident agreed (``share_phone``). 我去不了了 withdraws
a claim before the item begins, which frees its place.
"""

from __future__ import annotations

import re

from handlers.catalog import Catalog
from handlers.flows.base import OFFER_INTERRUPTS, Declined, Expect, OneMessageFlow, Turn
from handlers.flows.booking_slots import wanted_time
from handlers.flows.contact import masked
from handlers.flows.volunteer_steps import (
    PAGE_SIZE,
    VOL,
    DeskFlow,
    VolunteerDesk,
    coming,
    item_line,
    item_number,
    ranked,
    what,
    when,
)
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import ORDINAL, AnyOf, ordinal, words
from integration.claims import ClaimRefused
from integration.items import ItemNotFound, ItemView
from integration.services.calendar import LOCAL_TZ
from integration.volunteers import VolunteerView

CLAIM, PAGE, DROP = f"{VOL}claim:", f"{VOL}page:", f"{VOL}drop:"
# The items one holds, asked about (我认领的活动什么时候开始, 我接的活在哪): not the list.
MINE = words(
    "mine",
    "我(已经|都)?(认领|接|领|报名)(了)?的|我的(认领|岗位|任务|志愿服务项目)|"
    "我(已经|都)?(认领|接|领|报名)了?(哪些|哪几个|什么|啥|几个)|"
    "我(已经|都|一共)?报了(几个|哪几个|哪些)(活|岗位|项目|志愿|服务)?$",  # not 报了几个问题
)
PICK = words("pick", ORDINAL.pattern)
THIS = AnyOf(
    "this",
    (
        words(
            "this_one", "这个我来|这个我接|这个我去(?!不)|这个我认领|就这个|我来吧|我接了|我去吧"
        ),
        # 我来 / 报名 / 算我一个, saying nothing else: the item of a one-item list
        words("me", "我来|我去|报名|算我一个|我可以|我能去|认领|接了", whole=True, slack=1),
    ),
)
WITHDRAW = words(
    "withdraw",
    "去不了|不去了|来不了|退出认领|放弃认领|退掉认领|不能去了|有事去不成|认领错了",
)
SIMILAR = 3
# What a claim says besides the item's words (那个我来, 这个我接了吧): removed before
# the words are matched against the titles shown.
_MEANING = re.compile(r"[^\u4e00-\u9fff]|[这那个我来接去吧了的就认领要想帮可以做干活]")


class ItemClaims(DeskFlow):
    """Claims an item for the message's volunteer, answering every refusal (shared)."""

    async def claim(self, turn: Turn, state: ConversationState, item_id: int) -> list[Outbound]:
        """Claim ``item_id``; a full item offers similar ones (a browse list in ``state``)."""
        t, inbound = self._t, turn.inbound
        volunteer = await self._desk.volunteer(inbound)
        if volunteer is None or not volunteer.approved:
            key = (
                "volunteer.not_volunteer"
                if volunteer is None
                else f"volunteer.cannot_claim_{volunteer.status.value}"
            )
            return [Outbound(t(key))]
        try:
            item = await self._desk.items.get(item_id)
            name, title = coming(volunteer)
            tell = t(
                "volunteer.resident_told",
                name=name,
                title=title,
                number=item.id,
                what=what(t, item),
                when=when(t, item),
            )
            item = await self._desk.claims.claim(
                item_id, volunteer.id, inbound.channel, inbound.chat_id, inbound.time, tell
            )
        except ItemNotFound:
            return [Outbound(t("volunteer.no_such_item", number=item_id))]
        except ClaimRefused as refused:
            return await self._refused(turn, state, refused, volunteer)
        state.finish()
        phone = (
            t("volunteer.phone_shared", phone=item.phone) if item.share_phone and item.phone else ""
        )
        if item.phone and not item.share_phone:
            phone = t("volunteer.phone_withheld", phone=masked(item.phone))
        text = t(
            "volunteer.claimed",
            number=item.id,
            what=what(t, item),
            when=when(t, item),
            where=item.address,
        )
        return [Outbound(f"{text}{phone}")]

    async def _refused(
        self, turn: Turn, state: ConversationState, refused: ClaimRefused, volunteer: VolunteerView
    ) -> list[Outbound]:
        t, item = self._t, refused.item
        reason = refused.reason
        if reason == "closed":
            reason = f"closed_{item.status.value}"
        text = t(f"volunteer.refused_{reason}", number=item.id, what=what(t, item))
        if refused.reason != "full":
            return [Outbound(text)]
        others = await self._desk.items.open_items(turn.inbound.time)
        similar = [
            i
            for i in ranked(others, volunteer, self._desk.gazetteer)
            if i.id != item.id
            and (set(i.skills) & set(item.skills) or i.community == item.community)
        ][:SIMILAR]
        if not similar:
            return [Outbound(f"{text}\n{t('volunteer.no_similar')}")]
        state.begin(BrowseFlow.name, "list", {"ids": [i.id for i in similar], "page": 0})
        lines = "\n".join(item_line(t, n, i) for n, i in enumerate(similar, start=1))
        buttons = tuple(
            Button(t("volunteer.claim_button", position=n), f"{CLAIM}{i.id}")
            for n, i in enumerate(similar, start=1)
        )
        return [Outbound(f"{text}\n{t('volunteer.similar')}\n{lines}", buttons)]


class BrowseFlow:
    """Lists open items a page at a time; claims from the list."""

    name = "volunteer_browse"

    def __init__(self, desk: VolunteerDesk, catalog: Catalog, claims: ItemClaims) -> None:
        self._desk = desk
        self._t = catalog
        self._claims = claims
        self._withdraw = WithdrawFlow(desk, catalog)

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The first page of items fitting the volunteer (all open ones for others); the
        items they hold when they ask about theirs (我认领的活动什么时候开始)."""
        inbound = turn.inbound
        if MINE.search(turn.text):  # asked, or a trigger (我报了几个, read as 我的进度)
            return await self._held(turn, asked=turn.parse.intent == self.name)
        holding = await self._desk.holding(inbound)
        volunteer = holding[0] if holding else None
        held = {i.id for i in holding[1]} if holding else set()
        # the items they already hold a place on are theirs, not on offer to them
        open_items = [
            i for i in await self._desk.items.open_items(inbound.time) if i.id not in held
        ]
        items = ranked(open_items, volunteer, self._desk.gazetteer)
        lead = (
            "" if volunteer is not None and volunteer.approved else self._t("volunteer.browse_only")
        )
        if not items and open_items:
            # Nothing fits their skills and free time: the others, rather than nothing.
            items = ranked(open_items, volunteer, self._desk.gazetteer, fitting=False)
            lead = "\n".join(part for part in (lead, self._t("volunteer.none_fitting")) if part)
        if not items:  # a resident who is no volunteer: where activities are, and how to join
            registering = any(f.flow == "volunteer_register" for f in state.paused)
            resident = volunteer is None and not registering
            if held:  # every open item is one of theirs
                return [Outbound(self._t("volunteer.nothing_more_open", count=len(held)))]
            key = "nothing_open_resident" if resident else "nothing_open"
            return [Outbound(self._t(f"volunteer.{key}"))]
        state.begin(self.name, "list", {"ids": [i.id for i in items], "page": 0})
        return await self._page(state, lead)

    async def _held(self, turn: Turn, *, asked: bool = True) -> list[Outbound]:
        t = self._t
        holding = await self._desk.holding(turn.inbound)
        if holding is None:
            if not asked:  # no volunteer: their reports, bookings and requests instead
                raise Declined
            return [Outbound(t("volunteer.not_volunteer"))]
        _, held = holding
        if not held:
            return [Outbound(t("volunteer.nothing_held"))]
        lines = [
            t("volunteer.held_line", number=i.id, what=what(t, i), when=when(t, i), where=i.address)
            for i in held
        ]
        return [Outbound("\n".join([t("volunteer.held", count=len(held)), *lines]))]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """下一页, a claim button, 第3个 or 这个我来; 周六那个我去不了了 gives a place back."""
        ids: list[int] = state.slots["ids"]
        payload = turn.payload
        if not payload and WITHDRAW.search(turn.text):
            state.finish()
            try:
                return await self._withdraw.start(turn, state)
            except Declined:  # nothing held to give back
                return [Outbound(self._t("volunteer.nothing_held"))]
        if payload.startswith(PAGE):
            state.slots["page"] = int(payload.removeprefix(PAGE))
            return await self._page(state)
        if payload.startswith(CLAIM):
            return await self._claims.claim(turn, state, int(payload.removeprefix(CLAIM)))
        number = item_number(turn.text)
        if number is not None:
            return await self._claims.claim(turn, state, number)
        position = ordinal(turn.text, len(ids))
        if position is not None:
            return await self._claims.claim(turn, state, ids[position])
        shown = self._shown(state)
        if THIS.search(turn.text) and len(shown) == 1:
            return await self._claims.claim(turn, state, shown[0])
        named = await self._named(turn.text, shown)
        if named is not None:  # 修灯那个我来: the one item whose title has those words
            return await self._claims.claim(turn, state, named)
        state.reprompts += 1
        return [Outbound(self._t("volunteer.which_item"), self._buttons(state))]

    def expect(self, state: ConversationState) -> Expect:
        """The list takes its buttons, positions and 这个我来; anything else ends it."""
        return Expect(
            prefixes=(CLAIM, PAGE),
            words=(PICK, THIS),
            intents=frozenset({"volunteer_claim"}),
            interrupts=OFFER_INTERRUPTS,
            optional=True,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """No question: the list was an offer."""
        return []

    async def named(self, text: str, state: ConversationState) -> int | None:
        """The one item of the list just begun whose title the words name, if any."""
        if state.flow != self.name or not state.slots.get("ids"):
            return None
        return await self._named(text, list(state.slots["ids"]))

    async def _named(self, text: str, shown: list[int]) -> int | None:
        """The one shown item whose title shares the most (at least two) characters of
        ``text`` that carry meaning, if exactly one does."""
        said = set(_MEANING.sub("", text))
        if len(said) < 2:
            return None
        scores = []
        for item_id in shown:
            try:
                item = await self._desk.items.get(item_id)
            except ItemNotFound:
                continue
            scores.append((len(said & set(what(self._t, item))), item_id))
        best = max(scores, default=(0, 0))
        if best[0] < 2 or [s for s, _ in scores].count(best[0]) > 1:
            return None
        return best[1]

    def _shown(self, state: ConversationState) -> list[int]:
        ids: list[int] = state.slots["ids"]
        page = int(state.slots.get("page", 0))
        return ids[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]

    def _buttons(self, state: ConversationState) -> tuple[Button, ...]:
        ids: list[int] = state.slots["ids"]
        page = int(state.slots.get("page", 0))
        first = page * PAGE_SIZE + 1
        buttons = [
            Button(self._t("volunteer.claim_button", position=n), f"{CLAIM}{i}")
            for n, i in enumerate(self._shown(state), start=first)
        ]
        if (page + 1) * PAGE_SIZE < len(ids):
            buttons.append(Button(self._t("volunteer.next_page"), f"{PAGE}{page + 1}"))
        return tuple(buttons)

    async def _page(self, state: ConversationState, lead: str = "") -> list[Outbound]:
        page = int(state.slots.get("page", 0))
        first = page * PAGE_SIZE + 1
        lines = []
        for n, item_id in enumerate(self._shown(state), start=first):
            try:
                lines.append(item_line(self._t, n, await self._desk.items.get(item_id)))
            except ItemNotFound:
                continue
        head = self._t("volunteer.list_head", count=len(state.slots["ids"]), page=page + 1)
        text = "\n".join(
            part for part in (lead, head, *lines, self._t("volunteer.list_foot")) if part
        )
        return [Outbound(text, self._buttons(state))]


class ClaimFlow(OneMessageFlow):
    """volunteer_claim with no list shown: by item number or by words of one open item's
    title, else the list first."""

    name = "volunteer_claim"

    def __init__(self, claims: ItemClaims, browse: BrowseFlow) -> None:
        self._claims = claims
        self._browse = browse

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Claim the item the message numbers (编号12); otherwise show the list."""
        number = item_number(turn.text)
        if number is not None:
            return await self._claims.claim(turn, state, number)
        listed = await self._browse.start(turn, state)
        named = await self._browse.named(turn.text, state)
        if named is not None:  # 聊天的那个也算我一个: the one open item with those words
            return await self._claims.claim(turn, state, named)
        return listed


class WithdrawFlow(DeskFlow, OneMessageFlow):
    """我去不了了: give back a place before the item begins.

    Started by a rule trigger: declined (the message routed by its intent) when the
    sender holds no item, since 我去不了了 may well be about a booking.
    """

    name = "volunteer_withdraw"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Withdraw the numbered claim, or the only one held; else ask which."""
        t = self._t
        holding = await self._desk.holding(turn.inbound)
        if holding is None or not (holding[1] or item_number(turn.text)):
            raise Declined  # 我去不了了 from someone holding nothing: perhaps a booking
        volunteer, held = holding
        number = item_number(turn.text) or (
            int(turn.payload.removeprefix(DROP)) if turn.payload.startswith(DROP) else None
        )
        if number is None and len(held) == 1:
            number = held[0].id
        if number is None:  # 周六那个我去不了了: the one held on the day named
            number = on_the_day(turn, held)
        if number is None:
            buttons = tuple(Button(f"{what(t, i)} {when(t, i)}", f"{DROP}{i.id}") for i in held)
            state.begin(self.name, "pick", {})
            return [Outbound(t("volunteer.which_withdraw"), buttons)]
        return await self._withdraw(turn, state, volunteer, number)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The item picked to withdraw from."""
        state.finish()
        try:
            return await self.start(turn, state)
        except Declined:  # withdrawn meanwhile: nothing is held any more
            return [Outbound(self._t("volunteer.nothing_held"))]

    def expect(self, state: ConversationState) -> Expect:
        """The pick takes its buttons."""
        return Expect(prefixes=(DROP,), interrupts=OFFER_INTERRUPTS, optional=True)

    async def _withdraw(
        self, turn: Turn, state: ConversationState, volunteer: VolunteerView, number: int
    ) -> list[Outbound]:
        t, inbound = self._t, turn.inbound
        state.finish()
        try:
            item: ItemView = await self._desk.items.get(number)
            name, _ = coming(volunteer)
            tell = t("volunteer.resident_withdrawn", name=name, number=item.id, what=what(t, item))
            item = await self._desk.claims.withdraw(number, volunteer.id, inbound.time, tell)
        except ItemNotFound:
            return [Outbound(t("volunteer.no_such_item", number=number))]
        except ClaimRefused as refused:
            return [Outbound(t(f"volunteer.withdraw_{refused.reason}", number=number))]
        return [Outbound(t("volunteer.withdrawn", number=item.id, what=what(t, item)))]


def on_the_day(turn: Turn, held: list[ItemView]) -> int | None:
    """The one item of ``held`` beginning on the day the message names, if exactly one."""
    wanted = wanted_time(turn)
    if wanted is None:
        return None
    day = wanted.start.date()
    on_it = [i.id for i in held if i.starts_at and i.starts_at.astimezone(LOCAL_TZ).date() == day]
    return on_it[0] if len(on_it) == 1 else None
