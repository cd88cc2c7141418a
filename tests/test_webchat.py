"""The web chat end to end: the real aiohttp app, a real WebSocket client, real stores.

The app is served by aiohttp's TestServer; its cleanup context migrates the database and
loads the session's NLU model (copied into each test's data directory, so nothing is
retrained). Status pushes come from the app's own notification pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from bots.app import SERVICES, create_app
from bots.identity import VisitorIdentity
from bots.settings import Settings
from bots.webchat import WebChatChannel, WebChatParts
from handlers.catalog import Catalog
from handlers.history import HistoryItem
from handlers.messages import Inbound, Outbound
from integration.models import CaseStatus
from integration.state.keys import KeyBuilder
from integration.state.throttle import MemoryThrottle
from tests.webchat_client import Visitor

CASE_NUMBER = re.compile(r"YM\d{10}")
TIMEOUT = 15.0  # well below the pump's 30 s offline retry, so a push proves a wake-up
MAX_UPLOAD = 2048
COMPLAINT = "楼下烧烤店每天半夜还很吵"
ADDRESS = "金辉小区3号楼"

T = Catalog.load()


# -- fixtures -----------------------------------------------------------------------


def sqlite_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, push_poll_interval=0.1, max_upload_bytes=MAX_UPLOAD)


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """The web app on its embedded defaults: SQLite in the data directory, memory state."""
    async with TestClient(TestServer(create_app(sqlite_settings(data_dir)))) as client:
        yield client


@pytest.fixture
def backend_settings(backend: dict[str, Any], data_dir: Path) -> Settings:
    """Settings for SQLite and memory state, and for PostgreSQL and Redis."""
    return Settings(
        data_dir=data_dir, push_poll_interval=0.1, max_upload_bytes=MAX_UPLOAD, **backend
    )


@pytest.fixture
async def backend_client(backend_settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    """The web app on each backend."""
    async with TestClient(TestServer(create_app(backend_settings))) as client:
        yield client


# -- helpers ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def chat(
    client: TestClient[Any, Any], visitor: Visitor | None = None
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A socket of ``visitor`` (a new browser by default), its history frame read."""
    own = visitor is None
    browser = visitor or Visitor(client)
    ws, _ = await browser.connect()
    try:
        yield ws
    finally:
        await ws.close()
        if own:
            await browser.close()


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next JSON frame from the server."""
    message = await ws.receive(timeout=TIMEOUT)
    assert message.type == WSMsgType.TEXT, message
    frame: dict[str, Any] = message.json()
    return frame


async def send(
    ws: aiohttp.ClientWebSocketResponse, text: str = "", **fields: Any
) -> dict[str, Any]:
    """Send a message frame as the page does and return the server's answer to it."""
    frame = {"type": "message", "id": fields.pop("id", uuid.uuid4().hex), "text": text, **fields}
    await ws.send_json(frame)
    answer = await receive(ws)
    assert answer.get("in_reply_to") == frame["id"], answer
    return answer


async def say(ws: aiohttp.ClientWebSocketResponse, text: str = "", **fields: Any) -> dict[str, Any]:
    """Send a message and return its reply frame, asserting it is one."""
    answer = await send(ws, text, **fields)
    assert answer["type"] == "reply", answer
    assert answer["messages"], answer
    return answer


async def press(
    ws: aiohttp.ClientWebSocketResponse, reply: dict[str, Any], label: str
) -> dict[str, Any]:
    """Press the button labelled ``label`` of the last message in ``reply``."""
    return await say(ws, label, payload=payload_of(reply, label))


def text_of(reply: dict[str, Any]) -> str:
    return "\n".join(message["text"] for message in reply["messages"])


def labels_of(reply: dict[str, Any]) -> list[str]:
    return [button["label"] for button in reply["messages"][-1]["buttons"]]


def payload_of(reply: dict[str, Any], label: str) -> str:
    buttons = {b["label"]: b["payload"] for b in reply["messages"][-1]["buttons"]}
    assert label in buttons, f"no {label} button in {buttons}"
    return buttons[label]


