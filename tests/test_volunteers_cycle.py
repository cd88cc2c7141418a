"""The volunteer cycle end to end, through the chat pipeline, with two users.

A resident asks for help at home; staff approve it; a volunteer registers with a
community's invitation code, browses and claims it; the reminder comes; the
volunteer reports it done; the resident confirms and rates; the volunteer's record
grows and the month's report counts it. On SQLite with in-process state and on
PostgreSQL with Redis, through the real NLU model: nobody sets an intent by hand.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.commands.items import window_of
from handlers.catalog import Catalog
from handlers.messages import Button, Inbound, Media, Outbound
from handlers.pipeline import Pipeline
from handlers.volunteer_reminders import VolunteerReminders
from integration.claims import ClaimBook
from integration.items import ItemBook, ItemPost, Window
from integration.models import (
    ItemClaim,
    ItemStatus,
    Notification,
    ServiceItem,
    Volunteer,
    VolunteerStatus,
)
from integration.services.calendar import LOCAL_TZ
from integration.volunteer_reminders import VolunteerReminderQueue
from integration.volunteer_report import VolunteerRecords
from integration.volunteers import VolunteerBook
from nlu.gazetteer import Gazetteer
from tests import test_dialogues
from tests.test_dialogues import World

world = (
    test_dialogues.world
)  # the fixture: the dialogue scenarios' pipeline: SQLite, and PostgreSQL with Redis

NOW = datetime(2026, 11, 9, 10, 0, tzinfo=LOCAL_TZ)  # a Monday
_ids = itertools.count()


@dataclass
class Chat:
    """Two users talking to one pipeline, and the stores behind it."""

    pipeline: Pipeline
    sessions: async_sessionmaker[AsyncSession]
    catalog: Catalog
    clock: datetime = NOW
    buttons: dict[str, tuple[Button, ...]] = field(default_factory=dict)

    async def say(
        self,
        user: str,
        text: str = "",
        press: str = "",
        photo: bool = False,
        channel: str = "webchat",
    ) -> str:
        """Send a message (or press an offered button); the replies' text."""
        self.clock += timedelta(seconds=5)
        payload = ""
        if press:
            found = [b for b in self.buttons.get(user, ()) if b.label == press]
            assert found, f"no button {press!r} among {self.buttons.get(user)}"
            text, payload = press, found[0].payload
        media = (Media("image", "/media/done.jpg", "/media/done.jpg"),) if photo else ()
        inbound = Inbound(
            channel,
            user,
            user,
            f"m{next(_ids)}",
            text,
            media=media,
            payload=payload,
            time=self.clock,
        )
        replies: list[Outbound] = await self.pipeline.handle(inbound) or []
        if replies:
            self.buttons[user] = replies[-1].buttons
        return "\n".join(r.text for r in replies)

    async def pushes(self, chat_id: str) -> list[str]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Notification.text)
                .where(Notification.chat_id == chat_id)
                .order_by(Notification.id)
            )
            return [text for (text,) in rows]

    async def count(self, model: Any) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def chat(world: World) -> Chat:
    """The dialogue scenarios' pipeline and stores (tests.test_dialogues), for two users."""
    return Chat(world.pipeline, world.sessions, world.catalog)


async def register(chat: Chat, user: str, code: str = "", name: str = "王建国") -> str:
    """A volunteer registers by chat; the last reply."""
    assert "姓名" in await chat.say(user, "我是在职党员，想报名志愿者")
    assert "手机" in await chat.say(user, name)
    assert "工作单位" in await chat.say(user, f"1391234{next(_ids) % 10000:04d}")
    assert "党支部" in await chat.say(user, "市自来水公司")
    assert "小区" in await chat.say(user, "自来水公司第一党支部")
    assert "擅长" in await chat.say(user, "我住金辉小区")
    assert "有空" in await chat.say(user, "助老和维修都行")
    assert "邀请码" in await chat.say(user, "工作日上午和周末")
    summary = await chat.say(user, code) if code else await chat.say(user, press="没有邀请码")
    assert "金辉小区" in summary and "助老、维修" in summary
    # Without a code the summary says how the registration will be approved.
    assert f"邀请码：{code or '无（由社区审核）'}\n" in summary
    return await chat.say(user, press="提交")


