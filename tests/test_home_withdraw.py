"""A resident withdraws their own help-at-home request by chat, and the volunteer coming
is told, through the real pipeline and NLU model, on SQLite with in-process state and on
PostgreSQL with Redis (tests.test_dialogues' world)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bots.commands.items import window_of
from integration.claims import ClaimBook
from integration.items import ItemBook, ItemDraft, ItemNotPending
from integration.items_memory import MemoryItems
from integration.models import ItemStatus, ServiceItemEvent
from integration.volunteers import VolunteerBook
from tests import test_volunteers_cycle
from tests.test_volunteers_cycle import NOW, Chat, register

world = test_volunteers_cycle.world  # the fixtures: the scenarios' pipeline, for two users
chat = test_volunteers_cycle.chat


async def request_meals(chat: Chat, resident: str, when: str = "11月10日上午") -> int:
    """The resident asks for meals at home by chat; the new item's number."""
    await chat.say(resident, "我家老人需要上门助餐")
    await chat.say(resident, when)
    await chat.say(resident, "金辉小区3号楼2单元501")
    await chat.say(resident, "13912345678")
    await chat.say(resident, "不用记")
    submitted = await chat.say(resident, "好的")
    assert "已提交上门服务申请" in submitted
    return max(item.id for item in await ItemBook(chat.sessions).list_items([]))


async def approve_and_claim(chat: Chat, item_id: int, volunteer: str) -> None:
    """Staff approve the request and a registered volunteer claims it."""
    items = ItemBook(chat.sessions)
    request = await items.get(item_id)
    window = window_of(None, None, request.when, NOW)
    assert window is not None
    await items.approve(item_id, "李书记", "已审核", window=window, community="金辉小区")
    code, _ = await VolunteerBook(chat.sessions).invite("金辉小区", "李书记", NOW)
    assert "登记成功" in await register(chat, volunteer, code)
    assert "认领成功" in await chat.say(volunteer, f"编号{item_id}我来认领")


async def test_a_claimed_request_withdrawn_tells_the_volunteer(chat: Chat) -> None:
    resident, volunteer = "resident-w1", "volunteer-w1"
    item_id = await request_meals(chat, resident)
    await approve_and_claim(chat, item_id, volunteer)
    pushed = len(await chat.pushes(volunteer))

    asked = await chat.say(resident, "助餐不需要了")  # the model reads a new request
    assert f"编号{item_id}" in asked and "要取消" in asked
    assert [b.label for b in chat.buttons[resident]] == ["确认取消", "不取消"]
    kept = await chat.say(resident, press="不取消")
    assert "保持不变" in kept
    assert (await ItemBook(chat.sessions).get(item_id)).status is ItemStatus.claimed

    await chat.say(resident, "我想取消上门服务")
    done = await chat.say(resident, "取消")  # typed 取消 at the question confirms it
    assert "已取消上门服务申请" in done and "已通知认领" in done
    item = await ItemBook(chat.sessions).get(item_id)
    assert item.status is ItemStatus.cancelled
    told = (await chat.pushes(volunteer))[pushed:]
    assert len(told) == 1 and "居民已取消" in told[0] and f"编号{item_id}" in told[0]
    async with chat.sessions() as session:
        actors = (
            await session.scalars(
                select(ServiceItemEvent.actor).where(
                    ServiceItemEvent.item_id == item_id,
                    ServiceItemEvent.to_status == ItemStatus.cancelled.value,
                )
            )
        ).all()
    assert actors == ["resident"]

    again = await chat.say(resident, "取消上门服务")  # nothing left to withdraw
    assert "没有可以取消的上门服务申请" in again
    assert "请问需要哪种上门服务" not in again


async def test_only_ones_own_request_not_yet_begun_is_withdrawn(chat: Chat) -> None:
    resident = "resident-w2"
    assert "没有可以取消" in await chat.say(resident, "取消我的上门服务申请")
    first = await request_meals(chat, resident)
    second = await request_meals(chat, resident, "11月11日上午")
    which = await chat.say(resident, "上门服务不要了")
    assert "要取消哪一项" in which
    labels = [b.label for b in chat.buttons[resident]]
    assert labels == [f"取消编号{second}（助餐）", f"取消编号{first}（助餐）"]
    assert "已取消" in await chat.say(resident, press=f"取消编号{first}（助餐）")
    items = ItemBook(chat.sessions)
    assert (await items.get(first)).status is ItemStatus.cancelled
    assert (await items.get(second)).status is ItemStatus.pending

    # typed answers: 不用了 keeps it (the safer reading), 不要了 withdraws it
    assert "要取消" in await chat.say(resident, "助餐不需要了")
    assert "保持不变" in await chat.say(resident, "不用了")
    assert (await items.get(second)).status is ItemStatus.pending
    assert "要取消" in await chat.say(resident, "我想取消上门服务")
    assert "已取消" in await chat.say(resident, "不要了")
    assert (await items.get(second)).status is ItemStatus.cancelled

    # someone else's request is not theirs to withdraw
    assert "没有可以取消" in await chat.say("resident-w3", "取消上门服务")

    # once the visit has begun, the community handles changes: a person is offered
    third = await request_meals(chat, resident, "11月12日上午")
    await approve_and_claim(chat, third, "volunteer-w2")
    start = (await items.get(third)).starts_at
    assert start is not None
    await ClaimBook(chat.sessions).advance(start + timedelta(minutes=30))
    assert (await items.get(third)).status is ItemStatus.in_progress
    begun = await chat.say(resident, "助餐不用了")
    assert "不能在这里取消" in begun and "转人工" in [b.label for b in chat.buttons[resident]]
    assert (await items.get(third)).status is ItemStatus.in_progress


async def test_the_memory_book_withdraws_like_the_database() -> None:
    book = MemoryItems()
    draft = ItemDraft("webchat", "u1", "u1", "meal", "明天中午", "金辉小区3号楼", "本人", "139")
    item = await book.create(draft)
    try:
        await book.cancel(item.id, "resident", owner=("webchat", "someone-else"))
    except ItemNotPending:
        pass
    else:
        raise AssertionError("someone else's request was withdrawn")
    done = await book.cancel(item.id, "resident", owner=("webchat", "u1"))
    assert done.status is ItemStatus.cancelled
    assert await book.requested_by("webchat", "u1") == []
