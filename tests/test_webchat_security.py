"""Regressions of the web chat's security defects (issue 10), each attack replayed.

Visitor ids are server-issued and signed; sockets need the cookie and our Origin; the
limits hold per connection and per address whatever ids are used; hostile frames
(lone surrogates, bad coordinates, wrong types, deep nesting) get clear answers and
nothing unstorable reaches the database; every response carries the security
headers; a client that trickles its headers is cut off.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from bots.app import SERVICES, create_app
from bots.identity import COOKIE, KEY_FILE, VisitorIdentity, load_secret_key
from bots.settings import Settings
from handlers.catalog import Catalog
from integration.models import Direction
from tests.webchat_client import Visitor

T = Catalog.load()
TIMEOUT = 15.0


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, push_poll_interval=0.1, **overrides)


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings_for(data_dir)))) as client:
        yield client


async def message(
    ws: aiohttp.ClientWebSocketResponse, text: str = "", **fields: Any
) -> dict[str, Any]:
    """Send a message frame; the server's answer to it."""
    await ws.send_json({"type": "message", "id": uuid.uuid4().hex, "text": text, **fields})
    answer: dict[str, Any] = await ws.receive_json(timeout=TIMEOUT)
    return answer


async def inbound_texts(client: TestClient[Any, Any], visitor: str) -> list[str]:
    lines = await client.app[SERVICES].transcript.lines("webchat", visitor)
    return [line.text for line in lines if line.direction is Direction.inbound]


# -- the visitor id is no longer a credential -------------------------------------------


async def test_the_page_issues_a_signed_httponly_samesite_cookie(
    client: TestClient[Any, Any],
) -> None:
    async with Visitor(client) as one, Visitor(client) as two:
        response = await one.load_page()
        await two.load_page()
    header = response.headers["Set-Cookie"]
    assert header.startswith(f"{COOKIE}=")
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/chat" in header
    # 128 random bits from the server, different for every browser.
    assert len(one.id) == 32 and int(one.id, 16) >= 0 and one.id != two.id


async def test_a_socket_without_the_cookie_is_refused(client: TestClient[Any, Any]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/chat/ws")
    assert refused.value.status == 401


async def test_knowing_a_visitor_id_gives_no_access_to_that_resident(
    client: TestClient[Any, Any],
) -> None:
    """The old attack: /chat/ws?visitor=<id> got that resident's cases and pushes."""
    async with Visitor(client) as victim, Visitor(client) as attacker:
        ws, _ = await victim.connect()
        await message(ws, "路灯不亮了")
        await ws.close()
        # A cookie naming the victim's id, signed with the attacker's own signature.
        mine = attacker.session
        await attacker.load_page()
        own = mine.cookie_jar.filter_cookies(client.make_url("/chat"))[COOKIE].value
        forged = f"{victim.id}.{own.split('.')[1]}"
        for cookie in (forged, victim.id, f"{victim.id}.", "x" * 76):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect("/chat/ws", headers={"Cookie": f"{COOKIE}={cookie}"})
            assert refused.value.status == 401
        # The query parameter the page used to send is ignored: the socket is the cookie's.
        ws = await mine.ws_connect(attacker.url(f"/chat/ws?visitor={victim.id}"))
        history = await ws.receive_json(timeout=TIMEOUT)
        assert history["type"] == "history" and history["items"] == []
        await ws.close()


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "https://127.0.0.1.evil.example"]
)
async def test_a_cross_origin_socket_is_refused(client: TestClient[Any, Any], origin: str) -> None:
    async with Visitor(client, origin=origin) as visitor:
        await visitor.load_page()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await visitor.connect()
        assert refused.value.status == 403


async def test_an_allowed_origin_may_connect(data_dir: Path) -> None:
    settings = settings_for(data_dir, allowed_origins="https://www.street.example")
    async with TestClient(TestServer(create_app(settings))) as client:
        async with Visitor(client, origin="https://www.street.example") as visitor:
            ws, history = await visitor.connect()
            assert history["type"] == "history"
            await ws.close()


async def test_the_secret_key_is_kept_0600_and_shared_across_restarts(data_dir: Path) -> None:
    async with TestClient(TestServer(create_app(settings_for(data_dir)))) as client:
        async with Visitor(client) as visitor:
            await visitor.load_page()
            cookie = visitor.session.cookie_jar.filter_cookies(client.make_url("/chat"))[COOKIE]
    key_file = data_dir / KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(key_file.read_bytes().strip()) >= 32
    # A restarted server (or another worker on the host) accepts the same cookie.
    async with TestClient(TestServer(create_app(settings_for(data_dir)))) as client:
        ws = await client.ws_connect("/chat/ws", headers={"Cookie": f"{COOKIE}={cookie.value}"})
        assert (await ws.receive_json(timeout=TIMEOUT))["type"] == "history"
        await ws.close()


