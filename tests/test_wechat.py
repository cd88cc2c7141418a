"""The WeChat channel end to end: the real app, WeChat's wire format, real stores.

Deliveries are built and signed as WeChat does and POSTed to /wechat; the WeChat API
(customer-service and template messages) is an emulator on loopback. One app serves
the module (plain mode, SQLite, memory state) and each test is a resident of its own;
tests/test_wechat_backends.py runs the flows on PostgreSQL and Redis, in safe mode,
past the deadline and outside the 48-hour window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from integration.models import CaseStatus, Direction, ServiceItem
from tests.emulators.wechat import WeChatAPIEmulator
from tests.emulators.wechat_app import (
    ADDRESS,
    COMPLAINT,
    T,
    Yimen,
    number_in,
    options,
    serve,
    wechat_settings,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def yimen(
    module_data_dir: Path, module_wechat_api: WeChatAPIEmulator
) -> AsyncIterator[Yimen]:
    """The app in plain mode on SQLite and memory state."""
    async with serve(
        wechat_settings(module_data_dir, module_wechat_api), module_wechat_api
    ) as running:
        yield running


# -- conversations ---------------------------------------------------------------------


async def test_typed_address_skip_submit_and_status_query(yimen: Yimen) -> None:
    resident = yimen.resident()
    reply = await resident.say(COMPLAINT)
    ask_where = T("complaint.ask_where", category=T("category.noise"))
    assert reply == f"{ask_where}\n\n{options(T('button.cancel'))}"
    reply = await resident.say(ADDRESS)
    assert reply.startswith(T("complaint.ask_photo", address=ADDRESS))
    assert reply.endswith(options(T("button.skip"), T("button.cancel")))
    reply = await resident.say(T("button.skip"))  # typing the label works like pressing it
    assert reply.startswith("请确认以下信息")
    assert reply.endswith(options(T("button.submit"), T("button.edit"), T("button.cancel")))
    reply = await resident.say("1")  # 回复 1：提交
    number = number_in(reply)
    assert reply == T("complaint.submitted", number=number)

    reply = await resident.say("我的进度")
    assert number in reply and T("status.received") in reply
    assert reply == await resident.click("check_status")  # the menu entry does the same


async def test_service_guide_in_wechat_with_numbered_buttons(yimen: Yimen) -> None:
    resident = yimen.resident()
    reply = await resident.say("办居住证要带啥")
    assert reply.startswith("【办事指南】居住证") and "人口与流动人口服务窗口" in reply
    assert reply.endswith(
        options(T("button.guide_book"), T("button.guide_proxy"), T("button.guide_materials"))
    )
    reply = await resident.say("1")  # 回复 1：预约办理
    assert reply.startswith(T("booking.ask_time", name="居住证")) or "约满" in reply
    reply = await resident.say("取消")
    assert reply.startswith(T("booking.cancelled"))
    reply = await resident.click("ask_service_info")  # the menu's 办事指南
    assert reply.startswith(T("guide.ask_which"))
    reply = await resident.say("4")  # 回复 4：老年证
    assert reply.startswith("【办事指南】老年证")


async def test_booking_in_wechat_by_numbers(yimen: Yimen) -> None:
    resident = yimen.resident()
    reply = await resident.say("我想预约办居住证")
    assert reply.startswith(T("booking.ask_time", name="居住证"))
    reply = await resident.say("1")
    assert reply.startswith("请确认预约信息") and "人口与流动人口服务窗口" in reply
    reply = await resident.say("确认")
    assert reply.startswith("预约成功！预约号 YY") and "本人居民身份证原件" in reply
    reply = await resident.say("取消我的预约")
    assert reply.startswith("已取消预约 YY")


async def test_proxy_errand_in_wechat_with_numbered_buttons(yimen: Yimen) -> None:
    resident = yimen.resident()
    reply = await resident.say("能帮我代办居住证吗")
    assert reply.startswith(T("proxy.ask_reason", name="居住证"))
    assert T("wechat.option", number=3, label=T("proxy.reason.away")) in reply
    assert (await resident.say("3")).startswith(T("proxy.ask_phone"))  # 回复 3：在外地工作
    reply = await resident.say("13912345678")
    assert reply.startswith(T("proxy.ask_keep", phone="139****5678"))
    reply = await resident.say("2")  # 回复 2：不用记
    assert reply.startswith(T("proxy.not_kept"))
    reply = await resident.say("金辉小区3号楼2单元501")
    assert "在外地工作" in reply and "139****5678" in reply and "13912345678" not in reply
    assert T("proxy.consent", name="居住证", whom=T("proxy.self")) in reply
    reply = await resident.say("1")  # 回复 1：同意并提交
    number = number_in(reply)
    assert reply.startswith(T("proxy.submitted").split("{")[0])
    [case] = await yimen.services.cases.open_cases("wechat", resident.openid)
    assert (case.number, case.category) == (number, "proxy")


async def test_help_at_home_in_wechat_by_numbers(yimen: Yimen) -> None:
    resident = yimen.resident()
    reply = await resident.say("能不能有人陪我妈去医院")
    assert reply.startswith(T("home.ask_when", kind=T("home.kind.medical")))
    assert (await resident.say("下周一上午")).startswith(T("home.ask_where"))
    assert (await resident.say("金辉小区3号楼2单元501")).startswith(T("home.ask_phone"))
    reply = await resident.say("13912345678")
    assert T("wechat.option", number=2, label=T("button.dont_keep_phone")) in reply
    reply = await resident.say("2")  # 回复 2：不用记
    assert "请核对上门服务申请" in reply and "13912345678" not in reply
    reply = await resident.say("1")  # 回复 1：提交
    assert reply.startswith("已提交上门服务申请（助医/陪同就医）")
    async with yimen.services.sessions() as session:
        [item] = (await session.scalars(select(ServiceItem))).all()
    assert (item.kind, item.channel, item.user_id) == ("medical", "wechat", resident.openid)


async def test_chat_fallback_and_cancel(yimen: Yimen) -> None:
    resident = yimen.resident()
    reply = await resident.say("你好")
    assert reply.startswith(T("chat.greet"))
    assert T("wechat.option", number=1, label=T("button.menu_report")) in reply
    assert (await resident.say("讲个笑话")).startswith(T("chat.out_of_scope"))
    # The second message in a row the bot cannot act on offers a person and the menu.
    reply = await resident.say("xyzzy plugh")
    assert reply.startswith(T("chat.fallback_human"))
    assert T("wechat.option", number=3, label=T("button.menu_human")) in reply

    await resident.say(COMPLAINT)
    assert await resident.say("取消") == T("complaint.cancelled")
    assert await resident.say("取消") == T("chat.nothing_to_cancel")
    cases = await yimen.services.cases.open_cases("wechat", resident.openid)
    assert cases == []


# -- events, voice and other message types ----------------------------------------------


async def test_following_greets_with_the_menu_and_unfollowing_is_only_recorded(
    yimen: Yimen,
) -> None:
    resident = yimen.resident()
    tencent = yimen.tencent
    reply = (await resident.send(tencent.event(resident.openid, "subscribe"))).text
    # Two messages in one passive reply: the welcome, then the greeting with its menu.
    assert reply.startswith(T("wechat.welcome") + "\n\n" + T("chat.greet"))
    menu = options(T("button.menu_report"), T("button.menu_status"), T("button.menu_human"))
    assert reply.endswith(menu)
    assert (await resident.say("1")).startswith(T("complaint.ask_what"))  # 1 = 我要反映

    goodbye = await resident.send(tencent.event(resident.openid, "unsubscribe"))
    assert goodbye.empty
    again = await resident.send(tencent.event(resident.openid, "unsubscribe", created=1))
    assert again.empty
    lines = await yimen.services.transcript.lines("wechat", resident.openid)
    inbound = [line.text for line in lines if line.direction is Direction.inbound]
    assert inbound == [T("wechat.subscribed"), "1", *[T("wechat.unsubscribed")] * 2]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("report", T("complaint.ask_what")),
        ("book_appointment", T("booking.ask_service")),
        ("ask_service_info", T("guide.ask_which")),
        ("volunteer_browse", T("volunteer.nothing_open_resident")),  # 志愿服务 browses
        ("a-key-of-an-old-menu", T("chat.help")),
    ],
)
async def test_menu_clicks_do_what_typing_the_entry_does(
    yimen: Yimen, key: str, expected: str
) -> None:
    assert (await yimen.resident().click(key)).startswith(expected)


async def test_a_repeated_click_event_is_answered_once(yimen: Yimen) -> None:
    resident = yimen.resident()
    click = yimen.tencent.event(resident.openid, "CLICK", "check_status")
    first, second = await resident.send(click), await resident.send(click)
    assert first.text == T("status_query.none")
    assert second.empty


async def test_voice_uses_wechats_transcription_or_asks_for_text(yimen: Yimen) -> None:
    resident = yimen.resident()
    tencent = yimen.tencent
    reply = (await resident.send(tencent.voice(resident.openid, COMPLAINT))).text
    assert reply.startswith(T("complaint.ask_where", category=T("category.noise")))
    assert (await resident.send(tencent.voice(resident.openid))).text == T("wechat.voice")


@pytest.mark.parametrize("kind", ["video", "shortvideo", "link", "file", "teleport"])
async def test_other_message_types_get_a_polite_answer(yimen: Yimen, kind: str) -> None:
    resident = yimen.resident()
    xml = yimen.tencent.xml(resident.openid, kind, MediaId="m", MsgId=yimen.tencent.msg_id())
    assert (await resident.send(xml)).text == T("wechat.unsupported")


async def test_other_events_need_no_answer(yimen: Yimen) -> None:
    resident = yimen.resident()
    for event in ("VIEW", "LOCATION", "TEMPLATESENDJOBFINISH", "SCAN"):
        assert (await resident.send(yimen.tencent.event(resident.openid, event, "x"))).empty
    assert await yimen.services.transcript.lines("wechat", resident.openid) == []


# -- replies that do not fit, and resident text that breaks XML --------------------------


async def test_a_reply_too_long_for_one_message_continues_by_customer_service(
    yimen: Yimen,
) -> None:
    resident = yimen.resident()
    description = "楼下烧烤店每天半夜还很吵，" + "油烟和噪音让人无法休息。" * 120  # ~4,400 bytes
    passive = await resident.to_confirm(description)
    last = options(T("button.submit"), T("button.edit"), T("button.cancel"))
    await yimen.api.wait_for(lambda: "".join(yimen.texts_to(resident.openid)).endswith(last))
    parts = [passive, *yimen.texts_to(resident.openid)]
    assert len(parts) >= 3
    assert all(len(part.encode()) <= 2000 for part in parts)
    assert description in "".join(parts).replace("\n", "")


async def test_resident_text_that_ends_cdata_is_echoed_intact(yimen: Yimen) -> None:
    resident = yimen.resident()
    await resident.to_confirm()
    await resident.say(T("button.edit"))
    await resident.say(T("button.edit_description"))
    tricky = "烧烤店]]><MsgType>news</MsgType><![CDATA[太吵了"
    reply = await resident.say(tricky)
    assert f"描述：{tricky}\n" in reply


# -- dedupe and the window -----------------------------------------------------------------


async def test_three_deliveries_of_one_message_open_one_case_and_answer_once(
    yimen: Yimen,
) -> None:
    resident = yimen.resident()
    await resident.to_confirm()
    submit = yimen.tencent.text(resident.openid, T("button.submit"))
    first, second, third = [await resident.send(submit) for _ in range(3)]
    number = number_in(first.text)
    assert second.empty and third.empty
    assert [c.number for c in await yimen.services.cases.open_cases("wechat", resident.openid)] == [
        number
    ]
    assert yimen.texts_to(resident.openid) == []  # the answer went once, passively


@pytest.mark.parametrize("errcode", [45015, 45047])
async def test_when_wechat_says_the_window_is_closed_the_template_is_used(
    yimen: Yimen, errcode: int
) -> None:
    resident = yimen.resident()
    number = await resident.open_case()
    yimen.api.fail("message/custom/send", errcode)
    await yimen.services.cases.change_status(number, CaseStatus.dispatched)

    def templates() -> list[dict[str, str]]:
        return [s.data for s in yimen.api.templates if s.openid == resident.openid]

    await yimen.api.wait_for(lambda: len(templates()) == 1)
    [data] = templates()
    assert data["number"] == number
    assert data["status"] == T("status.dispatched")
    assert data["note"] == T("wechat.template_empty")
    assert yimen.texts_to(resident.openid) == []
