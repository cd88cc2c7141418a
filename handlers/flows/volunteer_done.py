"""Reporting an item done (volunteer_complete), the resident's confirmation, the record.

- 任务完成了: the volunteer's held item (asked which when several; one they do not
  hold, or one not begun yet, is refused and nothing changes), then an optional photo
  or note (跳过). The resident, when there is one, is asked to confirm and rate
  (确认完成 5分).
- 确认完成 (a rule trigger): the resident confirms their item done and rates it 1-5;
  a volunteer cannot confirm an item they did. Staff may confirm instead
  (`yimen items confirm`); items unconfirmed after 72 hours are listed for them.
- 我的服务记录 (a rule trigger): items done and confirmed, hours, residents helped.
"""

from __future__ import annotations

import re

from handlers.flows.base import CANCEL, OFFER_INTERRUPTS, Declined, Expect, OneMessageFlow, Turn
from handlers.flows.volunteer_items import PICK
from handlers.flows.volunteer_steps import VOL, DeskFlow, item_number, what, when
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import SKIP, ordinal, words
from integration.claims import ClaimRefused
from integration.errors import IntegrationError
from integration.items import ItemView

DONE, SKIP_NOTE = f"{VOL}done:", f"{VOL}skipnote"
STAR = f"{VOL}star:"
CONFIRM_WORDS = words("confirm_service", "确认完成|确认服务|服务确认|确认已?完成|已经?完成确认")
CONSENT_WORDS = words(
    "share_phone",
    "同意(告知|告诉|给|提供|把)(志愿者)?(我的?)?(电话|号码|手机)|(电话|号码|手机号?)可以(告诉|给)(志愿者|他|她)",
)
RECORD_WORDS = words("service_record", "服务记录|志愿记录|志愿服务记录|我的志愿时长|服务时长")
_SCORE = re.compile(r"([1-5一二三四五])\s*(?:分|星)")
_SCORE_WORDS = (
    ("非常满意", 5),
    ("很满意", 5),
    ("不满意", 2),
    ("满意", 4),
    ("一般", 3),
    ("很差", 1),
)
_CN = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


def score_of(text: str) -> int | None:
    """A 1-5 rating in words (5分, 五星, 满意), if any."""
    match = _SCORE.search(text)
    if match:
        raw = match.group(1)
        return int(raw) if raw.isdigit() else _CN[raw]
    if text.strip() in ("1", "2", "3", "4", "5"):
        return int(text.strip())
    return next((score for word, score in _SCORE_WORDS if word in text), None)


