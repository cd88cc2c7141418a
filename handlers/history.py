"""What a resident sees again when they come back to a chat: its recent history.

The transcript holds what the resident wrote and what the bot answered; the push
queue holds the status updates delivered. Both are merged by time into one list the
web chat sends when a page connects, so a reload or a second tab shows the
conversation as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from handlers.messages import Outbound
from integration.history import TranscriptTail
from integration.models import Direction
from integration.notifications import NotificationQueue, PendingPush


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One line of a chat's history.

    ``key`` is unique in the chat (``m<id>`` for transcript lines, ``n<id>`` for
    pushes, the same id a live push carries). ``message_id`` is the resident's message
    id on their own lines and, on the bot's, the id of the message answered.
    """

    key: str
    sender: str  # "resident", "bot" or "push"
    text: str
    time: datetime
    message_id: str = ""
    media: tuple[str, ...] = ()
    location: str | None = None  # a pin's label ("" for an unlabelled pin)


class ChatHistory:
    """Reads a chat's recent history from the transcript and the push queue."""

    def __init__(
        self,
        tail: TranscriptTail,
        queue: NotificationQueue,
        render: Callable[[PendingPush], Outbound],
    ) -> None:
        self._tail = tail
        self._queue = queue
        self._render = render

    async def recent(self, channel: str, chat_id: str, limit: int = 100) -> list[HistoryItem]:
        """The newest ``limit`` lines of the chat, oldest first."""
        items = [
            HistoryItem(
                key=f"m{entry.id}",
                sender="resident" if entry.direction is Direction.inbound else "bot",
                text=entry.text,
                time=entry.time,
                message_id=entry.message_id,
                media=entry.media,
                location=entry.location_label,
            )
            for entry in await self._tail.recent(channel, chat_id, limit)
        ]
        items += [
            HistoryItem(
                key=push_key(sent.push.id),
                sender="push",
                text=self._render(sent.push).text,
                time=sent.sent_at,
            )
            for sent in await self._queue.sent_to(channel, chat_id, limit)
        ]
        items.sort(key=lambda item: item.time)
        return items[-limit:]


def push_key(push_id: int) -> str:
    """The history key of a push, which its live frame carries too."""
    return f"n{push_id}"
