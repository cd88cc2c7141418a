"""One-message answers: greetings, help, handoff requests, and what is not built yet."""

from __future__ import annotations

from handlers.catalog import Catalog
from handlers.flows.base import OneMessageFlow, Turn
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from nlu.types import BUTTON_INTENT, FALLBACK_INTENT

MENU_REPORT, MENU_STATUS, MENU_HUMAN = (
    "intent:report",
    "intent:check_status",
    "intent:human_handoff",
)

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


def menu(t: Catalog) -> tuple[Button, ...]:
    """The main menu as quick replies."""
    return (
        Button(t("button.menu_report"), MENU_REPORT),
        Button(t("button.menu_status"), MENU_STATUS),
        Button(t("button.menu_human"), MENU_HUMAN),
    )


class ChatFlow(OneMessageFlow):
    """Answers small talk and services that have no flow yet, in one message.

    Registered as ``chat`` and, until the staff console's handoff flow replaces it, as
    ``handoff`` (answering 转人工 with ``chat.human``).
    """

    name = "chat"

    def __init__(self, catalog: Catalog) -> None:
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Answer the message; the conversation stays idle."""
        intent = turn.parse.intent
        key = _REPLIES.get(intent)
        if key is None:
            what = self._t.get(f"service_name.{intent}", intent)
            return [Outbound(self._t("chat.unsupported", what=what), self.menu())]
        return [Outbound(self._t(key), self.menu() if intent in _WITH_MENU else ())]

    def menu(self) -> tuple[Button, ...]:
        """The main menu as quick replies."""
        return menu(self._t)
