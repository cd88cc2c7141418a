"""Residents' side of dispatch: ratings, duplicate reports, and 我的进度.

Flows run as plain code over fakes; the rating book and the duplicate search run on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.flows import standard_flows
from handlers.flows.base import Turn
from handlers.flows.complaint import JOIN, NEW, SKIP, SUBMIT
from handlers.flows.rating import SKIP_COMMENT, score_of
from handlers.messages import Inbound, Outbound
from handlers.notifier import NotificationPump
from handlers.router import Router
from handlers.state import ConversationState
from integration.cases import CaseBook, CaseDraft
from integration.dispatch.ratings import AlreadyRated, RatingBook, Reopened, Score
from integration.models import (
    CaseStatus,
    Notification,
    NotificationKind,
    OutboxJob,
    Rating,
    utcnow,
)
from integration.notifications import NotificationQueue
from nlu.entities import EntityExtractor
from nlu.gazetteer import Gazetteer
from nlu.types import Parse
from tests.fakes import CollectingChannel, FakeDesk, FakeRatings

Sessions = async_sessionmaker[AsyncSession]
S = CaseStatus
_ids = itertools.count()
extractor = EntityExtractor(communities=["金辉小区"])


def turn(
    text: str = "", intent: str = "nlu_fallback", *, payload: str = "", user: str = "u1"
) -> Turn:
    inbound = Inbound("webchat", user, user, f"m{next(_ids)}", text, payload=payload)
    return Turn(inbound, Parse(text, intent, 0.9, extractor.extract(text)), payload)


def router_for(desk: FakeDesk, ratings: FakeRatings | None, catalog: Catalog) -> Router:
    return Router(standard_flows(desk, catalog, Gazetteer.load(), ratings), catalog)


async def say(router: Router, state: ConversationState, t: Turn) -> list[Outbound]:
    replies = await router.route(t, state)
    state.offer(replies[-1].buttons)
    return replies


async def report(
    router: Router, state: ConversationState, user: str, address: str
) -> list[Outbound]:
    """Report noise at ``address`` as ``user`` up to the step after the photo."""
    await say(router, state, turn("广场舞音响声音太大", "report_noise", user=user))
    await say(router, state, turn(address, user=user))
    return await say(router, state, turn("跳过", payload=SKIP, user=user))


# --- ratings in the conversation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("满意", Score.satisfied),
        ("处理得很及时，满意", Score.satisfied),
        ("基本满意吧", Score.basically),
        ("不满意", Score.dissatisfied),
        ("问题根本没解决", Score.dissatisfied),
        ("你好", None),
    ],
)
def test_typed_answers_are_scored(text: str, score: Score | None) -> None:
    assert score_of(text) is score


async def test_a_rating_button_records_the_answer_then_takes_a_comment(catalog: Catalog) -> None:
    ratings = FakeRatings()
    question = ratings.ask("YM2611250001")
    router, state = router_for(FakeDesk(), ratings, catalog), ConversationState()

    [thanks] = await say(router, state, turn("满意", payload="rate:YM2611250001:satisfied"))
    [done] = await say(router, state, turn("处理人员态度很好"))

    assert thanks.text == catalog("rating.thanks")
    assert ratings.questions[0].score is Score.satisfied
    assert ratings.comments == {question.id: "处理人员态度很好"}
    assert done.text == catalog("rating.comment_thanks") and state.idle


async def test_dissatisfied_reopens_and_says_where_the_case_went(catalog: Catalog) -> None:
    ratings = FakeRatings(reopen=Reopened.staff)
    ratings.ask("YM2611250001")
    router, state = router_for(FakeDesk(), ratings, catalog), ConversationState()

    [reply] = await say(router, state, turn("不满意", "rate_service"))  # typed, not pressed
    [skipped] = await say(router, state, turn("跳过", payload=SKIP_COMMENT))

    assert reply.text == catalog("rating.reopened_staff", number="YM2611250001")
    assert "转交街道工作人员" in reply.text
    assert skipped.text == catalog("rating.comment_skipped")


async def test_a_question_is_answered_once(catalog: Catalog) -> None:
    ratings = FakeRatings()
    ratings.ask("YM2611250001")
    router, state = router_for(FakeDesk(), ratings, catalog), ConversationState()
    await say(router, state, turn(payload="rate:YM2611250001:basically"))
    await say(router, state, turn(payload=SKIP_COMMENT))

    [again] = await say(router, state, turn(payload="rate:YM2611250001:dissatisfied"))
    [nothing] = await say(router, state, turn("满意"))

    assert again.text == catalog("rating.already", number="YM2611250001")
    assert nothing.text == catalog("rating.nothing_to_rate")
    assert ratings.questions[0].score is Score.basically


async def test_a_rating_button_mid_report_keeps_the_report(catalog: Catalog) -> None:
    ratings = FakeRatings()
    ratings.ask("YM2611250001")
    desk = FakeDesk()
    router, state = router_for(desk, ratings, catalog), ConversationState()
    await say(router, state, turn("路灯不亮了", "report_facility"))

    [reply] = await say(router, state, turn(payload="rate:YM2611250001:satisfied"))

    assert "感谢" in reply.text and ratings.questions[0].score is Score.satisfied
    assert (state.flow, state.step) == ("complaint", "where")


# --- duplicate reports ----------------------------------------------------------------------------


async def test_a_nearby_report_is_offered_the_open_case_and_joining_creates_nothing(
    catalog: Catalog,
) -> None:
    desk = FakeDesk()
    router = router_for(desk, None, catalog)
    first = ConversationState()
    await report(router, first, "u1", "金辉小区3号楼")
    await say(router, first, turn(payload=SUBMIT))
    [number] = desk.cases

    second = ConversationState()
    [offer] = await report(router, second, "u2", "金辉小区5号楼")  # same community: 0 m apart
    [joined] = await say(router, second, turn("加入已有工单", payload=JOIN, user="u2"))

    assert number in offer.text and "加入该工单" in offer.text
    assert [b.payload for b in offer.buttons][:2] == [JOIN, NEW]
    assert len(desk.drafts) == 1  # no new case
    assert number in joined.text and second.idle
    assert ("webchat", "u2") in desk.cases[number].followers
    [listing] = await say(router, second, turn("我的进度", "check_status", user="u2"))
    assert number in listing.text and "已加入" in listing.text


async def test_a_resident_may_still_open_a_new_case(catalog: Catalog) -> None:
    desk = FakeDesk()
    router = router_for(desk, None, catalog)
    first = ConversationState()
    await report(router, first, "u1", "伊煤路与天骄路交叉口")
    await say(router, first, turn(payload=SUBMIT))

    second = ConversationState()
    [offer] = await report(router, second, "u2", "伊煤路与天骄路交叉口")  # the same address
    [confirm] = await say(router, second, turn(payload=NEW, user="u2"))
    await say(router, second, turn(payload=SUBMIT, user="u2"))

    assert desk.drafts[0].address in offer.text
    assert "请确认" in confirm.text
    assert len(desk.drafts) == 2


async def test_a_different_category_or_place_is_not_a_duplicate(catalog: Catalog) -> None:
    desk = FakeDesk()
    router = router_for(desk, None, catalog)
    first = ConversationState()
    await report(router, first, "u1", "金辉小区3号楼")
    await say(router, first, turn(payload=SUBMIT))

    elsewhere = ConversationState()
    [confirm] = await report(router, elsewhere, "u2", "伊煤路与天骄路交叉口")
    other = ConversationState()
    await say(router, other, turn("垃圾三天没清运", "report_sanitation", user="u3"))
    await say(router, other, turn("金辉小区3号楼", user="u3"))
    [confirm_other] = await say(router, other, turn(payload=SKIP, user="u3"))

    assert "请确认" in confirm.text and "请确认" in confirm_other.text


async def test_typed_case_numbers_are_recognised(catalog: Catalog) -> None:
    desk = FakeDesk()
    router = router_for(desk, None, catalog)
    state = ConversationState()
    await report(router, state, "u1", "金辉小区3号楼")
    await say(router, state, turn(payload=SUBMIT))
    [number] = desk.cases

    [detail] = await say(router, state, turn(number.lower(), "nlu_fallback"))
    [stranger] = await say(router, ConversationState(), turn(number, "greet", user="u9"))

    assert number in detail.text and "已接收" in detail.text
    assert "没有找到" in stranger.text


# --- the rating book and duplicate search on both databases -------------------------------------


def draft(user: str, **changes: object) -> CaseDraft:
    values: dict[str, object] = {
        "channel": "collect",
        "user_id": user,
        "chat_id": user,
        "category": "noise",
        "description": "广场舞音响声音太大",
        "address": "金辉小区3号楼",
        "latitude": 39.6091,
        "longitude": 109.7712,
    }
    values.update(changes)
    return CaseDraft(**values)  # type: ignore[arg-type]


async def resolved_case(sessions: Sessions, platform: str = "local") -> tuple[CaseBook, str]:
    book = CaseBook(sessions, platform=platform)
    number = (await book.create_case(draft("r1"))).number
    await book.change_status(number, S.resolved, "已劝导")
    return book, number


@pytest.mark.parametrize(
    ("platform", "score", "status", "where", "job"),
    [
        ("local", Score.satisfied, S.closed, None, None),
        ("webhook", Score.basically, S.closed, None, None),
        ("local", Score.dissatisfied, S.reopened, Reopened.desk, None),
        ("webhook", Score.dissatisfied, S.reopened, Reopened.platform, "pending"),
        ("open311", Score.dissatisfied, S.reopened, Reopened.staff, "dead"),
    ],
)
async def test_rating_closes_or_reopens_the_case(
    sessions: Sessions,
    platform: str,
    score: Score,
    status: CaseStatus,
    where: Reopened | None,
    job: str | None,
) -> None:
    book, number = await resolved_case(sessions, platform)
    ratings = RatingBook(sessions, platform=platform, can_reopen=platform != "open311")
    question = await ratings.request("collect", "r1")
    assert question is not None and question.number == number

    assert await ratings.rate(question.id, score) is where
    with pytest.raises(AlreadyRated):
        await ratings.rate(question.id, Score.satisfied)

    assert (await book.get(number)).status is status
    async with sessions() as session:
        jobs = list(await session.scalars(select(OutboxJob).where(OutboxJob.kind == "reopen")))
        kinds = list(await session.scalars(select(Notification.kind)))
    assert [j.state for j in jobs] == ([job] if job else [])
    if job == "dead":
        assert "raised to staff" in jobs[0].last_error
    # The resident caused the change and was answered in the chat: no second push.
    assert kinds == [NotificationKind.rating.value]
    assert await ratings.request("collect", "r1") is None  # nothing left to answer
    summary = await ratings.summary()
    assert (summary.asked, summary.answered) == (1, 1)


async def test_one_reminder_at_most_with_the_buttons(sessions: Sessions, catalog: Catalog) -> None:
    _, number = await resolved_case(sessions)
    ratings = RatingBook(sessions)
    assert await ratings.remind(timedelta(hours=24)) == 0  # too early
    async with sessions.begin() as session:
        await session.execute(update(Rating).values(asked_at=utcnow() - timedelta(hours=25)))

    assert await ratings.remind(timedelta(hours=24)) == 1
    assert await ratings.remind(timedelta(hours=24)) == 0  # never a second one

    channel = CollectingChannel()
    pump = NotificationPump(NotificationQueue(sessions), {channel.name: channel}, catalog)
    assert await pump.deliver_due() == 2  # the resolution (asking) and the reminder
    [(_, asked), (_, reminder)] = channel.pushes
    assert "请您为本次办理评价" in asked.text and "满意度回访" in reminder.text
    for push in (asked, reminder):
        assert [b.label for b in push.buttons] == ["满意", "基本满意", "不满意"]
        assert push.buttons[2].payload == f"rate:{number}:dissatisfied"


async def test_satisfaction_counts_the_silent_too(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    ratings = RatingBook(sessions)
    for user in ("a", "b", "c", "d"):
        number = (await book.create_case(draft(user))).number
        await book.change_status(number, S.resolved)
    for user, score in (("a", Score.satisfied), ("b", Score.dissatisfied)):
        question = await ratings.request("collect", user)
        assert question is not None
        await ratings.rate(question.id, score)

    summary = await ratings.summary()

    assert (summary.asked, summary.answered, summary.satisfied, summary.dissatisfied) == (
        4,
        2,
        1,
        1,
    )
    assert summary.satisfaction == 0.5 and summary.response_rate == 0.5


async def test_similar_open_finds_near_or_same_address_recent_open_cases(
    sessions: Sessions,
) -> None:
    book = CaseBook(sessions)
    near = await book.create_case(draft("r1"))
    await book.create_case(draft("r2", latitude=39.62, longitude=109.79, address="远处"))  # ~2 km
    other = await book.create_case(draft("r3", category="parking"))
    closed = await book.create_case(draft("r4"))
    await book.change_status(closed.number, S.closed)

    found = await book.similar_open(draft("me", latitude=39.6100, longitude=109.7712, address="x"))
    by_address = await book.similar_open(draft("me", latitude=None, longitude=None))
    own = await book.similar_open(draft("r1"))

    assert [c.number for c in found] == [near.number]  # about 100 m away
    assert [c.number for c in by_address] == [near.number]
    assert own == []  # one's own case is not offered back
    assert other.number not in [c.number for c in found]

    await book.follow(near.number, "collect", "me", "me")
    assert [c.number for c in await book.open_cases("collect", "me")] == [near.number]
    assert await book.similar_open(draft("me")) == []  # already following it
    await book.change_status(near.number, S.in_progress, "已派城管中队")
    async with sessions() as session:
        chats = list(await session.scalars(select(Notification.chat_id).order_by(Notification.id)))
    assert sorted(chats[-2:]) == ["me", "r1"]  # the follower hears of it too
