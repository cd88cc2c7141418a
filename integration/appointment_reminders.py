"""Day-before reminders of bookings: claimed under a lease, each push queued once.

The due time is a column of the booking (``remind_at``). A worker claims due ones by
moving their lease forward (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, as the outbox
claims jobs), then queues each push in the transaction that marks the booking
reminded, conditional on it not being reminded yet: a worker that dies holding some
only delays them, and a late one queues nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.appointments import Booking
from integration.models import (
    Appointment,
    AppointmentStatus,
)
from integration.notifications import queue_message


async def lease_due(
    connection: AsyncConnection,
    due: Any,
    model: Any,
    now: datetime,
    lease: timedelta,
) -> list[Any]:
    """Claim the rows ``due`` selects by moving their ``remind_lease`` to ``now + lease``.

    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never claim one row; the
    one mechanism of every reminder (appointments, volunteers' service items).
    """
    if connection.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = (await connection.execute(due)).all()
    if rows:
        await connection.execute(
            update(model)
            .where(model.id.in_([row.id for row in rows]))
            .values(remind_lease=now + lease)
        )
    return list(rows)


@dataclass(frozen=True, slots=True)
class DueReminder:
    """A booking whose day-before reminder a worker has claimed (under a lease)."""

    id: int
    booking: Booking


class ReminderQueue:
    """The bookings' reminders, as durable rows a worker claims."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def claim_reminders(
        self, now: datetime, *, limit: int = 50, lease: timedelta = timedelta(minutes=5)
    ) -> list[DueReminder]:
        """Claim due reminders for ``lease`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).

        A worker that dies holding some only delays them: once the lease runs out,
        the next worker claims them again. Reminders of bookings already begun are
        never claimed.
        """
        due = (
            select(Appointment)
            .where(
                Appointment.status == AppointmentStatus.booked.value,
                Appointment.reminded_at.is_(None),
                Appointment.remind_at <= now,
                Appointment.starts_at > now,
                (Appointment.remind_lease.is_(None)) | (Appointment.remind_lease < now),
            )
            .order_by(Appointment.remind_at, Appointment.id)
            .limit(limit)
        )
        async with self._engine.begin() as connection:
            rows = await lease_due(connection, due, Appointment, now, lease)
        return [DueReminder(row.id, Booking.of(row)) for row in rows]

    async def queue_reminder(
        self,
        reminder: DueReminder,
        text: str,
        now: datetime,
        fields: Sequence[tuple[str, str]] = (),
    ) -> bool:
        """Queue the reminder's push once: False when it was queued already or is moot.

        The booking is marked reminded and the push row written in one transaction,
        so a late worker whose lease ran out cannot queue a second copy.
        """
        async with self._engine.begin() as connection:
            marked = await connection.execute(
                update(Appointment)
                .where(
                    Appointment.id == reminder.id,
                    Appointment.reminded_at.is_(None),
                    Appointment.status == AppointmentStatus.booked.value,
                    Appointment.starts_at == reminder.booking.starts_at,
                )
                .values(reminded_at=now, remind_lease=None)
            )
            if marked.rowcount != 1:
                return False
            booking = reminder.booking
            await queue_message(connection, booking.channel, booking.chat_id, text, fields, now)
        return True
