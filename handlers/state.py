"""Conversation state and the protocols of the stores that keep it between messages."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from handlers.messages import Button


@dataclass(slots=True)
class ConversationState:
    """Where one resident's conversation stands: the active flow, its step and slots.

    ``buttons`` are the quick replies last offered, so a resident on any channel can
    answer with a button's label or its number instead of pressing it.
    """

    flow: str | None = None
    step: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    reprompts: int = 0
    buttons: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible form for the store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConversationState:
        """Rebuild a state saved by ``to_dict`` (unknown keys are ignored)."""
        if not data:
            return cls()
        return cls(
            flow=data.get("flow"),
            step=data.get("step"),
            slots=dict(data.get("slots") or {}),
            reprompts=int(data.get("reprompts") or 0),
            buttons=[(str(a), str(b)) for a, b in data.get("buttons") or []],
        )

    def offer(self, buttons: tuple[Button, ...]) -> None:
        """Remember the buttons just offered (an empty tuple clears them)."""
        self.buttons = [(b.label, b.payload) for b in buttons]

    def choice(self, text: str) -> str | None:
        """The payload of the offered button whose label or 1-based number is ``text``."""
        answer = text.strip().rstrip("。.!！")
        for number, (label, payload) in enumerate(self.buttons, start=1):
            if answer in (label, str(number)):
                return payload
        return None

    @property
    def idle(self) -> bool:
        """Whether no flow is active."""
        return self.flow is None


class ConversationStore(Protocol):
    """Keeps conversation state between messages (memory or Redis)."""

    async def load(self, key: str) -> dict[str, Any] | None:
        """The saved state, or None."""
        ...

    async def save(self, key: str, state: dict[str, Any], ttl: float) -> None:
        """Save a state for ``ttl`` seconds."""
        ...

    async def delete(self, key: str) -> None:
        """Forget a state."""
        ...


class Gate(Protocol):
    """Admission of messages: dedupe marks, per-conversation locks and rate limits."""

    async def claim(self, key: str, ttl: float) -> bool:
        """Mark a message as being processed; False when it already is or was."""
        ...

    async def settle(self, key: str, ttl: float) -> None:
        """Keep a processed message's mark for ``ttl`` seconds."""
        ...

    async def forget(self, key: str) -> None:
        """Drop a mark so that a redelivery is processed."""
        ...

    def lock(self, key: str, wait: float) -> AbstractAsyncContextManager[None]:
        """Hold a conversation's lock; raises TimeoutError after ``wait`` seconds."""
        ...

    async def hit(self, key: str, window: float) -> int:
        """Count one event in the fixed window of ``key``; the count so far."""
        ...
