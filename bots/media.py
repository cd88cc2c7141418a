"""Photos residents send, kept under the data directory and served at /media/.

Every photo is decoded and encoded again with Pillow before it is kept: a file that
only starts like an image (a GIF+HTML polyglot, a script with a JPEG header) is
refused, metadata (EXIF with its GPS position, comments) is dropped, the picture is
turned upright and scaled to at most ``MAX_SIDE`` pixels, and what is stored is a
clean JPEG (or PNG, for pictures with transparency). Dimensions are read from the
header and checked before any pixel is decoded, so a 20000×20000 "PNG bomb" costs
nothing. Decoding runs in worker threads, at most ``decoders`` at a time, so the
event loop keeps serving and memory stays bounded however many arrive at once.

Web-chat uploads are streamed to disk as they arrive (never held whole in memory),
belong to the visitor who sent them (integration.uploads) and count against a daily
quota; those no message used within ``ttl`` are swept away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps

from integration.models import utcnow
from integration.uploads import UploadBook

log = logging.getLogger(__name__)

MEDIA_NAME = re.compile(r"^[0-9a-f]{32}\.(?:jpg|png|gif|webp)$")
MEDIA_PREFIX = "/media/"
FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
MAX_SIDE = 2560  # pixels on the longer side of a kept photo
MAX_OTHER_PIXELS = 16_000_000  # PNG, GIF and WebP decode whole: 64 MB at most
INCOMING = ".incoming"  # partial uploads, under the media directory


class PhotoKeeper(Protocol):
    """Keeps a photo a channel received; what a channel needs of the MediaStore."""

    async def keep(self, channel: str, chat_id: str, data: bytes) -> str | None:
        """Keep ``data`` as the chat's photo; its ``/media/`` reference, or None."""
        ...


