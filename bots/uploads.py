"""``POST /chat/upload`` (a visitor's photo) and ``GET /media/{name}`` (kept photos).

An upload needs the visitor's signed cookie and our own Origin, counts against the
visitor's daily quota and the address's rate, waits its turn (``concurrent`` uploads
at a time per process), streams to disk and is re-encoded (bots.media). Kept photos
are served with ``nosniff`` and a sandboxing Content-Security-Policy, so a photo can
never be run as a page. Their names are 128 random bits: a photo's URL is shared with
the dispatch platform and staff, and cannot be guessed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from bots.identity import VisitorIdentity, same_origin
from bots.media import MediaRefused, MediaStore
from handlers.catalog import Catalog
from integration.state.keys import KeyBuilder
from integration.state.throttle import Throttle

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MEDIA_POLICY = "default-src 'none'; img-src 'self'; sandbox"


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """How uploads are paced."""

    per_address: int = 30  # uploads from one address per window
    window: float = 600.0
    concurrent: int = 4  # uploads streamed and decoded at once, per process
    wait: float = 30.0  # seconds an upload waits for its turn before 503
    body_timeout: float = 120.0  # seconds to receive one upload
    origins: tuple[str, ...] = ()


class UploadRoutes:
    """Receives visitors' photos and serves kept ones."""

    def __init__(
        self,
        identity: VisitorIdentity,
        channel: str,
        limits: UploadLimits | None = None,
    ) -> None:
        self._identity = identity
        self._channel = channel
        self._limits = limits or UploadLimits()
        self._turns = asyncio.Semaphore(self._limits.concurrent)
        self._media: MediaStore | None = None
        self._throttle: Throttle | None = None
        self._keys = KeyBuilder()
        self._t: Catalog | None = None

    def bind(
        self, media: MediaStore, throttle: Throttle, keys: KeyBuilder, catalog: Catalog
    ) -> None:
        """Give the routes the running services (the app's lifespan does this)."""
        self._media, self._throttle, self._keys, self._t = media, throttle, keys, catalog

    def routes(self) -> list[web.RouteDef]:
        """The upload and media routes."""
        return [web.post("/chat/upload", self.upload), web.get("/media/{name}", self.serve)]

    async def upload(self, request: web.Request) -> web.Response:
        """One photo from a visitor: ``{"ref": "/media/<name>"}``, or an error in Chinese."""
        media, throttle = self._bound()
        if not same_origin(request, self._limits.origins):
            return self._refuse(403, "upload_origin")
        visitor = self._identity.visitor(request)
        if visitor is None:
            return self._refuse(401, "upload_session")
        if request.content_type != "multipart/form-data" or "boundary" not in (
            request.headers.get("Content-Type", "")
        ):
            return self._refuse(400, "upload_format")
        max_bytes = media.limits.max_bytes
        if request.content_length is not None and request.content_length > max_bytes + 16_384:
            return self._refuse(413, "upload_too_big")
        key = self._keys.build("upload-address", self._channel, request.remote or "unknown")
        if await throttle.hit(key, self._limits.window) > self._limits.per_address:
            return self._refuse(429, "upload_rate")
        try:
            await media.check_quota(self._channel, visitor, request.content_length or 0)
            async with asyncio.timeout(self._limits.wait):
                await self._turns.acquire()
        except MediaRefused as refused:
            return self._refuse(refused.status, refused.reason)
        except TimeoutError:
            return self._refuse(503, "upload_busy")
        try:
            async with asyncio.timeout(self._limits.body_timeout):
                part = await _file_part(request)
                ref = await media.receive(self._channel, visitor, _chunks(part))
        except MediaRefused as refused:
            return self._refuse(refused.status, refused.reason)
        except TimeoutError:
            return self._refuse(408, "upload_timeout")
        finally:
            self._turns.release()
        return web.json_response({"ref": ref})

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """A kept photo, never sniffed or run as anything but an image."""
        media, _ = self._bound()
        path = media.path(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        response = web.FileResponse(path)
        response.headers["Content-Security-Policy"] = MEDIA_POLICY
        response.headers["Content-Disposition"] = "inline"
        response.headers["Cache-Control"] = "private, max-age=86400"
        return response

    def _refuse(self, status: int, key: str) -> web.Response:
        """An error answer the page shows as it is (``error``) with its ``code``."""
        limit = self._media.limits.max_bytes // (1024 * 1024) if self._media else 5
        text = self._t(f"webchat.{key}", limit=limit) if self._t else key
        return web.json_response({"error": text, "code": key}, status=status)

    def _bound(self) -> tuple[MediaStore, Throttle]:
        if self._media is None or self._throttle is None:
            raise web.HTTPServiceUnavailable(text="starting")
        return self._media, self._throttle


async def _file_part(request: web.Request) -> BodyPartReader:
    """The multipart field named ``file``; ``MediaRefused`` (400) for anything else."""
    try:
        reader = await request.multipart()
        part = await reader.next()
    except (AssertionError, ValueError, KeyError, TypeError) as exc:
        log.info("unreadable upload: %s", type(exc).__name__)
        raise MediaRefused(400, "upload_format") from None
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise MediaRefused(400, "upload_format")
    return part


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk
