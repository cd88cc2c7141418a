"""Forgetting a resident on request, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integration.cases import CaseBook, CaseDraft
from integration.db import create_engine, session_factory
from integration.dispatch.ratings import RatingBook, Score
from integration.models import (
    Case,
    CaseFollower,
    CaseStatus,
    Conversation,
    Message,
    Notification,
    Rating,
    Resident,
)
from integration.residents import FORGOTTEN, Identity, ResidentBook, ResidentNotFound
from integration.transcript import InboundRecord, Transcript

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def chat(sessions: Sessions, user: str, text: str, media: str = "") -> None:
    transcript = Transcript(sessions)
    record = InboundRecord("webchat", user, user, f"{user}-{text}", text, NOW, media_ref=media)
    stored = await transcript.record_inbound(record)
    await transcript.record_outcome(stored, "report_noise", 0.9, ["收到"])


def draft(user: str, description: str) -> CaseDraft:
    return CaseDraft("webchat", user, user, "noise", description, "金辉小区3号楼", 39.6, 109.7)


async def count(sessions: Sessions, model: type, *where: object) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int(await session.scalar(query) or 0)


async def test_forgetting_deletes_the_residents_data_and_detaches_their_cases(
    sessions: Sessions,
) -> None:
    book, ratings = CaseBook(sessions), RatingBook(sessions)
    await chat(sessions, "me", "楼下太吵 我电话13912345678", media="/media/" + "a" * 32 + ".jpg")
    await chat(sessions, "me", "金辉小区3号楼", media="/media/" + "b" * 32 + ".jpg")
    await chat(sessions, "neighbour", "广场舞太吵")
    mine = await book.create_case(draft("me", "楼下太吵 我电话13912345678"))
    theirs = await book.create_case(draft("neighbour", "广场舞太吵"))
    await book.follow(theirs.number, "webchat", "me", "me")
    await book.change_status(theirs.number, CaseStatus.accepted, "已受理")  # a push to me
    await book.change_status(mine.number, CaseStatus.resolved, "已劝导")
    question = await ratings.request("webchat", "me")
    assert question is not None
    await ratings.rate(question.id, Score.satisfied)
    await ratings.comment(question.id, "我是张三，电话13912345678")

    residents = ResidentBook(sessions)
    identity = await residents.find("me")
    forgotten = await residents.forget(identity)

    assert identity == Identity("webchat", "me") and forgotten.chats == ("me",)
    assert (forgotten.messages, forgotten.follows, forgotten.comments) == (4, 1, 1)
    assert forgotten.notifications >= 2 and forgotten.cases_kept == 1
    assert forgotten.media == ("/media/" + "a" * 32 + ".jpg", "/media/" + "b" * 32 + ".jpg")
    assert await count(sessions, Resident, Resident.external_id == "me") == 0
    assert await count(sessions, Conversation, Conversation.chat_id == "me") == 0
    assert await count(sessions, Message) == 2  # the neighbour's message and its reply
    assert await count(sessions, Notification, Notification.chat_id == "me") == 0
    assert await count(sessions, CaseFollower) == 0
    async with sessions() as session:
        case = await session.scalar(select(Case).where(Case.number == mine.number))
        rating = await session.scalar(select(Rating))
        placeholder = await session.scalar(select(Resident).where(Resident.id == case.resident_id))  # type: ignore[union-attr]
    assert case is not None and case.chat_id == "" and "13912345678" not in case.description
    assert "139****5678" in case.description and case.address == "金辉小区3号楼"
    assert placeholder is not None and placeholder.channel == FORGOTTEN
    assert rating is not None and (rating.score, rating.comment, rating.chat_id) == (
        "satisfied",
        "",
        "",
    )
    # The kept case goes on without the resident: no push, no new rating question.
    before = await count(sessions, Notification)
    await book.change_status(mine.number, CaseStatus.reopened, "复查")
    await book.change_status(mine.number, CaseStatus.resolved, "已复查")
    assert await count(sessions, Notification) == before
    assert await count(sessions, Rating) == 1
    # The neighbour is untouched.
    assert await count(sessions, Resident, Resident.external_id == "neighbour") == 1
    assert (await book.get(theirs.number)).followers == ()


async def test_an_unknown_or_ambiguous_resident_is_refused(sessions: Sessions) -> None:
    await chat(sessions, "me", "你好")
    transcript = Transcript(sessions)
    other = InboundRecord("telegram", "me", "me", "tg-1", "hi", NOW)
    await transcript.record_inbound(other)
    residents = ResidentBook(sessions)
    with pytest.raises(ResidentNotFound, match="nobody"):
        await residents.find("nobody")
    with pytest.raises(ResidentNotFound, match="telegram, webchat"):
        await residents.find("me")
    assert await residents.find("me", "telegram") == Identity("telegram", "me")
    await residents.forget(Identity("telegram", "me"))
    with pytest.raises(ResidentNotFound):
        await residents.forget(Identity("telegram", "me"))
    assert await residents.find("me") == Identity("webchat", "me")


async def test_a_resident_forgotten_by_another_process_can_come_back(
    sessions: Sessions, database_url: str
) -> None:
    """This process caches the resident's and the conversation's ids; another process
    (its own engine, its own cache) forgets the resident. The ids cached here are then
    stale: the next message and the next case must still be stored, once each, under a
    new identity row, not fail on the deleted one."""
    book = CaseBook(sessions)
    transcript = Transcript(sessions)

    async def say(text: str) -> None:
        record = InboundRecord("webchat", "back", "back", f"back-{text}", text, NOW)
        stored = await transcript.record_inbound(record)
        await transcript.record_outcome(stored, "report_noise", 0.9, ["收到"])

    await say("楼下太吵")
    await say("金辉小区3号楼")  # ids now cached in this process
    await book.create_case(draft("back", "楼下太吵"))

    other = create_engine(database_url)
    try:
        await ResidentBook(session_factory(other)).forget(Identity("webchat", "back"))
    finally:
        await other.dispose()
    assert await count(sessions, Resident, Resident.external_id == "back") == 0

    await say("又吵起来了")
    again = await book.create_case(draft("back", "又吵起来了"))
    assert await count(sessions, Resident, Resident.external_id == "back") == 1
    assert await count(sessions, Conversation, Conversation.chat_id == "back") == 1
    assert await count(sessions, Message, Message.text == "又吵起来了") == 1
    async with sessions() as session:
        owner = await session.scalar(select(Case.resident_id).where(Case.number == again.number))
        resident = await session.scalar(select(Resident.id).where(Resident.external_id == "back"))
    assert owner == resident
