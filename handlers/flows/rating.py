"""Satisfaction after resolution: 满意 / 基本满意 / 不满意, then an optional comment.

The question arrives with the ``resolved`` push, whose buttons carry
``rate:{case number}:{score}``. A resident may also type the answer (满意, 没解决…):
it then answers their latest unanswered question. 不满意 reopens the case (on the
platform, or with staff when the platform cannot) and says so.
"""

from __future__ import annotations

import re

from handlers.catalog import Catalog
from handlers.flows.base import RatingDesk, Turn, finish
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from integration.dispatch.ratings import AlreadyRated, RatingRequest, Reopened, Score

RATE = "rate:"
SKIP_COMMENT = "rating:skip"
LABELS = {"满意": Score.satisfied, "基本满意": Score.basically, "不满意": Score.dissatisfied}
# Checked in order: 不满意 contains 满意, and 基本满意 is not plain 满意.
_WORDS = (
    (Score.dissatisfied, re.compile(r"不满意|没解决|没有解决|不行|太差|差评|不认可|敷衍")),
    (Score.basically, re.compile(r"基本满意|还行|一般|凑合|还可以")),
    (Score.satisfied, re.compile(r"满意|很好|非常好|好评|点赞|及时|解决了")),
)
_SKIP_WORDS = frozenset({"跳过", "不用", "不用了", "没有", "无", "没了", "skip"})


def rating_buttons(t: Catalog, number: str) -> tuple[Button, ...]:
    """The three answers as buttons for one case."""
    return tuple(
        Button(t(f"rating.button.{score.value}"), f"{RATE}{number}:{score.value}")
        for score in Score
    )


def score_of(text: str) -> Score | None:
    """The answer a typed message gives, if it gives one."""
    for score, pattern in _WORDS:
        if pattern.search(text):
            return score
    return None


def is_rating_answer(text: str) -> bool:
    """Whether a message is exactly one of the button labels (typed, not pressed)."""
    return text.strip().rstrip("。.!！") in LABELS


class RatingFlow:
    """Records a rating, reopening on 不满意, and takes an optional comment."""

    name = "rating"

    def __init__(self, ratings: RatingDesk | None, catalog: Catalog) -> None:
        self._ratings = ratings
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Answer a question by button or by typed words."""
        inbound = turn.inbound
        number, score = _pressed(turn.payload)
        if self._ratings is None:
            return [Outbound(self._t("rating.nothing_to_rate"))]
        if number is None:
            score = score_of(turn.text)
        request = await self._ratings.request(inbound.channel, inbound.chat_id, number)
        if request is None:
            return [Outbound(self._t("rating.nothing_to_rate"))]
        if request.score is not None:
            return [Outbound(self._t("rating.already", number=request.number))]
        if score is None:
            choose = self._t("rating.choose", number=request.number)
            return [Outbound(choose, rating_buttons(self._t, request.number))]
        return await self._rate(request, score, state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The optional comment, or 跳过."""
        if turn.payload.startswith(RATE):
            finish(state)
            return await self.start(turn, state)
        rating_id = int(state.slots.get("rating_id", 0))
        text = turn.text
        if turn.payload == SKIP_COMMENT or text.lower().rstrip("。.!！") in _SKIP_WORDS:
            finish(state)
            return [Outbound(self._t("rating.comment_skipped"))]
        if not text or self._ratings is None:
            return [Outbound(self._t("rating.reprompt_comment"), self._skip())]
        await self._ratings.comment(rating_id, text)
        finish(state)
        return [Outbound(self._t("rating.comment_thanks"))]

    async def _rate(
        self, request: RatingRequest, score: Score, state: ConversationState
    ) -> list[Outbound]:
        assert self._ratings is not None
        try:
            reopened = await self._ratings.rate(request.id, score)
        except AlreadyRated:
            return [Outbound(self._t("rating.already", number=request.number))]
        key = "rating.thanks" if reopened is None else f"rating.reopened_{reopened.value}"
        text = self._t(key, number=request.number)
        if not state.idle:  # answered from an older push in the middle of something else
            return [Outbound(text.splitlines()[0])]
        state.flow, state.step, state.slots = self.name, "comment", {"rating_id": request.id}
        return [Outbound(text, self._skip())]

    def _skip(self) -> tuple[Button, ...]:
        return (Button(self._t("rating.button.skip"), SKIP_COMMENT),)


def _pressed(payload: str) -> tuple[str | None, Score | None]:
    """The case number and score of a pressed rating button."""
    if not payload.startswith(RATE):
        return None, None
    number, _, value = payload.removeprefix(RATE).partition(":")
    try:
        return number.upper(), Score(value)
    except ValueError:
        return number.upper(), None


__all__ = ["RATE", "RatingFlow", "Reopened", "is_rating_answer", "rating_buttons", "score_of"]
