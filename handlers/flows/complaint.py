"""The complaint flow: what happened, where, an optional photo, confirm, open a case.

Steps: ``what`` (only when started without a description) → ``where`` → ``photo`` →
``confirm``; from ``confirm`` the resident may ``edit`` the address or the description.
Slots hold the category (a report_* intent's suffix), description, address,
coordinates and photos.

Before the first confirmation (and again whenever the place or category changes) the
desk is asked for others' open cases of the same category within 200 m or at the same
address in the last 24 hours; if there is one, step ``duplicate`` offers to join it
(加入已有工单: the resident follows it and no new case is created) or to go on.
"""

from __future__ import annotations

from typing import Protocol

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, CaseDesk, Turn, finish
from handlers.messages import Button, Inbound, Outbound
from handlers.state import ConversationState
from integration.cases import CaseDraft
from nlu.gazetteer import Community
from nlu.types import Parse

REPORT_PREFIX = "report_"
MAX_PHOTOS = 5
SKIP_WORDS = frozenset({"跳过", "没有", "没有照片", "不用", "不用了", "无", "不需要", "skip", "no"})

SUBMIT, EDIT, SKIP = "complaint:submit", "complaint:edit", "complaint:skip"
JOIN, NEW = "complaint:join", "complaint:new"
EDIT_ADDRESS, EDIT_DESCRIPTION = "complaint:edit_address", "complaint:edit_description"


def category_of(parse: Parse) -> str:
    """The case category: the suffix of the best-ranked report_* intent, else "other"."""
    if parse.intent.startswith(REPORT_PREFIX):
        return parse.intent.removeprefix(REPORT_PREFIX)
    for intent, _ in parse.ranking:
        if intent.startswith(REPORT_PREFIX):
            return intent.removeprefix(REPORT_PREFIX)
    return "other"


class Places(Protocol):
    """Finds the community an address names (the gazetteer), for its coordinates."""

    def locate(self, text: str) -> Community | None:
        """The community named in ``text``, if any."""
        ...


