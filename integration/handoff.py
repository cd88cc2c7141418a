"""Conversations handed to a person: the handoff records, staff claims, and SLA alarms.

One row per handoff (``Handoff``): *waiting* until a staff member claims it, *claimed*
while they hold it, *closed* when they hand it back or close it, or the resident
withdraws. The messages themselves stay in the transcript (integration.transcript),
where the console reads everything the resident sent since ``opened_at``: text, photos
and pins alike.

A handoff waiting past its service level (``sla_due``: minutes in office hours, the
promised opening time off hours) raises one alarm: a durable column claimed under a
lease (integration.leases, as booking reminders are), which queues a note to the
on-duty staff member's own linked chat in the transaction that marks it alarmed.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.handoff_hours import StaffHours
from integration.leases import claim_leased
from integration.models import (
    Conversation,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    Notification,
    NotificationKind,
    StaffChat,
    utcnow,
)
from integration.notifications import queue_message

OPEN = (HandoffStatus.waiting.value, HandoffStatus.claimed.value)
CODE_TTL = timedelta(minutes=15)
STAFF_FIELD = "staff"  # a queued reply's field naming the staff member who wrote it


class HandoffError(IntegrationError):
    """A handoff action that cannot be done (already claimed, closed, unknown)."""


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    """A resident's conversation to hand to a person, and why."""

    channel: str
    user_id: str
    chat_id: str
    reason: str  # asked | fallbacks | rule | staff
    detail: str = ""  # the rule that fired and its words
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HandoffView:
    """One handoff as flows and the console read it."""

    id: int
    channel: str
    user_id: str
    chat_id: str
    status: HandoffStatus
    reason: str
    detail: str
    opened_at: datetime
    promised_at: datetime | None
    sla_due: datetime
    claimed_by: str
    last_message_at: datetime | None
    alarmed: bool

    @classmethod
    def of(cls, row: Handoff | Row[Any]) -> HandoffView:
        """The view of a stored row (an ORM object, or a claimed row's columns)."""
        return cls(
            id=row.id,
            channel=row.channel,
            user_id=row.user_id,
            chat_id=row.chat_id,
            status=HandoffStatus(row.status),
            reason=row.reason,
            detail=row.detail,
            opened_at=row.opened_at,
            promised_at=row.promised_at,
            sla_due=row.sla_due,
            claimed_by=row.claimed_by,
            last_message_at=row.last_message_at,
            alarmed=row.alarmed_at is not None,
        )

    def waited(self, now: datetime) -> timedelta:
        """How long the resident has been waiting for a person."""
        return max(now - self.opened_at, timedelta(0))

    def overdue(self, now: datetime) -> bool:
        """Whether it waits past its service level (a claimed one no longer waits)."""
        return self.status is HandoffStatus.waiting and now >= self.sla_due


@dataclass(frozen=True, slots=True)
class DueAlarm:
    """A handoff waiting past its service level, claimed by a worker (under a lease)."""

    handoff: HandoffView
    staff: str  # the on-duty member with a linked chat, or "" (flagged in the console only)
    channel: str
    chat_id: str


