"""When a resident last wrote: it decides whether a push may use a customer-service message.

WeChat lets an account answer freely for 48 hours after the resident's last message
(or menu click, or follow). The transcript already stores every inbound message with
its time, in one transaction with the turn, on every worker: reading it when a push is
due costs the hot path nothing (no extra Redis write per message), survives restarts
and Redis flushes, and is rare (one indexed query per push).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integration.models import Conversation, Direction, Message


class TranscriptWindow:
    """Reads a chat's last inbound message time from the transcript."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], channel: str) -> None:
        self._sessions = sessions
        self._channel = channel

    async def last_inbound(self, chat_id: str) -> datetime | None:
        """The time of the chat's newest inbound message; None if it never wrote."""
        query = (
            select(Message.created_at)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.channel == self._channel,
                Conversation.chat_id == chat_id,
                Message.direction == Direction.inbound.value,
            )
            .order_by(Message.id.desc())
            .limit(1)
        )
        async with self._sessions() as session:
            found: datetime | None = await session.scalar(query)
        return found
