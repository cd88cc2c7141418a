"""Fixed-window counters for the channels' own limits (per connection, per address).

The pipeline limits each resident; these limit what the resident's id cannot: many
ids from one address, many messages over one connection. In Redis the counters are
shared by every worker; in memory they are this process's.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from integration.state.client import RedisClient

# KEYS: counter. ARGV: window ms. Returns the count in the current window.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class Throttle(Protocol):
    """Counts events per key in fixed windows."""

    async def hit(self, key: str, window: float, amount: int = 1) -> int:
        """Count ``amount`` events for ``key``; the total in the current window."""
        ...


class MemoryThrottle:
    """Counters in this process's memory (one worker)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._counts: dict[str, tuple[float, int]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, window: float, amount: int = 1) -> int:
        """Count events; windows start at the first event after the last one ended."""
        now = time.monotonic()
        ends, count = self._counts.get(key, (0.0, 0))
        if now >= ends:
            ends, count = now + window, 0
        count += amount
        self._counts[key] = (ends, count)
        if len(self._counts) > self._max_keys:
            self._forget(now)
        return count

    def _forget(self, now: float) -> None:
        for key in [k for k, (ends, _) in self._counts.items() if ends <= now]:
            del self._counts[key]
        while len(self._counts) > self._max_keys:  # all current: drop the oldest
            del self._counts[next(iter(self._counts))]


class RedisThrottle:
    """Counters in Redis, shared by every worker; each expires with its window."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._script = redis.register_script(_HIT)

    async def hit(self, key: str, window: float, amount: int = 1) -> int:
        """Count events in one round trip."""
        if amount == 1:
            return int(await self._script(keys=[key], args=[math.ceil(window * 1000)]))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, amount)
            pipe.pexpire(key, math.ceil(window * 1000), nx=True)
            count, _ = await pipe.execute()
        return int(count)