class MediaRefused(Exception):
    """A photo that is not kept: ``status`` is the HTTP answer, ``reason`` the catalogue
    key (under ``webchat.``) of what the resident is told."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """What one photo, and one sender in a day, may take."""

    max_bytes: int = 5 * 1024 * 1024
    max_pixels: int = 40_000_000  # decoded size checked before decoding (40 MP)
    daily_count: int = 30  # photos per sender per 24 hours
    daily_bytes: int = 60 * 1024 * 1024
    ttl: float = 86_400.0  # an upload no message used is deleted after this
    decoders: int = 2  # photos decoded at once


def media_name(ref: str) -> str | None:
    """The file name a ``/media/…`` reference names, or None if it names none of ours."""
    name = ref.removeprefix(MEDIA_PREFIX)
    return name if ref.startswith(MEDIA_PREFIX) and MEDIA_NAME.match(name) else None


class MediaStore:
    """Keeps, checks, serves and sweeps residents' photos."""

    def __init__(self, directory: Path, book: UploadBook, limits: MediaLimits | None = None):
        self.directory = directory
        self._book = book
        self.limits = limits or MediaLimits()
        self._decoding = asyncio.Semaphore(self.limits.decoders)

    def path(self, name: str) -> Path | None:
        """The file of a kept photo, or None for a name that is not one."""
        if not MEDIA_NAME.match(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    async def check_quota(self, channel: str, chat_id: str, incoming: int = 0) -> None:
        """Refuse (429) a sender who has kept a day's worth of photos already."""
        usage = await self._book.usage(channel, chat_id, utcnow() - timedelta(days=1))
        if usage.count >= self.limits.daily_count or (
            usage.size + incoming > self.limits.daily_bytes
        ):
            raise MediaRefused(429, "upload_quota")

    async def receive(self, channel: str, chat_id: str, chunks: AsyncIterator[bytes]) -> str:
        """Stream an upload to disk, check and re-encode it; its ``/media/`` reference.

        The upload stays unused (and is swept) until a message of the sender claims it.
        """
        incoming = self.directory / INCOMING
        await asyncio.to_thread(incoming.mkdir, parents=True, exist_ok=True)
        partial = incoming / uuid.uuid4().hex
        size = 0
        try:
            with partial.open("wb") as handle:  # local disk: writes of 64 KiB do not block
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.limits.max_bytes:
                        raise MediaRefused(413, "upload_too_big")
                    handle.write(chunk)
            if size == 0:
                raise MediaRefused(400, "upload_empty")
            name = await self._convert(partial)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        stored = (self.directory / name).stat().st_size
        await self._book.add(name, channel, chat_id, stored, ttl=self.limits.ttl, used=False)
        return MEDIA_PREFIX + name

    async def keep(self, channel: str, chat_id: str, data: bytes) -> str | None:
        """Keep a photo a message already carries (Telegram); None if it is no image."""
        if len(data) > self.limits.max_bytes:
            return None
        incoming = self.directory / INCOMING
        partial = incoming / uuid.uuid4().hex
        try:
            await asyncio.to_thread(_write, partial, data)
            name = await self._convert(partial)
        except MediaRefused as refused:
            log.info("photo from %s not kept: %s", channel, refused.reason)
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        stored = (self.directory / name).stat().st_size
        await self._book.add(name, channel, chat_id, stored, ttl=self.limits.ttl, used=True)
        return MEDIA_PREFIX + name

    async def claim(self, channel: str, chat_id: str, refs: list[str]) -> list[str]:
        """The references among ``refs`` that are this chat's own photos, now used."""
        names = [name for ref in refs if (name := media_name(ref))]
        mine = await self._book.claim(channel, chat_id, names)
        return [MEDIA_PREFIX + name for name in names if name in mine]

    async def sweep(self, limit: int = 100) -> int:
        """Delete photos no message used in time; how many were deleted."""
        swept = 0
        while orphans := await self._book.claim_orphans(limit):
            for orphan in orphans:
                if MEDIA_NAME.match(orphan.name):
                    with contextlib.suppress(FileNotFoundError):
                        await asyncio.to_thread((self.directory / orphan.name).unlink)
            await self._book.forget([orphan.id for orphan in orphans])
            swept += len(orphans)
            if len(orphans) < limit:
                break
        return swept

    async def _convert(self, source: Path) -> str:
        async with self._decoding:
            return await asyncio.to_thread(reencode, source, self.directory, self.limits.max_pixels)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def reencode(source: Path, directory: Path, max_pixels: int) -> str:
    """Decode ``source`` and store it again, clean, under a fresh name; that name.

    Raises ``MediaRefused`` (415) for anything that is not a whole JPEG, PNG, GIF or
    WebP picture of at most ``max_pixels``. Runs in a worker thread.
    """
    try:
        with Image.open(source, formats=FORMATS) as image:
            width, height = image.size
            # JPEGs decode at a reduced scale (draft); other formats at full size.
            limit = max_pixels if image.format == "JPEG" else min(max_pixels, MAX_OTHER_PIXELS)
            if width < 1 or height < 1 or width * height > limit:
                raise MediaRefused(415, "upload_pixels")
            if image.format == "JPEG":
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode JPEGs at a smaller scale
            image.seek(0)  # the first frame of an animation
            picture = ImageOps.exif_transpose(image)
            picture.load()
    except MediaRefused:
        raise
    except Exception as exc:  # Pillow raises many kinds for broken or hostile files
        log.info("refused an upload that is not a picture: %s", type(exc).__name__)
        raise MediaRefused(415, "upload_not_image") from None
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or (
        picture.mode == "P" and "transparency" in picture.info
    )
    picture = picture.convert("RGBA" if has_alpha else "RGB")
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    name = f"{uuid.uuid4().hex}.{'png' if has_alpha else 'jpg'}"
    target = directory / name
    partial = directory / INCOMING / f"{name}.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    # Saved without info, EXIF or ICC: nothing of the original file but its pixels.
    if has_alpha:
        picture.save(partial, "PNG", optimize=True)
    else:
        picture.save(partial, "JPEG", quality=88, optimize=True)
    os.replace(partial, target)
    return name