class CompleteFlow(DeskFlow):
    """A volunteer reports an item done, with an optional photo or note."""

    name = "volunteer_complete"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Find the item: numbered, the only one held, or asked."""
        t = self._t
        holding = await self._desk.holding(turn.inbound)
        if holding is None:
            return await self._from_a_resident(turn, state)
        volunteer, all_held = holding
        number = item_number(turn.text)
        if number is not None and number not in [i.id for i in all_held]:
            return [Outbound(t("volunteer.not_held", number=number))]
        if number is None and not all_held:
            return [Outbound(t("volunteer.nothing_held"))]
        # An item not begun yet cannot be done (its hours would count before it starts).
        held = [i for i in all_held if i.starts_at is None or i.starts_at <= turn.inbound.time]
        early = [i for i in all_held if i not in held and (number is None or i.id == number)]
        if early and (number is not None or not held):
            item = early[0]
            return [
                Outbound(
                    t(
                        "volunteer.not_started",
                        number=item.id,
                        what=what(t, item),
                        when=when(t, item),
                    )
                )
            ]
        if number is None and len(held) > 1:
            choices = [[f"{what(t, i)} {when(t, i)}", i.id] for i in held]
            state.begin(self.name, "pick", {"volunteer": volunteer.id, "choices": choices})
            return self.ask(state)
        state.begin(self.name, "report", {"volunteer": volunteer.id, "item": number or held[0].id})
        if turn.inbound.media:  # the photo came with 完成了
            return await self.resume(turn, state)
        return self.ask(state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The item picked, or the photo / note / 跳过."""
        slots, payload = state.slots, turn.payload
        if state.step == "pick":
            choices = slots.get("choices", [])
            position = ordinal(turn.text, len(choices)) if not payload else None
            if position is not None:  # 第二个
                payload = f"{DONE}{choices[position][1]}"
            if not payload.startswith(DONE):
                state.reprompts += 1
                return self.ask(state)
            slots["item"] = int(payload.removeprefix(DONE))
            state.step = "report"
            return self.ask(state)
        photo = next((m.url or m.ref for m in turn.inbound.media if m.kind == "image"), "")
        note = "" if payload == SKIP_NOTE or SKIP.search(turn.text) else turn.text
        return await self._done(turn, state, photo, note)

    def expect(self, state: ConversationState) -> Expect:
        """The pick takes its buttons; the report a photo, 跳过 or any text."""
        if state.step == "pick":  # an offer: 我的服务记录 or anything else ends it
            return Expect(
                prefixes=(DONE,), words=(PICK,), interrupts=OFFER_INTERRUPTS, optional=True
            )
        return Expect(  # 活干完了 again is the note, not a new report of the same
            payloads=frozenset({SKIP_NOTE}),
            media=True,
            words=(SKIP,),
            intents=frozenset({"volunteer_complete"}),
            text=True,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """Which item, or the photo / note."""
        t, cancel = self._t, Button(self._t("button.cancel"), CANCEL)
        if state.step == "pick":
            choices = state.slots.get("choices", [])
            buttons = tuple(Button(label, f"{DONE}{item_id}") for label, item_id in choices)
            return [Outbound(t("volunteer.which_done"), (*buttons, cancel))]
        return [
            Outbound(t("volunteer.ask_report"), (Button(t("volunteer.skip"), SKIP_NOTE), cancel))
        ]

    async def _done(
        self, turn: Turn, state: ConversationState, photo: str, note: str
    ) -> list[Outbound]:
        t, inbound, slots = self._t, turn.inbound, state.slots
        state.finish()
        try:
            item = await self._desk.items.get(int(slots["item"]))
            tell = t("volunteer.ask_confirm", number=item.id, what=what(t, item))
            item = await self._desk.claims.complete(
                item.id, int(slots["volunteer"]), inbound.time, note, photo, tell
            )
        except ClaimRefused as refused:
            return [Outbound(t("volunteer.not_held", number=refused.item.id))]
        key = "volunteer.done_resident" if item.has_resident else "volunteer.done_staff"
        return [Outbound(t(key, number=item.id, what=what(t, item)))]

    async def _from_a_resident(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """送饭的已经来过了, from someone who is no volunteer: about their own help at home.
        Waiting for their confirmation, it is asked for; otherwise they are told it comes
        once the volunteer reports it done. Anyone else is told how to register."""
        inbound = turn.inbound
        waiting = await self._desk.claims.awaiting(inbound.channel, inbound.user_id)
        if waiting:
            state.begin(ConfirmFlow.name, "rate", {"item": waiting[0].id})
            return ConfirmFlow(self._desk, self._t).ask(state)
        if await self._desk.items.requested_by(inbound.channel, inbound.user_id):
            return [Outbound(self._t("volunteer.visit_noted"))]
        return [Outbound(self._t("volunteer.not_volunteer"))]


class ConfirmFlow(DeskFlow):
    """A resident confirms their item done (确认完成) and rates it 1-5."""

    name = "volunteer_confirm"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Declined when the resident has no item waiting for confirmation."""
        inbound = turn.inbound
        waiting = await self._desk.claims.awaiting(inbound.channel, inbound.user_id)
        if not waiting:
            raise Declined
        state.begin(self.name, "rate", {"item": waiting[0].id})
        score = score_of(turn.text)
        if score is not None:
            return await self._confirm(turn, state, score)
        return self.ask(state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The rating: a star button, 5分, 满意."""
        score = (
            int(turn.payload.removeprefix(STAR))
            if turn.payload.startswith(STAR)
            else score_of(turn.text)
        )
        if score is None:
            state.reprompts += 1
            return self.ask(state)
        return await self._confirm(turn, state, score)

    def expect(self, state: ConversationState) -> Expect:
        """Star buttons or a score in words."""
        return Expect(
            prefixes=(STAR,),
            words=(words("score", _SCORE.pattern + "|^[1-5]$|满意|一般|很差"),),
            text=True,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """How satisfied, 1-5."""
        buttons = tuple(Button(f"{n}分", f"{STAR}{n}") for n in (5, 4, 3, 2, 1))
        return [Outbound(self._t("volunteer.ask_rating", number=state.slots["item"]), buttons)]

    async def _confirm(self, turn: Turn, state: ConversationState, score: int) -> list[Outbound]:
        inbound, t = turn.inbound, self._t
        item_id = int(state.slots["item"])
        state.finish()
        volunteer = await self._desk.volunteer(inbound)
        try:
            item: ItemView = await self._desk.claims.confirm(
                item_id,
                f"resident:{inbound.channel}:{inbound.user_id}",
                inbound.time,
                score,
                volunteer_id=volunteer.id if volunteer else None,
                resident=(inbound.channel, inbound.user_id),
            )
        except ClaimRefused as refused:
            return [Outbound(t(f"volunteer.confirm_{refused.reason}", number=item_id))]
        except IntegrationError:
            return [Outbound(t("volunteer.confirm_not_done", number=item_id))]
        return [Outbound(t("volunteer.confirmed", number=item.id, what=what(t, item), score=score))]


class RecordFlow(DeskFlow, OneMessageFlow):
    """我的服务记录: the volunteer's own record."""

    name = "volunteer_record"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Items done and confirmed, hours, residents helped, and what is under way."""
        inbound = turn.inbound
        volunteer = await self._desk.volunteer(inbound)
        if volunteer is None:
            return [Outbound(self._t("volunteer.not_volunteer"))]
        record = await self._desk.records.record(volunteer.id)
        held = await self._desk.claims.held(volunteer.id)
        return [
            Outbound(
                self._t(
                    "volunteer.record",
                    name=volunteer.name,
                    items=record.items,
                    hours=f"{record.hours:g}",
                    residents=record.residents,
                    held=len(held),
                )
            )
        ]


class ConsentFlow(DeskFlow, OneMessageFlow):
    """同意告知电话: the resident lets the volunteers coming see their phone."""

    name = "volunteer_consent"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Declined when no claimed item of the resident waits for the phone."""
        inbound = turn.inbound
        shared = await self._desk.claims.share_phone(
            inbound.channel, inbound.user_id, self._t("volunteer.phone_consented"), inbound.time
        )
        if not shared:
            raise Declined
        return [Outbound(self._t("volunteer.consent_recorded"))]
