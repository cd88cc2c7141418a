"""Conversation state and the protocols of the stores that keep it between messages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from handlers.messages import Button
from integration.state.types import Admission, Ticket


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
    misunderstood: int = 0  # messages in a row the NLU could not place

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
            misunderstood=int(data.get("misunderstood") or 0),
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

    @property
    def empty(self) -> bool:
        """Whether there is nothing worth saving."""
        return self.idle and not self.buttons and not self.misunderstood


class ConversationStore(Protocol):
    """Conversation state and message admission, in process memory or in Redis.

    One turn is ``enter`` → work → ``leave`` (or ``abort`` on failure). Entering claims
    the message id, takes the conversation's lock, counts the sender's rate and loads
    the state; leaving saves the state, releases the lock and settles the claim. Each
    is one round trip to Redis, not six.
    """

    async def enter(self, ticket: Ticket) -> Admission | None:
        """Begin a turn; None when the message was already claimed by another delivery.

        Waits for the conversation's lock and raises TimeoutError when it cannot get it.
        """
        ...

    async def leave(self, ticket: Ticket, state: dict[str, Any] | None, *, changed: bool) -> None:
        """End a turn: save ``state`` (None deletes it) if ``changed``, unlock, settle."""
        ...

    async def abort(self, ticket: Ticket) -> None:
        """Give up a turn: unlock and drop the claim so a redelivery is processed."""
        ...
