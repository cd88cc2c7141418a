"""Conversation state in Redis, shared by several workers.

A turn costs two round trips: one script claims the message, takes the lock, counts
the rate and reads the state; another saves the state, settles the claim and
releases the lock. Keys carry TTLs, so a dead worker's lock and claim lapse.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from integration.state.client import RedisClient
from integration.state.types import Admission, Ticket, Timing

# KEYS: mark, lock, rate, state. ARGV: token, processing ms, lock ms, rate window s.
# Returns {0} for a duplicate, {1} while another turn holds the lock, else
# {2, count, state or ""}.
_ENTER = """
local mark = redis.call('GET', KEYS[1])
if mark and mark ~= ARGV[1] then return {0} end
if not mark then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then return {1} end
local count = redis.call('INCR', KEYS[3])
if count == 1 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
return {2, count, redis.call('GET', KEYS[4]) or ''}
"""

# KEYS: mark, lock, state. ARGV: token, dedupe ms, mode (keep|save|delete), state, state ms.
_LEAVE = """
if ARGV[3] == 'save' then redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
elseif ARGV[3] == 'delete' then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# KEYS: mark, lock. ARGV: token.
_ABORT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

_DUPLICATE, _BUSY = 0, 1


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisConversationStore:
    """Claims, locks, rate counters and states in Redis (see ConversationStore)."""

    def __init__(self, redis: RedisClient, timing: Timing | None = None) -> None:
        self._timing = timing or Timing()
        self._enter = redis.register_script(_ENTER)
        self._leave = redis.register_script(_LEAVE)
        self._abort = redis.register_script(_ABORT)

    async def enter(self, ticket: Ticket) -> Admission | None:
        """Claim, lock, count and load; polls while another turn holds the lock."""
        timing = self._timing
        keys = [ticket.mark, ticket.lock, ticket.rate, ticket.state]
        args: list[str | int] = [
            ticket.token,
            _ms(timing.processing_ttl),
            _ms(timing.lock_ttl),
            max(1, int(timing.rate_window)),
        ]
        deadline = time.monotonic() + timing.lock_wait
        pause = 0.002
        while True:
            reply = await self._enter(keys=keys, args=args)
            if reply[0] == _DUPLICATE:
                return None
            if reply[0] != _BUSY:
                raw = reply[2]
                return Admission(int(reply[1]), json.loads(raw) if raw else None)
            if time.monotonic() + pause > deadline:
                raise TimeoutError(f"conversation lock {ticket.lock} still held")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def leave(self, ticket: Ticket, state: dict[str, Any] | None, *, changed: bool) -> None:
        """Save (or delete) the state, settle the claim and unlock, in one script."""
        mode = "keep" if not changed else "delete" if state is None else "save"
        raw = json.dumps(state, ensure_ascii=False) if mode == "save" else ""
        await self._leave(
            keys=[ticket.mark, ticket.lock, ticket.state],
            args=[
                ticket.token,
                _ms(self._timing.dedupe_ttl),
                mode,
                raw,
                _ms(self._timing.state_ttl),
            ],
        )

    async def abort(self, ticket: Ticket) -> None:
        """Unlock and drop the claim if this turn holds them."""
        await self._abort(keys=[ticket.mark, ticket.lock], args=[ticket.token])
