"""What staff do with a handed-over conversation: take, claim, reply, hand back, close.

The console's inbox calls these (and audits each); they keep the three stores in
step: the handoff record (integration.handoff), the conversation's state (the
pipeline, under the conversation's lock) and the push queue to the resident.

A reply goes through the push queue on the resident's own channel. WeChat lets an
account write freely only within 48 hours of the resident's last message; outside
that window a free-text reply cannot be delivered (a template carries only fixed
fields), so it is refused with ``OutsideWindow`` and the console says so, rather
than queueing a push that would fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.wechat.channel import WeChatTiming
from bots.wechat.window import TranscriptWindow
from handlers.catalog import Catalog
from handlers.pipeline import Pipeline
from integration.handoff import (
    HandoffBook,
    HandoffError,
    HandoffRequest,
    HandoffView,
    queue_staff_reply,
)
from integration.metrics import HANDOFF_WAIT
from integration.models import HandoffStatus
from integration.notifications import queue_message

WECHAT = "wechat"


class OutsideWindow(HandoffError):
    """A WeChat reply outside the 48-hour customer-service window: not sent."""

    def __init__(self, last: datetime | None) -> None:
        super().__init__("outside WeChat's 48-hour window")
        self.last = last


@dataclass
class StaffDesk:
    """The staff actions on handed-over conversations (see the module docstring)."""

    book: HandoffBook
    pipeline: Pipeline
    sessions: async_sessionmaker[AsyncSession]
    catalog: Catalog
    window: timedelta = timedelta(seconds=WeChatTiming().window)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def claim(self, handoff_id: int, staff: str) -> HandoffView:
        """Take a waiting conversation; ``HandoffError`` when someone else has it."""
        before = await self.book.get(handoff_id)
        claimed = await self.book.claim(handoff_id, staff, self.clock())
        if before.status is HandoffStatus.waiting:
            HANDOFF_WAIT.observe(claimed.waited(self.clock()).total_seconds())
        return claimed

    async def take_over(self, channel: str, chat_id: str, user_id: str, staff: str) -> HandoffView:
        """Take a conversation the bot is having (no request from the resident)."""
        handoff = await self.book.open(
            HandoffRequest(channel, user_id, chat_id, "staff", staff, self.clock())
        )
        await self.pipeline.take_over(channel, chat_id, handoff.id)
        return await self.book.claim(handoff.id, staff, self.clock())

    async def window_open(self, handoff: HandoffView) -> bool:
        """Whether a free-text reply can reach the resident now (WeChat's window)."""
        if handoff.channel != WECHAT:
            return True
        last = await TranscriptWindow(self.sessions, WECHAT).last_inbound(handoff.chat_id)
        return last is not None and self.clock() - last < self.window

    async def reply(self, handoff_id: int, staff: str, text: str) -> HandoffView:
        """Queue a reply to the resident; ``OutsideWindow`` when WeChat would refuse it."""
        handoff = await self._held_by(handoff_id, staff)
        text = text.strip()
        if not text:
            raise HandoffError("an empty reply")
        if not await self.window_open(handoff):
            last = await TranscriptWindow(self.sessions, WECHAT).last_inbound(handoff.chat_id)
            raise OutsideWindow(last)
        await queue_staff_reply(self.sessions, handoff, staff, text, self.clock())
        return handoff

    async def hand_back(self, handoff_id: int, staff: str) -> HandoffView:
        """End the handoff; the bot takes over again and the paused flow resumes."""
        return await self._end(handoff_id, staff, "released", "handoff.returned")

    async def close(self, handoff_id: int, staff: str) -> HandoffView:
        """Close the conversation (the matter is dealt with); the bot answers again."""
        return await self._end(handoff_id, staff, "closed", "handoff.closed")

    async def _end(self, handoff_id: int, staff: str, how: str, word: str) -> HandoffView:
        handoff = await self._held_by(handoff_id, staff, waiting_too=True)
        closed = await self.book.close(handoff_id, how, self.clock())
        resumed = await self.pipeline.release(handoff.channel, handoff.chat_id)
        texts = [self.catalog(word), *(r.text for r in resumed)]
        # The resumed flow's question keeps its choices (提交/取消, 跳过 …) on the push.
        buttons = [(b.label, b.payload) for b in resumed[-1].buttons] if resumed else []
        if await self.window_open(handoff):
            async with self.sessions.begin() as session:
                connection = await session.connection()
                await queue_message(
                    connection,
                    handoff.channel,
                    handoff.chat_id,
                    "\n".join(texts),
                    (),
                    self.clock(),
                    buttons=buttons,
                )
        return closed

    async def _held_by(
        self, handoff_id: int, staff: str, *, waiting_too: bool = False
    ) -> HandoffView:
        handoff = await self.book.get(handoff_id)
        if handoff.status is HandoffStatus.claimed and handoff.claimed_by == staff:
            return handoff
        if waiting_too and handoff.status is HandoffStatus.waiting:
            return handoff
        raise HandoffError(f"handoff {handoff_id} is not held by {staff}")
