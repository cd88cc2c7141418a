"""Pacing of outgoing Telegram messages: a global token bucket and per-chat spacing.

Telegram allows a bot about 30 messages per second overall and about one per second
in one chat; beyond that it answers 429 with ``retry_after``. Every send (replies and
status pushes alike) first waits here for its slot, so a burst is spread out instead
of bouncing off flood control, and a 429 that still happens pauses every send.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

PRUNE_EVERY = 1024  # acquisitions between sweeps of chats that have gone quiet
# How much faster than the rate a late send may follow the one before it, to make up
# a timer's lateness; the rate still holds over every window of one second.
CATCH_UP = 2.0
WINDOW = 1.0  # seconds: the window in which at most ``rate`` sends go out
_EPSILON = 1e-9  # seconds: float rounding, not a wait


@dataclass(frozen=True, slots=True)
class SendLimits:
    """How fast to send; Telegram's published limits by default (tests go faster)."""

    rate: float = 30.0  # messages per second, all chats together
    burst: int = 1  # messages the global bucket may release at once
    chat_interval: float = 1.0  # seconds between two messages to the same chat
    max_retries: int = 5  # 429s in a row for one message before it is given back

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.chat_interval < 0 or self.max_retries < 0:
            raise ValueError(f"invalid send limits: {self}")


class SendLimiter:
    """Hands out send slots: global rate (GCRA token bucket), per-chat spacing, pauses.

    Slots are reserved first come, first served, so waiting costs one timer per send
    rather than a wake-up per waiter per slot. A reservation alone is not enough: when
    the event loop stalls, every timer that fell due during the stall fires at once and
    their holders would all send together (48 sends in one second were once seen). So
    each grant also passes a gate, taken in turn (FIFO), on the times grants really
    happen: at most ``rate`` in any window of one second, and (beyond the ``burst``
    allowance) no two closer than ``1 / (rate * CATCH_UP)``. A timer that fires late
    (a busy loop) is made up by the next sends following a little closer, instead of
    each lateness being lost for good, which held a 10,000-push drain to 27/s; after
    a stall the late holders leave at most twice the rate, and never more than
    ``rate`` in a second. ``clock`` and ``sleep`` are injectable so the arithmetic can
    be tested in virtual time.
    """

    def __init__(
        self,
        limits: SendLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or SendLimits()
        self._emission = 1.0 / self.limits.rate
        self._tolerance = (self.limits.burst - 1) * self._emission
        self._spacing = self._emission / CATCH_UP  # the gate's floor between grants
        # The last ``rate`` grants (``burst`` if more): the window's count.
        self._recent: deque[float] = deque(
            maxlen=max(self.limits.burst, math.floor(self.limits.rate * WINDOW))
        )
        self._clock = clock
        self._sleep = sleep
        self._tat = 0.0  # the bucket's theoretical arrival time of the next message
        self._granted_tat = 0.0  # the same, counted on grants that really happened
        self._gate = asyncio.Lock()  # one waiter at a time checks the granted bucket
        self._chat_next: dict[str, float] = {}  # earliest next send, per chat
        self._resume_at = 0.0  # end of the current flood-control pause
        self._acquired = 0

    async def acquire(self, chat_id: str) -> None:
        """Wait until a message may be sent to ``chat_id``; the caller then sends it."""
        while True:
            now = self._clock()
            at = max(
                now,
                self._resume_at,
                self._chat_next.get(chat_id, 0.0),
                self._tat - self._tolerance,
            )
            self._tat = max(self._tat, at) + self._emission
            self._chat_next[chat_id] = at + self.limits.chat_interval
            if at > now:
                await self._sleep(at - now)
            now = await self._pass_gate()
            if now >= self._resume_at:  # else a pause began while we slept: queue again
                break
        # Space the chat from when the send really goes out, not from the reservation
        # (a sweep while this waiter was in the gate may have dropped its entry).
        self._chat_next[chat_id] = max(
            self._chat_next.get(chat_id, 0.0), now + self.limits.chat_interval
        )
        self._acquired += 1
        if self._acquired % PRUNE_EVERY == 0:
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}

    async def _pass_gate(self) -> float:
        """Wait until a grant may go out (spacing and window), record it; the time now."""
        async with self._gate:
            now = self._clock()
            while (wait := self._gate_wait(now)) > _EPSILON:
                await self._sleep(wait)
                now = self._clock()
            if now >= self._resume_at:  # a grant re-queued by a pause is not counted
                self._granted_tat = max(self._granted_tat, now) + self._spacing
                self._recent.append(now)
            return now

    def _gate_wait(self, now: float) -> float:
        """How long until the next grant keeps both the spacing and the window."""
        wait = self._granted_tat - self._tolerance - now
        if len(self._recent) == self._recent.maxlen:
            wait = max(wait, self._recent[0] + WINDOW - now)
        return wait

    def sent(self, chat_id: str) -> None:
        """Note that Telegram answered a send to ``chat_id``: its spacing counts from now.

        Counting from the answer rather than from the slot keeps the gap Telegram sees
        at least ``chat_interval`` however long the request spent on the way.
        """
        self._chat_next[chat_id] = max(
            self._chat_next.get(chat_id, 0.0), self._clock() + self.limits.chat_interval
        )

    def pause(self, seconds: float) -> None:
        """Hold every send for ``seconds`` (Telegram's ``retry_after``)."""
        self._resume_at = max(self._resume_at, self._clock() + seconds)
        # Slots reserved before the pause and falling inside it are re-queued by their
        # holders; later ones stay valid, so the bucket restarts at the pause's end.
        self._tat = max(self._tat, self._resume_at)

    @property
    def paused_until(self) -> float:
        """The clock time when the current pause ends (in the past when none)."""
        return self._resume_at
