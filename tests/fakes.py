"""Fakes that implement the same protocols as the real parts, for tests without I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

from handlers.messages import DeliveryError, Inbound, Outbound
from integration.cases import (
    DUPLICATE_RADIUS_M,
    CaseDraft,
    CaseView,
    distance_m,
    format_number,
)
from integration.dispatch.ratings import AlreadyRated, RatingRequest, Reopened, Score
from integration.errors import CaseNotFound
from integration.lifecycle import OPEN
from integration.urges import Urged


@dataclass
class FakeDesk:
    """A CaseDesk that keeps cases in a list; ``places`` are each case's coordinates."""

    drafts: list[CaseDraft] = field(default_factory=list)
    cases: dict[str, CaseView] = field(default_factory=dict)
    places: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # number -> reporter's user id
    # number, channel, chat id, words
    urges: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def create_case(self, draft: CaseDraft) -> CaseView:
        self.drafts.append(draft)
        now = datetime.now(UTC)
        view = CaseView.opened(draft, format_number(now.date(), len(self.drafts)), now)
        self.cases[view.number] = view
        self.places[view.number] = (draft.latitude, draft.longitude)
        self.owners[view.number] = draft.user_id
        return view

    async def open_cases(self, channel: str, user_id: str) -> list[CaseView]:
        return [
            c
            for c in reversed(self.cases.values())
            if c.readable_by(channel, user_id) and c.status in OPEN
        ]

    async def similar_open(self, draft: CaseDraft) -> list[CaseView]:
        found = []
        for number, case in self.cases.items():
            if case.category != draft.category or case.status not in OPEN:
                continue
            if self.owners[number] == draft.user_id or case.readable_by(
                draft.channel, draft.chat_id
            ):
                continue
            lat, lon = self.places[number]
            near = None not in (lat, lon, draft.latitude, draft.longitude) and (
                distance_m(lat, lon, draft.latitude, draft.longitude)  # type: ignore[arg-type]
                <= DUPLICATE_RADIUS_M
            )
            if near or (draft.address and case.address == draft.address):
                found.append(case)
        return found

    async def follow(self, number: str, channel: str, user_id: str, chat_id: str) -> CaseView:
        case = await self.get(number)
        if (channel, chat_id) not in case.followers:
            case = dataclasses.replace(case, followers=(*case.followers, (channel, chat_id)))
            self.cases[case.number] = case
        return case

    async def urge(self, number: str, channel: str, chat_id: str, text: str) -> Urged:
        case = await self.get(number)
        if case.status not in OPEN:
            raise CaseNotFound(number)
        counted = (number, channel, chat_id) not in {u[:3] for u in self.urges}
        if counted:
            self.urges.append((number, channel, chat_id, text))
        count = sum(1 for u in self.urges if u[0] == number)
        return Urged(count=count, counted=counted, forwarded=False)

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


@dataclass
class FakeRatings:
    """A RatingDesk over a list of questions; ``reopen`` is where 不满意 sends a case."""

    questions: list[RatingRequest] = field(default_factory=list)
    chats: dict[int, tuple[str, str]] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)
    reopen: Reopened = Reopened.desk

    def ask(self, number: str, chat: tuple[str, str] = ("webchat", "u1")) -> RatingRequest:
        question = RatingRequest(len(self.questions) + 1, number, "noise", None)
        self.questions.append(question)
        self.chats[question.id] = chat
        return question

    async def request(
        self, channel: str, chat_id: str, number: str | None = None
    ) -> RatingRequest | None:
        for question in reversed(self.questions):
            if self.chats[question.id] != (channel, chat_id):
                continue
            if number is None and question.score is None:
                return question
            if number is not None and question.number == number:
                return question
        return None

    async def rate(self, rating_id: int, score: Score) -> Reopened | None:
        index = rating_id - 1
        if self.questions[index].score is not None:
            raise AlreadyRated(str(rating_id))
        self.questions[index] = dataclasses.replace(self.questions[index], score=score)
        return self.reopen if score is Score.dissatisfied else None

    async def comment(self, rating_id: int, text: str) -> None:
        self.comments[rating_id] = text
