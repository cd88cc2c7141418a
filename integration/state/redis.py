"""Shared state in Redis, for several workers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import LockError


class StateLockTimeout(TimeoutError):
    """A conversation lock could not be taken in time."""


class RedisGate:
    """Dedupe marks, per-conversation locks and rate limits in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def claim(self, key: str, ttl: float) -> bool:
        """Mark ``key`` as being processed (SET NX); False if it is already marked."""
        return bool(await self._redis.set(key, "processing", nx=True, px=int(ttl * 1000)))

    async def settle(self, key: str, ttl: float) -> None:
        """Keep the mark of a processed message for ``ttl`` seconds."""
        await self._redis.set(key, "done", px=int(ttl * 1000))

    async def forget(self, key: str) -> None:
        """Drop a mark so a redelivery is processed (processing failed)."""
        await self._redis.delete(key)

    @asynccontextmanager
    async def lock(self, key: str, wait: float) -> AsyncIterator[None]:
        """Hold one conversation's lock; it lapses by itself if this worker dies."""
        lock = self._redis.lock(key, timeout=max(wait * 3, 30), sleep=0.005, blocking_timeout=wait)
        if not await lock.acquire():
            raise StateLockTimeout(key)
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:
                pass  # it lapsed while we held it; nothing left to release

    async def hit(self, key: str, window: float) -> int:
        """Count one event in the fixed window of ``key`` (INCR, expiry set once)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, max(1, int(window)), nx=True)
            count, _ = await pipe.execute()
        return int(count)


class RedisConversationStore:
    """Conversation state as JSON strings in Redis, with a TTL on every key."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def load(self, key: str) -> dict[str, Any] | None:
        """The saved state, or None."""
        raw = await self._redis.get(key)
        return json.loads(raw) if raw is not None else None

    async def save(self, key: str, state: dict[str, Any], ttl: float) -> None:
        """Save a state (a JSON-compatible dict) for ``ttl`` seconds."""
        await self._redis.set(key, json.dumps(state, ensure_ascii=False), px=int(ttl * 1000))

    async def delete(self, key: str) -> None:
        """Forget a state."""
        await self._redis.delete(key)
