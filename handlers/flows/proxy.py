"""The 代办 flow: staff run an errand at the service centre on a resident's behalf.

Started by proxy_service (我腿脚不便，能帮我代办老年证吗), or by the guide's 申请代办.
It collects, in this order and skipping what the resident already said:

- ``service``: which service (the service entity, else the guide's matching); a
  service the catalogue does not allow by proxy is refused with why and the window;
- ``reason``: why they cannot come (年老体弱, 残疾或行动不便, 生病住院, 在外地工作:
  buttons that also take words; other words are kept as they are), and for whom
  (帮我妈 …, else the resident);
- ``phone``: from the message, the remembered one, or asked once; then ``keep``
  asks 要不要记住这个号码 (handlers.flows.contact);
- ``address``: where documents are picked up and returned;
- ``confirm``: the summary, the materials (the service's and the agent's) and the
  consent words; 同意 opens a case of category ``proxy`` with the consent (those exact
  words and the time) stored beside it. Corrections (a new address, phone, service
  or reason) are taken at the confirmation.

At any step after the first, a message that is only a service's name says which one
(居住证明 while 开具证明 is under way: kept as the resident's word beside the service's
name, 开具证明（居住证明）, in the summary, the consent and the case) or switches to it; it
is not taken as a question for the guide.

The case goes through the dispatch integration like a report: status pushes,
我的进度 and the rating question afterwards.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, CaseDesk, Expect, Turn
from handlers.flows.contact import (
    CHANGE_PHONE,
    FORGET_PHONE,
    NO_PHONE,
    Contacts,
    answer_keep,
    keep_buttons,
    masked,
    phone_of,
    recall_phone,
    take_phone,
    with_lead,
)
from handlers.flows.guide_match import (
    BOOK,
    GOOD,
    GUIDE_FLOW,
    STRONG,
    Match,
    NamedAlone,
    ServiceMatcher,
    out_of_remit,
)
from handlers.flows.proxy_steps import (
    AGREE,
    AGREE_WORDS,
    EDIT,
    EDIT_WORDS,
    GO_MYSELF,
    PAPERS_READY,
    REASON,
    SERVICE,
    confirm_buttons,
    errand_asked,
    expectation,
    reason_buttons,
    reason_of,
    whom_of,
    whom_only,
)
from handlers.flows.report_slots import typed_address, within
from handlers.flows.report_steps import SUBMIT_WORDS
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import NO, YES, clean
from integration.cases import CaseDraft, Consent
from integration.services import Service, ServiceCatalogue

if TYPE_CHECKING:
    from handlers.flows.guide import GuideFlow

CATEGORY = "proxy"
# In the first message only a place that names a building or a number is taken as the
# address (我想请社区帮我办 is no address).
_PRECISE = re.compile(r"\d|号|楼|栋|单元|小区|苑|村|路|街|巷")
_MIN_ADDRESS = 4  # characters of a typed place the extractor did not recognise
_OTHER = "other"
# Characters that add nothing to a service's name (开个证明 is 开具证明, 居住证明 is more).
_GENERIC = frozenset("开个办理一份张")


class ProxyFlow:
    """Collects a 代办 request and opens a case for it, with the resident's consent."""

    name = "proxy"

    def __init__(
        self,
        desk: CaseDesk,
        services: ServiceCatalogue,
        catalog: Catalog,
        contacts: Contacts,
        matcher: ServiceMatcher | None = None,
    ) -> None:
        self._desk = desk
        self._services = services
        self._t = catalog
        self._contacts = contacts
        self.matcher = matcher or ServiceMatcher(services)
        self.guide: GuideFlow | None = None  # whose card answers a question about a service

    # -- the Flow protocol -------------------------------------------------------------

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin with whatever the message already says (service, reason, phone, place)."""
        state.begin(self.name, "service", {})
        found = self.matcher.in_turn(turn)  # matched once, for every check below
        service = self._service_from(found)
        if service is not None and not service.proxy:
            return self._refuse(service, state)
        if found is not None and found.kind == "remit" and found.score >= STRONG:
            state.finish()  # 能帮我把户口迁过来吗: not the street's, nor anyone's errand here
            return [out_of_remit(self._t, self._services, int(found.key))]
        if service is not None and self.guide and not errand_asked(turn.text):
            return self.guide.show(service, state)  # 给我家老人办个高龄补贴: 申请代办 on the card
        if service is not None:
            self._choose(service, found, state)
        return await self._took(turn, state)

    async def begin_for(
        self, service: Service, turn: Turn, state: ConversationState, earlier: str = ""
    ) -> list[Outbound]:
        """Begin for a service already chosen (the guide's 申请代办, pressed or typed:
        能帮我代办吗 我腿脚不方便 already gives the reason). ``earlier`` is what the
        resident said before (a booking's first message: 给我爸预约…，他行动不便), read for
        whom and why."""
        if not service.proxy:
            state.begin(self.name, "service", {})
            return self._refuse(service, state)
        state.begin(self.name, "service", {"service": service.id})
        reason, whom = reason_of(earlier, service.words), whom_of(earlier)
        state.slots.update({"reason": reason} if reason else {})
        state.slots.update({"whom": whom} if whom else {})
        return await self._took(turn, state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The answer to the active step, a correction, or the question again."""
        slots, step = state.slots, state.step or "service"
        payload = turn.payload
        if FORGET_PHONE.search(turn.text) and not payload:
            return await self._forget(turn, state)
        if CHANGE_PHONE.search(turn.text) and not phone_of(turn) and not payload:
            slots.pop("phone", None)
            slots.pop("kept", None)
            state.step, state.reprompts = "phone", 0
            return [self._msg("proxy.ask_phone")]
        if step == "phone" and not phone_of(turn) and NO_PHONE.search(turn.text):
            state.reprompts += 1
            return [self._msg("proxy.phone_needed")]
        if step == "service":
            return await self._on_service(turn, state)
        if not payload and GO_MYSELF.search(turn.text):
            return self._going_myself(state)
        named = self.matcher.alone(turn.text) if not payload else None
        if named is not None:  # 居住证明 (which certificate), or 不，是老年证
            return self._renamed(named, state)
        if step != "confirm" and not payload and self._only_papers_ready(turn, state):
            return with_lead(self._t("proxy.papers_ready"), self.ask(state))
        if step == "keep":
            return await self._on_keep(turn, state)
        if step == "confirm":
            return await self._on_confirm(turn, state)
        before = dict(slots)
        if payload.startswith(REASON):
            slots["reason"] = payload.removeprefix(REASON)
        await self._take(turn, state, step=step)
        if slots == before:
            return [self._reprompt(state)]
        replies = await self._advance(turn, state)
        if state.step == step == "reason" and slots.get("whom") != before.get("whom"):
            text = self._t("proxy.ask_reason_for", whom=slots["whom"])  # whom, without why
            return [replace(replies[0], text=text), *replies[1:]]
        return replies

    def expect(self, state: ConversationState) -> Expect:
        """What answers each step (handlers.flows.proxy_steps)."""
        return expectation(state.step or "service", self.matcher, NamedAlone(self.matcher))

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The active step's question."""
        step, slots = state.step or "service", state.slots
        if step == "service":
            return [Outbound(self._t("proxy.ask_service"), self._service_buttons())]
        name = self._name(state)
        if step == "reason":
            return [Outbound(self._t("proxy.ask_reason", name=name), reason_buttons(self._t))]
        if step == "phone":
            return [self._msg("proxy.ask_phone")]
        if step == "keep":
            text = self._t("proxy.ask_keep", phone=masked(slots["phone"]))
            return [Outbound(text, keep_buttons(self._t))]
        if step == "address":
            return [self._msg("proxy.ask_address", name=name)]
        return [self._summary(state)]

    # -- steps -------------------------------------------------------------------------

    async def _on_service(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        service = None
        if turn.payload.startswith(SERVICE):
            service = self._services.services.get(turn.payload.removeprefix(SERVICE))
        service = service or self._service_of(turn)
        if service is None:
            return [self._reprompt(state)]
        if not service.proxy:
            return self._refuse(service, state)
        self._choose(service, self.matcher.in_turn(turn), state)
        return await self._took(turn, state)

    def _renamed(self, named: Match, state: ConversationState) -> list[Outbound]:
        """A message that only names a service, at a later step: which one of the chosen
        service's kind (居住证明 for 开具证明), or another service instead."""
        slots = state.slots
        service = self._services.service(named.key)
        if service.id != slots["service"] and not service.proxy:
            lead = self._t("proxy.not_allowed_keep", name=service.name)
        else:
            lead = self._t(
                "proxy.noted" if service.id == slots["service"] else "proxy.changed",
                name=self._choose(service, named, state),
            )
        return with_lead(lead, self.ask(state))

    async def _on_keep(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots = state.slots
        phone = phone_of(turn)
        if phone:  # another number: ask about that one
            slots["phone"] = phone
            return self.ask(state)
        kept = await answer_keep(turn, slots, self._contacts)
        if kept is None:
            if await self._took_any(turn, state):  # the address, said before it was asked
                return self.ask(state)
            return [self._reprompt(state)]
        phone = masked(slots["phone"])
        lead = self._t("proxy.kept", phone=phone) if kept else self._t("proxy.not_kept")
        return with_lead(lead, await self._advance(turn, state))

    async def _on_confirm(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots, text = state.slots, turn.text
        if turn.payload == AGREE:
            return await self._submit(turn, state)
        if turn.payload == EDIT or (not turn.payload and EDIT_WORDS.search(text)):
            if not await self._took_any(turn, state):
                return [Outbound(self._t("proxy.how_to_edit"), confirm_buttons(self._t))]
            return await self._advance(turn, state)
        service = self._service_of(turn)
        if service is not None and service.id != slots["service"]:
            if not service.proxy:
                return [Outbound(self._t("proxy.not_allowed_keep", name=service.name))]
            self._choose(service, self.matcher.in_turn(turn), state)
            return await self._advance(turn, state)
        if await self._took_any(turn, state):
            return await self._advance(turn, state)
        if AGREE_WORDS.search(text) or SUBMIT_WORDS.search(text):
            return await self._submit(turn, state)
        if NO.search(text) or turn.means("deny"):
            state.finish()
            return [Outbound(self._t("proxy.cancelled"))]
        if YES.search(text) or turn.means("affirm"):
            return await self._submit(turn, state)
        return [self._reprompt(state)]

    # -- slots and transitions -----------------------------------------------------------

    async def _took(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Take a first message (or the service's answer) and ask what is missing. When
        it also said whom and why (帮我婆婆代办高龄补贴，她90岁了), the question skips
        to the phone: the service understood is said first."""
        await self._take(turn, state, step="start")
        replies = await self._advance(turn, state)
        if state.step in ("phone", "keep", "address"):
            return with_lead(self._t("proxy.noted", name=self._name(state)), replies)
        return replies

    async def _took_any(self, turn: Turn, state: ConversationState) -> bool:
        before = dict(state.slots)
        await self._take(turn, state, step="confirm")
        return state.slots != before

    def _only_papers_ready(self, turn: Turn, state: ConversationState) -> bool:
        """身份证户口本都有, and no answer to a step beside it (a reason, phone or place)."""
        if not PAPERS_READY.search(turn.text) or phone_of(turn) or typed_address(turn.parse):
            return False
        return not reason_of(turn.text, self._words_of(state.slots.get("service")))

    async def _take(self, turn: Turn, state: ConversationState, step: str) -> None:
        """Fill what the message says: reason and whom, phone, place."""
        slots, text = state.slots, turn.text
        if text and not turn.payload:
            reason = reason_of(text, self._words_of(slots.get("service")))
            if reason:
                slots["reason"] = reason
            elif (
                step == "reason"
                and not phone_of(turn)
                and not turn.only_a_value
                and not whom_only(text)
            ):
                slots["reason"], slots["reason_text"] = _OTHER, text[:100]
            whom = whom_of(text)
            if whom:
                slots["whom"] = whom
        phone = take_phone(turn, slots)
        location = turn.inbound.location
        if location is not None:
            slots["address"] = location.label or f"{location.latitude:.5f},{location.longitude:.5f}"
        entity = typed_address(turn.parse)
        if entity is not None and (step != "start" or _PRECISE.search(entity.value)):
            slots["address"] = within(str(slots.get("address") or ""), entity.value)
        elif (
            step == "address"
            and not phone
            and not turn.only_a_value
            and len(clean(text)) >= _MIN_ADDRESS
        ):
            slots["address"] = text.strip()[:200]

    async def _advance(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Ask for the first thing still missing; the summary when nothing is."""
        slots = state.slots
        await recall_phone(turn, slots, self._contacts)
        if "service" not in slots:
            step = "service"
        elif "reason" not in slots:
            step = "reason"
        elif "phone" not in slots:
            step = "phone"
        elif "kept" not in slots:
            step = "keep"
        elif "address" not in slots:
            step = "address"
        else:
            step = "confirm"
        state.step, state.reprompts = step, 0
        return self.ask(state)

    async def _forget(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        inbound, slots = turn.inbound, state.slots
        forgot = await self._contacts.forget(inbound.channel, inbound.user_id)
        if slots.get("kept"):  # the number came from memory: this request needs one anew
            slots.pop("phone", None)
            slots.pop("kept", None)
        lead = self._t("contact.forgotten" if forgot else "contact.none_kept")
        return with_lead(lead, await self._advance(turn, state))

    async def _submit(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        slots, inbound = state.slots, turn.inbound
        service = self._services.service(slots["service"])
        consent = Consent(self._consent(state), inbound.time)
        draft = CaseDraft(
            channel=inbound.channel,
            user_id=inbound.user_id,
            chat_id=inbound.chat_id,
            category=CATEGORY,
            description=self._description(state),
            address=slots["address"],
            consent=consent,
        )
        case = await self._desk.create_case(draft)
        state.finish()
        window = self._services.window_for(service.id)
        text = self._t("proxy.submitted", number=case.number, name=service.name, window=window.name)
        return [Outbound(text)]

    # -- texts -------------------------------------------------------------------------

    def _choose(self, service: Service, named: Match | None, state: ConversationState) -> str:
        """Take ``service``, with the resident's own word for it when that says more
        than the service's name (居住证明 for 开具证明, not 开个证明); its display name."""
        slots = state.slots
        if slots.get("service") != service.id:
            slots.pop("item", None)
        slots["service"] = service.id
        word = named.word if named is not None and named.key == service.id else ""
        if word and not set(word) <= set(service.name) | _GENERIC:
            slots["item"] = word
        return self._name(state)

    def _name(self, state: ConversationState) -> str:
        """The chosen service's name, with the resident's word for it: 开具证明（居住证明）."""
        name = self._services.service(state.slots["service"]).name
        item = state.slots.get("item")
        return self._t("proxy.name_item", name=name, item=item) if item else name

    def _service_of(self, turn: Turn) -> Service | None:
        return self._service_from(self.matcher.in_turn(turn))

    def _service_from(self, found: Match | None) -> Service | None:
        if found is None or found.kind != "service" or found.score < GOOD:
            return None
        return self._services.service(found.key)

    def _refuse(self, service: Service, state: ConversationState) -> list[Outbound]:
        state.finish()
        window = self._services.window_for(service.id)
        text = self._t(
            "proxy.not_allowed",
            name=service.name,
            window=window.name,
            place=window.place,
            phone=window.phone,
        )
        return [Outbound(text)]

    def _words_of(self, service_id: str | None) -> tuple[str, ...]:
        """A service's name and synonyms (none when no service is chosen yet)."""
        if service_id not in self._services.services:
            return ()
        return tuple(self._services.service(str(service_id)).words)

    def _whom(self, state: ConversationState) -> str:
        return state.slots.get("whom") or self._t("proxy.self")

    def _reason(self, state: ConversationState) -> str:
        reason = state.slots["reason"]
        if reason == _OTHER:
            return str(state.slots.get("reason_text", ""))
        return self._t(f"proxy.reason.{reason}")

    def _consent(self, state: ConversationState) -> str:
        """The consent words, exactly as shown in the summary and stored with the case."""
        return self._t("proxy.consent", name=self._name(state), whom=self._whom(state))

    def _description(self, state: ConversationState) -> str:
        slots = state.slots
        return self._t(
            "proxy.description",
            name=self._name(state),
            whom=self._whom(state),
            reason=self._reason(state),
            phone=slots["phone"],
            address=slots["address"],
        )

    def _summary(self, state: ConversationState) -> Outbound:
        slots = state.slots
        service = self._services.service(slots["service"])
        text = self._t(
            "proxy.confirm",
            name=self._name(state),
            whom=self._whom(state),
            reason=self._reason(state),
            phone=masked(slots["phone"]),
            address=slots["address"],
            materials=_numbered(service.materials),
            proxy_materials=_numbered(service.proxy_materials),
            consent=self._consent(state),
        )
        return Outbound(text, confirm_buttons(self._t))

    def _service_buttons(self) -> tuple[Button, ...]:
        services = self._services
        ids = [i for i in services.common or tuple(services.services) if services.service(i).proxy]
        return (
            *(Button(services.service(i).name, f"{SERVICE}{i}") for i in ids[:6]),
            Button(self._t("button.cancel"), CANCEL),
        )

    def _msg(self, key: str, **values: object) -> Outbound:
        return Outbound(self._t(key, **values), (Button(self._t("button.cancel"), CANCEL),))

    def _going_myself(self, state: ConversationState) -> list[Outbound]:
        """The resident will come in person after all: nothing is filed, and the
        service's booking is offered (the guide's 预约办理 on its card)."""
        service = self._services.service(state.slots["service"])
        window = self._services.window_for(service.id)
        state.begin(GUIDE_FLOW, "answered", {"service": service.id})
        book = Button(self._t("button.guide_book"), f"{BOOK}{service.id}")
        text = self._t("proxy.going_myself", name=service.name, window=window.name)
        return [Outbound(text, (book,) if service.bookable else ())]

    def _reprompt(self, state: ConversationState) -> Outbound:
        state.reprompts += 1
        question = self.ask(state)[0]
        lead = self._t("proxy.reprompt")
        return Outbound(f"{lead}\n{question.text}", question.buttons)


def _numbered(items: list[str]) -> str:
    return "\n".join(f"{n}. {item}" for n, item in enumerate(items, 1)) or "—"
