"""Channel-agnostic messages: what every channel turns its updates into, and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class Location:
    """A location pin: coordinates (WGS-84 or GCJ-02, as the channel gives them) and a label."""

    latitude: float
    longitude: float
    label: str = ""


@dataclass(frozen=True, slots=True)
class Media:
    """A photo or other attachment, referenced by the channel's own id or a URL we can fetch."""

    kind: str  # "image", "voice", "video", "file"
    ref: str  # platform media id, file_id, or a local /media/... path
    url: str = ""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One resident message, as the pipeline sees it whatever channel it came from.

    ``payload`` carries the machine value of a pressed quick-reply button, so flows
    need not guess from the label; ``text`` always holds what the resident saw or typed.
    """

    channel: str
    user_id: str
    chat_id: str
    message_id: str
    text: str = ""
    location: Location | None = None
    media: tuple[Media, ...] = ()
    payload: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def conversation(self) -> str:
        """The key that identifies this resident's conversation on its channel."""
        return f"{self.channel}:{self.chat_id}"


@dataclass(frozen=True, slots=True)
class Button:
    """A quick-reply choice: the label shown, and the payload sent back when pressed."""

    label: str
    payload: str


@dataclass(frozen=True, slots=True)
class Outbound:
    """One bot message: text, optional quick-reply buttons and media.

    ``data`` holds the message's facts as (key, value) pairs for channels that fill a
    message template instead of sending text (WeChat's status template: number,
    status, note, time); empty for ordinary replies.
    """

    text: str
    buttons: tuple[Button, ...] = ()
    media: tuple[Media, ...] = ()
    data: tuple[tuple[str, str], ...] = ()


UpdateT_contra = TypeVar("UpdateT_contra", contravariant=True)


class Channel(Protocol[UpdateT_contra]):
    """A messaging channel: turns platform updates into Inbound and delivers Outbound.

    A reply answers an Inbound on the same request where the platform allows it
    (WeChat's passive reply, a WebSocket frame); a push is sent later, unprompted,
    such as a case status update. ``push`` raises ``DeliveryError`` when it fails.
    """

    name: str

    def to_inbound(self, update: UpdateT_contra) -> Inbound | None:
        """Translate one platform update; None when it carries nothing for the pipeline."""
        ...

    async def reply(self, inbound: Inbound, messages: list[Outbound]) -> None:
        """Answer the resident who sent ``inbound``."""
        ...

    async def push(self, chat_id: str, message: Outbound) -> None:
        """Send an unprompted message to a chat."""
        ...


class DeliveryError(Exception):
    """A push could not be delivered now.

    ``retryable`` says whether trying again later may succeed; ``offline`` marks a
    recipient who is simply not connected (web chat, terminal), which is not a failure.
    """

    def __init__(self, reason: str, *, retryable: bool = True, offline: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.offline = offline
