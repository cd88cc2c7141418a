"""Conversation state and the protocols of the stores that keep it between messages.

A conversation is a stack of flows. The active flow's frame (``flow``, ``step``,
``slots``, ``reprompts``) sits on the state itself; flows interrupted by the resident
(转人工, 我的进度, a new question) wait in ``paused``, most recent last, and the router
resumes them when the interruption is over.

The state lives in Redis for every resident, so its saved form is compact: keys that
hold their default value are left out (an idle conversation saves nothing at all).
States saved by earlier versions, with every key written out, still load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from handlers.messages import Button
from integration.state.types import Admission, Ticket

MAX_PAUSED = 3  # deeper interruptions forget the oldest paused flow


@dataclass(slots=True)
class Frame:
    """One flow's place in the conversation: its name, step, slots and reprompt count."""

    flow: str
    step: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    reprompts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The compact saved form (defaults left out)."""
        data: dict[str, Any] = {"flow": self.flow}
        if self.step is not None:
            data["step"] = self.step
        if self.slots:
            data["slots"] = self.slots
        if self.reprompts:
            data["reprompts"] = self.reprompts
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Frame:
        """Rebuild a frame saved by ``to_dict``."""
        return cls(
            flow=str(data["flow"]),
            step=data.get("step"),
            slots=dict(data.get("slots") or {}),
            reprompts=int(data.get("reprompts") or 0),
        )


@dataclass(slots=True)
class ConversationState:
    """Where one resident's conversation stands.

    - ``flow``/``step``/``slots``/``reprompts``: the active flow's frame (None: idle);
    - ``paused``: interrupted flows waiting to be resumed, most recent last;
    - ``buttons``: the quick replies last offered, so a resident on any channel can
      answer with a button's label or its number instead of pressing it;
    - ``strikes``: abusive or meaningless messages in a row (handlers.patience);
    - ``quiet_until``: POSIX time until which such messages get no answer;
    - ``fallbacks``: messages in a row the model could not place (the second one hands
      the conversation to a person, handlers.flows.handoff);
    - ``recent``: what a finished flow leaves for the next one, for a while: the place
      of the last report (``place``, with ``at``, its POSIX time), offered as the
      place of the next.
    """

    flow: str | None = None
    step: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    reprompts: int = 0
    buttons: list[tuple[str, str]] = field(default_factory=list)
    paused: list[Frame] = field(default_factory=list)
    strikes: int = 0
    quiet_until: float = 0.0
    fallbacks: int = 0
    recent: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The compact, JSON-safe form for the store (defaults left out)."""
        data: dict[str, Any] = {}
        if self.flow is not None:
            data.update(Frame(self.flow, self.step, self.slots, self.reprompts).to_dict())
        if self.buttons:
            data["buttons"] = [list(b) for b in self.buttons]
        if self.paused:
            data["paused"] = [frame.to_dict() for frame in self.paused]
        if self.strikes:
            data["strikes"] = self.strikes
        if self.quiet_until:
            data["quiet_until"] = self.quiet_until
        if self.fallbacks:
            data["fallbacks"] = self.fallbacks
        if self.recent:
            data["recent"] = self.recent
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConversationState:
        """Rebuild a state saved by ``to_dict`` or by earlier versions (unknown keys ignored)."""
        if not data:
            return cls()
        return cls(
            flow=data.get("flow"),
            step=data.get("step"),
            slots=dict(data.get("slots") or {}),
            reprompts=int(data.get("reprompts") or 0),
            buttons=[(str(a), str(b)) for a, b in data.get("buttons") or []],
            paused=[Frame.from_dict(f) for f in data.get("paused") or [] if f.get("flow")],
            strikes=int(data.get("strikes") or 0),
            quiet_until=float(data.get("quiet_until") or 0.0),
            fallbacks=int(data.get("fallbacks") or 0),
            recent=dict(data.get("recent") or {}),
        )

    # -- the flow stack ----------------------------------------------------------------

    @property
    def frame(self) -> Frame | None:
        """The active flow's frame (a copy of its fields), None when idle."""
        if self.flow is None:
            return None
        return Frame(self.flow, self.step, self.slots, self.reprompts)

    def begin(
        self, flow: str, step: str | None = None, slots: dict[str, Any] | None = None
    ) -> None:
        """Make ``flow`` the active flow at ``step`` with fresh ``slots``."""
        self.flow, self.step, self.slots, self.reprompts = flow, step, dict(slots or {}), 0

    def finish(self) -> None:
        """End the active flow (paused flows stay paused until the router resumes one)."""
        self.flow, self.step, self.slots, self.reprompts = None, None, {}, 0

    def pause(self) -> None:
        """Put the active flow aside to be resumed later; the conversation becomes idle."""
        frame = self.frame
        if frame is None:
            return
        self.wait(frame)
        self.finish()

    def wait(self, frame: Frame) -> None:
        """Put ``frame`` aside to be taken up once the active flow ends (a question asked
        beside a report: 我想问一下老年证怎么办还有我家楼下路灯坏了)."""
        self.paused.append(frame)
        del self.paused[:-MAX_PAUSED]

    def unpause(self) -> bool:
        """Make the most recently paused flow active again; False when none waits."""
        if self.flow is not None or not self.paused:
            return False
        frame = self.paused.pop()
        self.flow, self.step, self.slots, self.reprompts = (
            frame.flow,
            frame.step,
            frame.slots,
            frame.reprompts,
        )
        return True

    # -- buttons -------------------------------------------------------------------------

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

    def label(self, payload: str) -> str:
        """The label of the offered button with ``payload``; empty when none has it."""
        return next((label for label, offered in self.buttons if offered == payload), "")

    @property
    def idle(self) -> bool:
        """Whether no flow is active (flows may still be paused)."""
        return self.flow is None

    @property
    def empty(self) -> bool:
        """Whether there is nothing worth saving."""
        return not self.to_dict()


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
