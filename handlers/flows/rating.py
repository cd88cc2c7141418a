"""Satisfaction after resolution: 满意 / 基本满意 / 不满意, then an optional comment.

The question arrives with the ``resolved`` push, whose buttons carry
``rate:{case number}:{score}``. A resident may also answer in words or numbers:
满意, 还行, 一般, 差评, 1分–5分, 根本没修好, 你们就会糊弄人, 对 重新派人来看 (``score_of``).
Typed, it answers their latest unanswered question. 不满意 reopens the case (on the
platform, or with staff when the platform cannot) and says so.

A typed answer that says more than the score (1分 根本没修好 晚上还是黑乎乎的) is kept
as the comment, so the resident is not asked for one again; otherwise the flow waits
at the optional ``comment`` step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.catalog import Catalog
from handlers.flows.base import (
    OFFER_INTERRUPTS,
    RATE,
    Declined,
    Expect,
    RatingDesk,
    Turn,
    rating_buttons,
)
from handlers.flows.chat import MENU_HUMAN
from handlers.flows.status import same_place
from handlers.messages import Button, Outbound
from handlers.state import ConversationState
from handlers.words import FILLERS, SKIP, clean, words
from integration.dispatch.ratings import AlreadyRated, RatingRequest, Reopened, Score
from nlu.contract import REPORT_INTENTS, SERVICE_INTENTS, VOLUNTEER_INTENTS

_COMMENT_CHARS = 200
SKIP_COMMENT = "rating:skip"
LABELS = {"满意": Score.satisfied, "基本满意": Score.basically, "不满意": Score.dissatisfied}
# Checked in order: 不满意 contains 满意, and 基本满意 is not plain 满意.
_WORDS = (
    (
        Score.dissatisfied,
        re.compile(
            r"不满意|没解决|没有解决|没修好|没有修好|没弄好|没处理|没人管|不行|太差|很差|差劲|"
            r"差评|不认可|敷衍|糊弄|应付|走过场|重新派|再派人|派人再|重新处理|重新办|重新弄|返工|"
            r"根本没|还是没|(?<![\d.])[12一二]\s*分(?!钟)|[12一二]\s*(?:星|颗星)|零分|0分|"
            # the problem is back: 修是修了，可是只亮了一晚上又不亮了
            r"又(?:不亮|不行|不通|不转|坏|堵|漏|冒|响|吵|臭|开始|出现|犯|松|掉|脏|乱|停|满)|"
            r"没几天又|跟没修一样|白修|还是(?:坏|不亮|不行|不通|没|老样子|一样)|还坏着|没人来|"
            r"不负责|不耐烦|没耐心|不热心"
        ),
    ),
    (
        Score.basically,
        re.compile(
            r"基本满意|还行|一般|凑合|还可以|马马虎虎|过得去|(?<![\d.])[3三]\s*分(?!钟)|[3三]\s*星"
        ),
    ),
    (
        Score.satisfied,
        re.compile(
            r"满意|很好|非常好|挺好|好评|点赞|及时|解决了|修好了|处理好了|"
            r"表扬|很负责|认真负责|热心|耐心|给力|赞一个|点个赞|(?<!还)不错|好样的|真棒|很棒|辛苦了|"
            r"(?<![\d.])[45四五]\s*分(?!钟)|[45四五]\s*(?:星|颗星)"
        ),
    ),
)
_DEGREE = re.compile("非常|十分|特别|很|挺|比较|还|给|打|评|分|星")
# Intents that make typed rating words a different request (a new report of another
# kind, a service, volunteering, a person): 我对物业很不满意 电梯天天坏 is a report.
_ELSEWHERE = frozenset(
    {*REPORT_INTENTS, *SERVICE_INTENTS, *VOLUNTEER_INTENTS, "human_handoff", "help"}
) - {"rate_service", "check_status"}
_SKIP_COMMENT = words(
    "skip_comment", SKIP.pattern.pattern + "|没了|没意见|没有意见", whole=True, slack=2
)


def score_of(text: str) -> Score | None:
    """The answer a typed message gives, if it gives one."""
    for score, pattern in _WORDS:
        if pattern.search(text):
            return score
    return None


@dataclass(frozen=True, slots=True)
class _RatingWords:
    """The rating trigger: any message ``score_of`` can score."""

    def search(self, text: str) -> bool:
        return score_of(text) is not None


RATING_WORDS = _RatingWords()


def _says_more(text: str) -> bool:
    """Whether a typed answer is more than a score (还行吧, 非常满意, 5分 are not)."""
    rest = clean(text)
    for _, pattern in _WORDS:
        rest = pattern.sub("", rest)
    return len(FILLERS.sub("", _DEGREE.sub("", rest))) > 1


class RatingFlow:
    """Records a rating, reopening on 不满意, and takes an optional comment."""

    name = "rating"

    def __init__(self, ratings: RatingDesk | None, catalog: Catalog) -> None:
        self._ratings = ratings
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Answer a question by button or by typed words.

        Started by a trigger (rating words, or a lone 嗯 / 好 / 不 that may answer the
        question a push asked) with no question waiting — unless the message is a bare
        score — or with a message that asks for something else (an unrelated request
        that happens to say 满意), it declines the message.
        """
        number, score = _pressed(turn.payload)
        typed = number is None and turn.parse.intent != "rate_service"
        if number is None:
            score = score_of(turn.text)
        request = await self._request(turn, number)
        if typed and (
            (request is None and (score is None or _says_more(turn.text) or self._asks(turn)))
            or (request is not None and not self._fits(turn, request))
        ):
            raise Declined  # rating words in a message about something else
        if request is None and not typed and _says_more(turn.text):
            return self._no_case(score)  # 网格员小王工作很负责，表扬一下
        if request is None or request.score is not None:
            return self._unanswerable(request)
        if score is None:
            if number is None and state.idle and _says_more(turn.text):
                # 清是清了，但是只清了一半: words but no score; kept for the score to come
                state.begin(self.name, "score", {"comment": turn.text[:_COMMENT_CHARS]})
            return [self._choose(request.number)]
        comment = turn.text if number is None and _says_more(turn.text) else ""
        return await self._rate(request, score, state, comment)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """The score after words without one, or the optional comment, or 跳过."""
        if state.step == "score":
            return await self._on_score(turn, state)
        if turn.payload.startswith(RATE):
            state.finish()
            return await self.start(turn, state)
        rating_id = int(state.slots.get("rating_id", 0))
        text = turn.text
        if turn.payload == SKIP_COMMENT or (text and _SKIP_COMMENT.search(text)):
            state.finish()
            return [Outbound(self._t("rating.comment_skipped"))]
        if not text or self._ratings is None:
            return [Outbound(self._t("rating.reprompt_comment"), self._skip())]
        await self._ratings.comment(rating_id, text)
        state.finish()
        return [Outbound(self._t("rating.comment_thanks"))]

    async def _on_score(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """A button or score words; the words said before it become the comment."""
        said = str(state.slots.get("comment", ""))
        number, score = _pressed(turn.payload)
        if number is None:
            score = score_of(turn.text)
            if score is not None and _says_more(turn.text):
                said = f"{said}；{turn.text}"[:_COMMENT_CHARS]
        state.finish()
        request = await self._request(turn, number)
        if request is None or request.score is not None:
            return self._unanswerable(request)
        if score is None:  # more words: kept with the others, and the score asked again
            more = f"{said}；{turn.text}" if turn.text else said
            state.begin(self.name, "score", {"comment": more[:_COMMENT_CHARS]})
            return [self._choose(request.number)]
        return await self._rate(request, score, state, said)

    async def _request(self, turn: Turn, number: str | None) -> RatingRequest | None:
        """The question the answer is for: that case's, else the latest unanswered."""
        if self._ratings is None:
            return None
        inbound = turn.inbound
        return await self._ratings.request(inbound.channel, inbound.chat_id, number)

    def _no_case(self, score: Score | None) -> list[Outbound]:
        """Praise or criticism in words with no question waiting: thanks for praise;
        otherwise where a complaint goes (a report, or a person)."""
        if score is Score.satisfied:
            return [Outbound(self._t("rating.praise"))]
        key = "rating.criticism" if score is Score.dissatisfied else "rating.feedback"
        return [Outbound(self._t(key), (Button(self._t("button.menu_human"), MENU_HUMAN),))]

    def _unanswerable(self, request: RatingRequest | None) -> list[Outbound]:
        """No question to answer, or one answered already."""
        if request is None:
            return [Outbound(self._t("rating.nothing_to_rate"))]
        return [Outbound(self._t("rating.already", number=request.number))]

    def _choose(self, number: str) -> Outbound:
        return Outbound(self._t("rating.choose", number=number), rating_buttons(self._t, number))

    def expect(self, state: ConversationState) -> Expect:
        """The comment: any text but a new request, which ends it quietly. At ``score``
        (words said without a score), the buttons or score words."""
        if state.step == "score":
            return Expect(
                prefixes=(RATE,),
                words=(RATING_WORDS,),
                intents=frozenset({"rate_service"}),
                interrupts=OFFER_INTERRUPTS,
                optional=True,
            )
        comment_like = {"thanks", "goodbye", "out_of_scope", "deny", "affirm", "rate_service"}
        interrupts = {k: v for k, v in OFFER_INTERRUPTS.items() if k not in comment_like}
        return Expect(
            payloads=frozenset({SKIP_COMMENT}),
            prefixes=(RATE,),
            text=True,
            interrupts=interrupts,
            optional=True,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The comment question again (nothing at ``score``: the buttons are on the push)."""
        if state.step == "score":
            return []
        return [Outbound(self._t("rating.reprompt_comment"), self._skip())]

    @staticmethod
    def _asks(turn: Turn) -> bool:
        """Whether, with no question to answer, the model reads the words as a request
        of their own (还是没修 as 我的进度 with a case still open, 又坏了 as a report)."""
        return turn.parse.intent in _ELSEWHERE or turn.parse.intent == "check_status"

    def _fits(self, turn: Turn, request: RatingRequest) -> bool:
        """Whether typed rating words answer ``request`` rather than ask something else:
        a report of another kind, or at a place that is not the case's (幸福路的路灯又坏了
        after a lamp at 金辉小区 was fixed), is news."""
        intent = turn.parse.intent
        if intent in _ELSEWHERE and intent != f"report_{request.category}":
            # 又坏了, 还是坏的 name nothing of another kind, whatever the model reads
            return intent in REPORT_INTENTS and not _says_more(turn.text)
        place = turn.parse.first("address")
        return place is None or not request.address or same_place(place.value, request.address)

    async def _rate(
        self, request: RatingRequest, score: Score, state: ConversationState, comment: str
    ) -> list[Outbound]:
        assert self._ratings is not None
        try:
            reopened = await self._ratings.rate(request.id, score)
        except AlreadyRated:
            return [Outbound(self._t("rating.already", number=request.number))]
        key = "rating.thanks" if reopened is None else f"rating.reopened_{reopened.value}"
        text = self._t(key, number=request.number)
        said = self._t("rating.thanked") if reopened is None else text.splitlines()[0]
        if comment:
            await self._ratings.comment(request.id, comment)
            return [Outbound(f"{said}\n{self._t('rating.comment_kept')}")]
        if not state.idle:  # answered from an older push in the middle of something else
            return [Outbound(said)]
        state.begin(self.name, "comment", {"rating_id": request.id})
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


__all__ = [
    "RATE",
    "RATING_WORDS",
    "RatingFlow",
    "Reopened",
    "rating_buttons",
    "score_of",
]