def test_a_configured_secret_key_signs_and_another_does_not_verify(tmp_path: Path) -> None:
    one = VisitorIdentity(load_secret_key("a" * 40, tmp_path))
    two = VisitorIdentity(load_secret_key("b" * 40, tmp_path))
    cookie = one.sign("0" * 32)
    assert one.verify(cookie) == "0" * 32
    assert two.verify(cookie) is None
    assert not (tmp_path / KEY_FILE).exists()  # a configured key is not written anywhere


# -- limits that new ids cannot bypass ---------------------------------------------------


async def test_one_connection_is_limited_whatever_it_sends(data_dir: Path) -> None:
    settings = settings_for(data_dir, webchat_connection_limit=3, rate_limit=100)
    async with TestClient(TestServer(create_app(settings))) as client, Visitor(client) as visitor:
        ws, _ = await visitor.connect()
        answers = [await message(ws, f"你好{i}") for i in range(5)]
        await ws.close()
        texts = [a["messages"][0]["text"] for a in answers]
        assert texts[3:] == [T("chat.rate_limited")] * 2
        assert T("chat.rate_limited") not in texts[:3]
        assert await inbound_texts(client, visitor.id) == ["你好0", "你好1", "你好2"]


async def test_many_new_visitors_from_one_address_are_limited_together(
    backend: dict[str, Any], data_dir: Path
) -> None:
    """The old attack: 1,000 messages over 40 self-chosen ids were all processed."""
    settings = settings_for(data_dir, webchat_address_limit=6, **backend)
    async with TestClient(TestServer(create_app(settings))) as client:
        visitors = [Visitor(client) for _ in range(4)]
        processed = refused = 0
        try:
            for visitor in visitors:
                ws, _ = await visitor.connect()
                for i in range(3):
                    answer = await message(ws, f"路灯不亮了{i}")
                    if answer["messages"][0]["text"] == T("chat.rate_limited"):
                        refused += 1
                    else:
                        processed += 1
                await ws.close()
        finally:
            for visitor in visitors:
                await visitor.close()
        assert (processed, refused) == (6, 6)
        stored = [await inbound_texts(client, v.id) for v in visitors]
        assert sum(len(texts) for texts in stored) == 6


async def test_too_many_sockets_from_one_address_are_refused(data_dir: Path) -> None:
    settings = settings_for(data_dir, webchat_address_sockets=2)
    async with TestClient(TestServer(create_app(settings))) as client, Visitor(client) as visitor:
        first, _ = await visitor.connect()
        second, _ = await visitor.connect()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await visitor.connect()
        assert refused.value.status == 429
        await first.close()
        third, _ = await visitor.connect()  # a closed one makes room
        await second.close()
        await third.close()


# -- hostile frames -------------------------------------------------------------------


async def test_a_lone_surrogate_is_cleaned_and_the_message_processed(
    backend: dict[str, Any], data_dir: Path
) -> None:
    """The old defect: the transcript write failed, "busy", and the page resent forever."""
    settings = settings_for(data_dir, **backend)
    async with TestClient(TestServer(create_app(settings))) as client, Visitor(client) as visitor:
        ws, _ = await visitor.connect()
        raw = '{"type": "message", "id": "m1", "text": "路灯不亮了\\ud800\\u0000"}'
        await ws.send_str(raw)
        answer = await ws.receive_json(timeout=TIMEOUT)
        await ws.close()
        assert answer["type"] == "reply" and answer["in_reply_to"] == "m1"
        assert await inbound_texts(client, visitor.id) == ["路灯不亮了\ufffd"]


async def test_an_emoji_written_as_a_surrogate_pair_is_kept(client: TestClient[Any, Any]) -> None:
    async with Visitor(client) as visitor:
        ws, _ = await visitor.connect()
        await ws.send_str('{"type": "message", "id": "m1", "text": "路灯不亮了\\ud83d\\ude21"}')
        assert (await ws.receive_json(timeout=TIMEOUT))["type"] == "reply"
        await ws.close()
        assert await inbound_texts(client, visitor.id) == ["路灯不亮了😡"]


@pytest.mark.parametrize(
    "pin",
    [
        '{"latitude": NaN, "longitude": 109.7}',
        '{"latitude": Infinity, "longitude": 109.7}',
        '{"latitude": 39.6, "longitude": -999}',
        '{"latitude": 999, "longitude": 109.7}',
        '{"latitude": 1e308, "longitude": 1e308}',
        '{"latitude": "north", "longitude": 109.7}',
        '{"latitude": true, "longitude": 109.7}',
        '"39.6,109.7"',
    ],
    ids=["nan", "inf", "lon-999", "lat-999", "1e308", "text", "bool", "string"],
)
async def test_impossible_coordinates_are_refused_and_not_stored(
    client: TestClient[Any, Any], pin: str
) -> None:
    async with Visitor(client) as visitor:
        ws, _ = await visitor.connect()
        await ws.send_str(f'{{"type": "message", "id": "m1", "text": "", "location": {pin}}}')
        answer = await ws.receive_json(timeout=TIMEOUT)
        assert answer["type"] == "error" and answer["error"] == "bad_frame"
        # The socket still works, and nothing was stored.
        assert (await message(ws, ""))["messages"][0]["text"] == T("chat.empty")
        await ws.close()
        assert await inbound_texts(client, visitor.id) == [""]


