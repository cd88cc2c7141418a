"""What every flow receives and implements, and the outside services flows may use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from handlers.messages import Inbound, Outbound
from handlers.state import ConversationState
from integration.cases import CaseDraft, CaseView
from integration.dispatch.ratings import RatingRequest, Reopened, Score
from nlu.types import Parse

CANCEL = "cancel"  # the payload of every cancel button


@dataclass(frozen=True, slots=True)
class Turn:
    """One resident message as a flow sees it.

    ``payload`` is the pressed button's payload, or the payload of the offered button
    whose label or number the resident typed; empty otherwise.
    """

    inbound: Inbound
    parse: Parse
    payload: str = ""

    @property
    def text(self) -> str:
        """The message text, stripped."""
        return self.inbound.text.strip()


class Flow(Protocol):
    """A capability's conversation: started by an intent, resumed by later messages.

    Both methods return the replies and leave the next step in ``state``; a flow ends
    itself by calling ``state.__init__()`` (see ``finish``).
    """

    name: str

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Begin the flow with the message that triggered it."""
        ...

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Continue the flow with the next message."""
        ...


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


def finish(state: ConversationState) -> None:
    """End whatever flow is active."""
    state.flow, state.step, state.slots, state.reprompts = None, None, {}, 0