def number_in(reply: dict[str, Any]) -> str:
    found = CASE_NUMBER.search(text_of(reply))
    assert found, text_of(reply)
    return found.group()


async def up_to_photo(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """Report the noise and give the address; the reply that asks for a photo."""
    reply = await say(ws, COMPLAINT)
    assert text_of(reply) == T("complaint.ask_where", category=T("category.noise"))
    reply = await say(ws, ADDRESS)
    assert text_of(reply) == T("complaint.ask_photo", address=ADDRESS)
    assert T("button.skip") in labels_of(reply)
    return reply


def tiny_png() -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def upload_form(
    data: bytes, filename: str = "photo.png", content_type: str = "image/png"
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    return form


# -- pages and health ---------------------------------------------------------------


async def test_chat_page_is_served_and_connects_to_the_socket(client: TestClient[Any, Any]) -> None:
    response = await client.get("/chat")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "/chat/static/chat.js" in await response.text()
    script = await client.get("/chat/static/chat.js")
    assert script.status == 200
    assert "/chat/ws" in await script.text()


async def test_root_redirects_to_the_chat(client: TestClient[Any, Any]) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/chat"


async def test_healthz_reports_every_store(backend_client: TestClient[Any, Any]) -> None:
    response = await backend_client.get("/healthz")
    assert response.status == 200
    report = await response.json()
    assert report["status"] == "ok"
    assert report["database"] == "ok"
    if backend_client.app[SERVICES].settings.redis_url:
        assert report["redis"] == "ok"
    else:
        assert "redis" not in report


# -- the complaint and its pushes -----------------------------------------------------


async def test_complaint_opens_a_case_and_its_progress_is_pushed(
    backend_client: TestClient[Any, Any],
) -> None:
    services = backend_client.app[SERVICES]
    browser = Visitor(backend_client)
    async with browser, chat(backend_client, browser) as ws:
        visitor = browser.id
        reply = await up_to_photo(ws)
        reply = await press(ws, reply, T("button.skip"))
        assert text_of(reply) == T(
            "complaint.confirm",
            category=T("category.noise"),
            description=COMPLAINT,
            address=ADDRESS,
            photos=T("complaint.no_photo"),
        )
        reply = await press(ws, reply, T("button.submit"))
        number = number_in(reply)
        assert text_of(reply) == T("complaint.submitted", number=number)

        case = await services.cases.get(number)
        assert (case.channel, case.chat_id) == ("webchat", visitor)
        assert (case.category, case.address, case.description) == ("noise", ADDRESS, COMPLAINT)
        assert case.status == CaseStatus.received

        await services.cases.change_status(number, CaseStatus.in_progress, "已派城管中队")
        push = await receive(ws)
        assert push["type"] == "push", push
        text = push["message"]["text"]
        assert number in text
        assert T("status.in_progress") in text  # 正在处理
        assert "已派城管中队" in text


async def test_push_to_an_offline_visitor_is_delivered_when_they_come_back(
    client: TestClient[Any, Any],
) -> None:
    services = client.app[SERVICES]
    async with Visitor(client) as visitor:
        async with chat(client, visitor) as ws:
            reply = await up_to_photo(ws)
            reply = await press(ws, reply, T("button.skip"))
            number = number_in(await press(ws, reply, T("button.submit")))

        await services.cases.change_status(number, CaseStatus.accepted, "已受理，请耐心等待")
        await asyncio.sleep(1.0)  # the pump (polling every 0.1 s) finds the visitor offline

        async with chat(client, visitor) as ws:
            push = await receive(ws)
            assert push["type"] == "push", push
            assert number in push["message"]["text"]
            assert T("status.accepted") in push["message"]["text"]
            assert "已受理，请耐心等待" in push["message"]["text"]


async def test_a_push_reaches_every_open_tab_of_the_visitor(client: TestClient[Any, Any]) -> None:
    services = client.app[SERVICES]
    visitor = Visitor(client)
    async with visitor, chat(client, visitor) as first, chat(client, visitor) as second:
        reply = await up_to_photo(first)
        reply = await press(first, reply, T("button.skip"))
        # Replies go to every tab too; drain them from the second one.
        for _ in range(3):
            assert (await receive(second))["type"] == "reply"
        number = number_in(await press(first, reply, T("button.submit")))
        assert number_in(await receive(second)) == number

        await services.cases.change_status(number, CaseStatus.dispatched)
        for ws in (first, second):
            push = await receive(ws)
            assert push["type"] == "push"
            assert number in push["message"]["text"]


# -- dedupe and typed button choices --------------------------------------------------


async def test_a_resent_frame_is_answered_as_duplicate_and_opens_no_second_case(
    client: TestClient[Any, Any],
) -> None:
    services = client.app[SERVICES]
    async with chat(client) as ws:
        reply = await up_to_photo(ws)
        reply = await press(ws, reply, T("button.skip"))
        submit_id = uuid.uuid4().hex
        submit = payload_of(reply, T("button.submit"))
        reply = await say(ws, T("button.submit"), payload=submit, id=submit_id)
        number = number_in(reply)

        again = await send(ws, T("button.submit"), payload=submit, id=submit_id)
        assert again == {"type": "duplicate", "in_reply_to": submit_id}

    cases = await services.cases.list_cases()
    assert [case.number for case in cases] == [number]


async def test_typing_a_button_number_or_label_works_like_pressing_it(
    client: TestClient[Any, Any],
) -> None:
    services = client.app[SERVICES]
    async with chat(client) as ws:
        await up_to_photo(ws)
        reply = await say(ws, "1")  # [1] 跳过
        assert text_of(reply).startswith("请确认以下信息")
        assert labels_of(reply)[:2] == [T("button.submit"), T("button.edit")]

        reply = await say(ws, T("button.edit"))  # the label 修改
        assert text_of(reply) == T("complaint.ask_edit")
        reply = await say(ws, T("button.edit_description"))  # the label 修改描述
        assert text_of(reply) == T("complaint.ask_new_description")
        reply = await say(ws, "楼下烧烤店油烟太大")
        assert "描述：楼下烧烤店油烟太大" in text_of(reply)

        reply = await say(ws, "1")  # [1] 提交
        number = number_in(reply)

    case = await services.cases.get(number)
    assert case.description == "楼下烧烤店油烟太大"


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"type": "message", "text": "你好"}',  # no id
        '{"type": "message", "id": "", "text": "你好"}',
        '["message", "你好"]',
    ],
    ids=["invalid-json", "no-id", "empty-id", "not-an-object"],
)
async def test_a_malformed_frame_gets_an_error_frame(
    client: TestClient[Any, Any], raw: str
) -> None:
    async with chat(client) as ws:
        await ws.send_str(raw)
        assert (await receive(ws))["type"] == "error"
        # The socket stays usable.
        reply = await say(ws, "")
        assert text_of(reply) == T("chat.empty")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", T("chat.empty")),
        ("   ", T("chat.empty")),
        ("吵" * 10_000, T("chat.too_long", limit=2000)),
        ("😀😀👍", T("chat.emoji_only")),
        ("/foo", T("chat.unknown_command", command="/foo")),
    ],
    ids=["empty", "blank", "too-long", "emoji-only", "unknown-command"],
)
async def test_unusable_text_gets_a_polite_answer(
    client: TestClient[Any, Any], text: str, expected: str
) -> None:
    async with chat(client) as ws:
        reply = await say(ws, text)
        assert text_of(reply) == expected


