"""In-process conversation state for a single worker (the embedded default)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from integration.state.types import Admission, Ticket, Timing


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
            now = time.monotonic()
            for stale in [k for k, (expires, _) in self._data.items() if expires < now]:
                del self._data[stale]

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter, starting it at 1 with ``ttl`` if absent or lapsed."""
        count = (self.get(key) or 0) + 1
        if count == 1:
            self.set(key, 1, ttl)
        else:
            expires, _ = self._data[key]
            self._data[key] = (expires, count)  # a fixed window keeps its first expiry
        return count


class MemoryConversationStore:
    """Claims, locks, rate counters and states in this process's memory.

    States are kept as JSON text, like in Redis, so a caller's later edits never leak
    into what was saved.
    """

    def __init__(self, timing: Timing | None = None) -> None:
        self._timing = timing or Timing()
        self._marks = _ExpiringDict()
        self._counters = _ExpiringDict()
        self._states = _ExpiringDict()
        self._locks: dict[str, _KeyLock] = {}

    async def enter(self, ticket: Ticket) -> Admission | None:
        """Claim, lock, count and load (see ConversationStore)."""
        mark = self._marks.get(ticket.mark)
        if mark is not None and mark != ticket.token:
            return None
        self._marks.set(ticket.mark, ticket.token, self._timing.processing_ttl)
        lock = self._locks.setdefault(ticket.lock, _KeyLock())
        lock.users += 1
        try:
            async with asyncio.timeout(self._timing.lock_wait):
                await lock.acquire()
        except BaseException:
            self._done_with(ticket.lock, lock)
            raise
        lock.owner = ticket.token
        count = self._counters.incr(ticket.rate, self._timing.rate_window)
        raw = self._states.get(ticket.state)
        return Admission(count, json.loads(raw) if raw is not None else None)

    async def leave(self, ticket: Ticket, state: dict[str, Any] | None, *, changed: bool) -> None:
        """Save, unlock and settle (see ConversationStore)."""
        if changed:
            if state is None:
                self._states.pop(ticket.state)
            else:
                raw = json.dumps(state, ensure_ascii=False)
                self._states.set(ticket.state, raw, self._timing.state_ttl)
        self._marks.set(ticket.mark, "done", self._timing.dedupe_ttl)
        self._unlock(ticket)

    async def abort(self, ticket: Ticket) -> None:
        """Unlock and drop the claim if this turn holds them (see ConversationStore)."""
        if self._marks.get(ticket.mark) == ticket.token:
            self._marks.pop(ticket.mark)
        self._unlock(ticket)

    def _unlock(self, ticket: Ticket) -> None:
        lock = self._locks.get(ticket.lock)
        if lock is None or lock.owner != ticket.token:
            return
        lock.owner = ""
        lock.release()
        self._done_with(ticket.lock, lock)

    def _done_with(self, key: str, lock: _KeyLock) -> None:
        lock.users -= 1
        if lock.users == 0:
            del self._locks[key]  # nobody holds or waits: don't keep a lock per resident


class _KeyLock(asyncio.Lock):
    """A conversation's lock, with its holder's token and how many turns use it."""

    def __init__(self) -> None:
        super().__init__()
        self.owner = ""
        self.users = 0
