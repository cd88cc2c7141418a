"""The human handoff, bot side: triggers, silence while held, commands, promises, hand back.

Played through the real pipeline and NLU model (bots.runtime.build_pipeline) on SQLite
with in-process state and on PostgreSQL with Redis; the handoff records are read back
from the store.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.handoff_desk import OutsideWindow, StaffDesk
from bots.runtime import handoff_book
from bots.settings import Settings
from handlers.catalog import Catalog
from handlers.flows.chat import MENU_STATUS
from handlers.flows.handoff import escalation, when
from handlers.messages import Inbound, Outbound
from handlers.notifier import NotificationPump
from handlers.pipeline import Pipeline
from integration.handoff import (
    HandoffBook,
    HandoffError,
    HandoffRequest,
    conversation_lines,
)
from integration.handoff_hours import HoursError, StaffHours
from integration.models import Handoff, Notification, NotificationKind
from integration.notifications import NotificationQueue, PendingPush
from integration.services import load_catalogue
from integration.services.calendar import LOCAL_TZ
from tests import test_dialogues
from tests.test_dialogues import World

_ids = itertools.count()
world = test_dialogues.world  # the scenarios' fixture: their pipeline on both backends
# A Monday in office hours, and a Saturday evening (Asia/Shanghai).
MONDAY_10 = datetime.fromisoformat("2026-12-07T10:00:00+08:00")
SATURDAY_20 = datetime.fromisoformat("2026-12-12T20:00:00+08:00")


@dataclass
class Chat:
    """One resident's conversation through the pipeline, with a clock."""

    pipeline: Pipeline
    book: HandoffBook
    sessions: async_sessionmaker[AsyncSession]
    clock: datetime
    chat: str = "r1"
    channel: str = "webchat"

    async def say(self, text: str, payload: str = "") -> list[Outbound]:
        self.clock += timedelta(seconds=5)
        inbound = Inbound(
            self.channel,
            self.chat,
            self.chat,
            f"h{next(_ids)}",
            text,
            payload=payload,
            time=self.clock,
        )
        replies = await self.pipeline.handle(inbound)
        assert replies is not None
        return replies

    async def text(self, text: str) -> str:
        return "\n".join(r.text for r in await self.say(text))

    async def handoffs(self) -> list[Handoff]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Handoff).order_by(Handoff.id)))


@pytest.fixture
def chat(world: World, tmp_path: Path) -> Chat:
    """The dialogue scenarios' pipeline (SQLite and memory, PostgreSQL and Redis)."""
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    return Chat(world.pipeline, handoff_book(settings, world.sessions), world.sessions, MONDAY_10)


# --- triggers -------------------------------------------------------------------------------


async def test_asking_for_a_person_holds_the_conversation_and_the_bot_goes_quiet(
    chat: Chat, catalog: Catalog
) -> None:
    assert catalog("handoff.coming") in await chat.text("帮我转人工")
    for text in ("人呢", "楼道里有人飞线充电", "你们这帮废物", "转人工"):
        assert await chat.say(text) == [], text
    [row] = await chat.handoffs()
    assert (row.status, row.reason, row.promised_at) == ("waiting", "asked", None)
    assert row.sla_due == MONDAY_10 + timedelta(seconds=5 + 300)
    assert row.last_message_at == chat.clock  # every held message reached the record


async def test_two_messages_in_a_row_not_understood_hand_over(chat: Chat, catalog: Catalog) -> None:
    first = await chat.text("阿巴阿巴咕噜咕噜")
    assert catalog("handoff.coming") not in first
    assert catalog("handoff.coming") in await chat.text("啊啊啊啊")
    [row] = await chat.handoffs()
    assert row.reason == "fallbacks"


async def test_one_message_not_understood_then_a_real_one_does_not_hand_over(
    chat: Chat, catalog: Catalog
) -> None:
    await chat.text("阿巴阿巴咕噜咕噜")
    await chat.text("你好")
    assert catalog("handoff.coming") not in await chat.text("啊啊啊啊")
    assert await chat.handoffs() == []


