"""The flow API: what every flow receives and implements, and the services it may use.

Writing a flow
==============

A flow is plain code over a ``ConversationState``: given the state and a ``Turn``
(the message, its parse, the pressed button), it returns the replies and leaves the
next step in the state. It never routes: the router (handlers.router) decides, for
every message, whether it answers the active step, interrupts it, or withdraws it.

A flow implements ``Flow``:

- ``start(turn, state)``: begin with the message that triggered it. A one-message
  flow answers and leaves the state idle; a multi-step flow calls
  ``state.begin(self.name, step, slots)`` and asks its first question.
- ``resume(turn, state)``: the message answers the active step (or nobody else
  wanted it: then reprompt). End with ``state.finish()``.
- ``expect(state)``: the active step's ``Expect`` — what answers it, which intents
  interrupt it and what then happens to it.
- ``ask(state)``: the active step's question again, for when the flow is resumed after
  an interruption.

``OneMessageFlow`` supplies ``resume``, ``expect`` and ``ask`` for flows that answer in
one message. Register the flow in ``handlers.flows.standard_flows`` and the intents
that start it in ``handlers.flows.ROUTES``; optional rule ``TRIGGERS`` start it from
words, whatever the model says (a flow started by a trigger may raise ``Declined``
to hand the message back to the intent). Nothing in the router changes.

Routing, for each message of an active flow (``Expect`` declares each part):

1. an expected button payload answers the step;
2. withdrawal (the 取消 button, or a message that is only 取消 / 算了 / 先别提交了)
   ends the flow with its ``<flow>.cancelled`` text (or ``flow.cancelled``);
3. a request for a person (the human_handoff intent, or 转人工 anywhere in the message)
   always interrupts, to the flow registered as ``handoff``;
4. the step's expectations: photos, pins, entities (a slot answer is taken from the
   entities whatever intent is predicted), rule matchers (``Words``), then the model's
   ranking restricted to the step's intents (``Turn.means`` tells the flow which);
5. interruptions: the top intent, when the step lists it in ``interrupts``; the flow
   is then kept (``Paused.keep``: resumed afterwards with ``ask``), dropped with a
   word (``Paused.drop``), or ended quietly (``Paused.end``, for optional steps);
6. otherwise the message goes to ``resume`` (free text when ``Expect.text``, else
   the flow reprompts; from the second reprompt on, a person is offered).

A person holding the conversation (the human handoff) is a flow whose steps say
``holds=True``: every message goes to its ``resume`` and the bot adds nothing of its
own. ``Pipeline.release`` ends it when staff hand the conversation back, and the
flow paused under it resumes.

Corrections and repeated answers are expectations too: a step that lists an earlier
slot's entity (``entities={"address"}`` at the confirmation) receives 地址写错了 是金辉
小区5号楼 in ``resume`` and updates the slot instead of treating it as a wrong answer.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from handlers.catalog import Catalog
from handlers.messages import Button, Inbound, Outbound
from handlers.state import ConversationState
from handlers.words import REPORT_REQUEST, WHO_ARE_YOU, Matcher
from integration.cases import CaseDraft, CaseView
from integration.dispatch.ratings import RatingRequest, Reopened, Score
from integration.urges import Urged
from nlu.contract import REPORT_INTENTS, SERVICE_INTENTS, VOLUNTEER_INTENTS
from nlu.types import PERIOD, Parse

CANCEL = "cancel"  # the payload of every cancel button
RATE = "rate:"  # rating buttons: rate:<case number>:<score>
HANDOFF_INTENT = "human_handoff"
# The model's ranking restricted to a step's intents: an expected intent answers when
# it has at least FLOOR and at least RATIO of the top intent's probability.
RANKING_FLOOR = 0.1
RANKING_RATIO = 0.15
# What may stand around a place or a time that is the whole answer (see Turn.only_a_value).
_AROUND_A_VALUE = re.compile(
    r"[\W_]|地址|时间|老人|就|是|在|我家|我|他|她|俺|们|爸|妈|家|住|那|个|吧|了|的|呢|啊"
)


@dataclass(frozen=True, slots=True)
class Turn:
    """One resident message as a flow sees it.

    ``payload`` is the pressed button's payload, or the payload of the offered button
    whose label or number the resident typed; empty otherwise. ``expected`` is the
    intent the router read for the active step from the model's ranking when the top
    intent was something else (see ``means``). ``also`` is a second request the message
    joined to the first (see ``handlers.pipeline``).
    """

    inbound: Inbound
    parse: Parse
    payload: str = ""
    expected: str = ""
    # A second request joined to this one (…，另外小区路灯坏了): its own turn, taken up
    # once this one is done (handlers.pipeline splits such messages).
    also: Turn | None = None

    @property
    def text(self) -> str:
        """The message text, stripped."""
        return self.inbound.text.strip()

    def means(self, *intents: str) -> bool:
        """Whether the message, with no button pressed, has one of ``intents``."""
        if self.payload:
            return False
        return self.parse.intent in intents or self.expected in intents

    @property
    def asks_for_person(self) -> bool:
        """Whether the model reads a request for a person. A message that gives a phone
        number never is one by the model alone (电话13912345678 reads like 人工电话 to it),
        nor one that asks to report (我要反映: ``REPORT_REQUEST``) or who answers (你们是
        机器人吗: ``WHO_ARE_YOU``, answered as an aside); 转人工 in words still is
        (``handlers.words.HANDOFF``)."""
        return (
            self.parse.intent == HANDOFF_INTENT
            and self.parse.first("phone") is None
            and not (
                self.text and (REPORT_REQUEST.search(self.text) or WHO_ARE_YOU.search(self.text))
            )
        )

    @property
    def only_a_value(self) -> bool:
        """Whether the message is a place or a time and nothing more (光明小区5栋2单元301,
        我家在幸福小区3栋, 这周六上午): the answer to a question, never a request of its
        own, whatever intent the model gives it (an address alone reads as a report, a
        time alone as a booking). A period (每晚, 三天了) is a description, not a value."""
        parse = self.parse
        spans = [
            (e.start, e.end)
            for e in parse.entities
            if e.entity == "address" or (e.entity == "time" and e.extractor != PERIOD)
        ]
        if not spans or self.payload:
            return False
        rest = list(parse.text)
        for start, end in spans:
            rest[start:end] = " " * (end - start)
        return not _AROUND_A_VALUE.sub("", "".join(rest))


class Paused(enum.StrEnum):
    """What an interruption does to the flow it interrupts."""

    keep = "keep"  # paused, resumed afterwards with its question asked again
    drop = "drop"  # ended, and the resident is told (<flow>.cancelled: 已取消，未提交)
    end = "end"  # ended quietly: the step was only an offer (a list, a comment)


_KEEP = Paused.keep
# Every step's interruptions unless it says otherwise: any request the resident may
# make in the middle of something else. deny and goodbye end what was under way.
STANDARD_INTERRUPTS: Mapping[str, Paused] = {
    HANDOFF_INTENT: _KEEP,
    "check_status": _KEEP,
    "help": _KEEP,
    "greet": _KEEP,
    "thanks": _KEEP,
    "out_of_scope": _KEEP,
    "goodbye": Paused.drop,
    "deny": Paused.drop,
    **dict.fromkeys(REPORT_INTENTS, _KEEP),
    **dict.fromkeys(SERVICE_INTENTS, _KEEP),
    **dict.fromkeys(VOLUNTEER_INTENTS, _KEEP),
}
# For optional steps (offers): anything else ends them quietly.
OFFER_INTERRUPTS: Mapping[str, Paused] = dict.fromkeys(STANDARD_INTERRUPTS, Paused.end)


@dataclass(frozen=True, slots=True)
class Expect:
    """What answers one step of a flow, and what happens when something interrupts it.

    - ``payloads``/``prefixes``: button payloads the step takes;
    - ``media``/``location``: a photo or a location pin answers it;
    - ``entities``: entity types that answer it (also corrections of earlier slots);
    - ``words``: rule matchers (handlers.words) that answer it;
    - ``intents``: intents that answer it, read from the model's whole ranking;
    - ``text``: any other text answers it (a description, a comment), unless an
      interruption claims it first;
    - ``interrupts``: intents that interrupt it, and what happens to it then; an
      intent the step expects never interrupts it;
    - ``optional``: the step only offers something (a list to pick from, a comment):
      it ends quietly when something else comes, and yields to a paused flow;
    - ``holds``: a person holds the conversation (handoff): every message goes to
      ``resume``, and the bot neither routes, withdraws nor judges it;
    - ``withdrawal_answers``: words that read as a withdrawal (取消…) but answer the
      step (取消预约 while a booking is being moved cancels the booking).
    """

    payloads: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    media: bool = False
    location: bool = False
    entities: frozenset[str] = frozenset()
    words: tuple[Matcher, ...] = ()
    intents: frozenset[str] = frozenset()
    text: bool = False
    interrupts: Mapping[str, Paused] = field(default_factory=lambda: STANDARD_INTERRUPTS)
    optional: bool = False
    holds: bool = False
    withdrawal_answers: Matcher | None = None

    def takes_payload(self, payload: str) -> bool:
        """Whether a pressed button answers this step."""
        return payload in self.payloads or any(payload.startswith(p) for p in self.prefixes)

    def answered_by(self, turn: Turn) -> bool:
        """Whether photos, a pin, an entity or a rule matcher answer the step."""
        inbound = turn.inbound
        if self.media and any(m.kind == "image" for m in inbound.media):
            return True
        if self.location and inbound.location is not None:
            return True
        if any(e.entity in self.entities for e in turn.parse.entities):
            return True
        return bool(turn.text) and any(m.search(turn.text) for m in self.words)

    def ranked(self, parse: Parse) -> str:
        """The expected intent the model's ranking supports, or ""."""
        if not self.intents:
            return ""
        if parse.intent in self.intents:
            return parse.intent
        top = parse.ranking[0][1] if parse.ranking else 0.0
        for intent, probability in parse.ranking:
            if intent in self.intents:
                if probability >= RANKING_FLOOR and probability >= RANKING_RATIO * top:
                    return intent
                return ""
        return ""

    def interruption(self, intent: str) -> Paused | None:
        """What ``intent`` does to this step: None when it does not interrupt it."""
        if intent in self.intents:
            return None
        return self.interrupts.get(intent)


