"""The relational store on SQLite and PostgreSQL: cases, their lifecycle, pushes, transcripts.

Every test that takes ``sessions`` runs on both backends against a migrated, empty
database, so the embedded default and production cannot drift apart.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integration.cases import LOCAL_TZ, CaseBook, CaseDraft, format_number
from integration.db import create_engine
from integration.errors import CaseNotFound, DuplicateMessage, InvalidTransition
from integration.lifecycle import can_move
from integration.models import (
    Base,
    CaseEvent,
    CaseStatus,
    Direction,
    Message,
    Notification,
    NotificationState,
)
from integration.notifications import NotificationQueue
from integration.transcript import InboundRecord, Transcript

Sessions = async_sessionmaker[AsyncSession]
S = CaseStatus
NUMBER = re.compile(r"^YM\d{10}$")


def draft(user: str = "u1", *, channel: str = "webchat", **changes: Any) -> CaseDraft:
    """A complaint draft from ``user`` on ``channel``, whose chat is the user's own."""
    values: dict[str, Any] = {
        "channel": channel,
        "user_id": user,
        "chat_id": f"chat-{user}",
        "category": "lighting",
        "description": "楼道里的灯坏了三天了",
        "address": "幸福路12号3单元",
        "latitude": 31.2304,
        "longitude": 121.4737,
    }
    values.update(changes)
    return CaseDraft(**values)


def local_day(moment: datetime) -> str:
    return f"{moment.astimezone(LOCAL_TZ):%y%m%d}"