@pytest.mark.parametrize(
    ("text", "rule", "words"),
    [
        ("楼下着火了 快来人啊", "fire", "着火"),
        ("我家煤气泄漏了怎么办", "gas", "煤气泄漏"),
        ("救命 我妈晕倒了", "rescue", "救命"),
        ("我妈一个人在家摔倒了起不来", "medical", "摔倒了起不来"),
        ("再不处理我就打12345投诉你们", "complaint_threat", "12345"),
        ("我说了好几遍了你怎么听不懂", "not_understood", "说了好几遍"),
    ],
)
async def test_urgent_and_angry_messages_hand_over_and_say_which_rule_fired(
    chat: Chat, catalog: Catalog, text: str, rule: str, words: str
) -> None:
    replies = await chat.text(text)
    assert catalog("handoff.coming") in replies
    urgent = f"handoff.urgent.{rule}"
    if urgent in catalog.keys():
        assert replies.startswith(catalog(urgent))  # the emergency number comes first
    [row] = await chat.handoffs()
    assert row.reason == "rule"
    found, matched = escalation(text) or (None, "")
    assert found is not None and found.rule.name == rule and words in matched
    assert row.detail == f"{rule}:{matched}"


def test_everyday_reports_do_not_fire_a_rule() -> None:
    for text in (
        "燃气味很重",
        "垃圾三天没清运",
        "我要投诉楼上装修太吵",
        "人工湖边路灯不亮",
        "我妈腿脚不好怕摔倒，想请人陪她去医院",
        "我妈听不懂普通话，想请人陪她去医院",  # not said to the bot
        "楼道里堆满了杂物，着火了都跑不出去",  # a hazard said as what a fire would do
        "要是着火就完了",
        "楼道堆物，一旦起火后果不堪设想",
    ):
        assert escalation(text) is None, text


# --- while held -----------------------------------------------------------------------------


async def test_commands_still_work_while_held(chat: Chat, catalog: Catalog) -> None:
    await chat.say("转人工")
    assert catalog("status_query.none") in await chat.text("我的进度")
    assert await chat.text("取消") == catalog("handoff.withdrawn")
    [row] = await chat.handoffs()
    assert (row.status, row.closed_how) == ("closed", "withdrawn")
    assert "公共设施" in await chat.text("小区门口路灯坏了")  # the bot answers again


async def test_hand_back_resumes_the_paused_report_where_it_was(
    chat: Chat, catalog: Catalog
) -> None:
    assert "具体位置" in await chat.text("楼道里有人拉电线给电动车充电 太危险了")
    await chat.say("金辉小区5号楼2单元")  # the address: now the photo is asked for
    held = await chat.text("你们问来问去的 我要找工作人员")
    assert catalog("handoff.coming") in held and catalog("complaint.resume") not in held
    assert await chat.say("没有照片") == []  # for the person, not the report
    [row] = await chat.handoffs()
    await chat.book.claim(row.id, "zhang")
    await chat.book.close(row.id, "released")
    [back] = await chat.pipeline.release("webchat", "r1")
    assert back.text.startswith(catalog("complaint.resume"))
    assert "照片" in back.text  # the photo step, not the start of the report
    replies = await chat.text("没有照片")
    assert "金辉小区5号楼2单元" in replies and "请确认" in replies


async def test_staff_take_over_a_conversation_from_the_console(
    chat: Chat, catalog: Catalog
) -> None:
    await chat.say("楼道里有人拉电线给电动车充电")
    handoff = await chat.book.open(HandoffRequest("webchat", "r1", "r1", "staff", "", chat.clock))
    assert await chat.pipeline.take_over("webchat", "r1", handoff.id)
    assert await chat.say("金辉小区5号楼") == []  # staff have it now
    [back] = await chat.pipeline.release("webchat", "r1")
    assert "位置" in back.text and back.text.startswith(catalog("complaint.resume"))


async def test_claims_are_exclusive(chat: Chat) -> None:
    await chat.say("转人工")
    [row] = await chat.handoffs()
    await chat.book.claim(row.id, "zhang")
    await chat.book.claim(row.id, "zhang")  # claiming one's own again is fine
    with pytest.raises(HandoffError, match="claimed by zhang"):
        await chat.book.claim(row.id, "li")
    await chat.book.close(row.id, "closed")
    with pytest.raises(HandoffError):
        await chat.book.close(row.id, "closed")


