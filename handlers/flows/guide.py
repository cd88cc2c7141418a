"""The service guide (办事指南): materials, window, hours and fees, from the catalogue.

Started by ask_service_info; by 办事指南 / 我想办个事 typed (``GUIDE_WORDS``); or by the
rule trigger ``QUESTION`` when a question the model took for small talk names a
catalogue service or out-of-remit topic as written or as pinyin (退役军人优待证怎么办);
other questions are declined back to their intent. The service is the NLU ``service``
entity, else the best match of the words (handlers.flows.guide_match). Then:

- a service: one message (materials, where, hours, fee, time limit) with 预约办理,
  申请代办 (when it may be done by proxy) and 再看材料; until appointments are built,
  预约办理 says so honestly and gives the window, its hours and phone; 申请代办 hands
  the conversation to the 代办 flow (handlers.flows.proxy) for that service;
- a topic the street office does not handle: who does, and the 12345 hotline;
- a thing the catalogue does not know (宠物证): said plainly, with 转人工 offered;
- no service named: which one, with the common services as buttons (labels and
  numbers typed answer too); a question about hours gets the centre's hours first.

Until appointments have a flow of their own, book_appointment comes here too: for a
known service, the card and the honest answer of its button; naming no service, the
fallback flow (chat) answers as before. proxy_service goes to the 代办 flow, and
when a question trigger brings it here first, the guide hands it on.

After an answer the optional step ``answered`` keeps the service, so a follow-up
question (我是租的房子 没有房产证咋办, 要多久) is answered in the guide, not taken for a
report; anything else ends it quietly and is routed as usual.
"""

from __future__ import annotations

from handlers.catalog import Catalog
from handlers.flows.base import OFFER_INTERRUPTS, Declined, Expect, Flow, Turn
from handlers.flows.booking import BookingFlow
from handlers.flows.chat import MENU_HUMAN
from handlers.flows.guide_follow_up import (
    LOST,
    NEEDED,
    AsksALine,
    FollowUp,
    asked_after,
    lines_asked,
    lines_naming,
)
from handlers.flows.guide_hours import centre_hours, opening_hours
from handlers.flows.guide_match import (
    BOOK,
    ERRAND_WORDS,
    GUIDE,
    GUIDE_FLOW,
    GUIDE_WORDS,
    HOURS_QUESTION,
    MATERIALS,
    OPENING,
    PHONE_QUESTION,
    PICK,
    PROXY,
    STRONG,
    WHERE_QUESTION,
    Match,
    ServiceMatcher,
    asks,
    aspect_asked,
    names_a_thing,
    out_of_remit,
    things,
)
from handlers.flows.home import KIND_WORDS
from handlers.flows.proxy import ProxyFlow
from handlers.messages import Button, Outbound
from handlers.state import ConversationState, Frame
from handlers.words import clean
from integration.services import Service, ServiceCatalogue
from integration.services.calendar import LOCAL_TZ
from nlu.types import FALLBACK_INTENT

# Intents the guide answers when started; other intents decline a rule-triggered start.
# book_appointment and proxy_service come here too until their own flows exist: for a
# named service, the card and the honest word that online booking/代办 is coming.
ERRANDS = {"book_appointment": "book", "proxy_service": "proxy"}
STARTS = frozenset({"ask_service_info", "out_of_scope", FALLBACK_INTENT, *ERRANDS})
_ECHO_CHARS = 20  # of the resident's words quoted back when nothing matches