class HandoffBook:
    """The handoff records in the relational store."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hours: StaffHours,
        sla: timedelta = timedelta(minutes=5),
    ) -> None:
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.hours = hours
        self.sla = sla

    async def open(self, request: HandoffRequest) -> HandoffView:
        """Open a handoff (or return the chat's open one); off hours with a promised time."""
        now = request.at or utcnow()
        current = await self.current(request.channel, request.chat_id)
        if current is not None:
            return current
        opening = self.hours.next_opening(now)
        promised = None if self.hours.is_open(now) else opening
        row = Handoff(
            channel=request.channel,
            user_id=request.user_id,
            chat_id=request.chat_id,
            status=HandoffStatus.waiting.value,
            reason=request.reason,
            detail=request.detail[:256],
            opened_at=now,
            promised_at=promised,
            sla_due=promised if promised is not None else now + self.sla,
            last_message_at=now,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return HandoffView.of(row)

    async def current(self, channel: str, chat_id: str) -> HandoffView | None:
        """The chat's open (waiting or claimed) handoff, if any."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(Handoff)
                .where(
                    Handoff.channel == channel,
                    Handoff.chat_id == chat_id,
                    Handoff.status.in_(OPEN),
                )
                .order_by(Handoff.id.desc())
                .limit(1)
            )
        return HandoffView.of(row) if row is not None else None

    async def get(self, handoff_id: int) -> HandoffView:
        """One handoff by id; raises ``HandoffError`` when there is none."""
        async with self._sessions() as session:
            row = await session.get(Handoff, handoff_id)
        if row is None:
            raise HandoffError(f"no handoff {handoff_id}")
        return HandoffView.of(row)

    async def open_list(self) -> list[HandoffView]:
        """Every waiting or claimed handoff, oldest first (the inbox)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Handoff).where(Handoff.status.in_(OPEN)).order_by(Handoff.opened_at)
            )
            return [HandoffView.of(row) for row in rows]

    async def touch(self, handoff_id: int, at: datetime) -> bool:
        """Note a message from the resident; False when the handoff is no longer open."""
        return await self._set(handoff_id, OPEN, last_message_at=at)

    async def claim(self, handoff_id: int, staff: str, at: datetime | None = None) -> HandoffView:
        """Take a waiting handoff; raises ``HandoffError`` when someone else has it."""
        now = at or utcnow()
        async with self._sessions.begin() as session:
            taken = await session.execute(
                update(Handoff)
                .where(
                    Handoff.id == handoff_id,
                    (Handoff.status == HandoffStatus.waiting.value)
                    | (
                        (Handoff.status == HandoffStatus.claimed.value)
                        & (Handoff.claimed_by == staff)
                    ),
                )
                .values(status=HandoffStatus.claimed.value, claimed_by=staff, claimed_at=now)
            )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            current = await self.get(handoff_id)
            raise HandoffError(
                f"handoff {handoff_id} is {current.status.value}"
                + (f" by {current.claimed_by}" if current.claimed_by else "")
            )
        return await self.get(handoff_id)

    async def close(self, handoff_id: int, how: str, at: datetime | None = None) -> HandoffView:
        """Close an open handoff (``how``: released, closed, withdrawn)."""
        now = at or utcnow()
        done = await self._set(
            handoff_id, OPEN, status=HandoffStatus.closed.value, closed_at=now, closed_how=how
        )
        if not done:
            raise HandoffError(f"handoff {handoff_id} is not open")
        return await self.get(handoff_id)

    async def withdraw(self, channel: str, chat_id: str, at: datetime | None = None) -> bool:
        """The resident no longer waits (取消): close the chat's open handoff."""
        current = await self.current(channel, chat_id)
        if current is None:
            return False
        await self._set(
            current.id,
            OPEN,
            status=HandoffStatus.closed.value,
            closed_at=at or utcnow(),
            closed_how="withdrawn",
        )
        return True

    async def waiting_stats(self, now: datetime | None = None) -> tuple[int, float]:
        """How many wait for a person, and the oldest one's wait in seconds (0: none)."""
        now = now or utcnow()
        async with self._sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(Handoff.opened_at)).where(
                        Handoff.status == HandoffStatus.waiting.value
                    )
                )
            ).one()
        if oldest is not None and oldest.tzinfo is None:  # SQLite's aggregate is naive
            oldest = oldest.replace(tzinfo=now.tzinfo)
        return int(count), (now - oldest).total_seconds() if oldest is not None else 0.0

    # -- service-level alarms -----------------------------------------------------------

    async def claim_alarms(
        self, now: datetime, *, limit: int = 50, lease: timedelta = timedelta(minutes=5)
    ) -> list[DueAlarm]:
        """Claim waiting handoffs past their service level and not yet alarmed."""
        rows = await claim_leased(
            self._engine,
            Handoff,
            (
                Handoff.status == HandoffStatus.waiting.value,
                Handoff.alarmed_at.is_(None),
                Handoff.sla_due <= now,
            ),
            Handoff.alarm_lease,
            (Handoff.sla_due, Handoff.id),
            now,
            lease=lease,
            limit=limit,
        )
        duty = await self.on_duty()
        return [
            DueAlarm(
                HandoffView.of(row),
                *(duty or ("", "", "")),
            )
            for row in rows
        ]

    async def raise_alarm(self, alarm: DueAlarm, text: str, now: datetime) -> bool:
        """Mark the handoff alarmed and queue the on-duty note, once, in one transaction.

        False when it was alarmed already, or claimed or closed meanwhile.
        """
        async with self._engine.begin() as connection:
            marked = await connection.execute(
                update(Handoff)
                .where(
                    Handoff.id == alarm.handoff.id,
                    Handoff.alarmed_at.is_(None),
                    Handoff.status == HandoffStatus.waiting.value,
                )
                .values(alarmed_at=now, alarm_lease=None)
            )
            if marked.rowcount != 1:
                return False
            if alarm.chat_id:
                await queue_message(connection, alarm.channel, alarm.chat_id, text, (), now)
        return True

    # -- staff members' chats and duty ------------------------------------------------------

    async def link_code(self, staff: str, at: datetime | None = None) -> str:
        """A fresh one-time code the staff member sends in chat to link that chat."""
        now = at or utcnow()
        code = f"{secrets.randbelow(10**6):06d}"
        async with self._sessions.begin() as session:
            row = await session.get(StaffChat, staff)
            if row is None:
                row = StaffChat(staff=staff, channel="", chat_id="", on_duty=False)
                session.add(row)
            row.code, row.code_expires = code, now + CODE_TTL
        return code

    async def redeem(
        self, code: str, channel: str, chat_id: str, at: datetime | None = None
    ) -> str:
        """Link the chat that sent a valid code; the staff member's name, or "" if invalid."""
        now = at or utcnow()
        if not code.isdigit():
            return ""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(StaffChat).where(StaffChat.code == code, StaffChat.code_expires > now)
            )
            if row is None:
                return ""
            row.channel, row.chat_id, row.code, row.code_expires = channel, chat_id, "", None
            return row.staff

    async def set_duty(self, staff: str) -> None:
        """Make ``staff`` the one on duty (everyone else off)."""
        async with self._sessions.begin() as session:
            await session.execute(update(StaffChat).values(on_duty=False))
            row = await session.get(StaffChat, staff)
            if row is None:
                session.add(StaffChat(staff=staff, channel="", chat_id="", code="", on_duty=True))
            else:
                row.on_duty = True

    async def on_duty(self) -> tuple[str, str, str] | None:
        """The on-duty member with a linked chat: (staff, channel, chat id)."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(StaffChat).where(StaffChat.on_duty.is_(True), StaffChat.chat_id != "")
            )
        return (row.staff, row.channel, row.chat_id) if row is not None else None

    async def _set(self, handoff_id: int, statuses: tuple[str, ...], **values: object) -> bool:
        async with self._sessions.begin() as session:
            done = await session.execute(
                update(Handoff)
                .where(Handoff.id == handoff_id, Handoff.status.in_(statuses))
                .values(**values)
            )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a handed-over conversation as staff read it.

    ``who``: resident, bot or staff; ``intent``/``confidence`` what the model read of a
    resident's message; ``state`` a staff reply's delivery (pending, sent, failed).
    """

    who: str
    text: str
    at: datetime
    intent: str | None = None
    confidence: float | None = None
    media: tuple[str, ...] = ()
    location: str | None = None
    state: str = ""