# --- office hours -----------------------------------------------------------------------------


async def test_off_hours_the_resident_is_promised_the_next_opening(
    chat: Chat, catalog: Catalog
) -> None:
    chat.clock = SATURDAY_20
    monday = datetime.fromisoformat("2026-12-14T08:30:00+08:00")
    assert catalog("handoff.promised", time=when(monday)) in await chat.text("转人工")
    assert "12月14日（周一）08:30" in when(monday)
    [row] = await chat.handoffs()
    assert row.promised_at == monday and row.sla_due == monday


def test_saturday_mornings_are_staffed_and_holidays_are_not() -> None:
    calendar = load_catalogue().calendar
    hours = StaffHours.parse("1-5 08:30-12:00 14:00-18:00; 6 09:00-12:00", calendar)
    saturday = datetime.fromisoformat("2026-12-12T10:00:00+08:00")
    assert hours.is_open(saturday)
    lunch = datetime.fromisoformat("2026-12-07T12:30:00+08:00")
    assert hours.next_opening(lunch) == datetime.fromisoformat("2026-12-07T14:00:00+08:00")
    holiday = min(calendar.holidays - calendar.workdays)
    assert not hours.is_open(datetime.combine(holiday, time(10), LOCAL_TZ))


@pytest.mark.parametrize(
    "text", ["", "周一 9:00-12:00", "1-5 9:00", "1-5 12:00-09:00", "8 09:00-10:00"]
)
def test_unreadable_staff_hours_are_refused(text: str) -> None:
    with pytest.raises(HoursError):
        StaffHours.parse(text)


# --- staff replies ------------------------------------------------------------------------------


def desk_for(chat: Chat, catalog: Catalog, now: datetime) -> StaffDesk:
    return StaffDesk(chat.book, chat.pipeline, chat.sessions, catalog, clock=lambda: now)


async def test_a_staff_reply_is_queued_on_the_residents_channel_and_hand_back_resumes(
    chat: Chat, catalog: Catalog
) -> None:
    await chat.say("楼道里有人拉电线给电动车充电")
    await chat.say("转人工")
    [row] = await chat.handoffs()
    desk = desk_for(chat, catalog, chat.clock)
    with pytest.raises(HandoffError, match="not held by li"):
        await desk.reply(row.id, "li", "您好")  # nobody claimed it yet
    await desk.claim(row.id, "zhang")
    await desk.reply(row.id, "zhang", "您好，我是社区工作人员小张")
    with pytest.raises(HandoffError, match="empty"):
        await desk.reply(row.id, "zhang", "   ")
    await desk.hand_back(row.id, "zhang")
    lines = await conversation_lines(chat.sessions, "webchat", "r1")
    staff = [line for line in lines if line.who == "staff"]
    assert [line.text for line in staff] == ["您好，我是社区工作人员小张"]
    pushed = [line.text for line in lines if line.who == "bot" and line.state]
    assert pushed and pushed[-1].startswith(catalog("handoff.returned"))
    assert catalog("complaint.resume") in pushed[-1]  # the report's question comes back
    resident = [line for line in lines if line.who == "resident"]
    assert resident[0].intent == "report_safety" and resident[0].confidence
    assert "具体位置" not in await chat.text("金辉小区5号楼")  # the bot answers: the photo step


async def test_wechat_replies_outside_the_48_hour_window_are_refused_not_queued(
    chat: Chat, catalog: Catalog
) -> None:
    chat.channel = "wechat"
    await chat.say("转人工")
    [row] = await chat.handoffs()
    inside = desk_for(chat, catalog, chat.clock + timedelta(hours=47))
    await inside.claim(row.id, "zhang")
    await inside.reply(row.id, "zhang", "您好")
    outside = desk_for(chat, catalog, chat.clock + timedelta(hours=49))
    with pytest.raises(OutsideWindow) as refused:
        await outside.reply(row.id, "zhang", "还在吗")
    assert refused.value.last == chat.clock
    lines = await conversation_lines(chat.sessions, "wechat", "r1")
    assert [line.text for line in lines if line.who == "staff"] == ["您好"]


