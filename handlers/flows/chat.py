"""One-message answers: greetings, help, handoff requests, and what is not built yet."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.catalog import Catalog
from handlers.flows.base import OFFER_INTERRUPTS, Expect, OneMessageFlow, Turn
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import FILLERS, clean
from nlu.contract import SERVICE_INTENTS
from nlu.types import BUTTON_INTENT, FALLBACK_INTENT

MENU_REPORT, MENU_STATUS, MENU_HUMAN = (
    "intent:report",
    "intent:check_status",
    "intent:human_handoff",
)

# What may stand beside a number that is the whole message (我的电话是13912345678).
_AROUND_A_PHONE = re.compile("我的|电话|手机|号码|联系方式|是|号")


def phone_alone(turn: Turn) -> bool:
    """Whether the message is a phone number and nothing more (13912345678, 我的手机号是…)."""
    phone = turn.parse.first("phone")
    if phone is None or turn.payload:
        return False
    text = turn.parse.text
    rest = clean(text[: phone.start] + text[phone.end :])
    return not FILLERS.sub("", _AROUND_A_PHONE.sub("", rest))


# Intents answered by one catalogue text.
_REPLIES = {
    "greet": "chat.greet",
    "goodbye": "chat.goodbye",
    "thanks": "chat.thanks",
    "help": "chat.help",
    "human_handoff": "chat.human",
    "out_of_scope": "chat.out_of_scope",
    FALLBACK_INTENT: "chat.fallback",
    "affirm": "chat.stray_yes_no",
    "deny": "chat.stray_yes_no",
    BUTTON_INTENT: "chat.stale_button",  # a button of a flow that has ended
}
_WITH_MENU = frozenset(
    {"greet", "help", "out_of_scope", FALLBACK_INTENT, "affirm", "deny", BUTTON_INTENT}
)


# A greeting this soon after the last one is answered briefly (在的…).
_GREET_AGAIN_SECONDS = 600

# Services without a flow of their own yet: answered, and their follow-up questions too.
_SERVICES = frozenset(SERVICE_INTENTS) - {"check_status", "rate_service", "ask_service_info"}


@dataclass(frozen=True, slots=True)
class _ServiceQuestion:
    """A follow-up question about papers or procedure (没有房产证咋办, 要带什么材料)."""

    topic: re.Pattern[str] = re.compile(
        "证|材料|手续|证明|户口|户籍|社保|医保|低保|补贴|窗口|大厅|办理|申请|登记|盖章|预约|代办|上门"
    )
    asks: re.Pattern[str] = re.compile(
        "咋办|怎么办|怎么弄|怎么搞|如何|需要|要带|带什么|哪里|在哪|多久|几天|能不能|可不可以|可以吗|行不行|吗$|呢$"
    )

    def search(self, text: str) -> bool:
        cleaned = clean(text)
        return bool(self.topic.search(cleaned) and self.asks.search(cleaned))


SERVICE_QUESTION = _ServiceQuestion()


def menu(t: Catalog) -> tuple[Button, ...]:
    """The main menu as quick replies."""
    return (
        Button(t("button.menu_report"), MENU_REPORT),
        Button(t("button.menu_status"), MENU_STATUS),
        Button(t("button.menu_human"), MENU_HUMAN),
    )


class ChatFlow(OneMessageFlow):
    """Answers small talk and services that have no flow yet, in one message.

    Registered as ``chat`` and, where no staff are behind the pipeline (no handoff
    desk given to ``standard_flows``), as ``handoff`` (answering 转人工 with ``chat.human``).
    """

    name = "chat"

    def __init__(self, catalog: Catalog) -> None:
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Answer the message; the conversation stays idle, except after a service.

        A service without its own flow leaves an optional ``service`` step, so a
        follow-up question about it (我是租的房子 没有房产证咋办) is answered in that
        context instead of being taken for a new report.
        """
        intent = turn.parse.intent
        if phone_alone(turn):
            return [Outbound(self._t("chat.phone_alone"), self.menu())]  # not 超出了范围
        key = _REPLIES.get(intent)
        if intent == "greet" and self._greeted(turn, state):
            key = "chat.greet_again"  # 在吗, then 有人吗: not the whole welcome twice
        if key is None:
            if intent in _SERVICES:
                state.begin(self.name, "service", {"intent": intent})
            return [self._unsupported(intent)]
        return [Outbound(self._t(key), self.menu() if intent in _WITH_MENU else ())]

    @staticmethod
    def _greeted(turn: Turn, state: ConversationState) -> bool:
        """Whether this chat was greeted a moment ago (and note that it is now)."""
        now = turn.inbound.time.timestamp()
        before = float(state.recent.get("greeted", 0))
        state.recent["greeted"] = round(now)
        return now - before < _GREET_AGAIN_SECONDS

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """A follow-up question about the service last asked about."""
        intent = str(state.slots.get("intent", ""))
        state.begin(self.name, "service", {"intent": intent})
        return [self._unsupported(intent)]

    def expect(self, state: ConversationState) -> Expect:
        """After a service: questions about papers and procedure, or about it again.

        Other services interrupt (quietly), so they reach their own flows once built.
        """
        return Expect(
            words=(SERVICE_QUESTION,),
            intents=frozenset({str(state.slots.get("intent", ""))}),
            interrupts=OFFER_INTERRUPTS,
            optional=True,
        )

    def _unsupported(self, intent: str) -> Outbound:
        what = self._t.get(f"service_name.{intent}", intent)
        return Outbound(self._t("chat.unsupported", what=what), self.menu())

    def menu(self) -> tuple[Button, ...]:
        """The main menu as quick replies."""
        return menu(self._t)