# -- photo upload -----------------------------------------------------------------------


async def test_an_uploaded_photo_is_served_back_re_encoded(client: TestClient[Any, Any]) -> None:
    async with Visitor(client) as visitor:
        response = await visitor.upload(upload_form(tiny_png()))
        assert response.status == 200
        ref = (await response.json())["ref"]
    assert re.fullmatch(r"/media/[0-9a-f]{32}\.jpg", ref), ref

    served = await client.get(ref)
    assert served.status == 200
    assert served.content_type == "image/jpeg"
    with Image.open(io.BytesIO(await served.read())) as image:
        assert image.format == "JPEG" and image.size == (1, 1)
        red, green, blue = image.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
        assert red > 200 and green < 60 and blue < 60  # the red pixel sent


async def test_an_upload_that_is_not_an_image_is_refused(client: TestClient[Any, Any]) -> None:
    form = upload_form(b"%PDF-1.4 not a photo", "report.pdf", "application/pdf")
    async with Visitor(client) as visitor:
        response = await visitor.upload(form)
    assert response.status == 415
    assert (await response.json())["error"] == T("webchat.upload_not_image")


@pytest.mark.parametrize("size", [MAX_UPLOAD + 500, MAX_UPLOAD * 10], ids=["streamed", "declared"])
async def test_an_upload_over_the_limit_is_refused(client: TestClient[Any, Any], size: int) -> None:
    png = tiny_png()
    async with Visitor(client) as visitor:
        response = await visitor.upload(upload_form(png + b"\0" * (size - len(png))))
    assert response.status == 413


