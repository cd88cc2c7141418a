"""The Telegram channel's translations: Bot API updates to Inbound, buttons, send errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Update
from PIL import Image

from bots.media import MediaStore
from bots.telegram import SendLimiter, SendLimits, TelegramChannel, TelegramSender
from bots.telegram.channel import contact_text
from bots.telegram.keyboards import inline_keyboard
from bots.telegram.receiver import COMMANDS
from handlers.catalog import Catalog
from handlers.messages import Button, DeliveryError, Inbound, Location, Media, Outbound
from tests.emulators.telegram import Resident, TelegramEmulator
from tests.emulators.telegram_app import TOKEN, jpeg

ROOT = Path(__file__).parent.parent
BOT_ID = TOKEN.split(":")[0]


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(TOKEN) as emulator:
        yield emulator


@pytest.fixture
async def channel(
    emulator: TelegramEmulator, media_store: MediaStore
) -> AsyncIterator[TelegramChannel]:
    """A channel whose Bot talks to the emulator; photos go to the media store."""
    api = TelegramAPIServer.from_base(emulator.base_url)
    bot = Bot(TOKEN, session=AiohttpSession(api=api))
    sender = TelegramSender(bot, SendLimiter(SendLimits(rate=1000.0, chat_interval=0.0)))
    yield TelegramChannel(bot, sender, media_store, max_photo_bytes=100_000)
    await bot.session.close()


@pytest.fixture
def resident(emulator: TelegramEmulator) -> Resident:
    return emulator.resident(555, "王阿姨")


def update(channel: TelegramChannel, data: dict[str, Any]) -> Inbound | None:
    return channel.to_inbound(Update.model_validate(data))


# -- updates to Inbound -----------------------------------------------------------------


def test_a_text_message(channel: TelegramChannel, resident: Resident) -> None:
    data = resident.text("路灯不亮了")
    inbound = update(channel, data)
    assert inbound is not None
    assert (inbound.channel, inbound.user_id, inbound.chat_id) == ("telegram", "555", "555")
    assert inbound.message_id == f"{BOT_ID}-{data['update_id']}"
    assert (inbound.text, inbound.payload, inbound.location, inbound.media) == (
        "路灯不亮了",
        "",
        None,
        (),
    )
    assert inbound.time.timestamp() == data["message"]["date"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", "/start"),
        ("/start@yimen_test_bot", "/start"),
        ("/status@yimen_test_bot YM2611250001", "/status YM2611250001"),
        ("邮箱 a@b.cn", "邮箱 a@b.cn"),
    ],
)
def test_commands_lose_the_bot_name(
    channel: TelegramChannel, resident: Resident, text: str, expected: str
) -> None:
    inbound = update(channel, resident.text(text))
    assert inbound is not None and inbound.text == expected


def test_a_location_and_a_venue(channel: TelegramChannel, resident: Resident) -> None:
    pin = update(channel, resident.location(39.6, 109.8))
    assert pin is not None and pin.location == Location(39.6, 109.8, "")
    venue = update(channel, resident.venue(39.6, 109.8, "万达广场", "东门"))
    assert venue is not None and venue.location == Location(39.6, 109.8, "万达广场 东门")


def test_a_photo_is_referenced_by_its_largest_size(
    channel: TelegramChannel, resident: Resident
) -> None:
    data = resident.photo(jpeg(), caption="垃圾没人清")
    data["message"]["photo"].reverse()  # the order of sizes is not to be relied on
    inbound = update(channel, data)
    assert inbound is not None
    largest = max(data["message"]["photo"], key=lambda size: size["width"])["file_id"]
    assert inbound.media == (Media("image", largest),)
    assert inbound.text == "垃圾没人清"


@pytest.mark.parametrize(
    "phone",
    ["+86 139 1234 5678", "8613912345678", "+86-139-1234-5678", "13912345678", "008613912345678"],
)
def test_a_shared_contact_becomes_its_mobile_number(
    channel: TelegramChannel, resident: Resident, phone: str
) -> None:
    inbound = update(channel, resident.contact(phone))
    assert inbound is not None and inbound.text == "13912345678"


def test_a_foreign_contact_keeps_its_country_code() -> None:
    assert contact_text("+1 (555) 123-4567") == "+15551234567"


def test_other_content(channel: TelegramChannel, resident: Resident) -> None:
    sticker = update(channel, resident.sticker("👍"))
    assert sticker is not None and (sticker.text, sticker.media) == ("👍", ())
    voice = update(channel, resident.voice())
    assert voice is not None and [m.kind for m in voice.media] == ["voice"]
    document = resident.message(
        document={"file_id": "d1", "file_unique_id": "ud1", "mime_type": "image/png"}
    )
    photo_as_file = update(channel, document)
    assert photo_as_file is not None and photo_as_file.media == (Media("image", "d1"),)


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.in_group("/start"),
        lambda r: r.message(dice={"emoji": "🎲", "value": 3}),
        lambda r: {"update_id": 1, "edited_message": r.text("改了")["message"]},
    ],
    ids=["group", "dice", "edited"],
)
def test_updates_for_nobody_are_ignored(
    channel: TelegramChannel, resident: Resident, make: Callable[[Resident], dict[str, Any]]
) -> None:
    assert update(channel, make(resident)) is None


# -- buttons ----------------------------------------------------------------------------


def test_buttons_become_an_inline_keyboard_three_to_a_row() -> None:
    buttons = tuple(Button(f"选项{i}", f"choice:{i}") for i in range(1, 6))
    markup = inline_keyboard(buttons)
    assert markup is not None
    rows = [[(b.text, b.callback_data) for b in row] for row in markup.inline_keyboard]
    assert rows == [
        [("选项1", "choice:1"), ("选项2", "choice:2"), ("选项3", "choice:3")],
        [("选项4", "choice:4"), ("选项5", "choice:5")],
    ]
    assert inline_keyboard(()) is None


async def test_a_pressed_button_carries_its_label_and_payload(
    channel: TelegramChannel, emulator: TelegramEmulator, resident: Resident
) -> None:
    await channel.push("555", Outbound("请确认", (Button("提交", "complaint:submit"),)))
    (sent,) = await emulator.receive(555)
    data = resident.press(sent, "提交")
    inbound = update(channel, data)
    assert inbound is not None
    assert (inbound.text, inbound.payload, inbound.chat_id) == ("提交", "complaint:submit", "555")
    assert inbound.message_id == f"{BOT_ID}-{data['update_id']}"


async def test_a_payload_too_long_for_telegram_is_sent_as_the_button_number(
    channel: TelegramChannel, emulator: TelegramEmulator, resident: Resident
) -> None:
    long = "volunteer:claim:" + "x" * 60  # over the 64 bytes callback_data may hold
    buttons = (Button("跳过", "complaint:skip"), Button("认领", long))
    await channel.push("555", Outbound("请选择", buttons))
    (sent,) = await emulator.receive(555)
    assert [b["callback_data"] for b in sent.buttons] == ["complaint:skip", "#2"]
    inbound = update(channel, resident.press(sent, "认领"))
    # No payload: the pipeline finds the offered button by its label (or number).
    assert inbound is not None and (inbound.text, inbound.payload) == ("认领", "")


def test_a_numbered_press_without_its_message_falls_back_to_the_number(
    channel: TelegramChannel, resident: Resident
) -> None:
    data = {
        "update_id": 9,
        "callback_query": {
            "id": "q9",
            "from": resident.user,
            "chat_instance": "ci",
            "data": "#2",
        },
    }
    inbound = update(channel, data)
    assert inbound is not None and (inbound.text, inbound.payload) == ("2", "")


# -- sending ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "description", "retryable"),
    [
        (403, "Forbidden: bot was blocked by the user", False),
        (403, "Forbidden: user is deactivated", False),
        (400, "Bad Request: chat not found", False),
        (500, "Internal Server Error", True),
        (502, "Bad Gateway", True),
        (401, "Unauthorized", True),  # our token, not the resident: fix it and retry
    ],
)
async def test_a_failed_push_says_whether_to_retry(
    channel: TelegramChannel,
    emulator: TelegramEmulator,
    status: int,
    description: str,
    retryable: bool,
) -> None:
    emulator.fail("sendMessage", status, description)
    with pytest.raises(DeliveryError) as failed:
        await channel.push("555", Outbound("工单进展"))
    assert failed.value.retryable is retryable
    assert not failed.value.offline
    await channel.push("555", Outbound("工单进展"))  # the next one goes through
    assert [m.text for m in emulator.sent] == ["工单进展"]


async def test_an_unreachable_telegram_is_a_retryable_failure(media_store: MediaStore) -> None:
    api = TelegramAPIServer.from_base("http://127.0.0.1:9")  # nothing listens there
    bot = Bot(TOKEN, session=AiohttpSession(api=api))
    sender = TelegramSender(bot, SendLimiter())
    channel = TelegramChannel(bot, sender, media_store, 1000)
    try:
        with pytest.raises(DeliveryError) as failed:
            await channel.push("555", Outbound("工单进展"))
        assert failed.value.retryable
    finally:
        await bot.session.close()


async def test_flood_control_that_never_ends_gives_the_push_back(
    emulator: TelegramEmulator, media_store: MediaStore
) -> None:
    emulator.flood(1, 2, retry_after=1)
    api = TelegramAPIServer.from_base(emulator.base_url)
    bot = Bot(TOKEN, session=AiohttpSession(api=api))
    limits = SendLimits(rate=1000.0, chat_interval=0.0, max_retries=1)
    channel = TelegramChannel(bot, TelegramSender(bot, SendLimiter(limits)), media_store, 1000)
    try:
        with pytest.raises(DeliveryError) as failed:
            await channel.push("555", Outbound("工单进展"))
    finally:
        await bot.session.close()
    assert failed.value.retryable
    assert (emulator.too_many, emulator.early, emulator.sent) == (2, 0, [])


async def test_a_long_text_is_split_with_the_keyboard_on_the_last_part(
    channel: TelegramChannel, emulator: TelegramEmulator
) -> None:
    text = "很长的说明。" * 1000  # 6,000 characters; Telegram takes 4,096
    await channel.push("555", Outbound(text, (Button("好的", "ok"),)))
    first, second = await emulator.receive(555, 2)
    assert first.text + second.text == text
    assert (first.labels, second.labels) == ([], ["好的"])


async def test_a_photo_is_downloaded_into_the_media_directory(
    channel: TelegramChannel, resident: Resident, media_store: MediaStore
) -> None:
    photo = jpeg()
    inbound = update(channel, resident.photo(photo))
    assert inbound is not None
    inbound = await channel.with_photos(inbound)
    (media,) = inbound.media
    assert re.fullmatch(r"/media/[0-9a-f]{32}\.jpg", media.url)
    kept = media_store.path(media.url.removeprefix("/media/"))
    assert kept is not None
    with Image.open(kept) as image:  # decoded and encoded again: the same picture
        assert (image.format, image.size) == ("JPEG", (64, 48))


async def test_a_photo_that_cannot_be_fetched_keeps_its_file_id(
    channel: TelegramChannel, resident: Resident, emulator: TelegramEmulator
) -> None:
    data = resident.photo(jpeg())
    emulator.files.clear()  # Telegram lost it
    inbound = update(channel, data)
    assert inbound is not None
    inbound = await channel.with_photos(inbound)
    assert inbound.media == (Media("image", data["message"]["photo"][-1]["file_id"], ""),)


# -- catalogue ----------------------------------------------------------------------------


def test_every_telegram_text_is_in_the_catalogue(catalog: Catalog) -> None:
    used = set()
    for path in (ROOT / "bots" / "telegram").glob("*.py"):
        used |= set(re.findall(r"_t\(\"([a-z_]+\.[a-z_]+)\"", path.read_text(encoding="utf-8")))
    used |= {f"telegram.command_{name}" for name in COMMANDS}
    assert "chat.retry" in used
    assert used - set(catalog.keys()) == set()