async def count(sessions: Sessions, model: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def notification(sessions: Sessions, push_id: int) -> Notification:
    async with sessions() as session:
        row = await session.get(Notification, push_id)
        assert row is not None
        return row


# --- case numbers ------------------------------------------------------------------------


def test_format_number() -> None:
    assert format_number(date(2026, 3, 7), 1) == "YM2603070001"
    assert format_number(date(2026, 12, 31), 9999) == "YM2612319999"


async def test_create_case_opens_a_received_case(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    before = datetime.now(UTC)

    case = await book.create_case(draft())

    after = datetime.now(UTC)
    assert case.status is S.received
    assert NUMBER.match(case.number)
    assert case.number[2:8] in {local_day(before), local_day(after)}
    assert case.number.endswith("0001")
    assert (case.category, case.description, case.address) == (
        "lighting",
        "楼道里的灯坏了三天了",
        "幸福路12号3单元",
    )
    assert (case.channel, case.chat_id) == ("webchat", "chat-u1")
    assert case.media_count == 0
    assert before <= case.created_at <= after


async def test_case_numbers_are_sequential(sessions: Sessions) -> None:
    book = CaseBook(sessions)

    numbers = [(await book.create_case(draft(f"u{i}"))).number for i in range(3)]

    assert [int(n[-4:]) for n in numbers] == [1, 2, 3]
    assert len({n[:8] for n in numbers}) == 1


async def test_concurrent_create_case_gives_distinct_numbers(sessions: Sessions) -> None:
    book = CaseBook(sessions)

    cases = await asyncio.gather(*(book.create_case(draft(f"u{i % 4}")) for i in range(20)))

    numbers = [c.number for c in cases]
    assert len(set(numbers)) == 20
    assert sorted(int(n[-4:]) for n in numbers) == list(range(1, 21))
    assert all(NUMBER.match(n) for n in numbers)


async def test_create_case_stores_its_media(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    media = (("image", "media-1", ""), ("image", "media-2", "https://example.org/2.jpg"))

    created = await book.create_case(draft(media=media))

    assert created.media_count == 2
    assert (await book.get(created.number)).media_count == 2


async def test_open_cases_are_the_residents_own_newest_first(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    first = await book.create_case(draft("u1"))
    closed = await book.create_case(draft("u1"))
    await book.create_case(draft("u2"))
    await book.create_case(draft("u1", channel="telegram"))
    rejected = await book.create_case(draft("u1"))
    latest = await book.create_case(draft("u1"))
    await book.change_status(closed.number, S.closed)
    await book.change_status(rejected.number, S.rejected)
    await book.change_status(first.number, S.in_progress)

    cases = await book.open_cases("webchat", "u1")

    assert [c.number for c in cases] == [latest.number, first.number]
    assert [c.status for c in cases] == [S.received, S.in_progress]
    assert await book.open_cases("webchat", "nobody") == []


async def test_get_is_case_insensitive(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    created = await book.create_case(draft())

    found = await book.get(created.number.lower())

    assert found.number == created.number
    assert found.status is S.received


async def test_get_of_an_unknown_number_raises(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    await book.create_case(draft())

    with pytest.raises(CaseNotFound) as raised:
        await book.get("YM0001010001")
    assert raised.value.number == "YM0001010001"


# --- status changes ----------------------------------------------------------------------


async def test_change_status_records_history_and_queues_one_push(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    created = await book.create_case(draft("u1", channel="telegram"))

    changed = await book.change_status(
        created.number.lower(), S.accepted, note="已派往城管中队", actor="desk:li"
    )

    assert changed.status is S.accepted
    assert changed.last_note == "已派往城管中队"
    assert changed.updated_at >= created.updated_at
    assert (await book.get(created.number)).status is S.accepted
    async with sessions() as session:
        events = list(await session.scalars(select(CaseEvent).order_by(CaseEvent.id)))
        pushes = list(await session.scalars(select(Notification)))
    assert [(e.status, e.note, e.actor) for e in events] == [
        ("received", "", "resident"),
        ("accepted", "已派往城管中队", "desk:li"),
    ]
    assert len(pushes) == 1
    push = pushes[0]
    assert (push.event_id, push.channel, push.chat_id) == (events[1].id, "telegram", "chat-u1")
    assert (push.state, push.attempts) == (NotificationState.pending.value, 0)


async def test_each_change_queues_its_own_push(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    created = await book.create_case(draft())

    for status in (S.accepted, S.dispatched, S.in_progress, S.resolved, S.closed):
        await book.change_status(created.number, status)

    assert await count(sessions, CaseEvent) == 6
    assert await count(sessions, Notification) == 5


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ((), S.received),
        ((S.closed,), S.in_progress),
        ((S.resolved,), S.accepted),
        ((S.rejected,), S.closed),
    ],
)
async def test_invalid_change_raises_and_writes_nothing(
    sessions: Sessions, path: tuple[CaseStatus, ...], refused: CaseStatus
) -> None:
    book = CaseBook(sessions)
    created = await book.create_case(draft())
    for status in path:
        await book.change_status(created.number, status)
    events, pushes = await count(sessions, CaseEvent), await count(sessions, Notification)
    current = path[-1] if path else S.received

    with pytest.raises(InvalidTransition) as raised:
        await book.change_status(created.number, refused, note="不应记录")

    assert (raised.value.current, raised.value.requested) == (current.value, refused.value)
    assert await count(sessions, CaseEvent) == events
    assert await count(sessions, Notification) == pushes
    found = await book.get(created.number)
    assert found.status is current
    assert found.last_note != "不应记录"


async def test_change_status_of_an_unknown_case_raises(sessions: Sessions) -> None:
    book = CaseBook(sessions)

    with pytest.raises(CaseNotFound):
        await book.change_status("YM0001010001", S.accepted)

    assert await count(sessions, CaseEvent) == 0
    assert await count(sessions, Notification) == 0


# --- lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        # the main line, one step and skipping forward
        (S.received, S.accepted, True),
        (S.accepted, S.dispatched, True),
        (S.dispatched, S.in_progress, True),
        (S.in_progress, S.resolved, True),
        (S.resolved, S.closed, True),
        (S.received, S.in_progress, True),
        (S.received, S.closed, True),
        (S.accepted, S.resolved, True),
        # never backwards, never in place
        (S.resolved, S.accepted, False),
        (S.in_progress, S.dispatched, False),
        (S.closed, S.in_progress, False),
        (S.closed, S.resolved, False),
        (S.received, S.received, False),
        (S.accepted, S.accepted, False),
        (S.closed, S.closed, False),
        # rejected ends an open case only
        (S.received, S.rejected, True),
        (S.accepted, S.rejected, True),
        (S.dispatched, S.rejected, True),
        (S.in_progress, S.rejected, True),
        (S.reopened, S.rejected, True),
        (S.resolved, S.rejected, False),
        (S.closed, S.rejected, False),
        (S.rejected, S.rejected, False),
        # reopened revives a finished case only
        (S.resolved, S.reopened, True),
        (S.closed, S.reopened, True),
        (S.rejected, S.reopened, True),
        (S.received, S.reopened, False),
        (S.in_progress, S.reopened, False),
        (S.reopened, S.reopened, False),
        # a reopened case moves forward again from accepted
        (S.reopened, S.accepted, True),
        (S.reopened, S.in_progress, True),
        (S.reopened, S.resolved, True),
        (S.reopened, S.received, False),
        # a rejected case stays rejected unless reopened
        (S.rejected, S.accepted, False),
        (S.rejected, S.received, False),
        (S.rejected, S.closed, False),
    ],
)
def test_can_move(current: CaseStatus, new: CaseStatus, allowed: bool) -> None:
    assert can_move(current, new) is allowed


def test_no_status_is_a_dead_end() -> None:
    """Even closed and rejected cases can move on: they can be reopened."""
    for status in S:
        assert any(can_move(status, other) for other in S), status


# --- notification queue ------------------------------------------------------------------


async def queued_pushes(sessions: Sessions) -> list[str]:
    """Open cases on three channels and move them; the case numbers, in queue order."""
    book = CaseBook(sessions)
    numbers = []
    for user, channel in (
        ("u1", "wechat"),
        ("u2", "telegram"),
        ("u3", "webchat"),
        ("u4", "wechat"),
    ):
        case = await book.create_case(draft(user, channel=channel))
        await book.change_status(case.number, S.accepted, note=f"note {user}")
        numbers.append(case.number)
    return numbers


async def test_claim_due_returns_due_rows_of_its_channels_oldest_first(
    sessions: Sessions,
) -> None:
    numbers = await queued_pushes(sessions)
    queue = NotificationQueue(sessions)

    pushes = await queue.claim_due(["wechat", "telegram"])

    assert [p.case_number for p in pushes] == [numbers[0], numbers[1], numbers[3]]
    assert [p.channel for p in pushes] == ["wechat", "telegram", "wechat"]
    assert [p.chat_id for p in pushes] == ["chat-u1", "chat-u2", "chat-u4"]
    assert [p.id for p in pushes] == sorted(p.id for p in pushes)


async def test_claim_due_respects_its_limit(sessions: Sessions) -> None:
    numbers = await queued_pushes(sessions)
    queue = NotificationQueue(sessions)

    first = await queue.claim_due(["wechat", "telegram", "webchat"], limit=2)
    rest = await queue.claim_due(["wechat", "telegram", "webchat"], limit=2)

    assert [p.case_number for p in first] == numbers[:2]
    assert [p.case_number for p in rest] == numbers[2:]


async def test_claimed_rows_are_leased(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)

    claimed = await queue.claim_due(["wechat"])

    assert len(claimed) == 2
    assert await queue.claim_due(["wechat"]) == []
    lease_end = (await notification(sessions, claimed[0].id)).next_attempt_at
    assert lease_end > datetime.now(UTC) + timedelta(seconds=30)


async def test_claim_due_skips_rows_not_yet_due(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    async with sessions.begin() as session:
        await session.execute(
            update(Notification)
            .where(Notification.channel == "telegram")
            .values(next_attempt_at=datetime.now(UTC) + timedelta(minutes=5))
        )

    assert await queue.claim_due(["telegram"]) == []


async def test_pending_push_carries_the_change(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    case = await book.create_case(draft("u1", channel="wechat", category="sanitation"))
    before = datetime.now(UTC)
    await book.change_status(case.number, S.dispatched, note="已派单至环卫所")
    queue = NotificationQueue(sessions)

    [push] = await queue.claim_due(["wechat"])

    assert push.case_number == case.number
    assert push.category == "sanitation"
    assert push.status is S.dispatched
    assert push.note == "已派单至环卫所"
    assert (push.channel, push.chat_id, push.attempts) == ("wechat", "chat-u1", 0)
    assert push.changed_at.utcoffset() == timedelta(0)
    assert push.changed_at >= before


async def test_sent_rows_are_never_claimed_again(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    [first, second] = await queue.claim_due(["wechat"])

    await queue.mark_sent(first.id)
    await queue.release("wechat", "chat-u1")
    await queue.release("wechat", "chat-u4")

    again = await queue.claim_due(["wechat"])
    assert [p.id for p in again] == [second.id]
    row = await notification(sessions, first.id)
    assert row.state == NotificationState.sent.value
    assert row.sent_at is not None and row.sent_at.utcoffset() == timedelta(0)


async def test_retry_later_without_counting_keeps_attempts(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    [push, _] = await queue.claim_due(["wechat"])

    await queue.retry_later(push.id, "recipient offline", 0, count_attempt=False)

    [again] = await queue.claim_due(["wechat"])
    assert again.id == push.id
    assert again.attempts == 0
    assert (await notification(sessions, push.id)).last_error == "recipient offline"


async def test_retry_later_counts_an_attempt(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    [push, _] = await queue.claim_due(["wechat"])

    await queue.retry_later(push.id, "HTTP 502", 0)
    [again] = await queue.claim_due(["wechat"])
    await queue.retry_later(again.id, "HTTP 502", 0, count_attempt=True)
    [third] = await queue.claim_due(["wechat"])

    assert (again.id, again.attempts) == (push.id, 1)
    assert (third.id, third.attempts) == (push.id, 2)


async def test_retry_later_waits_for_its_delay(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    [push, _] = await queue.claim_due(["wechat"])

    await queue.retry_later(push.id, "HTTP 502", 300)

    assert await queue.claim_due(["wechat"]) == []


async def test_failed_rows_are_not_claimed(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    [push, _] = await queue.claim_due(["wechat"])

    await queue.mark_failed(push.id, "x" * 600)
    await queue.release("wechat", "chat-u1")

    assert await queue.claim_due(["wechat"]) == []
    row = await notification(sessions, push.id)
    assert (row.state, row.attempts) == (NotificationState.failed.value, 1)
    assert row.last_error == "x" * 500


async def test_release_makes_a_chats_rescheduled_rows_due(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    [u1, u4] = await queue.claim_due(["wechat"])
    await queue.retry_later(u1.id, "recipient offline", 3600, count_attempt=False)
    await queue.retry_later(u4.id, "recipient offline", 3600, count_attempt=False)
    assert await queue.claim_due(["wechat"]) == []

    await queue.release("wechat", "chat-u1")

    released = await queue.claim_due(["wechat"])
    assert [p.id for p in released] == [u1.id]
    assert released[0].attempts == 0


async def test_release_of_another_channel_changes_nothing(sessions: Sessions) -> None:
    await queued_pushes(sessions)
    queue = NotificationQueue(sessions)
    [u1, _] = await queue.claim_due(["wechat"])

    await queue.release("telegram", "chat-u1")

    assert await queue.claim_due(["wechat"]) == []
    assert (await notification(sessions, u1.id)).next_attempt_at > datetime.now(UTC)


# --- transcript --------------------------------------------------------------------------

SHANGHAI = timezone(timedelta(hours=8))


def inbound(message_id: str = "m1", *, channel: str = "webchat", **changes: Any) -> InboundRecord:
    values: dict[str, Any] = {
        "channel": channel,
        "user_id": "u1",
        "chat_id": "chat-u1",
        "message_id": message_id,
        "text": "路灯坏了",
        "time": datetime(2026, 3, 7, 9, 30, tzinfo=SHANGHAI),
    }
    values.update(changes)
    return InboundRecord(**values)


async def test_record_inbound_stores_the_message(sessions: Sessions) -> None:
    transcript = Transcript(sessions)

    stored = await transcript.record_inbound(
        inbound(latitude=31.2, longitude=121.4, location_label="幸福路", media_ref="media-1")
    )

    assert stored.channel == "webchat"
    async with sessions() as session:
        row = await session.get(Message, stored.message_id)
    assert row is not None
    assert (row.conversation_id, row.direction, row.external_id, row.text) == (
        stored.conversation_id,
        Direction.inbound.value,
        "m1",
        "路灯坏了",
    )
    assert (row.latitude, row.longitude, row.location_label, row.media_ref) == (
        31.2,
        121.4,
        "幸福路",
        "media-1",
    )


async def test_a_redelivered_message_is_refused(sessions: Sessions) -> None:
    transcript = Transcript(sessions)
    await transcript.record_inbound(inbound("m1"))

    with pytest.raises(DuplicateMessage):
        await transcript.record_inbound(inbound("m1", text="重复投递"))
    # Another worker, whose conversation cache is cold, is refused the same way.
    with pytest.raises(DuplicateMessage):
        await Transcript(sessions).record_inbound(inbound("m1", text="重复投递"))

    assert await count(sessions, Message) == 1
    lines = await transcript.lines("webchat", "chat-u1")
    assert [line.text for line in lines] == ["路灯坏了"]


async def test_concurrent_turns_share_batches_and_each_gets_its_own_row(
    sessions: Sessions,
) -> None:
    transcript = Transcript(sessions)
    first = await transcript.record_inbound(inbound("m0"))  # chat-u1's id is now cached

    def message(i: int) -> InboundRecord:
        user = f"u{i % 4}"  # u1 known and cached; u0, u2 and u3 new residents and chats
        return inbound(f"m{i}", user_id=user, chat_id=f"chat-{user}", text=f"第{i}条")

    results = await asyncio.gather(
        *(transcript.record_inbound(message(i)) for i in range(1, 25)),
        transcript.record_inbound(message(5)),  # delivered twice while the first waits
        transcript.record_outcome(first, "greeting", 0.9, ["您好"]),
        return_exceptions=True,
    )

    stored = results[:24]
    assert all(not isinstance(r, BaseException) for r in stored), stored
    assert isinstance(results[24], DuplicateMessage)
    assert results[25] is None
    assert len({r.message_id for r in stored}) == 24  # type: ignore[union-attr]
    for i, r in enumerate(stored, start=1):
        # each chat's rows in one conversation, whatever batch wrote them
        assert r.conversation_id == stored[(i % 4 or 4) - 1].conversation_id  # type: ignore[union-attr]
    assert stored[0].conversation_id == first.conversation_id  # type: ignore[union-attr]
    assert await count(sessions, Message) == 26  # 25 inbound, one reply
    lines = await transcript.lines("webchat", "chat-u2")
    assert [line.text for line in lines] == [f"第{i}条" for i in range(2, 25, 4)]
    one = await transcript.lines("webchat", "chat-u1")
    assert (one[0].text, one[0].intent) == ("路灯坏了", "greeting")
    assert [line.text for line in one if line.direction is Direction.outbound] == ["您好"]


async def test_the_same_message_id_on_another_channel_is_stored(sessions: Sessions) -> None:
    transcript = Transcript(sessions)
    first = await transcript.record_inbound(inbound("m1"))

    second = await transcript.record_inbound(inbound("m1", channel="telegram"))

    assert second.message_id != first.message_id
    assert second.conversation_id != first.conversation_id
    assert await count(sessions, Message) == 2


async def test_record_outcome_stores_intent_and_replies(sessions: Sessions) -> None:
    transcript = Transcript(sessions)
    stored = await transcript.record_inbound(inbound("m1"))

    await transcript.record_outcome(stored, "complaint", 0.87, ["请问在哪里？", "可以发张照片"])

    lines = await transcript.lines("webchat", "chat-u1")
    assert [(line.direction, line.text, line.intent) for line in lines] == [
        (Direction.inbound, "路灯坏了", "complaint"),
        (Direction.outbound, "请问在哪里？", None),
        (Direction.outbound, "可以发张照片", None),
    ]
    async with sessions() as session:
        row = await session.get(Message, stored.message_id)
    assert row is not None and row.confidence == pytest.approx(0.87)


async def test_record_outcome_without_understanding_keeps_replies(sessions: Sessions) -> None:
    transcript = Transcript(sessions)
    stored = await transcript.record_inbound(inbound("m1"))

    await transcript.record_outcome(stored, None, None, ["系统繁忙，请稍后再试"])

    lines = await transcript.lines("webchat", "chat-u1")
    assert [(line.direction, line.intent) for line in lines] == [
        (Direction.inbound, None),
        (Direction.outbound, None),
    ]


async def test_lines_are_oldest_first_and_per_chat(sessions: Sessions) -> None:
    transcript = Transcript(sessions)
    for n in range(3):
        stored = await transcript.record_inbound(inbound(f"m{n}", text=f"问题{n}"))
        await transcript.record_outcome(stored, "chat", 0.5, [f"回答{n}"])
    await transcript.record_inbound(inbound("other", chat_id="chat-u2", user_id="u2"))

    lines = await transcript.lines("webchat", "chat-u1")

    assert [line.text for line in lines] == ["问题0", "回答0", "问题1", "回答1", "问题2", "回答2"]
    assert [line.direction for line in lines] == [Direction.inbound, Direction.outbound] * 3
    recent = await transcript.lines("webchat", "chat-u1", limit=2)
    assert [line.text for line in recent] == ["问题2", "回答2"]
    assert await transcript.lines("telegram", "chat-u1") == []


# --- schema and time ---------------------------------------------------------------------


async def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_engine(database_url)

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(compare)
    finally:
        await engine.dispose()

    assert differences == []


async def test_timestamps_come_back_as_utc(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    transcript = Transcript(sessions)
    case = await book.create_case(draft())
    await transcript.record_inbound(inbound("m1"))

    found = await book.get(case.number)
    [line] = await transcript.lines("webchat", "chat-u1")

    for moment in (found.created_at, found.updated_at, line.created_at):
        assert moment.tzinfo is not None
        assert moment.utcoffset() == timedelta(0)
    assert found.created_at == case.created_at
    # 09:30 in Shanghai was stored and read back as the same instant, in UTC.
    assert line.created_at == datetime(2026, 3, 7, 1, 30, tzinfo=UTC)
    assert line.created_at.tzinfo == UTC


async def test_naive_datetimes_are_refused(sessions: Sessions) -> None:
    transcript = Transcript(sessions)

    with pytest.raises(StatementError, match="naive datetime"):
        await transcript.record_inbound(inbound("m1", time=datetime(2026, 3, 7, 9, 30)))

    assert await count(sessions, Message) == 0
