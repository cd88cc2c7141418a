"""In-process shared state for a single worker (the embedded default)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class _ExpiringDict:
    """A dict whose entries lapse after a per-entry TTL, pruned lazily."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, Any]] = {}
        self._writes = 0

    def get(self, key: str) -> Any | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            del self._data[key]
            return None
        return value

    def set(self, key: str, value: Any, ttl: float) -> None:
        self._data[key] = (time.monotonic() + ttl, value)
        self._writes += 1
        if self._writes % 10_000 == 0:
            self._prune()

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter, starting it at 1 with ``ttl`` if absent or lapsed."""
        count = (self.get(key) or 0) + 1
        if count == 1:
            self.set(key, 1, ttl)
        else:
            expires, _ = self._data[key]
            self._data[key] = (expires, count)  # the window keeps its first expiry
        return count

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._data.items() if expires < now]:
            del self._data[key]


class MemoryGate:
    """Dedupe marks, per-conversation locks and rate limits in this process."""

    def __init__(self) -> None:
        self._marks = _ExpiringDict()
        self._counters = _ExpiringDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def claim(self, key: str, ttl: float) -> bool:
        """Mark ``key`` as being processed; False if it is already marked."""
        if self._marks.get(key) is not None:
            return False
        self._marks.set(key, "processing", ttl)
        return True

    async def settle(self, key: str, ttl: float) -> None:
        """Keep the mark of a processed message for ``ttl`` seconds."""
        self._marks.set(key, "done", ttl)

    async def forget(self, key: str) -> None:
        """Drop a mark so a redelivery is processed (processing failed)."""
        self._marks.pop(key)

    @asynccontextmanager
    async def lock(self, key: str, wait: float) -> AsyncIterator[None]:
        """Hold the lock of one conversation; waits at most ``wait`` seconds."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with asyncio.timeout(wait):
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def hit(self, key: str, window: float) -> int:
        """Count one event in the current fixed window of ``key``; the count so far."""
        return self._counters.incr(key, window)


class MemoryConversationStore:
    """Conversation state as plain dicts in this process."""

    def __init__(self) -> None:
        self._data = _ExpiringDict()

    async def load(self, key: str) -> dict[str, Any] | None:
        """The saved state, or None."""
        value = self._data.get(key)
        return dict(value) if value is not None else None

    async def save(self, key: str, state: dict[str, Any], ttl: float) -> None:
        """Save a state (a JSON-compatible dict) for ``ttl`` seconds."""
        self._data.set(key, dict(state), ttl)

    async def delete(self, key: str) -> None:
        """Forget a state."""
        self._data.pop(key)
