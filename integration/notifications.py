"""The durable queue of pushes to residents: case status changes, and late replies.

Rows are written in the same transaction as the change they report. A deliverer claims
due rows with a lease (``next_attempt_at`` moved forward), so several workers never
send one row at once and a worker that dies mid-send only delays the push: delivery is
at least once, and ``sent`` rows are never sent again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from integration.models import (
    Case,
    CaseEvent,
    CaseStatus,
    Notification,
    NotificationKind,
    NotificationState,
    utcnow,
)
from integration.privacy import mask


@dataclass(frozen=True, slots=True)
class PendingPush:
    """A claimed notification with everything needed to render and send it."""

    id: int
    channel: str
    chat_id: str
    attempts: int
    case_number: str
    category: str
    status: CaseStatus | None  # None for a reply
    note: str
    changed_at: datetime
    kind: NotificationKind = NotificationKind.status
    text: str = ""  # a reply's words
    fields: tuple[tuple[str, str], ...] = ()  # a reply's facts, for a channel's template
    buttons: tuple[tuple[str, str], ...] = ()  # a reply's quick replies: (label, payload)


@dataclass(frozen=True, slots=True)
class SentPush:
    """A push already delivered, and when."""

    push: PendingPush
    sent_at: datetime


def _pending(n: Notification, e: CaseEvent | None, c: Case | None) -> PendingPush:
    """A notification row, with its change and case, as a PendingPush.

    A follower's copy (any chat but the reporter's) has phone and ID numbers in the
    staff note masked: the note may be meant for the reporter (a call-back number, a
    name), and a follower is a neighbour who joined the case, not its owner.
    """
    note = e.note if e else ""
    if c is not None and (n.channel, n.chat_id) != (c.channel, c.chat_id):
        note = mask(note)
    return PendingPush(
        id=n.id,
        channel=n.channel,
        chat_id=n.chat_id,
        attempts=n.attempts,
        case_number=c.number if c else "",
        category=c.category if c else "",
        status=CaseStatus(e.status) if e else None,
        note=note,
        changed_at=e.created_at if e else n.created_at,
        kind=NotificationKind(n.kind),
        text=n.text,
        fields=_pairs(n.fields),
        buttons=_pairs(n.buttons),
    )


def _pairs(stored: str) -> tuple[tuple[str, str], ...]:
    """Pairs stored as JSON [[a, b], ...] ("" for none)."""
    return tuple((str(a), str(b)) for a, b in json.loads(stored)) if stored else ()


def _stored(pairs: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(pair) for pair in pairs], ensure_ascii=False) if pairs else ""


class NotificationQueue:
    """Claims, completes and reschedules queued pushes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim_due(
        self, channels: Collection[str], *, limit: int = 50, lease: float = 60.0
    ) -> list[PendingPush]:
        """Take up to ``limit`` due pushes for ``channels``, oldest first, leasing them."""
        now = utcnow()
        query = (
            select(Notification, CaseEvent, Case)
            .outerjoin(CaseEvent, CaseEvent.id == Notification.event_id)  # none for replies
            .outerjoin(Case, Case.id == CaseEvent.case_id)
            .where(
                Notification.state == NotificationState.pending.value,
                Notification.channel.in_(list(channels)),
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.id)
            .limit(limit)
            .with_for_update(of=Notification, skip_locked=True)
        )
        async with self._sessions.begin() as session:
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(
                    update(Notification)
                    .where(Notification.id.in_([n.id for n, _, _ in rows]))
                    .values(next_attempt_at=now + timedelta(seconds=lease))
                )
        return [_pending(n, e, c) for n, e, c in rows]

    async def sent_to(self, channel: str, chat_id: str, limit: int = 50) -> list[SentPush]:
        """The newest pushes delivered to a chat, oldest first (a page's history)."""
        query = (
            select(Notification, CaseEvent, Case)
            .outerjoin(CaseEvent, CaseEvent.id == Notification.event_id)
            .outerjoin(Case, Case.id == CaseEvent.case_id)
            .where(
                Notification.state == NotificationState.sent.value,
                Notification.channel == channel,
                Notification.chat_id == chat_id,
            )
            .order_by(Notification.id.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            SentPush(_pending(n, e, c), n.sent_at or n.created_at) for n, e, c in reversed(rows)
        ]

    async def queue_reply(self, channel: str, chat_id: str, text: str) -> None:
        """Queue an answer that could not be sent when it was ready; delivered like a push."""
        async with self._sessions() as session, session.begin():
            connection = await session.connection()
            await queue_message(connection, channel, chat_id, text)

    async def mark_sent(self, push_id: int) -> None:
        """Record a delivered push."""
        await self._set(
            push_id, state=NotificationState.sent.value, sent_at=utcnow(), last_error=""
        )

    async def retry_later(
        self, push_id: int, error: str, delay: float, *, count_attempt: bool = True
    ) -> None:
        """Reschedule a push; an offline recipient does not use up an attempt."""
        values: dict[str, object] = {
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
            "last_error": error[:500],
        }
        if count_attempt:
            values["attempts"] = Notification.attempts + 1
        await self._set(push_id, **values)

    async def mark_failed(self, push_id: int, error: str) -> None:
        """Give up on a push; it stays visible to staff with its last error."""
        await self._set(
            push_id,
            state=NotificationState.failed.value,
            attempts=Notification.attempts + 1,
            last_error=error[:500],
        )

    async def release(self, channel: str, chat_id: str) -> None:
        """Make a chat's pending pushes due now (its recipient just came online)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(Notification)
                .where(
                    Notification.state == NotificationState.pending.value,
                    Notification.channel == channel,
                    Notification.chat_id == chat_id,
                )
                .values(next_attempt_at=utcnow())
            )

    async def _set(self, push_id: int, **values: object) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Notification).where(Notification.id == push_id).values(**values)
            )


async def queue_message(
    connection: AsyncConnection,
    channel: str,
    chat_id: str,
    text: str,
    fields: Sequence[tuple[str, str]] = (),
    now: datetime | None = None,
    buttons: Sequence[tuple[str, str]] = (),
) -> None:
    """Queue a message to a resident that no case change carries (a booking reminder, a
    staff cancellation, an approval), in the caller's transaction; the pump delivers it
    like a push. ``fields`` are its facts for a channel's template (WeChat's status
    template: number, status, note, time), used outside WeChat's 48-hour window;
    ``buttons`` its quick replies as (label, payload) pairs.
    """
    now = now or utcnow()
    await connection.execute(
        insert(Notification).values(
            event_id=None,
            channel=channel,
            chat_id=chat_id,
            kind=NotificationKind.reply.value,
            text=text,
            fields=_stored(fields),
            buttons=_stored(buttons),
            state=NotificationState.pending.value,
            attempts=0,
            next_attempt_at=now,
            last_error="",
            created_at=now,
        )
    )
