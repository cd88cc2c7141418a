"""The values exchanged with a conversation store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Ticket:
    """The shared-state keys one message's turn uses, and the token that owns them."""

    mark: str  # the dedupe mark of (channel, message id)
    lock: str  # the conversation's lock
    rate: str  # the sender's rate-limit counter
    state: str  # the conversation's saved state
    token: str  # unique per delivery attempt


@dataclass(frozen=True, slots=True)
class Admission:
    """What entering a turn found: the sender's rate count and the saved state."""

    count: int  # messages from this sender in the current rate window, this one included
    state: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the conversation store keeps marks, locks, counters and states."""

    processing_ttl: float = 60.0  # an unfinished claim blocks redeliveries this long
    dedupe_ttl: float = 86_400.0  # a processed message id is remembered this long
    lock_ttl: float = 30.0  # a lock held by a dead worker lapses after this
    lock_wait: float = 10.0  # a message waits this long for its conversation's lock
    rate_window: float = 60.0
    state_ttl: float = 3 * 86_400.0