@pytest.mark.parametrize("name", ["../yimen.db", "0" * 32 + ".exe", "missing"])
async def test_only_stored_photos_are_served(client: TestClient[Any, Any], name: str) -> None:
    response = await client.get(f"/media/{name}")
    assert response.status == 404


async def test_an_uploaded_photo_is_attached_to_the_complaint(
    client: TestClient[Any, Any],
) -> None:
    services = client.app[SERVICES]
    visitor = Visitor(client)
    response = await visitor.upload(upload_form(tiny_png()))
    ref = (await response.json())["ref"]
    async with visitor, chat(client, visitor) as ws:
        await up_to_photo(ws)
        reply = await say(ws, "", media=[ref])
        assert text_of(reply) == T(
            "complaint.confirm",
            category=T("category.noise"),
            description=COMPLAINT,
            address=ADDRESS,
            photos=T("complaint.photo_count", count=1),
        )
        number = number_in(await press(ws, reply, T("button.submit")))

    case = await services.cases.get(number)
    assert case.media_count == 1


class NoHistory:
    async def recent(self, channel: str, chat_id: str, limit: int = 100) -> list[HistoryItem]:
        return []


class NoPhotos:
    async def claim(self, channel: str, chat_id: str, refs: list[str]) -> list[str]:
        return []


async def test_a_failed_turn_answers_busy_and_keeps_the_socket() -> None:
    calls: list[str] = []

    async def flaky(inbound: Inbound) -> list[Outbound] | None:
        calls.append(inbound.message_id)
        if len(calls) == 1:
            raise TimeoutError("conversation lock still held")
        return [Outbound("好的")]

    async def on_connect(_: str) -> None:
        return None

    channel = WebChatChannel(VisitorIdentity(b"k" * 32))
    channel.bind(
        WebChatParts(
            media=NoPhotos(),
            throttle=MemoryThrottle(),
            history=NoHistory(),
            keys=KeyBuilder(),
            catalog=T,
            greeting=Outbound("您好"),
        )
    )
    app = aiohttp.web.Application()
    app.add_routes(channel.routes(flaky, on_connect))
    async with TestClient(TestServer(app)) as client, Visitor(client) as visitor:
        ws, history = await visitor.connect()
        assert history["greeting"]["text"] == "您好" and history["items"] == []
        await ws.send_json({"type": "message", "id": "m1", "text": "你好"})
        assert await ws.receive_json(timeout=TIMEOUT) == {
            "type": "error",
            "error": "busy",
            "in_reply_to": "m1",
        }
        await ws.send_json({"type": "message", "id": "m1", "text": "你好"})  # the page resends
        reply = await ws.receive_json(timeout=TIMEOUT)
        assert reply["type"] == "reply" and reply["messages"][0]["text"] == "好的"
        await ws.close()
    assert calls == ["m1", "m1"]
