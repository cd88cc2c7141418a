"""Routes each turn to a flow: the active one, else the one the intent starts."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Flow, Turn, finish
from handlers.flows.rating import RATE, is_rating_answer
from handlers.flows.status import CASE_NUMBER
from handlers.messages import Outbound
from handlers.state import ConversationState
from nlu.contract import REPORT_INTENTS
from nlu.types import FALLBACK_INTENT

# Intent -> flow name. Intents not listed go to the chat flow, which answers them.
ROUTES: Mapping[str, str] = {
    **dict.fromkeys(REPORT_INTENTS, "complaint"),
    "report": "complaint",  # the menu's 我要反映, before the resident says what
    "check_status": "status",
    "rate_service": "rating",
}
DEFAULT_FLOW = "chat"

CANCEL_WORDS = frozenset({"取消", "取消反映", "退出", "cancel", "/cancel", "quit"})

# Slash commands (Telegram's, and typed anywhere) and the intents they stand for.
COMMANDS: Mapping[str, str] = {
    "/start": "greet",
    "/help": "help",
    "/menu": "help",
    "/status": "check_status",
}


def is_cancel(turn: Turn) -> bool:
    """Whether the resident asked to leave the current flow."""
    return turn.payload == CANCEL or turn.text.lower().rstrip("。.!！") in CANCEL_WORDS


class Router:
    """Dispatches turns to flows by conversation state and intent."""

    def __init__(self, flows: Mapping[str, Flow], catalog: Catalog) -> None:
        self._flows = flows
        self._t = catalog

    async def route(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Handle one turn, updating ``state``; returns the replies."""
        if turn.parse.intent != FALLBACK_INTENT:
            state.misunderstood = 0
        if is_cancel(turn):
            if state.idle:
                return [Outbound(self._t("chat.nothing_to_cancel"))]
            key = f"{state.flow}.cancelled"
            finish(state)
            return [Outbound(self._t(key))]
        if turn.payload.startswith(RATE) and state.flow != "rating":
            # A rating button on a push answers at any time, without leaving the flow.
            return await self._flows["rating"].start(turn, state)
        if state.flow == "rating" and ROUTES.get(turn.parse.intent) in ("complaint", "status"):
            finish(state)  # the optional comment gave way to a new request
        if not state.idle:
            return await self._flows[state.flow or DEFAULT_FLOW].resume(turn, state)
        return await self._flows[self._pick(turn)].start(turn, state)

    def _pick(self, turn: Turn) -> str:
        """The flow an idle conversation's message starts."""
        if CASE_NUMBER.search(turn.text):
            return "status"  # a typed case number asks about that case
        if is_rating_answer(turn.text):
            return "rating"  # 满意 / 基本满意 / 不满意 typed instead of pressed
        return ROUTES.get(turn.parse.intent, DEFAULT_FLOW)
