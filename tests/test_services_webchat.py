"""The resident services over the real web chat socket, on both backends.

The dialogue scenarios play these flows through the pipeline; here the same flows go
through the page's WebSocket (frames, buttons by payload, the case and the booking in
the database), with the real NLU model, whatever today's date is.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bots.app import SERVICES
from handlers.catalog import Catalog
from integration.models import Appointment, ServiceItem
from tests.test_webchat import backend_client, backend_settings, chat, labels_of, press, say
from tests.test_webchat import text_of as text
from tests.webchat_client import Visitor

__all__ = ["backend_client", "backend_settings"]  # the fixtures, used by name

T = Catalog.load()
BOOKING_NUMBER = re.compile(r"YY\d{10}")


async def test_a_booking_over_the_web_chat(backend_client: TestClient[Any, Any]) -> None:
    services = backend_client.app[SERVICES]
    async with Visitor(backend_client) as browser, chat(backend_client, browser) as ws:
        reply = await say(ws, "我想预约办居住证")
        assert text(reply).startswith(T("booking.ask_time", name="居住证"))
        first = labels_of(reply)[0]
        reply = await press(ws, reply, first)
        assert text(reply).startswith("请确认预约信息") and first in text(reply)
        reply = await say(ws, "确认")
        number = BOOKING_NUMBER.search(text(reply))
        assert number and text(reply).startswith("预约成功")
        assert "本人居民身份证原件" in text(reply)  # the materials list
    async with services.sessions() as session:
        booked = (await session.scalars(select(Appointment))).all()
    assert [(b.number, b.service, b.channel, b.user_id) for b in booked] == [
        (number.group(), "residence_permit", "webchat", browser.id)
    ]


async def test_an_errand_run_for_a_resident_over_the_web_chat(
    backend_client: TestClient[Any, Any],
) -> None:
    services = backend_client.app[SERVICES]
    async with Visitor(backend_client) as browser, chat(backend_client, browser) as ws:
        reply = await say(ws, "我腿脚不便，能帮我代办老年证吗")
        assert T("proxy.ask_phone") in text(reply)  # the reason was in the message
        reply = await say(ws, "13912345678")
        assert text(reply).startswith(T("proxy.ask_keep", phone="139****5678"))
        reply = await press(ws, reply, T("button.dont_keep_phone"))
        assert T("proxy.not_kept") in text(reply)
        reply = await say(ws, "金辉小区3号楼2单元501")
        assert "【委托确认】" in text(reply) and T("button.proxy_agree") in labels_of(reply)
        reply = await press(ws, reply, T("button.proxy_agree"))
        assert text(reply).startswith("已提交代办申请")
    [case] = await services.cases.open_cases("webchat", browser.id)
    assert case.category == "proxy" and "老年证" in case.description


async def test_help_at_home_over_the_web_chat(backend_client: TestClient[Any, Any]) -> None:
    services = backend_client.app[SERVICES]
    async with Visitor(backend_client) as browser, chat(backend_client, browser) as ws:
        reply = await say(ws, "我家老人需要上门助餐")
        assert text(reply).startswith(T("home.ask_when", kind="助餐"))
        reply = await say(ws, "每天中午")
        assert text(reply).startswith(T("home.ask_where"))
        reply = await say(ws, "金辉小区3号楼2单元501")
        assert text(reply).startswith(T("home.ask_phone"))
        reply = await say(ws, "13912345678")
        reply = await press(ws, reply, T("button.dont_keep_phone"))
        assert "请核对上门服务申请" in text(reply) and "139****5678" in text(reply)
        reply = await press(ws, reply, T("button.submit"))
        assert text(reply).startswith("已提交上门服务申请（助餐）")
    async with services.sessions() as session:
        [item] = (await session.scalars(select(ServiceItem))).all()
    assert (item.kind, item.when, item.status, item.user_id) == (
        "meal",
        "每天中午",
        "pending",
        browser.id,
    )
