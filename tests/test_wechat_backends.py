"""The WeChat channel where the stores and the mode matter: PostgreSQL and Redis, safe mode,
a pipeline slower than WeChat's deadline, and pushes outside the 48-hour window.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bots.app import create_app
from bots.runtime import build_pipeline, open_services
from bots.settings import Settings
from bots.wechat import WECHAT, WeChatOptions, WeChatTiming, open_wechat, wechat_routes
from handlers.reminders import BookingReminders
from integration.appointment_reminders import ReminderQueue
from integration.models import (
    Appointment,
    Case,
    CaseMedia,
    CaseStatus,
    Notification,
    NotificationKind,
    NotificationState,
)
from integration.services import load_catalogue
from nlu.embedded import EmbeddedInterpreter
from nlu.types import Parse
from tests.emulators.wechat import TEMPLATE_ID, TOKEN, Tencent, WeChatAPIEmulator, sign
from tests.emulators.wechat_app import (
    ADDRESS,
    COMPLAINT,
    Clock,
    T,
    far_away,
    number_in,
    options,
    serve,
    wechat_settings,
)

# -- the complaint, in each mode, and its progress --------------------------------------


@pytest.mark.parametrize(
    ("mode", "backend"),
    [("plain", "sqlite"), ("safe", "postgresql+redis")],
    indirect=["backend"],
)
async def test_complaint_by_pin_and_photo_opens_a_case_whose_progress_is_pushed(
    data_dir: Path, wechat_api: WeChatAPIEmulator, mode: str, backend: dict[str, Any]
) -> None:
    settings = wechat_settings(data_dir, wechat_api, safe=mode == "safe", **backend)
    async with serve(settings, wechat_api) as yimen:
        resident = yimen.resident()
        reply = await resident.say(COMPLAINT)
        assert reply.startswith(T("complaint.ask_where", category=T("category.noise")))

        lat, lon = far_away()
        reply = await resident.pin(lat, lon, "幸福路12号烧烤店")
        assert reply.startswith(T("complaint.ask_photo", address="幸福路12号烧烤店"))
        assert reply.endswith(options(T("button.skip"), T("button.cancel")))

        reply = await resident.photo("media-0001")
        assert T("complaint.photo_count", count=1) in reply
        number = number_in(await resident.say("1"))  # 回复 1：提交

        async with yimen.services.sessions() as session:
            case = await session.scalar(select(Case).where(Case.number == number))
            media = list(await session.scalars(select(CaseMedia)))
        assert case is not None
        assert (case.channel, case.chat_id, case.category) == ("wechat", resident.openid, "noise")
        assert case.address == "幸福路12号烧烤店"
        assert (case.latitude, case.longitude) == pytest.approx((lat, lon))
        assert [(m.kind, m.ref, m.url) for m in media] == [
            ("image", "media-0001", "http://mmbiz.qpic.cn/media-0001")
        ]

        await yimen.services.cases.change_status(number, CaseStatus.in_progress, "已派城管中队")
        [push] = await yimen.wait_texts(resident.openid, 1)
        assert number in push and T("status.in_progress") in push and "已派城管中队" in push
        assert not wechat_api.templates


async def test_outside_48_hours_a_push_uses_the_status_template(
    data_dir: Path, wechat_api: WeChatAPIEmulator, backend: dict[str, Any]
) -> None:
    clock = Clock()
    settings = wechat_settings(data_dir, wechat_api, **backend)
    async with serve(settings, wechat_api, clock=clock) as yimen:
        resident = yimen.resident()
        number = await resident.open_case()
        clock.offset = 47 * 3600.0  # still inside: a customer-service message
        await yimen.services.cases.change_status(number, CaseStatus.accepted, "已受理")
        await yimen.wait_texts(resident.openid, 1)
        clock.offset = 49 * 3600.0
        await yimen.services.cases.change_status(number, CaseStatus.dispatched, "已派单")
        await wechat_api.wait_for(lambda: len(wechat_api.templates) == 1)
    [sent] = wechat_api.templates
    assert (sent.openid, sent.template_id) == (resident.openid, TEMPLATE_ID)
    assert sent.data["number"] == number
    assert sent.data["status"] == T("status.dispatched")
    assert sent.data["note"] == "已派单"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", sent.data["time"])
    assert len(yimen.texts_to(resident.openid)) == 1


async def test_outside_48_hours_a_booking_reminder_uses_the_template_too(
    data_dir: Path, wechat_api: WeChatAPIEmulator, backend: dict[str, Any]
) -> None:
    """Reminders and staff messages are queued with their facts for the template."""
    clock = Clock()
    settings = wechat_settings(data_dir, wechat_api, **backend)
    async with serve(settings, wechat_api, clock=clock) as yimen:
        resident = yimen.resident()
        await resident.say("我想预约办居住证")
        await resident.say("1")
        number = re.search(r"YY\d{10}", await resident.say("确认"))
        assert number is not None
        async with yimen.services.sessions.begin() as session:  # the day before, 16:00
            await session.execute(
                update(Appointment).values(remind_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        clock.offset = 49 * 3600.0  # the resident's last message is two days old
        reminders = BookingReminders(ReminderQueue(yimen.services.sessions), load_catalogue(), T)
        assert await reminders.run_once() == 1
        await wechat_api.wait_for(lambda: len(wechat_api.templates) == 1)
    [sent] = wechat_api.templates
    assert (sent.openid, sent.template_id) == (resident.openid, TEMPLATE_ID)
    assert sent.data["number"] == number.group()
    assert sent.data["status"] == T("booking.template_reminder")
    assert "居住证" in sent.data["note"]
    assert yimen.texts_to(resident.openid) == []  # not by customer service: window closed


# -- past the deadline: the answer by customer service, once --------------------------------


async def test_past_the_deadline_every_answer_comes_once_by_customer_service(
    data_dir: Path, wechat_api: WeChatAPIEmulator
) -> None:
    # A deadline of 0 s: no turn is ever ready in time, so every answer is late.
    async with serve(wechat_settings(data_dir, wechat_api), wechat_api, deadline=0.0) as yimen:
        resident = yimen.resident()
        for count, words in enumerate((COMPLAINT, ADDRESS, T("button.skip")), start=1):
            assert (await resident.send(yimen.tencent.text(resident.openid, words))).empty
            await yimen.wait_texts(resident.openid, count)
        submit = yimen.tencent.text(resident.openid, T("button.submit"))
        deliveries = await asyncio.gather(*(resident.send(submit) for _ in range(3)))
        assert all(d.empty for d in deliveries)
        await yimen.wait_texts(resident.openid, 4)
        cases = await yimen.services.cases.open_cases("wechat", resident.openid)
    # The app has closed, so every late reply has been sent (drained): none twice.
    texts = yimen.texts_to(resident.openid)
    assert texts[0].startswith(T("complaint.ask_where", category=T("category.noise")))
    assert texts[1].startswith(T("complaint.ask_photo", address=ADDRESS))
    assert texts[2].startswith("请确认以下信息")
    assert texts[3] == T("complaint.submitted", number=cases[0].number)
    assert len(texts) == 4 and len(cases) == 1


async def test_a_late_answer_wechat_refuses_waits_in_the_push_queue_until_sent(
    data_dir: Path, wechat_api: WeChatAPIEmulator, backend: dict[str, Any]
) -> None:
    # Every answer is late, and WeChat fails the channel's three quick tries.
    settings = wechat_settings(data_dir, wechat_api, **backend)
    async with serve(settings, wechat_api, deadline=0.0) as yimen:
        wechat_api.fail("message/custom/send", 500, 500, 500)
        resident = yimen.resident()
        assert (await resident.send(yimen.tencent.text(resident.openid, COMPLAINT))).empty
        await yimen.wait_texts(resident.openid, 1)
        async with asyncio.timeout(10):
            while True:  # the pump records the send just after WeChat took it
                async with yimen.services.sessions() as session:
                    [(kind, state, text)] = (
                        await session.execute(
                            select(Notification.kind, Notification.state, Notification.text)
                        )
                    ).all()
                if state != NotificationState.pending.value:
                    break
                await asyncio.sleep(0.02)
    assert yimen.texts_to(resident.openid) == [text]  # once, by the push queue
    assert text.startswith(T("complaint.ask_where", category=T("category.noise")))
    assert (kind, state) == (NotificationKind.reply.value, NotificationState.sent.value)


class GatedInterpreter:
    """The real interpreter behind a gate: the pipeline is as slow as the test wants."""

    def __init__(self, inner: EmbeddedInterpreter) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.calls = 0

    async def parse(self, text: str) -> Parse:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        return await self.inner.parse(text)


async def test_redeliveries_while_the_first_is_still_processing_get_one_answer(
    data_dir: Path,
    wechat_api: WeChatAPIEmulator,
    backend: dict[str, Any],
    interpreter: EmbeddedInterpreter,
) -> None:
    settings = wechat_settings(data_dir, wechat_api, **backend)
    slow = GatedInterpreter(interpreter)
    timing = WeChatTiming(deadline=0.05)
    async with open_services(settings, with_nlu=False) as services:
        pipeline = build_pipeline(
            settings, services.redis, slow, services.cases, services.transcript, services.catalog
        )
        async with open_wechat(settings, services, pipeline.handle, WeChatOptions(timing)) as wx:
            app = web.Application()
            app[WECHAT] = wx
            app.add_routes(wechat_routes(settings))
            async with TestClient(TestServer(app)) as client:
                tencent = Tencent(client)
                openid = f"o-gated-{id(slow)}"
                message = tencent.text(openid, COMPLAINT)
                # WeChat's three deliveries, all while the first is stuck in the NLU.
                deliveries = [await tencent.deliver(message) for _ in range(3)]
                await asyncio.wait_for(slow.entered.wait(), 10)
                assert all(d.empty for d in deliveries)
                assert [t.openid for t in wechat_api.texts] == []
                slow.gate.set()
                await wechat_api.wait_for(lambda: len(wechat_api.texts) == 1)
                await wx.drain()
                assert slow.calls == 1
                [answer] = wechat_api.texts
                assert answer.openid == openid
                assert answer.text.startswith(
                    T("complaint.ask_where", category=T("category.noise"))
                )
                lines = await services.transcript.lines("wechat", openid)
                assert [line.text for line in lines] == [
                    COMPLAINT,
                    T("complaint.ask_where", category=T("category.noise")),
                ]


# -- configuration ---------------------------------------------------------------------------


async def test_without_a_token_there_is_no_webhook(data_dir: Path) -> None:
    async with TestClient(TestServer(create_app(Settings(data_dir=data_dir)))) as client:
        assert (await client.post("/wechat", data="<xml></xml>")).status in (404, 405)


@pytest.mark.parametrize("safe", [False, True], ids=["plain", "safe"])
async def test_url_verification_echoes_echostr_only_when_signed(
    data_dir: Path, wechat_api: WeChatAPIEmulator, safe: bool
) -> None:
    async with serve(wechat_settings(data_dir, wechat_api, safe=safe), wechat_api) as yimen:
        timestamp, nonce = str(int(yimen.clock())), "1320562132"
        query = {
            "signature": sign(TOKEN, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": "4193855215937044711",
        }
        response = await yimen.client.get("/wechat", params=query)
        assert response.status == 200
        assert await response.text() == "4193855215937044711"
        response = await yimen.client.get("/wechat", params=query | {"signature": "0" * 40})
        assert response.status == 403
