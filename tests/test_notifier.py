"""Status pushes: queued with the change, delivered once, retried, never lost silently."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.flows.status import note_for
from handlers.messages import Outbound
from handlers.notifier import NotificationPump
from integration.cases import CaseBook, CaseDraft, CaseView
from integration.models import CaseStatus, Notification
from integration.notifications import NotificationQueue
from tests.fakes import CollectingChannel


async def open_case(book: CaseBook, chat: str = "r1", channel: str = "collect") -> str:
    draft = CaseDraft(channel, chat, chat, "noise", "楼下烧烤店每天半夜还很吵", "金辉小区3号楼")
    return (await book.create_case(draft)).number


def pump_for(
    sessions: async_sessionmaker[AsyncSession], channel: CollectingChannel, catalog: Catalog
) -> NotificationPump:
    return NotificationPump(
        NotificationQueue(sessions), {channel.name: channel}, catalog, poll_interval=0.05
    )


async def states(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, int]]:
    async with sessions() as session:
        rows = await session.execute(
            select(Notification.state, Notification.attempts).order_by(Notification.id)
        )
        return [(s, a) for s, a in rows]


async def test_each_change_is_pushed_once_in_chinese(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    book, channel = CaseBook(sessions), CollectingChannel()
    number = await open_case(book)
    await book.change_status(number, CaseStatus.in_progress, "已派城管中队")
    await book.change_status(number, CaseStatus.resolved, "已劝导商户夜间停业")
    pump = pump_for(sessions, channel, catalog)
    assert await pump.deliver_due() == 2
    assert await pump.deliver_due() == 0  # sent pushes are never sent again
    [(chat, first), (_, second)] = channel.pushes
    assert chat == "r1"
    assert number in first.text and "正在处理" in first.text and "已派城管中队" in first.text
    assert "噪音扰民" in first.text
    assert "已办结" in second.text and "已劝导商户夜间停业" in second.text
    assert await states(sessions) == [("sent", 0), ("sent", 0)]


async def test_pushes_only_go_to_channels_this_process_serves(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    book, channel = CaseBook(sessions), CollectingChannel()
    number = await open_case(book, channel="telegram")
    await book.change_status(number, CaseStatus.accepted)
    assert await pump_for(sessions, channel, catalog).deliver_due() == 0
    assert await states(sessions) == [("pending", 0)]


async def test_offline_recipient_keeps_the_push_without_using_attempts(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    book, channel = CaseBook(sessions), CollectingChannel(offline={"r1"})
    number = await open_case(book)
    await book.change_status(number, CaseStatus.accepted)
    pump = pump_for(sessions, channel, catalog)
    labels = {"channel": channel.name, "outcome": "offline"}
    before = REGISTRY.get_sample_value("yimen_push_failures_total", labels) or 0.0
    assert await pump.deliver_due() == 0
    assert await states(sessions) == [("pending", 0)]
    assert REGISTRY.get_sample_value("yimen_push_failures_total", labels) == before + 1
    channel.offline.clear()
    await NotificationQueue(sessions).release("collect", "r1")  # the visitor came back
    assert await pump.deliver_due() == 1
    assert len(channel.pushes) == 1


async def test_failed_push_is_retried_later_then_given_up_visibly(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    book = CaseBook(sessions)
    number = await open_case(book)
    await book.change_status(number, CaseStatus.accepted)
    flaky = CollectingChannel(failures=1)
    assert await pump_for(sessions, flaky, catalog).deliver_due() == 0
    assert await states(sessions) == [("pending", 1)]

    await book.change_status(number, CaseStatus.dispatched)
    broken = CollectingChannel(failures=5, permanent=True)
    await NotificationQueue(sessions).release("collect", "r1")
    await pump_for(sessions, broken, catalog).deliver_due()
    assert await states(sessions) == [("failed", 2), ("failed", 1)]


async def test_running_pump_delivers_changes_from_elsewhere(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    book, channel = CaseBook(sessions), CollectingChannel()
    number = await open_case(book)
    pump = pump_for(sessions, channel, catalog)
    task = asyncio.create_task(pump.run())
    try:
        await book.change_status(number, CaseStatus.accepted, "已受理")
        async with asyncio.timeout(10):
            while not channel.pushes:  # noqa: ASYNC110 - the fake channel has no event to await
                await asyncio.sleep(0.02)
    finally:
        # Stopped, not cancelled, the way the app stops it: the sends in hand finish
        # and no query is cut off before the tables are truncated.
        pump.stop()
        async with asyncio.timeout(10):
            await task
    assert number in channel.pushes[0][1].text


# -- privacy and isolation (issue 10) ------------------------------------------------------


async def test_a_follower_gets_the_staff_note_with_personal_numbers_masked(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    """Notes meant for the reporter (a call-back number) stay with the reporter."""
    book, channel = CaseBook(sessions), CollectingChannel()
    number = await open_case(book, "reporter")
    await book.follow(number, "collect", "neighbour", "neighbour")
    note = "请拨打13912345678联系张师傅，身份证110101199003071234已登记"
    await book.change_status(number, CaseStatus.in_progress, note)
    assert await pump_for(sessions, channel, catalog).deliver_due() == 2
    pushes = dict((chat, message.text) for chat, message in channel.pushes)
    assert note in pushes["reporter"]
    assert "13912345678" not in pushes["neighbour"] and "139****5678" in pushes["neighbour"]
    assert "110101199003071234" not in pushes["neighbour"]
    assert "110101********1234" in pushes["neighbour"]


def test_the_status_query_masks_a_followers_copy_of_the_note() -> None:
    case = CaseView(
        number="YM2611250001",
        category="noise",
        status=CaseStatus.in_progress,
        description="楼下烧烤店每天半夜还很吵",
        address="金辉小区3号楼",
        channel="webchat",
        chat_id="reporter",
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
        last_note="请拨打13912345678",
        followers=(("webchat", "neighbour"),),
    )
    assert note_for(case, ("webchat", "reporter")) == "请拨打13912345678"
    assert note_for(case, ("webchat", "neighbour")) == "请拨打139****5678"


@dataclass
class HangingChannel(CollectingChannel):
    """Pushes to ``hung`` chats never finish (a page that stopped reading)."""

    hung: set[str] = field(default_factory=set)

    async def push(self, chat_id: str, message: Outbound) -> None:
        if chat_id in self.hung:
            await asyncio.Event().wait()
        await super().push(chat_id, message)


async def test_a_chat_whose_sends_hang_holds_up_no_other_chat(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    book, channel = CaseBook(sessions), HangingChannel(hung={"stuck"})
    stuck = await open_case(book, "stuck")
    fine = await open_case(book, "fine")
    await book.change_status(stuck, CaseStatus.accepted)
    await book.change_status(stuck, CaseStatus.dispatched)
    queue = NotificationQueue(sessions)
    pump = NotificationPump(
        queue, {channel.name: channel}, catalog, poll_interval=0.05, send_timeout=0.3
    )
    task = asyncio.create_task(pump.run())
    try:
        await asyncio.sleep(0.1)  # the stuck chat's first push is being sent
        await book.change_status(fine, CaseStatus.accepted)
        pump.wake()
        for _ in range(100):
            if channel.pushes:
                break
            await asyncio.sleep(0.02)
        assert [chat for chat, _ in channel.pushes] == ["fine"]
        assert pump.status().sending == 1  # the stuck one, still within its timeout
    finally:
        pump.stop()
        await asyncio.wait_for(task, 5)
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Notification.chat_id, Notification.state, Notification.last_error).order_by(
                    Notification.id
                )
            )
        ).all()
    # The timed-out push and the one behind it wait, in order, for a later attempt.
    assert [(c, s, e) for c, s, e in rows if c == "stuck"] == [
        ("stuck", "pending", "send timed out"),
        ("stuck", "pending", "send timed out"),
    ]


async def test_a_failed_push_keeps_the_chats_later_pushes_behind_it(
    sessions: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    book, channel = CaseBook(sessions), CollectingChannel(failures=1)
    number = await open_case(book)
    await book.change_status(number, CaseStatus.accepted)
    await book.change_status(number, CaseStatus.dispatched)
    assert await pump_for(sessions, channel, catalog).deliver_due() == 0
    assert channel.pushes == []  # the second never overtakes the first
    assert await states(sessions) == [("pending", 1), ("pending", 0)]
