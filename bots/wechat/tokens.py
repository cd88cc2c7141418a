"""The access_token, fetched once and shared by every worker of the account.

Each fetch from WeChat invalidates the previous token (after a short grace), so
workers that each fetched their own would keep invalidating one another. The token
lives in Redis when it is configured (in process memory otherwise); a refresh takes a
Redis lock, and a worker that finds the lock taken waits and reads what the holder
stored. A refresh names the token that failed (``stale``), so a worker that was
merely late to notice adopts the new token instead of fetching yet another.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from bots.wechat.errors import WeChatUnavailable
from integration.state.client import RedisClient

MARGIN = 300.0  # refresh this long before WeChat's expiry
MIN_TTL = 30.0

Fetch = Callable[[], Awaitable[tuple[str, float]]]  # -> (token, expires_in seconds)

# KEYS: lock. ARGV: owner. Deletes the lock only if we still hold it.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TokenCache(Protocol):
    """Where the current token is shared, and the lock its refresh is made under."""

    async def read(self) -> tuple[str, float] | None:
        """The shared token and its seconds to live, if there is one."""
        ...

    async def write(self, token: str, ttl: float) -> None:
        """Share a new token for ``ttl`` seconds."""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[Any]:
        """An async context manager held while refreshing."""
        ...


class MemoryTokenCache:
    """The token in this process (one worker)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def read(self) -> tuple[str, float] | None:
        """The token and its seconds to live, unless expired."""
        left = self._expires - self._clock()
        return (self._token, left) if self._token and left > 0 else None

    async def write(self, token: str, ttl: float) -> None:
        """Keep ``token`` for ``ttl`` seconds."""
        self._token, self._expires = token, self._clock() + ttl

    def exclusive(self) -> asyncio.Lock:
        """The process-wide refresh lock."""
        return self._lock


class RedisTokenCache:
    """The token in Redis, shared by every worker, refreshed under a Redis lock."""

    def __init__(
        self,
        redis: RedisClient,
        key: str,
        lock_key: str,
        *,
        lock_ttl: float = 15.0,
        wait: float = 20.0,
        poll: float = 0.05,
    ) -> None:
        self._redis = redis
        self._key = key
        self._lock_key = lock_key
        self._lock_ttl = lock_ttl
        self._wait = wait
        self._poll = poll
        self._unlock = redis.register_script(_UNLOCK)

    async def read(self) -> tuple[str, float] | None:
        """The shared token and its seconds to live."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key)
            pipe.pttl(self._key)
            token, ttl_ms = await pipe.execute()
        if not token or ttl_ms <= 0:
            return None
        return token.decode() if isinstance(token, bytes) else str(token), ttl_ms / 1000

    async def write(self, token: str, ttl: float) -> None:
        """Share ``token`` for ``ttl`` seconds."""
        await self._redis.set(self._key, token, px=max(1, int(ttl * 1000)))

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the refresh lock; waits for another worker's refresh to finish first.

        The lock lapses after ``lock_ttl`` so a worker that died mid-refresh does not
        block the others for good.
        """
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait
        px = int(self._lock_ttl * 1000)
        while not await self._redis.set(self._lock_key, owner, nx=True, px=px):
            if time.monotonic() > deadline:
                raise WeChatUnavailable("timed out waiting for another worker's token refresh")
            await asyncio.sleep(self._poll)
        try:
            yield
        finally:
            await self._unlock(keys=[self._lock_key], args=[owner])


class AccessTokens:
    """Hands out the account's access_token, refreshing it once however many ask."""

    def __init__(
        self, fetch: Fetch, cache: TokenCache, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._cache = cache
        self._clock = clock
        self._token = ""
        self._expires = 0.0  # when our local copy must be looked up again
        self._local = asyncio.Lock()  # one refresh per process at a time

    async def get(self) -> str:
        """The current token (from this process, the shared cache, or WeChat)."""
        if self._token and self._clock() < self._expires:
            return self._token
        return await self.refresh("")

    async def refresh(self, stale: str) -> str:
        """A token other than ``stale``: another worker's newer one, else a fresh fetch."""
        async with self._local:
            if self._token and self._token != stale and self._clock() < self._expires:
                return self._token  # refreshed while we waited for the local lock
            if (shared := await self._adopt(stale)) is not None:
                return shared
            async with self._cache.exclusive():
                if (shared := await self._adopt(stale)) is not None:
                    return shared  # another worker refreshed while we waited for the lock
                token, expires_in = await self._fetch()
                ttl = max(expires_in - MARGIN, MIN_TTL)
                await self._cache.write(token, ttl)
                self._keep(token, ttl)
                return token

    async def _adopt(self, stale: str) -> str | None:
        cached = await self._cache.read()
        if cached is None or cached[0] == stale:
            return None
        self._keep(*cached)
        return cached[0]

    def _keep(self, token: str, ttl: float) -> None:
        self._token, self._expires = token, self._clock() + ttl