class Flow(Protocol):
    """A capability's conversation: started by an intent, resumed by later messages.

    See the module docstring for the contract and the routing around it.
    """

    name: str

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin the flow with the message that triggered it."""
        ...

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Continue the active step with a message that answers it (or nobody else took)."""
        ...

    def expect(self, state: ConversationState) -> Expect:
        """What answers the active step, and what interrupts it."""
        ...

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The active step's question again (after an interruption)."""
        ...


class OneMessageFlow:
    """A base for flows that answer in one message and never stay active."""

    name = "one_message"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Answer the message (subclasses implement this)."""
        raise TypeError(f"{type(self).__name__} must implement start")

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Never active, so never resumed: answer afresh."""
        state.finish()
        return await self.start(turn, state)

    def expect(self, state: ConversationState) -> Expect:
        """Nothing answers a step that does not exist."""
        return Expect(interrupts=OFFER_INTERRUPTS, optional=True)

    def ask(self, state: ConversationState) -> list[Outbound]:
        """No question to ask again."""
        return []


class Declined(Exception):  # a signal to the router, not a failure
    """Raised by a flow started by a rule trigger when the message is not for it after all.

    The router then routes the message by its intent, as if the trigger had not matched.
    """


class CaseDesk(Protocol):
    """Where flows open and look up cases (the local desk, or a platform's outbox)."""

    async def create_case(self, draft: CaseDraft) -> CaseView:
        """Open a case and return it with its number."""
        ...

    async def open_cases(self, channel: str, user_id: str) -> list[CaseView]:
        """A resident's open cases, newest first."""
        ...

    async def get(self, number: str) -> CaseView:
        """One case by number; raises ``CaseNotFound``."""
        ...

    async def similar_open(self, draft: CaseDraft) -> list[CaseView]:
        """Others' open cases that ``draft`` likely repeats (same category, near, recent)."""
        ...

    async def follow(self, number: str, channel: str, user_id: str, chat_id: str) -> CaseView:
        """Make the resident a follower of a case, who receives its updates."""
        ...

    async def urge(self, number: str, channel: str, chat_id: str, text: str) -> Urged:
        """Record a resident's 催办 of an open case (raises ``CaseNotFound`` otherwise)."""
        ...


class RatingDesk(Protocol):
    """Where satisfaction questions are found and answered."""

    async def request(
        self, channel: str, chat_id: str, number: str | None = None
    ) -> RatingRequest | None:
        """The latest question to a chat (about ``number``), or its unanswered one."""
        ...

    async def rate(self, rating_id: int, score: Score) -> Reopened | None:
        """Answer once (raises ``AlreadyRated``); where a dissatisfied case went."""
        ...

    async def comment(self, rating_id: int, text: str) -> None:
        """Keep an optional comment with the answer."""
        ...


def rating_buttons(t: Catalog, number: str) -> tuple[Button, ...]:
    """The three answers to a case's satisfaction question, as buttons."""
    return tuple(
        Button(t(f"rating.button.{score.value}"), f"{RATE}{number}:{score.value}")
        for score in Score
    )


def finish(state: ConversationState) -> None:
    """End whatever flow is active (``state.finish``; kept for older callers)."""
    state.finish()
