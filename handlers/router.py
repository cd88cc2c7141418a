"""Routes each turn: to the active flow's step, to an interruption, or to a new flow.

A conversation is a stack of flows (handlers.state). For an active flow, the order is
the one documented in handlers.flows.base: an expected button; withdrawal; a request
for a person; the step's expectations (photos, pins, entities, rule words, then the
model's ranking restricted to the step's intents); the step's interruptions; and
finally the flow itself (free text, or a reprompt). An idle conversation goes to the
flow a rule trigger names, else to the flow of its top intent. Whenever a flow ends
and another is paused, the paused one is resumed and its question asked again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from handlers.catalog import Catalog
from handlers.flows import DEFAULT_FLOW, ROUTES, TRIGGERS, Trigger
from handlers.flows.base import CANCEL, HANDOFF_INTENT, Declined, Expect, Flow, Paused, Turn
from handlers.flows.chat import MENU_HUMAN, menu, phone_alone
from handlers.flows.guide import GuideFlow
from handlers.flows.guide_follow_up import without_question
from handlers.flows.handoff import HandoffFlow, count_fallback, escalation
from handlers.flows.handoff import wants_person as staff_wanted
from handlers.flows.rating import RATE
from handlers.flows.status import StatusFlow
from handlers.joined import then_also
from handlers.messages import Button, Outbound
from handlers.patience import Patience, Verdict
from handlers.state import ConversationState
from handlers.words import (
    ABUSE,
    FIXED_MEANWHILE,
    HANDOFF,
    INTRODUCTION,
    PRIVACY_QUESTION,
    PROCESS_QUESTION,
    WHO_ARE_YOU,
    WITHDRAW_CASE,
    clean,
)
from handlers.words import CANCEL as CANCEL_WORDS
from nlu.contract import REPORT_INTENTS
from nlu.types import BUTTON_INTENT, FALLBACK_INTENT

# Slash commands (Telegram's, and typed anywhere) and the intents they stand for.
COMMANDS: Mapping[str, str] = {
    "/start": "greet",
    "/help": "help",
    "/menu": "help",
    "/status": "check_status",
}
OFFER_PERSON_AFTER = 2  # reprompts of one step before a person is offered
# How sure the model must be that a message with a place is a report of another kind
# before it interrupts a step that already has its place (``is_news``).
NEWS_CONFIDENCE = 0.6


def is_cancel(turn: Turn) -> bool:
    """Whether the message withdraws what is under way (the 取消 button, 算了先别提交了…)."""
    return turn.payload == CANCEL or (
        not turn.payload and bool(turn.text) and CANCEL_WORDS.search(turn.text)
    )


def cancels_a_booking(turn: Turn) -> bool:
    """取消预约 / 取消我的预约 with nothing under way: a booking to cancel, not a withdrawal."""
    return turn.parse.intent == "cancel_appointment" and "预约" in turn.text


def withdraws_a_case(turn: Turn) -> bool:
    """我刚才报的那个不要了 / 撤销投诉: a report already submitted, withdrawn in words."""
    return not turn.payload and bool(turn.text) and WITHDRAW_CASE.search(turn.text)


# The problem is back, or something else is wrong: 修好了又坏了, 修好了但是….
_BACK_AGAIN = re.compile("又|还是|仍然|依然|但是|可是|不过|没几天|只.{0,3}(一天|一晚|两天)")


# 我的进度, 查进度: a status query of no more characters names nothing to look up.
_BARE_QUERY = 4


def said_fixed(turn: Turn) -> bool:
    """路灯已经修好了，谢谢 / 下水道通了 (the model may read a report in it): the problem
    reported is gone, in words; not when it is back or something else is wrong
    (路灯修好了又坏了, 修好了但是…)."""
    return (
        not turn.payload
        and bool(turn.text)
        and FIXED_MEANWHILE.search(turn.text)
        and not _BACK_AGAIN.search(turn.text)
    )


def asks_about_process(turn: Turn) -> bool:
    """一般要多久能修好 / 修好了会通知我吗: how reports are handled, asked in words. A report
    (路灯坏了多久能修好) and a status query (我报的路灯多久能修好) are not this."""
    return (
        not turn.payload
        and bool(turn.text)
        and turn.parse.intent not in REPORT_INTENTS
        and turn.parse.intent != "check_status"
        and PROCESS_QUESTION.search(turn.text)
    )


def aside(turn: Turn) -> str | None:
    """The catalogue key of the answer to a message beside any request, if it is one:
    how reports are handled (``chat.process``), a resident saying who they are (我姓张 /
    她叫王秀英 / 我是她女儿: ``chat.introduced``, noted, never a request), or asking who
    answers (你是机器人吗 / 你是谁: ``chat.identity``), or how personal data is used
    (你们会把我的电话泄露出去吗: ``chat.privacy``)."""
    if asks_about_process(turn):
        return "chat.process"
    if turn.payload or not turn.text:
        return None
    if INTRODUCTION.search(turn.text):
        return "chat.introduced"
    if WHO_ARE_YOU.search(turn.text):
        return "chat.identity"
    if PRIVACY_QUESTION.search(turn.text):
        return "chat.privacy"
    return None


# A place said as a correction of the one given (改成…, 地址不对，是…): never a new report.
_PLACE_CORRECTED = re.compile("^(改成|改为|换成|应该是|地址|地点|位置)|^不是.{1,12}是")


def is_news(turn: Turn, state: ConversationState, expect: Expect) -> bool:
    """A report of another kind with its own place, once the step's place is known
    (幸福路88号路灯坏了 at a rubbish report's confirmation): a new report that interrupts,
    not a correction of the place. A place alone (金辉小区5号楼), a photo or a pin still
    answers the step."""
    parse, inbound = turn.parse, turn.inbound
    return (
        parse.intent in REPORT_INTENTS
        and parse.confidence >= NEWS_CONFIDENCE
        and not _PLACE_CORRECTED.search(turn.text)  # 改成金辉小区3号楼后面的空地
        and expect.interruption(parse.intent) is not None
        and bool(state.slots.get("address"))
        and not turn.only_a_value
        and not inbound.media
        and inbound.location is None
    )


def place_alone(turn: Turn) -> bool:
    """Whether the message is a place and nothing else (金辉小区3号楼, no time): in an idle
    conversation it starts a report with the place noted, whatever intent the model reads
    into a bare address (a report of some kind, help at home, a fallback)."""
    parse = turn.parse
    return turn.only_a_value and parse.first("address") is not None and parse.first("time") is None


def names_a_service(turn: Turn) -> bool:
    """Whether a message the model cannot place names a government service (the NLU
    ``service`` entity): the guide answers with its card, whose buttons book it or ask
    for 代办, rather than 没太明白."""
    return turn.parse.intent == FALLBACK_INTENT and turn.parse.first("service") is not None


def wants_person(turn: Turn) -> bool:
    """Whether the message asks for a person (the intent, or 转人工 anywhere in it)."""
    if turn.asks_for_person:
        return True
    return not turn.payload and bool(turn.text) and HANDOFF.search(turn.text)


class Router:
    """Dispatches turns to flows by conversation state, expectations and intent."""

    def __init__(
        self,
        flows: Mapping[str, Flow],
        catalog: Catalog,
        *,
        routes: Mapping[str, str] = ROUTES,
        triggers: Sequence[Trigger] = TRIGGERS,
        patience: Patience | None = None,
    ) -> None:
        self._flows = flows
        self._t = catalog
        self._routes = routes
        self._triggers = triggers
        self._patience = patience or Patience()
        # With staff behind it (a holding handoff flow), urgent or angry words and two
        # messages in a row not understood hand the conversation to a person too.
        self._staffed = isinstance(flows.get("handoff"), HandoffFlow)

    def _wants_person(self, turn: Turn, state: ConversationState) -> bool:
        return staff_wanted(turn, state) if self._staffed else wants_person(turn)

    def _names_a_topic(self, turn: Turn) -> bool:
        """An unplaced or out-of-scope message that names a service or a topic the office
        does not handle (帮我交一下电费), a request for help at home that names one and
        no help at home, or a status query that names a topic: the guide's card, or who
        handles it."""
        guide = self._flows.get("guide")
        unplaced = turn.parse.intent in (FALLBACK_INTENT, "out_of_scope")
        # 我想给我爸申请个轮椅, read as help at home: the guide declines it when it names
        # help at home too (家里老人不会交电费), and the home flow takes it
        home = turn.parse.intent == "request_home_service"
        # 帮我查一下社保交了几年, read as 我的进度: who keeps the records (else declined)
        query = turn.parse.intent == "check_status" and len(clean(turn.text)) > _BARE_QUERY
        return (unplaced or home or query) and isinstance(guide, GuideFlow) and guide.names(turn)

    def _answers(self, turn: Turn, expect: Expect | None) -> bool:
        """Whether the active step (free text, words, entities…) or a trigger takes it."""
        if expect is None:
            return (
                withdraws_a_case(turn)
                or aside(turn) is not None
                or any(t.flow in self._flows and t.fires(turn) for t in self._triggers)
                or place_alone(turn)
                or names_a_service(turn)
            )
        return (
            aside(turn) is not None
            or expect.text
            or (bool(turn.payload) and expect.takes_payload(turn.payload))
            or expect.answered_by(turn)
            or bool(expect.ranked(turn.parse))
        )

    def takes(self, turn: Turn, state: ConversationState) -> bool:
        """Whether something other than the model answers the message properly: a person
        holding the conversation, the active step, a rule trigger, the words that ask for
        a person or escalate, or the patience rules (an insult). Asked before ``route``,
        for the record: a fallback taken this way was not a resident left unanswered.
        """
        expect = self._expect(state)
        if expect is not None and expect.holds:
            return True
        if self._answers(turn, expect) or wants_person(turn):
            return True
        text = turn.text
        return bool(text) and (
            ABUSE.search(text) or (self._staffed and escalation(text) is not None)
        )

    async def route(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Handle one turn, updating ``state``; returns the replies (none when silent)."""
        if turn.parse.intent == HANDOFF_INTENT and not turn.asks_for_person:
            # a phone number given, not a person asked for: not understood by the model
            turn = replace(turn, parse=replace(turn.parse, intent=FALLBACK_INTENT))
        expect = self._expect(state)
        if expect is not None and expect.holds:
            return await self._resume(turn, state)  # a person has the conversation
        taken = self._answers(turn, expect)
        if taken:
            state.fallbacks = 0  # the step or a rule takes it, whatever the model read
        else:
            count_fallback(turn, state)
        if not (self._staffed and self._wants_person(turn, state)):
            verdict = self._patience.judge(turn, state, taken=taken)
            if verdict is Verdict.silent:
                return []
            if verdict is not Verdict.answer:
                return self._soothe(verdict, state)
        if turn.payload.startswith(RATE) and state.flow != "rating" and "rating" in self._flows:
            # A rating button on a push answers at any time, without leaving the flow.
            return await self._flows["rating"].start(turn, state)
        if expect is None:
            return await self._idle(turn, state)
        return await self._active(turn, state, expect)

    async def release(self, state: ConversationState) -> list[Outbound]:
        """End a flow that holds the conversation, and resume the one paused under it.

        For staff handing a conversation back (``Pipeline.release``); no replies when
        nothing held it.
        """
        expect = self._expect(state)
        if expect is None or not expect.holds:
            return []
        state.finish()
        return await self.resume_paused(state)

    def take_over(self, state: ConversationState, handoff_id: int) -> bool:
        """A staff member takes the conversation from the console: the flow under way is
        paused (resumed when they hand it back). False when no handoff flow is staffed."""
        flow = self._flows.get("handoff")
        if not isinstance(flow, HandoffFlow):
            return False
        expect = self._expect(state)
        if expect is None or not expect.holds:
            state.pause()
        flow.hold(state, handoff_id)
        return True

    async def resume_paused(self, state: ConversationState) -> list[Outbound]:
        """Resume the most recent paused flow, if the conversation is idle; its question."""
        return await self._after(state)

    # -- an active flow ------------------------------------------------------------------

    async def _active(self, turn: Turn, state: ConversationState, expect: Expect) -> list[Outbound]:
        if turn.payload and expect.takes_payload(turn.payload):
            return await self._resume(turn, state)
        answers = expect.withdrawal_answers
        if is_cancel(turn) and not (answers and not turn.payload and answers.search(turn.text)):
            return await self._withdraw(state)
        if self._wants_person(turn, state) and HANDOFF_INTENT not in expect.intents:
            handoff = expect.interruption(HANDOFF_INTENT) or Paused.keep
            return await self._interrupt(turn, state, HANDOFF_INTENT, handoff)
        if expect.answered_by(turn) and not is_news(turn, state, expect):
            return await self._resume(turn, state)
        expected = expect.ranked(turn.parse)
        if expected:
            return await self._resume(replace(turn, expected=expected), state)
        if not expect.text and (key := aside(turn)) is not None:
            return self._aside(key, state)
        intent = turn.parse.intent
        policy = expect.interruption(intent) if intent != BUTTON_INTENT else None
        if policy is not None and not turn.only_a_value:
            return await self._interrupt(turn, state, intent, policy)
        if expect.optional and not expect.text:
            state.finish()  # an offer nobody took: the message is routed as usual
            return await self._idle(turn, state)
        flow = state.flow
        replies = await self._resume(turn, state)
        if state.flow == flow and state.reprompts >= OFFER_PERSON_AFTER and replies:
            replies[-1] = self._with_person(replies[-1])
        return replies

    async def _resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        flow = self._flows[state.flow or DEFAULT_FLOW]
        return await flow.resume(turn, state) + await self._after(state)

    async def _withdraw(self, state: ConversationState) -> list[Outbound]:
        word = self._cancelled(state.flow)
        state.finish()
        return [Outbound(word)] + await self._after(state)

    async def _interrupt(
        self, turn: Turn, state: ConversationState, intent: str, policy: Paused
    ) -> list[Outbound]:
        replies: list[Outbound] = []
        if policy is Paused.end:
            state.finish()  # an offer nobody took: the message is routed as if idle
            return await self._idle(turn, state)
        if policy is Paused.keep:
            state.pause()
        else:
            replies.append(Outbound(self._cancelled(state.flow)))
            state.finish()
            if intent == "deny":  # 不用了 withdrew it: nothing more to say (no 目前没有…确认)
                return replies + await self._after(state)
        if turn.parse.intent != intent:
            turn = replace(turn, parse=replace(turn.parse, intent=intent), expected="")
        flow = self._flow(self._routes.get(intent, DEFAULT_FLOW))
        replies += await flow.start(turn, state)
        return replies + await self._after(state)

    # -- an idle conversation ------------------------------------------------------------

    async def _idle(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        status = self._flows.get("status")
        if (is_cancel(turn) and not cancels_a_booking(turn)) or withdraws_a_case(turn):
            if isinstance(status, StatusFlow):
                return await status.withdrawal(turn)
            return [Outbound(self._t("chat.nothing_to_cancel"))]
        if self._wants_person(turn, state):
            turn = replace(turn, parse=replace(turn.parse, intent=HANDOFF_INTENT))
            if self._staffed:
                return await self._flow("handoff").start(turn, state) + await self._after(state)
        key = aside(turn)
        if key == "chat.process":
            return self._aside(key, state) + await self._after(state)
        if key is not None:  # with the menu: 我姓张 or 你是谁 is where a resident starts
            return [Outbound(self._t(f"{key}_idle"), menu(self._t)), *await self._after(state)]
        for trigger in self._triggers:
            if trigger.flow in self._flows and trigger.fires(turn):
                try:
                    replies = await self._flows[trigger.flow].start(turn, state)
                except Declined:
                    break
                replies = await then_also(self._flows, self._t, turn, state, replies)
                return replies + await self._after(state)
        if isinstance(status, StatusFlow) and said_fixed(turn):
            fixed = await status.fixed_meanwhile(turn)  # 路灯已经修好了，谢谢
            if fixed is not None:
                return fixed + await self._after(state)
        if turn.parse.intent in REPORT_INTENTS and isinstance(status, StatusFlow):
            pressed = await status.pressed(turn, state)  # 路灯还是不亮，到底修不修
            if pressed is not None:
                return pressed + await self._after(state)
        route = intended = self._routes.get(turn.parse.intent, DEFAULT_FLOW)
        if place_alone(turn) and "complaint" in self._flows:
            route = "complaint"  # 金辉小区3号楼 first: where, whatever the model reads in it
        elif phone_alone(turn):
            route = DEFAULT_FLOW  # 我的手机号是139…: not kept, whatever the model reads in it
        elif "guide" in self._flows and (names_a_service(turn) or self._names_a_topic(turn)):
            route = "guide"  # 我想给我妈申请高龄补贴, unplaced: the service's card and its buttons
        try:
            replies = await self._flow(route).start(turn, state)
        except Declined:  # 护理补贴 named, but no card the guide can stand behind
            replies = await self._flow(intended).start(turn, state)
        guide = self._flows.get("guide")
        if state.flow is not None and turn.parse.intent in REPORT_INTENTS and guide is not None:
            asked = guide.also_asked(turn) if isinstance(guide, GuideFlow) else None
            if asked is not None:  # 老年证怎么办 beside the report: answered after it
                word = str(asked.slots.pop("word"))
                state.wait(asked)
                if state.slots.get("description") == turn.text:  # and not part of it
                    state.slots["description"] = without_question(turn.text, word)
        replies = await then_also(self._flows, self._t, turn, state, replies)
        return replies + await self._after(state)

    # -- the stack -----------------------------------------------------------------------

    async def _after(self, state: ConversationState) -> list[Outbound]:
        """Once a flow ends (or only offers something), resume the paused one."""
        if not state.paused:
            return []
        expect = self._expect(state)
        if expect is not None:
            if not expect.optional:
                return []
            state.finish()  # an offer gives way to the flow that was waiting
        state.unpause()
        name = state.flow or DEFAULT_FLOW
        question = self._flows[name].ask(state)
        lead_key = state.slots.pop("lead", None) or f"{name}.resume"
        lead = self._t.get(lead_key, self._t("flow.resume"))
        if not question:
            return [Outbound(lead)]
        first = question[0]
        return [replace(first, text=f"{lead}\n{first.text}"), *question[1:]]

    def _flow(self, name: str) -> Flow:
        """The flow registered as ``name``; the default one when it is not registered."""
        return self._flows.get(name) or self._flows[DEFAULT_FLOW]

    def _expect(self, state: ConversationState) -> Expect | None:
        if state.flow is None:
            return None
        flow = self._flows.get(state.flow)
        if flow is None:  # a flow of an older version, saved before an upgrade
            state.finish()
            return None
        return flow.expect(state)

    # -- texts -----------------------------------------------------------------------------

    def _cancelled(self, flow: str | None) -> str:
        return self._t.get(f"{flow}.cancelled", self._t("flow.cancelled"))

    def _soothe(self, verdict: Verdict, state: ConversationState) -> list[Outbound]:
        """The calm answer, or the offer of a person; then the active step's question."""
        key = {
            Verdict.calm: "chat.calm",
            Verdict.offer_person: "chat.calm_human",
            Verdict.offer_menu: "chat.fallback_human",
        }[verdict]
        buttons: tuple[Button, ...] = ()
        if verdict is Verdict.offer_person:
            buttons = (Button(self._t("button.menu_human"), MENU_HUMAN),)
        elif verdict is Verdict.offer_menu:
            buttons = menu(self._t)
        return [Outbound(self._t(key), buttons), *self._question(state)]

    def _aside(self, key: str, state: ConversationState) -> list[Outbound]:
        """An answer beside what is under way (how reports are handled, a name noted);
        then the active step's question, if a flow is under way."""
        return [Outbound(self._t(key)), *self._question(state)]

    def _question(self, state: ConversationState) -> list[Outbound]:
        """The active step's question again; none when idle."""
        return self._flows[state.flow].ask(state) if state.flow is not None else []

    def ask_again(self, state: ConversationState) -> list[Outbound] | None:
        """After a message with nothing left to understand (an ID number, masked away):
        the active step's question again, or none when idle. None when a person holds
        the conversation: they read every message, so it is routed as usual."""
        expect = self._expect(state)
        if expect is not None and expect.holds:
            return None
        return self._question(state)

    def _with_person(self, reply: Outbound) -> Outbound:
        """``reply`` with the 转人工 button and a word about it, once."""
        if any(b.payload == MENU_HUMAN for b in reply.buttons):
            return reply
        human = Button(self._t("button.menu_human"), MENU_HUMAN)
        text = f"{reply.text}\n{self._t('flow.offer_person')}"
        return replace(reply, text=text, buttons=(*reply.buttons, human))