class GuideFlow:
    """Answers questions about services from the catalogue."""

    name = GUIDE_FLOW

    def __init__(
        self,
        services: ServiceCatalogue,
        catalog: Catalog,
        fallback: Flow | None = None,
        booking: BookingFlow | None = None,
    ) -> None:
        self._services = services
        self._t = catalog
        self._fallback = fallback  # answers a booking or 代办 that names no known service
        self._booking = booking  # 预约办理 books here; without it, the window is named
        self.proxy: ProxyFlow | None = None  # the 代办 flow, which 申请代办 starts
        self.matcher = ServiceMatcher(services)
        self._follow_up = FollowUp(self.matcher)

    # -- the Flow protocol -------------------------------------------------------------

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Answer the question (a rule-triggered start declines other intents)."""
        intent = turn.parse.intent
        if GUIDE_WORDS.search(turn.text):
            return self._answer(turn, state)
        if intent not in STARTS:
            # 我的养老金怎么还没到账 reads as a status query; a topic that is not the
            # street's, strongly named, is answered with who handles it. 我想给我爸申请个
            # 轮椅 reads as help at home: when it names no help at home (家里老人不会交电费
            # does), a service, too, gets its card.
            home = intent == "request_home_service" and not KIND_WORDS.search(turn.text)
            found = self._match(turn) if home or intent == "check_status" else None
            if found is None or found.score < STRONG:
                raise Declined
            if found.kind == "service" and home:
                return self._answer(turn, state)
            if found.kind != "remit":
                raise Declined
            state.begin(self.name, "answered", {})
            return [self._out_of_remit(int(found.key))]
        if intent == "proxy_service" and self.proxy is not None:
            return await self.proxy.start(turn, state)
        if intent in ERRANDS:
            return await self._errand(ERRANDS[intent], turn, state)
        if intent != "ask_service_info":  # the trigger: only what the catalogue names well
            found = self._match(turn)
            # the model's service entity counts too: 护理补贴 with no card is said so
            named = (found is not None and found.score >= STRONG) or bool(
                turn.parse.first("service")
            )
            if not named and not OPENING.search(turn.text):  # 明天几点开门: the centre's hours
                raise Declined
        return self._answer(turn, state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """A button, a picked service, or a follow-up question."""
        payload = turn.payload
        if payload.startswith(GUIDE):
            verb, _, service_id = payload.removeprefix(GUIDE).partition(":")
            service = self._services.services.get(service_id)
            if service is not None:
                return await self._on_button(verb, service, turn, state)
        if state.step == "answered" and state.slots.get("service"):
            if GUIDE_WORDS.search(turn.text):  # 办事指南 again (the menu): which service
                return self._answer(turn, state)
            service = self._services.service(state.slots["service"])
            # 周六能办吗 asks when, not whether: the hours answer it (below)
            eligible = aspect_asked(turn.text) == "eligible" and not HOURS_QUESTION.search(
                clean(turn.text)
            )
            if eligible and not ERRAND_WORDS.search(turn.text):  # before 代办: 他残疾，我没工作
                found = self._match(turn)
                if found is None or found.key == service.id:
                    again = state.slots.get("eligible_told") == service.id  # said in two goes
                    state.slots["eligible_told"] = service.id
                    return [self._card_about(service, turn, again=again)]
            errand = next((verb for i, verb in ERRANDS.items() if turn.means(i)), None)
            if errand is not None:  # 那我预约一下 / 能代办吗: this service, unless another is named
                found = self._match(turn)
                if found is not None and found.key != service.id:
                    return await self._errand(errand, turn, state)
                return await self._on_button(errand, service, turn, state)
            if NEEDED.search(clean(turn.text)) and lines_asked(service, turn.text):
                return [self._card_about(service, turn)]  # 残疾证要吗, after 低保: its line
            lost = self._lost(service, turn) if LOST.search(clean(turn.text)) else None
            if lost is not None:  # 身份证丢了, after 老年证: where to replace it first
                return [lost]
            if self._about(service, turn):
                return [self._card_about(service, turn)]
            if self._match(turn) is None and _about_centre(turn.text):
                return [Outbound(self._centre_hours(turn))]
        return self._answer(turn, state)

    def expect(self, state: ConversationState) -> Expect:
        """Buttons, then service names (at ``pick``) or follow-up questions (``answered``)."""
        if state.step == "pick":
            return Expect(
                prefixes=(GUIDE,),
                words=(self.matcher,),
                intents=frozenset({"ask_service_info"}),
                interrupts=OFFER_INTERRUPTS,
                optional=True,
            )
        service = self._services.services.get(state.slots.get("service", ""))
        lines = (AsksALine(service),) if service is not None else ()
        return Expect(
            prefixes=(GUIDE,),
            words=(self._follow_up, *lines),
            intents=frozenset({"ask_service_info", *ERRANDS}),
            interrupts=OFFER_INTERRUPTS,
            optional=True,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The service's card again, or which service."""
        service_id = state.slots.get("service")
        if state.step == "answered" and service_id in self._services.services:
            return [self._card(self._services.service(service_id))]
        if state.step == "pick":
            return [Outbound(self._t("guide.ask_which_again"), self._common_buttons())]
        return []

    def show(self, service: Service, state: ConversationState) -> list[Outbound]:
        """The service's card, the guide now answering follow-ups about it (another flow
        hands a question over: 就是想问问低保 at a booking's which-service question)."""
        state.begin(self.name, "answered", {"service": service.id})
        return [self._card(service)]

    def also_asked(self, turn: Turn) -> Frame | None:
        """The guide's answer, waiting, when a message that starts something else also
        asks about a service in a clause of its own, the question right after its name
        (老年证怎么办, 还有…; not 社保局门口的路灯坏了怎么办): its card, to be shown once
        that is done. Most reports ask nothing: the question words are looked for first,
        before the catalogue is matched (which costs half a millisecond)."""
        if turn.payload or not asks(turn.text):
            return None
        found = self._match(turn)
        if found is None or found.kind != "service" or found.score < STRONG:
            return None
        if not asked_after(turn.text, found.word):
            return None
        slots = {"service": found.key, "lead": "guide.also_asked", "word": found.word}
        return Frame(self.name, "answered", slots)

    def names(self, turn: Turn) -> bool:
        """Whether the message names a service or an out-of-remit topic as written (or as
        its pinyin): 帮我交一下电费, read as out of scope, is answered with who takes it."""
        found = self._match(turn)
        return found is not None and found.score >= STRONG

    # -- answers -----------------------------------------------------------------------

    def _answer(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        found = self._match(turn)
        if found is not None and found.kind == "service":
            state.begin(self.name, "answered", {"service": found.key})
            return [self._card(self._services.service(found.key))]
        if found is not None:
            state.begin(self.name, "answered", {})
            return [self._out_of_remit(int(found.key))]
        text = clean(turn.text)
        named = not turn.payload and not GUIDE_WORDS.search(turn.text)  # 办证 names nothing
        if text and named and names_a_thing(text):
            state.begin(self.name, "pick", {})
            human = Button(self._t("button.menu_human"), MENU_HUMAN)
            words = turn.text.strip()
            if len(words) > _ECHO_CHARS:  # a long message is not echoed whole
                words = f"{words[:_ECHO_CHARS]}…"
            return [Outbound(self._t("guide.no_match", words=words), (human,))]
        context = self._interrupted_service(state) if named else None
        if context is not None:  # 要带什么, in the middle of booking it: that service
            state.begin(self.name, "answered", {"service": context.id})
            return [self._card_about(context, turn)]
        state.begin(self.name, "pick", {})
        replies = []
        if _about_centre(text):
            replies.append(Outbound(self._centre_hours(turn)))
        replies.append(Outbound(self._t("guide.ask_which"), self._common_buttons()))
        return replies

    def _interrupted_service(self, state: ConversationState) -> Service | None:
        """The catalogue service of the flow this question interrupted (a booking or a
        代办 under way), if any: the question is about it when it names no other."""
        if not state.paused:
            return None
        service_id = state.paused[-1].slots.get("service")
        return self._services.services.get(service_id) if isinstance(service_id, str) else None

    async def _errand(self, verb: str, turn: Turn, state: ConversationState) -> list[Outbound]:
        """A booking or 代办 request: the card and the honest answer for a known service."""
        found = self._match(turn)
        if found is None or found.kind != "service":
            if found is not None:
                state.begin(self.name, "answered", {})
                return [self._out_of_remit(int(found.key))]
            if verb == "book" and self._booking is not None:
                return await self._booking.start(turn, state)  # 我想预约，但是不知道要办啥
            if self._fallback is None:
                return self._answer(turn, state)
            return await self._fallback.start(turn, state)
        service = self._services.service(found.key)
        if verb == "book" and self._booking is not None:
            return await self._booking.book(service, turn, state)
        card = self._card(service)
        if verb == "proxy" and self.proxy is not None:
            return await self.proxy.begin_for(service, turn, state)
        return [Outbound(card.text), *await self._on_button(verb, service, turn, state)]

    def _about(self, service: Service, turn: Turn) -> bool:
        """Whether a follow-up asks about ``service`` (its papers, time, fee), not another."""
        found = self._match(turn)
        said = "".join(
            (
                *service.words,
                *service.materials,
                *service.proxy_materials,
                service.fee,
                service.notes,
            )
        )
        named = things(turn.text)
        if found is not None:
            # 户口本 after 居住证 asks about its papers (户口簿), not about 户口 in general;
            # 没有房产证咋办 about its 房产证, not about 不动产登记.
            return found.key == service.id or (
                found.kind == "remit"
                and (found.word[:2] in said or (bool(named) and all(t in said for t in named)))
            )
        if _about_centre(turn.text):
            return False
        return all(thing in said for thing in named)

    def _match(self, turn: Turn) -> Match | None:
        found = self.matcher.in_turn(turn)
        if found is None:
            return None
        # A near copy only counts for a message the model also reads as a service question.
        if found.score < STRONG and not turn.means("ask_service_info"):
            return None
        return found

    async def _on_button(
        self, verb: str, service: Service, turn: Turn, state: ConversationState
    ) -> list[Outbound]:
        if verb == "proxy" and self.proxy is not None:  # 申请代办: the 代办 flow takes over
            return await self.proxy.begin_for(service, turn, state)
        if verb == "book" and self._booking is not None:  # 预约办理: the booking flow
            return await self._booking.book(service, turn, state)
        state.begin(self.name, "answered", {"service": service.id})
        window = self._services.window_for(service.id)
        buttons = self._buttons(service)
        if verb == "book":
            text = self._t(
                "guide.book_soon",
                name=service.name,
                hours=self._hours(),
                window=window.name,
                place=window.place,
                phone=window.phone,
            )
            return [Outbound(text, buttons)]
        if verb == "proxy":
            if not service.proxy:
                text = self._t(
                    "guide.proxy_not_allowed",
                    name=service.name,
                    window=window.name,
                    phone=window.phone,
                )
                return [Outbound(text, buttons)]
            text = self._t(
                "guide.proxy_soon",
                name=service.name,
                materials=self._list(service.proxy_materials),
                window=window.name,
                place=window.place,
                phone=window.phone,
            )
            return [Outbound(text, buttons)]
        return [self._card(service)]  # 再看材料, or a service picked from the list

    # -- texts -------------------------------------------------------------------------

    def _card_about(self, service: Service, turn: Turn, *, again: bool = False) -> Outbound:
        """An answer about a service already in the conversation: the one part of its
        card that ``turn`` asks about (要钱吗: the fee), else the card led by 关于“…”.
        ``again``: circumstances told after its conditions were given, acknowledged
        without the conditions a second time."""
        card = self._card(service)
        part = aspect_asked(turn.text) if not turn.payload else None
        lines = lines_asked(service, turn.text) if not turn.payload else []
        if lines and part not in ("eligible", "in_person"):  # 新生儿, 要住满多久: those lines
            text = self._t("guide.about_lines", name=service.name, lines="\n".join(lines))
            return Outbound(text, card.buttons)
        if part is not None:
            window = self._services.window_for(service.id)
            again = again and part == "eligible"
            notes = "" if again else service.notes
            said = [line for line in lines if line not in notes]  # 残疾的：残疾证, for 他残疾
            if said:
                notes += self._t("guide.lines_say", lines="；".join(said))
            if not again:
                notes = notes or self._t("guide.judged_at_window")
            only = part == "in_person" and not service.proxy
            text = self._t(
                f"guide.about_{part}{'_only' if only else ''}{'_again' if again else ''}",
                name=service.name,
                fee=service.fee,
                time_limit=service.time_limit,
                notes=notes,
                agent="、".join(service.proxy_materials),
                centre=self._services.centre.name,
                window=window.name,
                place=window.place,
                hours=self._hours(),
            )
            if part != "eligible":
                return Outbound(text, card.buttons)
            human = Button(self._t("button.menu_human"), MENU_HUMAN)  # a person can judge
            return Outbound(text, (*card.buttons, human))
        lead = self._t("guide.about", name=service.name)
        return Outbound(f"{lead}\n{card.text}", card.buttons)

    def _lost(self, service: Service, turn: Turn) -> Outbound | None:
        """A paper of ``service``'s card that the resident has lost, and that another
        office issues (身份证丢了): where it is replaced, and the card's lines naming it."""
        found = self._match(turn)
        lines = lines_naming(service, turn.text)
        if found is None or found.kind != "remit" or not lines:
            return None
        topic = self._services.out_of_remit.topics[int(found.key)]
        text = self._t(
            "guide.lost_paper",
            thing=found.word,
            where=topic.where,
            name=service.name,
            lines="\n".join(lines),
        )
        human = Button(self._t("button.menu_human"), MENU_HUMAN)
        return Outbound(text, (*self._card(service).buttons, human))

    def _card(self, service: Service) -> Outbound:
        window = self._services.window_for(service.id)
        text = self._t(
            "guide.card",
            name=service.name,
            materials=self._list(service.materials),
            centre=self._services.centre.name,
            window=window.name,
            place=window.place,
            hours=self._hours(),
            fee=service.fee,
            time_limit=service.time_limit,
            notes=self._t("guide.notes", notes=service.notes) if service.notes else "",
        )
        return Outbound(text, self._buttons(service))

    def _buttons(self, service: Service) -> tuple[Button, ...]:
        buttons = [Button(self._t("button.guide_book"), f"{BOOK}{service.id}")]
        if service.proxy:
            buttons.append(Button(self._t("button.guide_proxy"), f"{PROXY}{service.id}"))
        buttons.append(Button(self._t("button.guide_materials"), f"{MATERIALS}{service.id}"))
        return tuple(buttons)

    def _common_buttons(self) -> tuple[Button, ...]:
        services = self._services
        ids = services.common or tuple(services.services)[:6]
        return tuple(Button(services.service(i).name, f"{PICK}{i}") for i in ids)

    def _out_of_remit(self, position: int) -> Outbound:
        return out_of_remit(self._t, self._services, position)

    def _centre_hours(self, turn: Turn) -> str:
        return centre_hours(self._t, self._services, turn.inbound.time.astimezone(LOCAL_TZ).date())

    def _hours(self) -> str:
        return opening_hours(self._t, self._services)

    def _list(self, items: list[str]) -> str:
        return "\n".join(
            self._t("guide.material", number=n, item=item) for n, item in enumerate(items, 1)
        )


def _about_centre(text: str) -> bool:
    """Whether ``text`` asks when the centre is open, where it is or its phone (no
    service named)."""
    cleaned = clean(text)
    return any(q.search(cleaned) for q in (HOURS_QUESTION, WHERE_QUESTION, PHONE_QUESTION))
