"""Fakes that implement the same protocols as the real parts, for tests without I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from handlers.messages import DeliveryError, Inbound, Outbound
from integration.cases import CaseDraft, CaseView, format_number
from integration.errors import CaseNotFound
from integration.lifecycle import OPEN


@dataclass
class FakeDesk:
    """A CaseDesk that keeps cases in a list."""

    drafts: list[CaseDraft] = field(default_factory=list)
    cases: dict[str, CaseView] = field(default_factory=dict)

    async def create_case(self, draft: CaseDraft) -> CaseView:
        self.drafts.append(draft)
        now = datetime.now(UTC)
        view = CaseView.opened(draft, format_number(now.date(), len(self.drafts)), now)
        self.cases[view.number] = view
        return view

    async def open_cases(self, channel: str, user_id: str) -> list[CaseView]:
        return [
            c
            for c in reversed(self.cases.values())
            if (c.channel, c.chat_id) == (channel, user_id) and c.status in OPEN
        ]

    async def get(self, number: str) -> CaseView:
        try:
            return self.cases[number.upper()]
        except KeyError:
            raise CaseNotFound(number) from None


@dataclass
class CollectingChannel:
    """A Channel that records what it is asked to send, like Rasa's CollectingOutputChannel.

    ``offline`` chats raise the offline DeliveryError; ``failures`` makes the next
    pushes raise a retryable one.
    """

    name: str = "collect"
    replies: list[tuple[str, Outbound]] = field(default_factory=list)
    pushes: list[tuple[str, Outbound]] = field(default_factory=list)
    offline: set[str] = field(default_factory=set)
    failures: int = 0
    permanent: bool = False

    def to_inbound(self, update: Inbound) -> Inbound | None:
        return update

    async def reply(self, inbound: Inbound, messages: list[Outbound]) -> None:
        self.replies += [(inbound.chat_id, m) for m in messages]

    async def push(self, chat_id: str, message: Outbound) -> None:
        if chat_id in self.offline:
            raise DeliveryError("offline", offline=True)
        if self.failures:
            self.failures -= 1
            raise DeliveryError("platform said no", retryable=not self.permanent)
        self.pushes.append((chat_id, message))
