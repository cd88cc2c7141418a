"""The event loop every Yimen process runs on: uvloop where it is installed.

uvloop (libuv) makes the loop's own work — sockets, callbacks, timers — two to four
times cheaper than asyncio's default loop; with many short database and Redis round
trips per message, that is a measurable share of a turn. Windows has no uvloop and
falls back to asyncio's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)``, on uvloop when it is available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