async def test_the_whole_cycle_with_a_resident_and_a_volunteer(chat: Chat) -> None:
    resident, volunteer = "resident-1", "volunteer-1"
    # 1. the resident asks for help at home
    assert "时间" in await chat.say(resident, "我家老人需要上门助餐")
    await chat.say(resident, "11月10日上午")
    await chat.say(resident, "金辉小区3号楼2单元501")
    await chat.say(resident, "13912345678")
    await chat.say(resident, "不用记")
    assert "已提交上门服务申请" in await chat.say(resident, "好的")
    # said done before anyone came (the model reads a volunteer's report in it): not told
    # to register as a volunteer, but that the confirmation comes after the visit
    early = await chat.say(resident, "送饭的已经来过了，挺好的")
    assert early == chat.catalog("volunteer.visit_noted")
    items = ItemBook(chat.sessions)
    [request] = await items.list_items([ItemStatus.pending])

    # 2. staff approve it (what `yimen items approve` does: window from the words, community)
    window = window_of(None, None, request.when, NOW)
    assert window is not None and window.start == datetime(2026, 11, 10, 9, tzinfo=LOCAL_TZ)
    place = Gazetteer.load().locate(request.address)
    assert place is not None
    await items.approve(request.id, "李书记", "已审核", window=window, community=place.name)

    # 3. the volunteer registers with a code, browses and claims
    code, _ = await VolunteerBook(chat.sessions).invite(place.name, "李书记", NOW)
    assert "登记成功" in await register(chat, volunteer, code)
    listed = await chat.say(volunteer, "看看有哪些志愿岗位可以认领")
    assert f"【编号{request.id}】助餐" in listed and "11月10日 09:00-12:00" in listed
    assert "还剩1个名额" in listed and "13912345678" not in listed and "139****5678" not in listed
    claimed = await chat.say(volunteer, "第1个我来")
    assert "认领成功" in claimed and "139****5678" in claimed and "13912345678" not in claimed
    told = (await chat.pushes(resident))[-1]
    assert "王师傅（党员志愿者）" in told and "王建国" not in told and "1391234" not in told
    # the volunteer sees the resident's phone only once the resident agrees
    assert "13912345678" not in "".join(await chat.pushes(volunteer))
    assert "已把您的联系电话告诉" in await chat.say(resident, "同意告知电话")
    assert "13912345678" in (await chat.pushes(volunteer))[-1]

    # 4. the reminder comes (two hours before the window)
    reminders = VolunteerReminders(
        VolunteerReminderQueue(chat.sessions), ClaimBook(chat.sessions), chat.catalog
    )
    assert await reminders.run_once(window.start - timedelta(hours=3)) == 0
    assert await reminders.run_once(window.start - timedelta(hours=1)) == 1
    assert "志愿服务提醒" in (await chat.pushes(volunteer))[-1]
    assert await reminders.run_once(window.start + timedelta(minutes=5)) == 0
    assert (await items.get(request.id)).status is ItemStatus.in_progress

    # 5. the volunteer completes it, with a photo
    chat.clock = window.end or window.start
    assert "照片" in await chat.say(volunteer, "服务做完了")
    assert "已记录" in await chat.say(volunteer, "饭菜送到了，老人身体挺好", photo=True)
    assert "确认完成" in (await chat.pushes(resident))[-1]
    assert "不能自己确认" not in await chat.say(volunteer, "确认完成 5分")  # not theirs to confirm
    assert (await items.get(request.id)).status is ItemStatus.done

    # 6. the resident confirms and rates, in their own words first
    asked = await chat.say(resident, "送饭的已经来过了，挺好的")
    assert chat.catalog("volunteer.ask_rating", number=request.id) in asked
    assert "评分5分" in await chat.say(resident, "5分")
    confirmed = await items.get(request.id)
    assert (confirmed.status, confirmed.rating) == (ItemStatus.confirmed, 5)

    # 7. the volunteer's record grows
    record = await chat.say(volunteer, "我的服务记录")
    assert "1项" in record and "3小时" in record and "帮助居民：1位" in record

    # 8. the monthly report counts it
    report = await VolunteerRecords(chat.sessions).month("2026-11")
    assert [(r.name, r.community, r.record.items, r.record.residents) for r in report.rows] == [
        ("王建国", "金辉小区", 1, 1)
    ]
    moves = [to for _, to, _, _ in await items.history(request.id)]
    assert moves == ["pending", "open", "claimed", "in_progress", "done", "confirmed"]