@pytest.mark.parametrize(
    "fields",
    [
        {"media": 5},
        {"media": "abc"},
        {"media": [{"ref": "/media/x"}]},
        {"media": ["/media/x"] * 20},
        {"text": 12},
        {"location": [39.6, 109.7]},
        {"id": "has space"},
        {"id": "x" * 65},
    ],
    ids=[
        "media-number",
        "media-string",
        "media-object",
        "media-many",
        "text-number",
        "location-list",
        "id-space",
        "id-long",
    ],
)
async def test_fields_of_the_wrong_type_get_an_error_frame(
    client: TestClient[Any, Any], fields: dict[str, Any]
) -> None:
    async with Visitor(client) as visitor:
        ws, _ = await visitor.connect()
        await ws.send_json({"type": "message", "id": "m1", "text": "你好", **fields})
        answer = await ws.receive_json(timeout=TIMEOUT)
        assert answer["type"] == "error" and answer["error"] == "bad_frame", answer
        assert (await message(ws, ""))["type"] == "reply"  # the socket stays usable
        await ws.close()


async def test_deeply_nested_json_gets_an_error_frame_not_a_traceback(
    client: TestClient[Any, Any],
) -> None:
    async with Visitor(client) as visitor:
        ws, _ = await visitor.connect()
        await ws.send_str("[" * 30_000 + "]" * 30_000)
        answer = await ws.receive_json(timeout=TIMEOUT)
        assert answer == {"type": "error", "error": "bad_frame", "reason": "JSON nested too deep"}
        assert (await message(ws, ""))["type"] == "reply"
        # Larger than any message may be: the socket is closed cleanly (1009).
        await ws.send_str("[" * 100_000 + "]" * 100_000)
        closing = await ws.receive(timeout=TIMEOUT)
        assert closing.type == WSMsgType.CLOSE and closing.data == 1009
        await ws.close()


async def test_an_over_long_button_payload_is_not_echoed(client: TestClient[Any, Any]) -> None:
    """The old amplifier: a payload of any length came back in the reply ("…"暂未开通)."""
    async with Visitor(client) as visitor:
        ws, _ = await visitor.connect()
        answer = await message(ws, "菜单", payload="intent:" + "A" * 20_000)
        await ws.close()
    text = json.dumps(answer, ensure_ascii=False)
    assert "A" * 100 not in text
    assert len(text) < 2_000


# -- HTTP hardening -------------------------------------------------------------------


async def test_security_headers_on_the_page_and_everywhere(client: TestClient[Any, Any]) -> None:
    page = await client.get("/chat")
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    for response in (page, await client.get("/healthz"), await client.get("/media/missing")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Server"] == "Yimen"  # no aiohttp or Python version
        assert "Content-Security-Policy" in response.headers


async def test_a_client_that_trickles_its_headers_is_cut_off(data_dir: Path) -> None:
    settings = settings_for(data_dir, header_timeout=1.0)
    async with TestServer(create_app(settings)) as server:

        def slowloris() -> bytes:
            with socket.create_connection((server.host, server.port)) as raw:
                raw.settimeout(30)
                raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                for _ in range(20):  # a header line every half second, never the end
                    try:
                        raw.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        return b"closed"
                    raw.settimeout(0.5)
                    try:
                        data = raw.recv(1024)
                    except TimeoutError:
                        continue
                    except OSError:  # reset: the server closed with our header bytes unread
                        return b"closed"
                    return data or b"closed"
                return b"still open"

        assert await asyncio.to_thread(slowloris) == b"closed"


async def test_trusted_proxy_addresses_are_believed_and_others_ignored(data_dir: Path) -> None:
    """Behind a trusted proxy each resident has their own address limit."""
    settings = settings_for(data_dir, trusted_proxies="127.0.0.1", webchat_address_limit=1)
    async with TestClient(TestServer(create_app(settings))) as client:
        answers = []
        for forwarded in ("203.0.113.5", "203.0.113.6", "203.0.113.6"):
            async with Visitor(client) as visitor:
                ws, _ = await visitor.connect(headers={"X-Forwarded-For": forwarded})
                answers.append((await message(ws, "你好"))["messages"][0]["text"])
                await ws.close()
    assert [text == T("chat.rate_limited") for text in answers] == [False, False, True]