async def conversation_lines(
    sessions: async_sessionmaker[AsyncSession], channel: str, chat_id: str, limit: int = 200
) -> list[Line]:
    """A chat's transcript with the NLU reading of each message, and staff replies.

    Staff replies travel through the push queue (``queue_message``, with a ``staff``
    field naming who wrote), not the turn's transcript, so they are read from there
    and merged in by time, with the bot's own later pushes (reminders, late replies).
    """
    messages = (
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.channel == channel, Conversation.chat_id == chat_id)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    replies = (
        select(Notification)
        .where(
            Notification.channel == channel,
            Notification.chat_id == chat_id,
            Notification.kind == NotificationKind.reply.value,
            Notification.event_id.is_(None),
        )
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    async with sessions() as session:
        lines = [
            Line(
                "resident" if m.direction == Direction.inbound.value else "bot",
                m.text,
                m.created_at,
                m.intent,
                m.confidence,
                tuple(ref for ref in m.media_ref.split(",") if ref),
                m.location_label or "📍" if m.latitude is not None else None,
            )
            for m in await session.scalars(messages)
        ]
        lines += [
            Line(_sender(n.fields), n.text, n.created_at, state=n.state)
            for n in await session.scalars(replies)
        ]
    return sorted(lines, key=lambda line: line.at)[-limit:]


def _sender(fields: str) -> str:
    """Who wrote a queued reply: ``staff`` when its fields name a staff member."""
    pairs = json.loads(fields) if fields else []
    return "staff" if any(key == STAFF_FIELD for key, _ in pairs) else "bot"


async def queue_staff_reply(
    sessions: async_sessionmaker[AsyncSession],
    handoff: HandoffView,
    staff: str,
    text: str,
    now: datetime | None = None,
) -> None:
    """Queue a staff member's reply to the resident's chat (delivered by the push pump)."""
    async with sessions.begin() as session:
        connection = await session.connection()
        await queue_message(
            connection, handoff.channel, handoff.chat_id, text, ((STAFF_FIELD, staff),), now
        )
