"""Regressions of the upload defects (issue 10, Medium 4 and Low), each attack replayed.

Uploads need the visitor's cookie and our Origin, count against a daily quota, stream
to disk, and are decoded and encoded again: polyglots, fake magic numbers and pixel
bombs are refused or come out as clean pictures without metadata. Photos no message
used are swept after their time to live; a visitor cannot attach another's photo.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import select, update

from bots.app import SERVICES, create_app
from bots.media import INCOMING
from bots.settings import Settings
from handlers.catalog import Catalog
from integration.models import MediaUpload, utcnow
from tests.webchat_client import Visitor

T = Catalog.load()
TIMEOUT = 15.0


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, push_poll_interval=0.1, **overrides)


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings_for(data_dir)))) as client:
        yield client


def picture(fmt: str = "JPEG", size: tuple[int, int] = (40, 30), **save: Any) -> bytes:
    image = Image.new("RGB", size, (30, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def form(
    data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"
) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("file", data, filename=name, content_type=content_type)
    return body


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width``×``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 4096)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


async def upload(client: TestClient[Any, Any], data: bytes, **kwargs: Any) -> tuple[int, Any]:
    async with Visitor(client) as visitor:
        response = await visitor.upload(form(data, **kwargs))
        return response.status, await response.json()


async def served(client: TestClient[Any, Any], ref: str) -> bytes:
    response = await client.get(ref)
    assert response.status == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    return await response.read()


# -- who may upload ------------------------------------------------------------------------


async def test_an_upload_without_the_visitor_cookie_is_refused(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post("/chat/upload", data=form(picture()))
    assert response.status == 401
    assert (await response.json())["error"] == T("webchat.upload_session")


async def test_a_cross_origin_upload_is_refused(client: TestClient[Any, Any]) -> None:
    async with Visitor(client, origin="http://evil.example") as visitor:
        response = await visitor.upload(form(picture()))
    assert response.status == 403


async def test_a_visitor_has_a_daily_quota(data_dir: Path) -> None:
    settings = settings_for(data_dir, upload_daily_count=2)
    async with TestClient(TestServer(create_app(settings))) as client, Visitor(client) as visitor:
        statuses = [(await visitor.upload(form(picture()))).status for _ in range(3)]
        last = await visitor.upload(form(picture()))
        assert statuses == [200, 200, 429]
        assert (await last.json())["error"] == T("webchat.upload_quota")
        async with Visitor(client) as other:  # another visitor has a quota of their own
            assert (await other.upload(form(picture()))).status == 200


async def test_uploads_from_one_address_are_throttled(data_dir: Path) -> None:
    settings = settings_for(data_dir, upload_address_limit=3)
    async with TestClient(TestServer(create_app(settings))) as client:
        statuses = []
        for _ in range(5):
            async with Visitor(client) as visitor:  # a new id each time does not help
                statuses.append((await visitor.upload(form(picture()))).status)
    assert statuses == [200, 200, 200, 429, 429]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "multipart/form-data", "application/json"],
    ids=["none", "wrong", "no-boundary", "json"],
)
async def test_a_malformed_upload_is_a_400_not_a_500(
    client: TestClient[Any, Any], content_type: str | None
) -> None:
    async with Visitor(client) as visitor:
        await visitor.load_page()
        headers = {"Origin": visitor.origin or ""}
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await visitor.session.post(
            visitor.url("/chat/upload"),
            data=b"--x\r\n\r\nnot a form",
            headers=headers,
            skip_auto_headers=["Content-Type"],
        )
    assert response.status == 400
    assert (await response.json())["error"] == T("webchat.upload_format")


async def test_a_form_without_the_file_field_is_a_400(client: TestClient[Any, Any]) -> None:
    async with Visitor(client) as visitor:
        body = aiohttp.FormData()
        body.add_field("photo", picture(), filename="a.jpg", content_type="image/jpeg")
        response = await visitor.upload(body)
    assert response.status == 400


# -- what is kept -----------------------------------------------------------------------------


async def test_a_gif_html_polyglot_is_kept_only_as_a_clean_picture(
    client: TestClient[Any, Any],
) -> None:
    polyglot = picture("GIF") + b"<html><script>alert(document.cookie)</script></html>"
    status, answer = await upload(client, polyglot, name="x.gif", content_type="image/gif")
    assert status == 200
    data = await served(client, answer["ref"])
    assert b"<script" not in data and b"<html" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format in ("JPEG", "PNG") and image.size == (40, 30)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>",
        b"\xff\xd8\xff<?php system($_GET['c']); ?>",
        b"GIF89a<script>alert(1)</script>",
        b"RIFF....WEBPVP8 not really",
    ],
    ids=["png-magic", "jpeg-magic", "gif-magic", "webp-magic"],
)
async def test_a_non_image_with_image_magic_is_refused(
    client: TestClient[Any, Any], data: bytes
) -> None:
    status, answer = await upload(client, data)
    assert status == 415
    assert answer["error"] == T("webchat.upload_not_image")


async def test_a_pixel_bomb_is_refused_before_it_is_decoded(client: TestClient[Any, Any]) -> None:
    status, answer = await upload(client, png_header_only(20_000, 20_000), name="bomb.png")
    assert status == 415
    assert answer["error"] in (T("webchat.upload_pixels"), T("webchat.upload_not_image"))
    media_dir = client.app[SERVICES].settings.media_dir
    assert [p for p in media_dir.iterdir() if p.is_file()] == []


async def test_metadata_is_stripped_and_the_photo_turned_upright(
    client: TestClient[Any, Any],
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotated 90° clockwise
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (39.0, 36.0, 0.0), 1: "N"}  # GPSInfo
    status, answer = await upload(client, picture(size=(40, 30), exif=exif.tobytes()))
    assert status == 200
    data = await served(client, answer["ref"])
    assert b"PhoneMaker" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert not image.getexif()
        assert image.size == (30, 40)  # the orientation applied to the pixels


async def test_uploads_stream_to_disk_and_leave_no_partial_files(data_dir: Path) -> None:
    """Many at once: each streams to a file and waits its turn; none stays half-written."""
    settings = settings_for(data_dir, upload_concurrency=2, max_upload_bytes=200_000)
    async with TestClient(TestServer(create_app(settings))) as client:
        big = picture(size=(300, 300), quality=100) + b"\0" * 150_000  # trailing junk is fine
        too_big = big + b"\0" * 100_000

        async def one(data: bytes) -> int:
            async with Visitor(client) as visitor:
                return (await visitor.upload(form(data))).status

        statuses = await asyncio.gather(*(one(big) for _ in range(8)), one(too_big))
        assert statuses == [200] * 8 + [413]
        incoming = settings.media_dir / INCOMING
        assert [p.name for p in incoming.iterdir()] == []
        assert len([p for p in settings.media_dir.iterdir() if p.is_file()]) == 8


# -- whose photos, and for how long --------------------------------------------------------


async def test_a_visitor_cannot_attach_another_visitors_photo(client: TestClient[Any, Any]) -> None:
    async with Visitor(client) as owner, Visitor(client) as other:
        ref = (await (await owner.upload(form(picture()))).json())["ref"]
        ws, _ = await other.connect()
        await ws.send_json({"type": "message", "id": "m1", "text": "", "media": [ref]})
        answer = await ws.receive_json(timeout=TIMEOUT)
        await ws.close()
    assert answer["type"] == "error" and answer["error"] == "media"
    assert answer["text"] == T("webchat.media_expired")


async def test_unused_uploads_are_swept_and_used_ones_kept(
    backend: dict[str, Any], data_dir: Path
) -> None:
    settings = settings_for(data_dir, **backend)
    async with TestClient(TestServer(create_app(settings))) as client, Visitor(client) as visitor:
        services = client.app[SERVICES]
        used = (await (await visitor.upload(form(picture()))).json())["ref"]
        unused = (await (await visitor.upload(form(picture()))).json())["ref"]
        ws, _ = await visitor.connect()
        await ws.send_json({"type": "message", "id": "m1", "text": "井盖丢了", "media": [used]})
        assert (await ws.receive_json(timeout=TIMEOUT))["type"] == "reply"
        await ws.close()

        assert await services.media.sweep() == 0  # nothing is a day old yet
        async with services.sessions.begin() as session:
            await session.execute(
                update(MediaUpload).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert await services.media.sweep() == 1
        names = {p.name for p in settings.media_dir.iterdir() if p.is_file()}
        assert names == {used.removeprefix("/media/")}
        assert (await client.get(unused)).status == 404
        async with services.sessions() as session:
            rows = (await session.execute(select(MediaUpload.name))).scalars().all()
        assert rows == [used.removeprefix("/media/")]
        # An expired, unused upload can no longer be attached.
        ws, _ = await visitor.connect()
        await ws.send_json({"type": "message", "id": "m2", "text": "", "media": [unused]})
        assert (await ws.receive_json(timeout=TIMEOUT))["error"] == "media"
        await ws.close()