class ComplaintFlow:
    """Collects a report and opens a case on the desk."""

    name = "complaint"

    def __init__(self, desk: CaseDesk, catalog: Catalog, places: Places | None = None) -> None:
        self._desk = desk
        self._t = catalog
        self._places = places

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin with the report itself, or ask for one when started from the menu."""
        state.flow, state.slots = self.name, {"photos": []}
        _take_media(turn.inbound, state)
        if turn.text and turn.parse.intent.startswith(REPORT_PREFIX):
            return await self._described(turn, state)
        if turn.inbound.location:
            _take_location(turn.inbound, state)
        state.step = "what"
        return [self._msg("complaint.ask_what")]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Continue at the current step."""
        step = {
            "what": self._on_what,
            "where": self._on_where,
            "photo": self._on_photo,
            "confirm": self._on_confirm,
            "edit": self._on_edit,
            "describe": self._on_describe,
            "duplicate": self._on_duplicate,
        }[state.step or "what"]
        return await step(turn, state)

    # -- steps ---------------------------------------------------------------------

    async def _on_what(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if _take_media(turn.inbound, state) or turn.inbound.location:
            _take_location(turn.inbound, state)
            return [self._msg("complaint.ask_what")]
        if not turn.text:
            return [self._msg("complaint.ask_what")]
        return await self._described(turn, state)

    async def _on_where(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if _take_location(turn.inbound, state) or _take_address(turn.parse, state, self._places):
            return await self._after_address(turn, state)
        if _take_media(turn.inbound, state):
            count = len(state.slots["photos"])
            return [self._msg("complaint.photo_on_where", count=count)]
        return [self._reprompt(state, "complaint.reask_where")]

    async def _on_photo(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if _take_media(turn.inbound, state):
            return await self._review(turn, state)
        if turn.payload == SKIP or _says_skip(turn):
            return await self._review(turn, state)
        return [self._reprompt(state, "complaint.reask_photo", self._photo_buttons())]

    async def _on_confirm(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if turn.payload == SUBMIT or (not turn.payload and turn.parse.intent == "affirm"):
            return await self._submit(turn, state)
        if turn.payload == EDIT or (not turn.payload and turn.parse.intent == "deny"):
            state.step = "edit"
            return [self._msg("complaint.ask_edit", self._edit_buttons())]
        if any(m.kind == "image" for m in turn.inbound.media):
            if not _take_media(turn.inbound, state):
                return [self._msg("complaint.photo_limit", limit=MAX_PHOTOS, count=MAX_PHOTOS)]
            return self._confirm(state)
        if turn.inbound.location:
            _take_location(turn.inbound, state)
            return await self._review(turn, state)
        return [self._reprompt(state, "complaint.reconfirm", self._confirm_buttons())]

    async def _on_edit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if turn.payload == EDIT_ADDRESS:
            state.step, state.slots["editing"] = "where", True
            return [self._msg("complaint.ask_new_address")]
        if turn.payload == EDIT_DESCRIPTION:
            state.step = "describe"
            return [self._msg("complaint.ask_new_description")]
        if _take_location(turn.inbound, state) or _take_address(turn.parse, state, self._places):
            return await self._review(turn, state)
        return [self._reprompt(state, "complaint.ask_edit", self._edit_buttons())]

    async def _on_describe(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if not turn.text:
            return [self._msg("complaint.ask_new_description")]
        state.slots["description"] = turn.text
        if turn.parse.intent.startswith(REPORT_PREFIX):
            state.slots["category"] = category_of(turn.parse)
        return await self._review(turn, state)

    async def _on_duplicate(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if turn.payload == JOIN or (not turn.payload and turn.parse.intent == "affirm"):
            inbound = turn.inbound
            case = await self._desk.follow(
                state.slots["duplicate"], inbound.channel, inbound.user_id, inbound.chat_id
            )
            finish(state)
            status = self._t(f"status.{case.status.value}")
            return [self._msg("duplicate.joined", (), number=case.number, status=status)]
        if turn.payload == NEW or (not turn.payload and turn.parse.intent == "deny"):
            return self._confirm(state)
        return [self._reprompt(state, "duplicate.reprompt", self._duplicate_buttons())]

    # -- transitions -----------------------------------------------------------------

    async def _described(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        state.slots["description"] = turn.text
        state.slots["category"] = category_of(turn.parse)
        if "address" in state.slots or _take_address(turn.parse, state, self._places):
            return await self._after_address(turn, state)
        state.step, state.reprompts = "where", 0
        category = self._t(f"category.{state.slots['category']}")
        return [self._msg("complaint.ask_where", category=category)]

    async def _after_address(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        if state.slots.pop("editing", False) or state.slots["photos"]:
            return await self._review(turn, state)
        state.step, state.reprompts = "photo", 0
        return [
            self._msg("complaint.ask_photo", self._photo_buttons(), address=state.slots["address"])
        ]

    async def _review(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Offer a matching open case to join, once per place and category; else confirm."""
        slots = state.slots
        where = [slots["category"], slots["address"], slots.get("latitude"), slots.get("longitude")]
        if slots.get("checked") == where:
            return self._confirm(state)
        slots["checked"] = where
        similar = await self._desk.similar_open(self._draft(turn, state))
        if not similar:
            return self._confirm(state)
        case = similar[0]
        state.step, state.reprompts, slots["duplicate"] = "duplicate", 0, case.number
        offer = self._t(
            "duplicate.offer",
            number=case.number,
            category=self._t(f"category.{case.category}"),
            status=self._t(f"status.{case.status.value}"),
            address=case.address,
        )
        return [Outbound(offer, self._duplicate_buttons())]

    def _confirm(self, state: ConversationState) -> list[Outbound]:
        state.step, state.reprompts = "confirm", 0
        slots = state.slots
        photos = slots["photos"]
        summary = self._t(
            "complaint.confirm",
            category=self._t(f"category.{slots['category']}"),
            description=slots["description"],
            address=slots["address"],
            photos=self._t("complaint.photo_count", count=len(photos))
            if photos
            else self._t("complaint.no_photo"),
        )
        return [Outbound(summary, self._confirm_buttons())]

    async def _submit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        case = await self._desk.create_case(self._draft(turn, state))
        finish(state)
        return [self._msg("complaint.submitted", (), number=case.number)]

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
        )

    # -- texts -----------------------------------------------------------------------

    def _msg(
        self, key: str, buttons: tuple[Button, ...] | None = None, **values: object
    ) -> Outbound:
        """A text with the given buttons; by default just a cancel button."""
        if buttons is None:
            buttons = (Button(self._t("button.cancel"), CANCEL),)
        return Outbound(self._t(key, **values), buttons)

    def _reprompt(
        self, state: ConversationState, key: str, buttons: tuple[Button, ...] | None = None
    ) -> Outbound:
        state.reprompts += 1
        return self._msg(key, buttons)

    def _photo_buttons(self) -> tuple[Button, ...]:
        return (Button(self._t("button.skip"), SKIP), Button(self._t("button.cancel"), CANCEL))

    def _confirm_buttons(self) -> tuple[Button, ...]:
        return (
            Button(self._t("button.submit"), SUBMIT),
            Button(self._t("button.edit"), EDIT),
            Button(self._t("button.cancel"), CANCEL),
        )

    def _duplicate_buttons(self) -> tuple[Button, ...]:
        return (
            Button(self._t("duplicate.join"), JOIN),
            Button(self._t("duplicate.new"), NEW),
            Button(self._t("button.cancel"), CANCEL),
        )

    def _edit_buttons(self) -> tuple[Button, ...]:
        return (
            Button(self._t("button.edit_address"), EDIT_ADDRESS),
            Button(self._t("button.edit_description"), EDIT_DESCRIPTION),
            Button(self._t("button.cancel"), CANCEL),
        )


def _take_media(inbound: Inbound, state: ConversationState) -> bool:
    """Keep the message's photos; False when there were none or the limit is reached."""
    photos: list[dict[str, str]] = state.slots.setdefault("photos", [])
    images = [m for m in inbound.media if m.kind == "image"]
    room = MAX_PHOTOS - len(photos)
    if not images or room <= 0:
        return False
    photos += [{"kind": m.kind, "ref": m.ref, "url": m.url} for m in images[:room]]
    return True


def _take_location(inbound: Inbound, state: ConversationState) -> bool:
    location = inbound.location
    if location is None:
        return False
    state.slots["latitude"], state.slots["longitude"] = location.latitude, location.longitude
    state.slots["address"] = location.label or f"{location.latitude:.5f},{location.longitude:.5f}"
    return True


def _take_address(parse: Parse, state: ConversationState, places: Places | None) -> bool:
    """Keep a typed address; its community's coordinates stand in for a pin's."""
    entity = parse.first("address")
    if entity is None:
        return False
    state.slots["address"] = entity.value
    community = places.locate(entity.value) if places else None
    state.slots["latitude"] = community.latitude if community else None
    state.slots["longitude"] = community.longitude if community else None
    return True


def _says_skip(turn: Turn) -> bool:
    return turn.text.lower().rstrip("。.!！") in SKIP_WORDS or (
        not turn.payload and turn.parse.intent == "deny"
    )