async def test_a_hold_left_behind_by_a_failed_release_lets_the_resident_go(
    chat: Chat, catalog: Catalog
) -> None:
    assert "具体位置" in await chat.text("楼道里有人拉电线给电动车充电")
    await chat.say("转人工")
    [row] = await chat.handoffs()
    await chat.book.close(row.id, "closed")  # closed, but the state still holds
    replies = await chat.text("还有人吗")
    assert replies.startswith(catalog("handoff.returned"))
    assert catalog("complaint.resume") in replies  # the paused report is back


async def pushed_replies(chat: Chat, catalog: Catalog) -> list[Outbound]:
    """The chat's queued pushes as the notifier renders them for the channel."""
    pump = NotificationPump(NotificationQueue(chat.sessions), {}, catalog)
    async with chat.sessions() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.chat_id == chat.chat).order_by(Notification.id)
        )
        return [
            pump.render(
                PendingPush(
                    n.id,
                    n.channel,
                    n.chat_id,
                    0,
                    "",
                    "",
                    None,
                    "",
                    n.created_at,
                    kind=NotificationKind(n.kind),
                    text=n.text,
                    buttons=tuple((label, payload) for label, payload in json.loads(n.buttons))
                    if n.buttons
                    else (),
                )
            )
            for n in rows
        ]


async def handed_over_and_back(chat: Chat, catalog: Catalog) -> list[Outbound]:
    """The resident asks for a person, staff claim and hand back: the pushes rendered."""
    await chat.say("转人工")
    [row] = await chat.handoffs()
    desk = desk_for(chat, catalog, chat.clock)
    await desk.claim(row.id, "zhang")
    await desk.hand_back(row.id, "zhang")
    return await pushed_replies(chat, catalog)


async def test_hand_back_with_nothing_to_resume_offers_the_main_menu(
    chat: Chat, catalog: Catalog
) -> None:
    [back] = await handed_over_and_back(chat, catalog)
    assert back.text == catalog("handoff.returned")
    assert [b.label for b in back.buttons] == [
        catalog("button.menu_report"),
        catalog("button.menu_status"),
        catalog("button.menu_human"),
    ]
    # Its number chooses, as on WeChat where the buttons are numbered lines.
    assert await chat.text("2") == catalog("status_query.none")


async def test_hand_back_into_a_paused_report_asks_its_question_without_the_menu(
    chat: Chat, catalog: Catalog
) -> None:
    await chat.say("楼道里有人拉电线给电动车充电")
    await chat.say("转人工")
    [row] = await chat.handoffs()
    desk = desk_for(chat, catalog, chat.clock)
    await desk.claim(row.id, "zhang")
    await desk.close(row.id, "zhang")
    [back] = await pushed_replies(chat, catalog)
    assert back.text.startswith(catalog("handoff.closed")) and "\n" in back.text
    # The report's question is what to answer: its own choices go with it, not the menu.
    assert [b.payload for b in back.buttons] == ["cancel"]


async def test_hand_back_keeps_the_resumed_questions_own_buttons(
    chat: Chat, catalog: Catalog
) -> None:
    await chat.say("楼道里有人拉电线给电动车充电")
    [asked] = await chat.say("金辉小区5号楼")  # the photo step, with its skip button
    assert asked.buttons
    [back] = await handed_over_and_back(chat, catalog)
    assert back.text.startswith(catalog("handoff.returned"))
    assert [(b.label, b.payload) for b in back.buttons] == [
        (b.label, b.payload) for b in asked.buttons
    ]
    # Pressing one answers the resumed step, as it would have before the handoff.
    replies = await chat.say(asked.buttons[0].label, payload=asked.buttons[0].payload)
    assert catalog("handoff.coming") not in "\n".join(r.text for r in replies)


async def test_a_hold_left_behind_with_nothing_paused_offers_the_menu(
    chat: Chat, catalog: Catalog
) -> None:
    await chat.say("转人工")
    [row] = await chat.handoffs()
    await chat.book.close(row.id, "closed")  # closed, but the state still holds
    [back] = await chat.say("还有人吗")
    assert back.text == catalog("handoff.returned")
    assert MENU_STATUS in [b.payload for b in back.buttons]
