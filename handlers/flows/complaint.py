"""The complaint flow: what happened, where, an optional photo, confirm, open a case.

Steps: ``what`` (only when started without a description) → ``where`` → ``photo`` →
``confirm``; from ``confirm`` the resident may ``edit`` the address or the description
(``describe``). Slots are described in handlers.flows.report_slots.

Residents answer in their own words, so each step takes more than its own answer:

- a photo or a location pin at any step (a pin adds coordinates, never replaces a
  typed address); when only a road or street is known, the photo question offers to
  take a pin;
- an address at ``photo`` or ``confirm`` corrects the address (地址写错了 是金辉小区5号楼);
  the same kind of report again adds to the description instead of starting over;
- 好的 / 确认 at ``photo`` go on without one; 跳过 / 不用了 / 没有 skip it;
- at ``confirm``, yes (提交, 就这样吧) submits, and no (不对, 不要了) withdraws: 已取消，
  未提交, nothing reaches dispatch; 修改 / 地址写错了 edits.

Before the first confirmation (and again whenever the place or category changes) the
desk is asked for others' open cases of the same category within 200 m or at the same
address in the last 24 hours; if there is one, step ``duplicate`` offers to join it
(加入已有工单: the resident follows it and no new case is created) or to go on.

A linked grid worker's report (integration.grid) skips both: it is filed, with their
grid id, as soon as the slots are complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, CaseDesk, Expect, Turn
from handlers.flows.grid_close import GridDesk
from handlers.flows.report_slots import (
    MAX_PHOTOS,
    Places,
    Slots,
    add_detail,
    address_only,
    has_images,
    part_only,
    road_only,
    take_address,
    take_media,
    take_pin,
)
from handlers.flows.report_steps import (
    ABOUT_PLACE,
    ABOUT_TEXT,
    CORRECTION,
    EDIT,
    EDIT_ADDRESS,
    EDIT_DESCRIPTION,
    EDIT_WORDS,
    INSTEAD,
    JOIN,
    JOIN_WORDS,
    MORE_WORDS,
    NEW,
    NEW_WORDS,
    PHOTO_COMING,
    PHOTO_SENT,
    SAME_PLACE,
    SAME_PLACE_WORDS,
    SKIP_ALONE,
    SKIP_PHOTO,
    SKIP_PLACE,
    SUBMIT,
    SUBMIT_WORDS,
    UNKNOWN_PLACE,
    VAGUE_PLACE,
    category_of,
    confirm_buttons,
    duplicate_buttons,
    edit_buttons,
    expectation,
    more_of,
    photo_buttons,
    report_intent,
)
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import NO, REPORT_REQUEST, YES, clean
from handlers.words import SKIP as SKIP_WORDS
from integration.cases import CaseDraft

__all__ = [
    "EDIT",
    "EDIT_ADDRESS",
    "EDIT_DESCRIPTION",
    "JOIN",
    "NEW",
    "SKIP",
    "SUBMIT",
    "ComplaintFlow",
    "Places",
]

SKIP = SKIP_PHOTO  # the photo step's 跳过 button (kept under its old name)
# The place of a report, kept for the next one (offered for ``SAME_PLACE_FOR`` seconds).
_PLACE_SLOTS = ("address", "latitude", "longitude", "pinned", "address_from_pin")
SAME_PLACE_FOR = 2 * 3600
_LABEL_CHARS = 16

Step = Callable[[Turn, ConversationState], Awaitable[list[Outbound]]]

_CORRECTION_ALONE = 4  # characters of 不对不对, 我说错了: no correction said yet


class ComplaintFlow:
    """Collects a report and opens a case on the desk."""

    name = "complaint"

    def __init__(
        self,
        desk: CaseDesk,
        catalog: Catalog,
        places: Places | None = None,
        grid: GridDesk | None = None,
    ) -> None:
        self._desk = desk
        self._t = catalog
        self._places = places
        self._grid = grid
        self._steps: dict[str, Step] = {
            "what": self._on_what,
            "where": self._on_where,
            "photo": self._on_photo,
            "confirm": self._on_confirm,
            "edit": self._on_edit,
            "describe": self._on_describe,
            "duplicate": self._on_duplicate,
        }

    # -- the Flow protocol -------------------------------------------------------------

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin with the report itself, or ask for one when started from the menu."""
        state.begin(self.name, "what", {"photos": []})
        last = state.recent.get("place")
        if last and turn.inbound.time.timestamp() - last.get("at", 0) < SAME_PLACE_FOR:
            state.slots["last_place"] = last  # offered at the place question
        take_media(turn.inbound, state.slots)
        take_pin(turn.inbound, state.slots)
        if turn.text and _a_place_alone(turn):  # 金辉小区3号楼: where, but not what
            take_address(turn.parse, state.slots, self._places)
            return [self._msg("complaint.noted_place", address=state.slots["address"])]
        # 举报 / 我要投诉 alone says there is something to report, not what (the model
        # reads 举报 as a construction report): asked what happened.
        if turn.text and report_intent(turn) and not REPORT_REQUEST.search(turn.text):
            return await self._described(turn, state)
        if turn.text and address_only(turn.parse):
            take_address(turn.parse, state.slots, self._places)
        return self.ask(state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Continue at the current step."""
        return await self._steps[state.step or "what"](turn, state)

    def expect(self, state: ConversationState) -> Expect:
        """What answers each step (see the module docstring and report_steps)."""
        return expectation(state.step or "what", state.slots.get("category"))

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The active step's question."""
        slots, step = state.slots, state.step or "what"
        if step == "what":
            return [self._msg("complaint.ask_what")]
        if step == "where":
            category = self._t(f"category.{slots.get('category', 'other')}")
            last = slots.get("last_place")
            if not last:
                return [self._msg("complaint.ask_where", category=category)]
            address = str(last["address"])
            if len(address) > _LABEL_CHARS:  # a button label stays short
                address = f"{address[: _LABEL_CHARS - 1]}…"
            same = Button(self._t("button.same_place", address=address), SAME_PLACE)
            cancel = Button(self._t("button.cancel"), CANCEL)
            return [self._msg("complaint.ask_where", (same, cancel), category=category)]
        if step == "photo":
            return [self._photo_question(state)]
        if step == "confirm":
            return [self._summary(state)]
        if step == "edit":
            return [self._msg("complaint.ask_edit", edit_buttons(self._t))]
        if step == "describe":
            return [self._msg("complaint.ask_new_description")]
        return [self._duplicate_offer(state)]

    # -- steps ---------------------------------------------------------------------

    async def _on_what(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        took = take_media(turn.inbound, slots) | take_pin(turn.inbound, slots)
        if turn.text and _a_place_alone(turn):
            take_address(turn.parse, slots, self._places)
            return [self._msg("complaint.noted_place", address=slots["address"])]
        if not turn.text:
            return self.ask(state) if took else [self._reprompt(state, "complaint.ask_what")]
        return await self._described(turn, state)

    async def _on_where(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        if take_pin(turn.inbound, slots) or take_address(turn.parse, slots, self._places):
            return await self._after_address(turn, state)
        last = slots.get("last_place")
        same = turn.payload == SAME_PLACE or (
            not turn.payload and SAME_PLACE_WORDS.search(turn.text)
        )
        if last and same:  # 还是那个地方: the last report's place
            slots.update({k: v for k, v in last.items() if k != "at"})
            return await self._after_address(turn, state)
        if take_media(turn.inbound, slots):
            return [self._msg("complaint.photo_on_where", count=len(slots["photos"]))]
        if UNKNOWN_PLACE.search(turn.text):
            return [self._msg("complaint.where_unknown")]
        if SKIP_PLACE.search(turn.text):  # 跳过: the place cannot be skipped, and why
            return [self._msg("complaint.where_needed")]
        if VAGUE_PLACE.search(turn.text):
            return [self._reprompt(state, "complaint.where_vague")]
        if self._adds(turn, slots):
            return [self._msg("complaint.noted_detail")]
        return [self._reprompt(state, "complaint.reask_where")]

    async def _on_photo(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        if has_images(turn.inbound):
            take_media(turn.inbound, slots)
            return await self._review(turn, state)
        if take_pin(turn.inbound, slots):
            return [self._msg("complaint.pin_added", photo_buttons(self._t))]
        if PHOTO_COMING.search(turn.text) and not turn.payload:  # 等一下，我拍个照片
            return [self._msg("complaint.photo_wait", photo_buttons(self._t), limit=MAX_PHOTOS)]
        if PHOTO_SENT.search(turn.text) and not turn.payload:  # 这是照片, and none came
            return [self._msg("complaint.photo_missing", photo_buttons(self._t))]
        if take_address(turn.parse, slots, self._places) or self._adds(turn, slots):
            return await self._review(turn, state)  # a repeated answer: go on without a photo
        if (
            turn.payload == SKIP_PHOTO
            or any(m.search(turn.text) for m in (SKIP_WORDS, YES, NO))
            or turn.means("affirm", "deny")
        ):
            return await self._review(turn, state)
        return [self._reprompt(state, "complaint.reask_photo", photo_buttons(self._t))]

    async def _on_confirm(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots, text = state.slots, turn.text
        if turn.payload == SUBMIT:
            return await self._submit(turn, state)
        if turn.payload == EDIT:
            return self._to_edit(state)
        if has_images(turn.inbound):
            if not take_media(turn.inbound, slots):
                return [self._msg("complaint.photo_limit", limit=MAX_PHOTOS, count=MAX_PHOTOS)]
            return [self._summary(state)]
        if take_pin(turn.inbound, slots) or take_address(turn.parse, slots, self._places):
            return await self._review(turn, state)
        if MORE_WORDS.search(text) and self._adds(turn, slots):
            return [self._summary(state)]
        if EDIT_WORDS.search(text) or (ABOUT_PLACE.search(text) and NO.search(text)):
            return self._edit_what(turn, state)
        if not turn.means("affirm", "deny") and self._adds(turn, slots):
            return [self._summary(state)]
        if SUBMIT_WORDS.search(text):
            return await self._submit(turn, state)
        if SKIP_ALONE.search(text):  # 我没有照片: no photo, not a withdrawal
            return [self._summary(state)]
        if PHOTO_COMING.search(text):  # 等一下，我拍个照片: the summary waits for it
            return [self._msg("complaint.photo_wait", confirm_buttons(self._t), limit=MAX_PHOTOS)]
        if PHOTO_SENT.search(text):  # 这是照片: after the photo came, or instead of it
            if slots.get("photos"):
                return [self._summary(state)]
            return [self._msg("complaint.photo_missing", confirm_buttons(self._t))]
        saying_no = NO.search(text) or turn.means("deny")
        if saying_no and INSTEAD.search(text) and add_detail(slots, text):
            return [self._summary(state)]  # 描述不对，是楼道灯不是路灯: corrected, kept whole
        if saying_no:
            state.finish()
            return [Outbound(self._t("complaint.cancelled"))]
        if YES.search(text) or turn.means("affirm"):
            return await self._submit(turn, state)
        return [self._reprompt(state, "complaint.reconfirm", confirm_buttons(self._t))]

    async def _on_edit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        if take_pin(turn.inbound, slots) or take_address(turn.parse, slots, self._places):
            return await self._review(turn, state)
        if has_images(turn.inbound) and take_media(turn.inbound, slots):
            return await self._review(turn, state)
        if turn.payload == EDIT_ADDRESS or (not turn.payload and ABOUT_PLACE.search(turn.text)):
            state.step, state.reprompts, slots["editing"] = "where", 0, True
            return [self._msg("complaint.ask_new_address")]
        if turn.payload == EDIT_DESCRIPTION or (not turn.payload and ABOUT_TEXT.search(turn.text)):
            state.step, state.reprompts = "describe", 0
            return [self._msg("complaint.ask_new_description")]
        if MORE_WORDS.search(turn.text) and self._adds(turn, slots):
            return await self._review(turn, state)
        if report_intent(turn) and turn.text:
            return await self._redescribed(turn, state)
        return [self._reprompt(state, "complaint.ask_edit", edit_buttons(self._t))]

    async def _on_describe(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        took = take_media(turn.inbound, slots) | take_pin(turn.inbound, slots)
        if not turn.text:
            return await self._review(turn, state) if took else self.ask(state)
        return await self._redescribed(turn, state)

    async def _on_duplicate(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots, text = state.slots, turn.text
        if take_media(turn.inbound, slots) | take_pin(turn.inbound, slots):
            return [self._duplicate_offer(state)]
        if turn.payload == NEW or NEW_WORDS.search(text):
            return self._confirm(state)
        if turn.payload == JOIN or JOIN_WORDS.search(text):
            return await self._join(turn, state)
        if NO.search(text) or turn.means("deny"):
            return self._confirm(state)
        if YES.search(text) or turn.means("affirm"):
            return await self._join(turn, state)
        return [self._reprompt(state, "duplicate.reprompt", duplicate_buttons(self._t))]

    # -- transitions -----------------------------------------------------------------

    async def _described(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        state.slots["description"] = turn.text
        state.slots["category"] = category_of(turn.parse)
        has_place = "address" in state.slots
        if take_address(turn.parse, state.slots, self._places) or has_place:
            return await self._after_address(turn, state)
        state.step, state.reprompts = "where", 0
        return self.ask(state)

    async def _redescribed(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        state.slots["description"] = turn.text
        if report_intent(turn):
            state.slots["category"] = category_of(turn.parse)
        take_address(turn.parse, state.slots, self._places)
        return await self._review(turn, state)

    async def _after_address(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if part_only(state.slots, self._places):  # 3号楼 alone: which estate's?
            state.step = "where"
            return [self._reprompt(state, "complaint.where_estate", address=state.slots["address"])]
        if state.slots.pop("editing", False) or state.slots["photos"]:
            return await self._review(turn, state)
        state.step, state.reprompts = "photo", 0
        return [self._photo_question(state)]

    @staticmethod
    def _adds(turn: Turn, slots: Slots) -> bool:
        """Add the message to the description when it is more of the report: a report
        message (the model's reading), one that says so (补充一下 …, 再加一句 …), or a
        correction (我刚才说错了，是自行车), kept whole so staff read what was corrected."""
        if turn.payload:
            return False
        if MORE_WORDS.search(turn.text):
            return add_detail(slots, more_of(turn.text))
        if CORRECTION.search(turn.text) and len(clean(turn.text)) > _CORRECTION_ALONE:
            return add_detail(slots, turn.text)  # (不对 / 说错了 alone corrects nothing yet)
        return bool(report_intent(turn)) and add_detail(slots, turn.text)

    def _to_edit(self, state: ConversationState) -> list[Outbound]:
        state.step, state.reprompts = "edit", 0
        return [self._msg("complaint.ask_edit", edit_buttons(self._t))]

    def _edit_what(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """地址写错了 → ask the new address; 描述不对 → ask the new text; else which."""
        if ABOUT_PLACE.search(turn.text):
            state.step, state.reprompts, state.slots["editing"] = "where", 0, True
            return [self._msg("complaint.ask_new_address")]
        if ABOUT_TEXT.search(turn.text):
            state.step, state.reprompts = "describe", 0
            return [self._msg("complaint.ask_new_description")]
        return self._to_edit(state)

    async def _review(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Offer a matching open case to join, once per place and category; else confirm.

        A grid worker's report is filed at once instead.
        """
        slots, inbound = state.slots, turn.inbound
        worker = await self._grid.worker(inbound.channel, inbound.chat_id) if self._grid else None
        if worker is not None:
            slots["grid"] = worker.grid
            case = await self._desk.create_case(self._draft(turn, state))
            state.finish()
            return [self._msg("grid.filed", (), number=case.number, grid=worker.grid)]
        where = [slots["category"], slots["address"], slots.get("latitude"), slots.get("longitude")]
        if slots.get("checked") == where:
            return self._confirm(state)
        slots["checked"] = where
        similar = await self._desk.similar_open(self._draft(turn, state))
        if not similar:
            return self._confirm(state)
        case = similar[0]
        state.step, state.reprompts = "duplicate", 0
        slots["duplicate"] = [case.number, case.category, case.status.value, case.address]
        return [self._duplicate_offer(state)]

    def _confirm(self, state: ConversationState) -> list[Outbound]:
        state.step, state.reprompts = "confirm", 0
        return [self._summary(state)]

    async def _submit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        case = await self._desk.create_case(self._draft(turn, state))
        place = {k: state.slots[k] for k in _PLACE_SLOTS if k in state.slots}
        state.recent["place"] = {**place, "at": turn.inbound.time.timestamp()}
        state.finish()
        return [self._msg("complaint.submitted", (), number=case.number)]

    async def _join(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        inbound = turn.inbound
        number = state.slots["duplicate"][0]
        case = await self._desk.follow(number, inbound.channel, inbound.user_id, inbound.chat_id)
        state.finish()
        status = self._t(f"status.{case.status.value}")
        return [self._msg("duplicate.joined", (), number=case.number, status=status)]

    def _draft(self, turn: Turn, state: ConversationState) -> CaseDraft:
        slots, inbound = state.slots, turn.inbound
        return CaseDraft(
            channel=inbound.channel,
            user_id=inbound.user_id,
            chat_id=inbound.chat_id,
            category=slots["category"],
            description=slots["description"],
            address=slots["address"],
            latitude=slots.get("latitude"),
            longitude=slots.get("longitude"),
            media=tuple((p["kind"], p["ref"], p["url"]) for p in slots["photos"]),
            grid=slots.get("grid", ""),
        )

    # -- texts -----------------------------------------------------------------------

    def _summary(self, state: ConversationState) -> Outbound:
        slots = state.slots
        photos = slots.get("photos") or []
        text = self._t(
            "complaint.confirm",
            category=self._t(f"category.{slots['category']}"),
            description=slots["description"],
            address=slots["address"] + (self._t("complaint.pinned") if slots.get("pinned") else ""),
            photos=self._t("complaint.photo_count", count=len(photos))
            if photos
            else self._t("complaint.no_photo"),
        )
        return Outbound(text, confirm_buttons(self._t))

    def _photo_question(self, state: ConversationState) -> Outbound:
        text = self._t("complaint.ask_photo", address=state.slots["address"])
        if road_only(state.slots, self._places):
            text = f"{text}\n{self._t('complaint.offer_pin')}"
        return Outbound(text, photo_buttons(self._t))

    def _duplicate_offer(self, state: ConversationState) -> Outbound:
        number, category, status, address = state.slots["duplicate"]
        offer = self._t(
            "duplicate.offer",
            number=number,
            category=self._t(f"category.{category}"),
            status=self._t(f"status.{status}"),
            address=address,
        )
        return Outbound(offer, duplicate_buttons(self._t))

    def _msg(
        self, key: str, buttons: tuple[Button, ...] | None = None, **values: object
    ) -> Outbound:
        """A text with the given buttons; by default just a cancel button."""
        if buttons is None:
            buttons = (Button(self._t("button.cancel"), CANCEL),)
        return Outbound(self._t(key, **values), buttons)

    def _reprompt(
        self,
        state: ConversationState,
        key: str,
        buttons: tuple[Button, ...] | None = None,
        **values: object,
    ) -> Outbound:
        state.reprompts += 1
        return self._msg(key, buttons, **values)


def _a_place_alone(turn: Turn) -> bool:
    """Whether the message is a place and nothing of a problem: 金辉小区3号楼 or 他住金辉小区
    2号楼 (the model reads a report in an address alone), not 金辉小区3号楼路灯坏."""
    if not address_only(turn.parse):
        return False
    return turn.only_a_value or not report_intent(turn)