async def snapshot(chat: Chat) -> tuple[int, ...]:
    """What a refused request must leave as it was."""
    async with chat.sessions() as session:
        taken = int(await session.scalar(select(func.sum(ServiceItem.taken))) or 0)
        statuses = tuple(
            (await session.execute(select(ServiceItem.status).order_by(ServiceItem.id))).scalars()
        )
    return (
        await chat.count(Volunteer),
        await chat.count(ItemClaim),
        await chat.count(Notification),
        taken,
        hash(statuses),
    )


def post(title: str, start: datetime, capacity: int = 1, skill: str = "elder") -> ItemPost:
    return ItemPost(
        "金辉小区",
        title,
        "",
        (skill,),
        Window(start, start + timedelta(hours=2)),
        "金辉小区活动室",
        capacity,
    )


async def test_bad_input_by_chat_is_answered_and_changes_nothing(chat: Chat) -> None:
    items, people = ItemBook(chat.sessions), VolunteerBook(chat.sessions)
    tomorrow = datetime(2026, 11, 10, 9, 0, tzinfo=LOCAL_TZ)  # a Tuesday morning
    one = await items.post(post("陪老人散步", tomorrow))
    other = await items.post(post("帮老人取药", tomorrow + timedelta(hours=1), capacity=3))
    cancelled = await items.post(post("读报", tomorrow))
    await items.cancel(cancelled.id)
    expired = await items.post(post("理发", NOW - timedelta(hours=4)))
    await ClaimBook(chat.sessions).advance(NOW)
    code, _ = await people.invite("金辉小区", "李书记", NOW)
    assert "登记成功" in await register(chat, "vol-a", code, "王建国")
    assert "登记已提交" in await register(chat, "vol-b", "", "张丽")  # waits for staff
    other_code, _ = await people.invite("金辉小区", "李书记", NOW)
    assert "登记成功" in await register(chat, "vol-d", other_code, "赵强")

    assert "认领成功" in await chat.say("vol-a", f"编号{one.id}我来认领")
    before = await snapshot(chat)
    answers = [
        ("nobody", f"我来认领编号{other.id}", "还没有登记为党员志愿者"),
        ("vol-b", f"我来认领编号{other.id}", "还在社区审核中"),
        ("vol-a", f"我来认领编号{one.id}", "不用重复认领"),
        ("vol-a", f"我来认领编号{cancelled.id}", "已被社区取消"),
        ("vol-a", f"我来认领编号{expired.id}", "已过期"),
        ("vol-a", "我来认领编号99999", "没有找到编号99999"),
        ("vol-d", f"编号{other.id}的服务完成了", f"编号{other.id}不是您认领的"),
        ("nobody", "服务做完了", "还没有登记为党员志愿者"),
        ("vol-a", "我想注册志愿者", "无需重复登记"),
        ("vol-b", "我的服务记录", "已完成并确认的服务：0项"),
    ]
    for user, text, answer in answers:
        reply = await chat.say(user, text)
        assert answer in reply, (user, text, reply)
        assert await snapshot(chat) == before, (user, text)

    full = await chat.say("vol-d", f"我来认领编号{one.id}")  # full: similar items offered
    assert "名额已经满了" in full and f"【编号{other.id}】帮老人取药" in full
    assert await snapshot(chat) == before
    assert "认领成功" in await chat.say("vol-d", "第1个")
    assert (await items.get(other.id)).taken == 1

    # a used and an expired invitation code: told, asked again, nothing recorded
    stale, _ = await people.invite("金辉小区", "李书记", NOW - timedelta(days=30))
    before = await snapshot(chat)
    await chat.say("vol-e", "我是党员想报名志愿者")
    for text in ("刘洋", "13811112222", "第二中学", "教育支部", "金辉小区", "教育", "随时"):
        await chat.say("vol-e", text)
    assert "已经被使用过了" in await chat.say("vol-e", code)
    assert "已过期" in await chat.say("vol-e", stale)
    assert "请核对" in await chat.say("vol-e", press="没有邀请码")
    assert await snapshot(chat) == before
    assert "登记已提交" in await chat.say("vol-e", press="提交")
    pending = await people.of_account("webchat", "vol-e")
    assert pending is not None and pending.status is VolunteerStatus.pending


