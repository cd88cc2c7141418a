"""The Telegram channel end to end: the real app and real aiogram against an emulated Bot API.

Every conversation runs in both modes: long polling (the emulator answers getUpdates)
and webhook (the emulator POSTs each update to /telegram with the secret header, as
Telegram does). Status pushes come from the app's own notification pump.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import select
from yarl import URL

from bots.app import TELEGRAM, create_app
from bots.media import MediaStore
from bots.settings import Settings
from bots.telegram import (
    SECRET_HEADER,
    SendLimits,
    open_telegram,
    telegram_routes,
    webhook_secret,
)
from handlers.catalog import Catalog
from handlers.messages import Inbound, Outbound
from integration.cases import CaseDraft
from integration.models import (
    Case,
    CaseMedia,
    CaseStatus,
    Notification,
    NotificationState,
)
from nlu.embedded import EmbeddedInterpreter
from tests.emulators.telegram import Resident, Sent, TelegramEmulator
from tests.emulators.telegram_app import FAST, TOKEN, Yimen, jpeg, serve, telegram_settings

CASE_NUMBER = re.compile(r"YM\d{10}")
COMPLAINT = "楼下烧烤店每天半夜还很吵"
ADDRESS = "金辉小区3号楼"

T = Catalog.load()


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(params=["polling", "webhook"])
def mode(request: pytest.FixtureRequest) -> str:
    """How updates reach the app."""
    return str(request.param)


@pytest.fixture
def sqlite_settings(data_dir: Path) -> Settings:
    """The embedded defaults: SQLite in the data directory, memory state."""
    return Settings(data_dir=data_dir, push_poll_interval=0.1)


@pytest.fixture
def backend_settings(backend: dict[str, Any], data_dir: Path) -> Settings:
    """SQLite and memory state, and PostgreSQL and Redis."""
    return Settings(data_dir=data_dir, push_poll_interval=0.1, **backend)


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    """The Bot API on loopback, measuring per-chat spacing against the test limits."""
    async with TelegramEmulator(TOKEN, chat_interval=FAST.chat_interval) as emulator:
        yield emulator


@pytest.fixture
async def yimen(
    sqlite_settings: Settings, emulator: TelegramEmulator, mode: str
) -> AsyncIterator[Yimen]:
    """The app on SQLite with Telegram in each mode."""
    async with serve(telegram_settings(sqlite_settings, emulator, mode), emulator) as yimen:
        yield yimen


@pytest.fixture
async def backend_yimen(
    backend_settings: Settings, emulator: TelegramEmulator, mode: str
) -> AsyncIterator[Yimen]:
    """The app on each backend with Telegram in each mode."""
    async with serve(telegram_settings(backend_settings, emulator, mode), emulator) as yimen:
        yield yimen


@pytest.fixture
async def webhook_yimen(
    backend_settings: Settings, emulator: TelegramEmulator
) -> AsyncIterator[Yimen]:
    """The app on each backend, Telegram by webhook."""
    async with serve(telegram_settings(backend_settings, emulator, "webhook"), emulator) as yimen:
        yield yimen


# -- helpers ------------------------------------------------------------------------


def number_in(message: Sent) -> str:
    found = CASE_NUMBER.search(message.text)
    assert found, message.text
    return found.group()


async def report_noise(yimen: Yimen, resident: Resident) -> Sent:
    """Report the noise; the answer that asks where."""
    answer = await yimen.one(resident.text(COMPLAINT), resident)
    assert answer.text == T("complaint.ask_where", category=T("category.noise"))
    assert answer.labels == [T("button.cancel")]
    return answer


async def up_to_confirm(yimen: Yimen, resident: Resident) -> Sent:
    """Report, give the address, skip the photo; the confirmation with its buttons."""
    await report_noise(yimen, resident)
    answer = await yimen.one(resident.text(ADDRESS), resident)
    assert answer.text == T("complaint.ask_photo", address=ADDRESS)
    answer = await yimen.one(resident.press(answer, T("button.skip")), resident)
    assert answer.labels == [T("button.submit"), T("button.edit"), T("button.cancel")]
    return answer


async def media_of(yimen: Yimen, number: str) -> list[tuple[str, str, str]]:
    async with yimen.services.sessions() as session:
        rows = await session.execute(
            select(CaseMedia.kind, CaseMedia.ref, CaseMedia.url)
            .join(Case, Case.id == CaseMedia.case_id)
            .where(Case.number == number)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def coordinates_of(yimen: Yimen, number: str) -> tuple[float | None, float | None]:
    async with yimen.services.sessions() as session:
        case = (await session.scalars(select(Case).where(Case.number == number))).one()
        return case.latitude, case.longitude


# -- the complaint, its photo, and its status pushes ----------------------------------


async def test_a_complaint_with_a_location_and_a_photo_is_opened_and_its_progress_pushed(
    backend_yimen: Yimen,
) -> None:
    yimen, emulator = backend_yimen, backend_yimen.emulator
    resident = emulator.resident(10_001)
    await report_noise(yimen, resident)

    answer = await yimen.one(resident.location(39.608, 109.781), resident)
    assert answer.text == T("complaint.ask_photo", address="39.60800,109.78100")
    assert answer.labels == [T("button.skip"), T("button.cancel")]

    photo = jpeg()
    update = resident.photo(photo)
    largest = update["message"]["photo"][-1]["file_id"]
    answer = await yimen.one(update, resident)
    assert answer.text == T(
        "complaint.confirm",
        category=T("category.noise"),
        description=COMPLAINT,
        address="39.60800,109.78100" + T("complaint.pinned"),
        photos=T("complaint.photo_count", count=1),
    )

    press = resident.press(answer, T("button.submit"))
    answer = await yimen.one(press, resident)
    number = number_in(answer)
    assert answer.text == T("complaint.submitted", number=number)
    assert press["callback_query"]["id"] in emulator.answered

    case = await yimen.services.cases.get(number)
    assert (case.channel, case.chat_id, case.category) == ("telegram", "10001", "noise")
    assert case.description == COMPLAINT
    assert await coordinates_of(yimen, number) == (39.608, 109.781)
    [(kind, ref, url)] = await media_of(yimen, number)
    assert (kind, ref) == ("image", largest)
    served = await yimen.client.get(url)  # kept in the media directory, served by the app
    assert served.status == 200
    with Image.open(io.BytesIO(await served.read())) as kept:  # re-encoded, same picture
        assert (kept.format, kept.size) == ("JPEG", Image.open(io.BytesIO(photo)).size)

    await yimen.services.cases.change_status(number, CaseStatus.in_progress, "已派城管中队")
    (push,) = await emulator.receive(resident.id)
    assert number in push.text
    assert T("status.in_progress") in push.text
    assert "已派城管中队" in push.text


async def test_a_complaint_with_a_typed_address_and_an_edit(yimen: Yimen) -> None:
    resident = yimen.emulator.resident(10_002)
    answer = await up_to_confirm(yimen, resident)
    assert answer.text == T(
        "complaint.confirm",
        category=T("category.noise"),
        description=COMPLAINT,
        address=ADDRESS,
        photos=T("complaint.no_photo"),
    )
    answer = await yimen.one(resident.press(answer, T("button.edit")), resident)
    assert answer.text == T("complaint.ask_edit")
    answer = await yimen.one(resident.press(answer, T("button.edit_description")), resident)
    assert answer.text == T("complaint.ask_new_description")
    answer = await yimen.one(resident.text("楼下烧烤店油烟太大"), resident)
    assert "描述：楼下烧烤店油烟太大" in answer.text

    number = number_in(await yimen.one(resident.press(answer, T("button.submit")), resident))
    case = await yimen.services.cases.get(number)
    assert (case.address, case.description, case.media_count) == (ADDRESS, "楼下烧烤店油烟太大", 0)


async def test_a_photo_sent_as_the_report_itself_then_a_venue(yimen: Yimen) -> None:
    resident = yimen.emulator.resident(10_003)
    answer = await yimen.one(resident.photo(jpeg(), caption="路灯不亮了"), resident)
    assert answer.text == T("complaint.ask_where", category=T("category.facility"))
    answer = await yimen.one(
        resident.venue(39.61, 109.79, "金辉小区", "交通街道天骄路18号"), resident
    )
    assert "金辉小区 交通街道天骄路18号" in answer.text
    assert T("complaint.photo_count", count=1) in answer.text  # the photo went straight on


# -- commands, menus, small talk ------------------------------------------------------


async def test_start_help_cancel_and_small_talk(yimen: Yimen) -> None:
    resident = yimen.emulator.resident(10_010)
    answer = await yimen.one(resident.text("/start"), resident)
    assert answer.text == T("chat.greet")
    assert answer.labels == [
        T("button.menu_report"),
        T("button.menu_status"),
        T("button.menu_human"),
    ]
    assert (await yimen.one(resident.text("/help"), resident)).text == T("chat.help")
    assert (await yimen.one(resident.text("/cancel"), resident)).text == T("chat.nothing_to_cancel")
    await report_noise(yimen, resident)
    # Clients add the bot's name to commands picked from the menu in some chats.
    answer = await yimen.one(resident.text("/cancel@yimen_test_bot"), resident)
    assert answer.text == T("complaint.cancelled")
    assert (await yimen.one(resident.text("谢谢你们"), resident)).text == T("chat.thanks")
    answer = await yimen.one(resident.text("今天股票涨了吗"), resident)
    assert answer.text == T("chat.out_of_scope")
    assert (await yimen.one(resident.text("/foo"), resident)).text == T(
        "chat.unknown_command", command="/foo"
    )


async def test_the_menu_and_status_command_list_open_cases(yimen: Yimen) -> None:
    resident = yimen.emulator.resident(10_011)
    answer = await yimen.one(resident.text("/status"), resident)
    assert answer.text == T("status_query.none")

    case = await yimen.services.cases.create_case(
        CaseDraft("telegram", "10011", "10011", "facility", "路灯不亮", "伊煤路与天骄路交叉口")
    )
    menu = await yimen.one(resident.text("/start"), resident)
    press = resident.press(menu, T("button.menu_status"))
    answer = await yimen.one(press, resident)
    assert T("status_query.header", count=1) in answer.text
    assert case.number in answer.text
    assert (await yimen.one(resident.text("/status"), resident)).text == answer.text
    assert yimen.emulator.answered == [press["callback_query"]["id"]]


async def test_the_cancel_button_leaves_the_complaint(yimen: Yimen) -> None:
    resident = yimen.emulator.resident(10_012)
    asked = await report_noise(yimen, resident)
    press = resident.press(asked, T("button.cancel"))
    answer = await yimen.one(press, resident)
    assert answer.text == T("complaint.cancelled")
    assert await yimen.services.cases.list_cases() == []
    assert yimen.emulator.answered == [press["callback_query"]["id"]]


async def test_a_button_under_a_message_telegram_no_longer_includes_still_works(
    yimen: Yimen,
) -> None:
    """An old message comes back as an InaccessibleMessage: the payload alone decides."""
    resident = yimen.emulator.resident(10_013)
    asked = await report_noise(yimen, resident)
    press = resident.press(asked, T("button.cancel"), inaccessible=True)
    answer = await yimen.one(press, resident)
    assert answer.text == T("complaint.cancelled")
    assert await yimen.services.cases.list_cases() == []


async def test_wordless_messages_get_a_polite_answer_and_group_chats_none(
    yimen: Yimen,
) -> None:
    resident = yimen.emulator.resident(10_014)
    await yimen.send(resident.in_group("/start"))
    for update, expected in [
        (resident.sticker("👍"), T("chat.emoji_only")),
        (resident.voice(), T("chat.unsupported_media")),
        (resident.text("   "), T("chat.empty")),
    ]:
        assert (await yimen.one(update, resident)).text == expected
    assert {m.chat_id for m in yimen.emulator.sent} == {resident.id}
    group = str(-1000000000000 - resident.id)
    assert await yimen.services.transcript.lines("telegram", group) == []


async def test_a_shared_contact_reaches_the_pipeline_as_a_phone_number_and_is_not_logged(
    yimen: Yimen, interpreter: EmbeddedInterpreter, caplog: pytest.LogCaptureFixture
) -> None:
    resident = yimen.emulator.resident(10_016)
    for ours in ("bots", "handlers", "integration", "nlu", "aiogram"):
        caplog.set_level(logging.DEBUG, logger=ours)
    await yimen.one(resident.contact("+86 139 1234 5678"), resident)

    lines = await yimen.services.transcript.lines("telegram", "10016")
    assert lines[0].text == "139****5678"  # normalised, then masked in the transcript
    entities = (await interpreter.parse("13912345678")).entities
    assert [(e.entity, e.value) for e in entities] == [("phone", "13912345678")]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "13912345678" not in logged
    assert "139 1234 5678" not in logged


# -- dedupe -------------------------------------------------------------------------


async def test_a_redelivered_update_is_answered_once_and_opens_one_case(
    webhook_yimen: Yimen,
) -> None:
    yimen = webhook_yimen
    resident = yimen.emulator.resident(10_020)
    confirm = await up_to_confirm(yimen, resident)
    submit = resident.press(confirm, T("button.submit"))
    assert await yimen.emulator.deliver(submit) == 200
    number = number_in((await yimen.emulator.receive(resident.id))[0])

    # Telegram retries when it missed our 200, sometimes while the first is still running.
    statuses = await asyncio.gather(*(yimen.emulator.deliver(submit) for _ in range(2)))
    assert statuses == [200, 200]
    # Replies to one chat go out in order: the next answer would come after any duplicate.
    assert (await yimen.one(resident.text("/help"), resident)).text == T("chat.help")
    assert [case.number for case in await yimen.services.cases.list_cases()] == [number]
    inbound = [line for line in await yimen.services.transcript.lines("telegram", "10020")]
    assert sum(line.text == T("button.submit") for line in inbound) == 1


async def test_simultaneous_deliveries_of_one_update_open_one_case(webhook_yimen: Yimen) -> None:
    yimen = webhook_yimen
    resident = yimen.emulator.resident(10_021)
    confirm = await up_to_confirm(yimen, resident)
    submit = resident.press(confirm, T("button.submit"))
    statuses = await asyncio.gather(*(yimen.emulator.deliver(submit) for _ in range(3)))
    assert statuses == [200, 200, 200]
    number = number_in((await yimen.emulator.receive(resident.id))[0])
    assert (await yimen.one(resident.text("/help"), resident)).text == T("chat.help")
    assert [case.number for case in await yimen.services.cases.list_cases()] == [number]


# -- webhook security and registration --------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"], ids=["missing", "empty", "wrong"])
async def test_a_webhook_call_without_the_right_secret_is_refused_and_nothing_stored(
    sqlite_settings: Settings, emulator: TelegramEmulator, secret: str | None
) -> None:
    settings = telegram_settings(sqlite_settings, emulator, "webhook")
    async with serve(settings, emulator) as yimen:
        resident = emulator.resident(10_030)
        headers = {} if secret is None else {SECRET_HEADER: secret}
        response = await yimen.client.post(
            "/telegram", json=resident.text(COMPLAINT), headers=headers
        )
        assert response.status == 401
        assert await yimen.services.transcript.lines("telegram", "10030") == []
        assert emulator.calls_of("sendMessage") == []
        # The same update with Telegram's header is taken.
        await report_noise(yimen, resident)


async def test_the_webhook_secret_is_derived_from_the_token_unless_configured(
    sqlite_settings: Settings, emulator: TelegramEmulator
) -> None:
    settings = telegram_settings(sqlite_settings, emulator, "webhook")
    async with serve(settings, emulator):
        derived = emulator.webhook.secret
    assert re.fullmatch(r"[0-9a-f]{64}", derived)
    assert derived == webhook_secret(settings)  # every worker computes the same one
    other_bot = settings.model_copy(update={"telegram_token": "7000000002:AAE-another"})
    assert webhook_secret(other_bot) != derived

    configured = settings.model_copy(update={"telegram_webhook_secret": "s3cret_Token-1"})
    async with serve(configured, emulator):
        await emulator.wait_until(lambda: len(emulator.calls_of("setWebhook")) == 2)
        assert emulator.webhook.secret == "s3cret_Token-1"


async def test_a_secret_telegram_would_refuse_stops_the_start(
    sqlite_settings: Settings, emulator: TelegramEmulator
) -> None:
    settings = telegram_settings(sqlite_settings, emulator, "webhook").model_copy(
        update={"telegram_webhook_secret": "not allowed!"}
    )
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(ValueError, match="YIMEN_TELEGRAM_WEBHOOK_SECRET"):
            await runner.setup()
    finally:
        await runner.cleanup()
    assert emulator.calls == []


async def test_webhook_mode_registers_the_webhook_and_never_polls(
    sqlite_settings: Settings, emulator: TelegramEmulator
) -> None:
    settings = telegram_settings(sqlite_settings, emulator, "webhook")
    async with serve(settings, emulator) as yimen:
        resident = emulator.resident(10_031)
        await report_noise(yimen, resident)
        assert emulator.webhook.url == settings.telegram_webhook_url
        assert emulator.webhook.allowed_updates == ["message", "callback_query"]
        assert emulator.calls_of("getUpdates") == []
        assert emulator.calls_of("deleteWebhook") == []  # other workers still serve it


async def test_polling_mode_drops_a_webhook_publishes_commands_and_confirms_updates(
    sqlite_settings: Settings, emulator: TelegramEmulator
) -> None:
    settings = telegram_settings(sqlite_settings, emulator, "polling")
    async with serve(settings, emulator) as yimen:
        assert emulator.calls_of("deleteWebhook")
        assert [c["command"] for c in emulator.commands] == ["start", "help", "status", "cancel"]
        assert emulator.commands[3]["description"] == T("telegram.command_cancel")
        resident = emulator.resident(10_032)
        update = resident.text("/help")
        await yimen.one(update, resident)
        await emulator.wait_until(lambda: emulator.confirmed > update["update_id"])
        poll = emulator.calls_of("getUpdates")[-1].params
        assert poll["allowed_updates"] == '["message", "callback_query"]'
        assert int(poll["timeout"]) > 0  # long polling


async def test_polling_carries_on_after_telegram_errors(
    sqlite_settings: Settings, emulator: TelegramEmulator
) -> None:
    emulator.fail("getUpdates", 502, "Bad Gateway")
    settings = telegram_settings(sqlite_settings, emulator, "polling")
    async with serve(settings, emulator) as yimen:
        resident = emulator.resident(10_033)
        assert (await yimen.one(resident.text("/help"), resident)).text == T("chat.help")
        assert len(emulator.calls_of("getUpdates")) >= 2


# -- failures --------------------------------------------------------------------------


def flaky_handle(calls: list[str]) -> Any:
    """A pipeline stand-in that fails on its first message, like a database hiccup."""

    async def handle(inbound: Inbound) -> list[Outbound] | None:
        calls.append(inbound.message_id)
        if len(calls) == 1:
            raise TimeoutError("conversation lock still held")
        return [Outbound(f"好的：{inbound.text}")]

    return handle


async def test_a_failed_webhook_update_answers_500_and_its_redelivery_is_handled(
    sqlite_settings: Settings, emulator: TelegramEmulator, media_store: MediaStore
) -> None:
    calls: list[str] = []
    settings = telegram_settings(sqlite_settings, emulator, "webhook")
    app = web.Application()
    app.add_routes(telegram_routes(settings))
    async with open_telegram(
        settings, flaky_handle(calls), T, FAST, photos=media_store
    ) as receiver:
        app[TELEGRAM] = receiver
        async with TestClient(TestServer(app, port=_port(settings))):
            await emulator.wait_for("setWebhook")
            resident = emulator.resident(10_040)
            update = resident.text("你好")
            assert await emulator.deliver(update) == 500
            assert emulator.calls_of("sendMessage") == []
            assert await emulator.deliver(update) == 200  # Telegram's retry
            (answer,) = await emulator.receive(resident.id)
    assert answer.text == "好的：你好"
    assert calls == [f"7000000001-{update['update_id']}"] * 2


async def test_a_failed_polled_update_asks_the_resident_to_send_it_again(
    sqlite_settings: Settings, emulator: TelegramEmulator, media_store: MediaStore
) -> None:
    calls: list[str] = []
    settings = telegram_settings(sqlite_settings, emulator, "polling")
    async with open_telegram(settings, flaky_handle(calls), T, FAST, photos=media_store):
        resident = emulator.resident(10_041)
        await emulator.deliver(resident.text("你好"))
        (answer,) = await emulator.receive(resident.id)
        assert answer.text == T("chat.retry")
        await emulator.deliver(resident.text("再发一次"))
        (answer,) = await emulator.receive(resident.id)
        assert answer.text == "好的：再发一次"
    assert len(calls) == 2  # the failed update was confirmed, not polled forever


def _port(settings: Settings) -> int:
    port = URL(settings.telegram_webhook_url).port
    assert port is not None
    return port


async def test_a_push_to_a_resident_who_blocked_the_bot_fails_for_good(
    yimen: Yimen,
) -> None:
    resident = yimen.emulator.resident(10_050)
    yimen.emulator.blocked.add(resident.id)
    case = await yimen.services.cases.create_case(
        CaseDraft("telegram", "10050", "10050", "noise", COMPLAINT, ADDRESS)
    )
    await yimen.services.cases.change_status(case.number, CaseStatus.accepted)

    async def state() -> tuple[str, int, str]:
        async with yimen.services.sessions() as session:
            row = (
                await session.execute(
                    select(
                        Notification.state, Notification.attempts, Notification.last_error
                    ).where(Notification.chat_id == "10050")
                )
            ).one()
        return row.state, row.attempts, row.last_error

    for _ in range(100):
        if (await state())[0] != NotificationState.pending.value:
            break
        await asyncio.sleep(0.05)
    status, attempts, error = await state()
    assert (status, attempts) == (NotificationState.failed.value, 1)
    assert "blocked" in error


async def test_a_burst_of_status_changes_reaches_every_resident_exactly_once(
    backend_settings: Settings, emulator: TelegramEmulator
) -> None:
    limits = SendLimits(rate=200.0, chat_interval=0.05)
    emulator.chat_interval, emulator.rate, emulator.window = 0.05, 200.0, 0.5
    emulator.flood(15, 60, retry_after=1)  # two global pauses, mid-burst
    path = [
        CaseStatus.accepted,
        CaseStatus.dispatched,
        CaseStatus.in_progress,
        CaseStatus.resolved,
        CaseStatus.closed,
        CaseStatus.reopened,
        CaseStatus.accepted,
        CaseStatus.dispatched,
        CaseStatus.in_progress,
        CaseStatus.resolved,
    ]
    chats = [20_000 + i for i in range(10)]
    settings = telegram_settings(backend_settings, emulator, "polling")
    async with serve(settings, emulator, limits) as yimen:
        cases = yimen.services.cases
        numbers = {}
        for chat in chats:
            draft = CaseDraft("telegram", str(chat), str(chat), "noise", COMPLAINT, f"{chat}号楼")
            numbers[chat] = (await cases.create_case(draft)).number
        for status in path:  # interleaved, as changes arrive from many cases at once
            for chat in chats:
                await cases.change_status(numbers[chat], status, f"第{path.index(status)}步")
        await emulator.wait_until(lambda: len(emulator.sent) >= 100, within=120)
        for _ in range(200):  # the pump records each delivery just after it
            async with yimen.services.sessions() as session:
                states = Counter((await session.scalars(select(Notification.state))).all())
            if states != Counter({NotificationState.pending.value: 1}) and len(states) == 1:
                break
            await asyncio.sleep(0.05)
    assert states == Counter({NotificationState.sent.value: 100})

    assert len(emulator.sent) == 100  # every push once, none twice
    for chat in chats:
        pushed = [m.text for m in emulator.messages_to(chat)]
        assert all(numbers[chat] in text for text in pushed)
        assert [next(s for s in CaseStatus if T(f"status.{s.value}") in t) for t in pushed] == (
            path
        )
    assert emulator.violations == []
    # The pump serves chats side by side, so a send already in flight when a pause
    # begins can land inside it (at most one per chat per pause) and is sent again
    # after it; no other send may break a pause.
    assert emulator.too_many == 2 + emulator.early
    assert emulator.early <= 2 * len(chats)


# -- hostile and malformed updates (issue 10) ------------------------------------------------


async def test_a_lone_surrogate_is_cleaned_and_answered_not_redelivered_forever(
    webhook_yimen: Yimen,
) -> None:
    """The old defect: the transcript write failed, 500, and Telegram redelivered forever."""
    yimen, resident = webhook_yimen, webhook_yimen.emulator.resident(10_050)
    update = resident.text("路灯不亮了\ud800")
    assert await yimen.emulator.deliver(update) == 200
    (answer,) = await yimen.emulator.receive(resident.id)
    assert answer.text  # answered like any message
    lines = await yimen.services.transcript.lines("telegram", "10050")
    assert lines[0].text == "路灯不亮了\ufffd"


@pytest.mark.parametrize(
    ("latitude", "longitude"), [(999.0, 109.7), (39.6, -999.0), (1e308, 1e308)]
)
async def test_an_impossible_location_is_answered_and_not_stored(
    webhook_yimen: Yimen, latitude: float, longitude: float
) -> None:
    yimen, resident = webhook_yimen, webhook_yimen.emulator.resident(10_051)
    answer = await yimen.one(resident.location(latitude, longitude), resident)
    assert answer.text == T("chat.unsupported_media")
    async with yimen.services.sessions() as session:
        pins = (await session.execute(select(Case.latitude))).all()
    assert pins == []


async def webhook_post(yimen: Yimen, body: bytes, secret: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    headers[SECRET_HEADER] = yimen.emulator.webhook.secret if secret is None else secret
    response = await yimen.client.post("/telegram", data=body, headers=headers)
    return response.status


async def test_a_non_ascii_secret_header_is_a_401(webhook_yimen: Yimen) -> None:
    body = b'{"update_id": 1}'
    assert await webhook_post(webhook_yimen, body, "密钥".encode().decode("latin-1")) == 401


async def test_a_deeply_nested_body_is_a_400(webhook_yimen: Yimen) -> None:
    assert await webhook_post(webhook_yimen, b"[" * 100_000 + b"]" * 100_000) == 400
    assert await webhook_post(webhook_yimen, b"{not json") == 400


async def test_an_update_we_cannot_read_is_acknowledged_so_it_is_not_redelivered(
    webhook_yimen: Yimen,
) -> None:
    assert await webhook_post(webhook_yimen, b'{"update_id": "not a number"}') == 200
    assert await webhook_post(webhook_yimen, b"[1, 2, 3]") == 200
    assert webhook_yimen.emulator.calls_of("sendMessage") == []
