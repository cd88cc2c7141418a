"""Photos residents send, kept under the data directory and served at /media/."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

# Magic numbers of the image formats we accept, and the extension we store them under.
IMAGE_TYPES = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png", b"GIF8": "gif", b"RIFF": "webp"}
MEDIA_NAME = re.compile(r"^[0-9a-f]{32}\.(?:jpg|png|gif|webp)$")


async def keep_image(media_dir: Path, data: bytes) -> str | None:
    """Store an image under a fresh name; its /media/ url, or None if it is no image.

    The write runs in a thread: a photo is megabytes, and the event loop serves others.
    """
    extension = next((ext for magic, ext in IMAGE_TYPES.items() if data.startswith(magic)), None)
    if extension is None:
        return None
    name = f"{uuid.uuid4().hex}.{extension}"
    await asyncio.to_thread(_save, media_dir / name, data)
    return f"/media/{name}"


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