async def test_withdrawing_before_the_start_frees_the_place_and_tells_the_resident(
    chat: Chat,
) -> None:
    items, people = ItemBook(chat.sessions), VolunteerBook(chat.sessions)
    tomorrow = datetime(2026, 11, 10, 9, 0, tzinfo=LOCAL_TZ)
    item = await items.post(post("陪老人散步", tomorrow))
    code, _ = await people.invite("金辉小区", "李书记", NOW)
    await register(chat, "vol-a", code)
    listed = await chat.say("vol-a", "看看志愿岗位")
    assert "还剩1个名额" in listed
    assert "认领成功" in await chat.say("vol-a", "这个我来")  # the one item shown
    assert (await items.get(item.id)).status is ItemStatus.claimed
    assert "已退出" in await chat.say("vol-a", "这个我去不了了")
    freed = await items.get(item.id)
    assert (freed.status, freed.taken) == (ItemStatus.open, 0)
    again = await chat.say("vol-a", "我去不了了")  # holding nothing: not taken for a withdrawal
    assert "已退出" not in again and (await items.get(item.id)).taken == 0


async def test_pages_of_five_and_a_second_channel_linked_by_a_code(chat: Chat) -> None:
    items, people = ItemBook(chat.sessions), VolunteerBook(chat.sessions)
    saturday = datetime(2026, 11, 14, 9, 0, tzinfo=LOCAL_TZ)
    for n in range(7):
        await items.post(post(f"项目{n}", saturday + timedelta(minutes=10 * n)))
    code, _ = await people.invite("金辉小区", "李书记", NOW)
    await register(chat, "wx-1", code)
    first = await chat.say("wx-1", "看看志愿岗位")
    assert "共7个，第1页" in first and "项目4" in first and "项目5" not in first
    second = await chat.say("wx-1", press="下一页")
    assert "第2页" in second and "6. 【编号6】项目5" in second and "项目4" not in second
    assert "认领成功" in await chat.say("wx-1", press="认领第7个")
    assert (await items.get(7)).taken == 1

    # the same person on another channel: the phone they registered links the accounts
    await chat.say("tg-1", "我是党员想报名志愿者", channel="telegram")
    phone = (await people.of_account("webchat", "wx-1")).phone  # type: ignore[union-attr]
    for text in ("王建国", phone, "市自来水公司", "第一党支部", "金辉小区", "助老", "随时"):
        await chat.say("tg-1", text, channel="telegram")
    await chat.say("tg-1", press="没有邀请码", channel="telegram")
    asked = await chat.say("tg-1", press="提交", channel="telegram")
    assert "验证码" in asked
    pushed = (await chat.pushes("wx-1"))[-1]
    link = re.search(r"\d{6}", pushed)
    assert link is not None
    before = await snapshot(chat)
    assert "请发送" in await chat.say(
        "tg-1", "000000" if link.group() != "000000" else "111111", channel="telegram"
    )
    assert await snapshot(chat) == before
    assert "关联成功" in await chat.say("tg-1", link.group(), channel="telegram")
    assert await people.of_account("telegram", "tg-1") == await people.of_account("webchat", "wx-1")
    assert await chat.count(Volunteer) == 1
    record = await chat.say("tg-1", "我的服务记录", channel="telegram")
    assert "正在进行的认领：1项" in record
