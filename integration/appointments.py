"""The appointment book: booking, cancelling and moving slots, safely under concurrency.

Each slot of a window is one ``appointment_slots`` row; a booking raises its ``taken``
with a conditional ``UPDATE … SET taken = taken + 1 WHERE taken < capacity`` in the
same transaction that writes the booking. PostgreSQL row locks make the racing
updates queue up and re-check the condition; SQLite serialises writers. Either way a
slot never holds more than its capacity, and a full slot raises ``SlotFull``.

A resident only ever reaches their own bookings: every resident-side query filters by
channel and user, whatever booking number was typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.models import (
    Appointment,
    AppointmentCounter,
    AppointmentSlot,
    AppointmentStatus,
    utcnow,
)
from integration.notifications import queue_message
from integration.services.calendar import LOCAL_TZ
from integration.upsert import ensure_resident, insert_for, next_in_day

NUMBER_PREFIX = "YY"


class AppointmentError(IntegrationError):
    """A booking could not be made or changed."""


class SlotFull(AppointmentError):
    """The slot already holds its capacity."""

    def __init__(self, window: str, starts_at: datetime) -> None:
        super().__init__(f"slot {window} {starts_at.isoformat()} is full")
        self.window = window
        self.starts_at = starts_at


class AppointmentNotFound(AppointmentError):
    """No such booking, or not one the asker may see."""

    def __init__(self, number: str) -> None:
        super().__init__(f"no appointment {number}")
        self.number = number


@dataclass(frozen=True, slots=True)
class BookingDraft:
    """What the booking flow knows when it asks for a slot."""

    channel: str
    user_id: str
    chat_id: str
    service: str
    window: str
    starts_at: datetime
    minutes: int
    capacity: int
    remind_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Booking:
    """A read-only snapshot of a booking."""

    number: str
    channel: str
    user_id: str
    chat_id: str
    service: str
    window: str
    starts_at: datetime
    minutes: int
    status: AppointmentStatus
    note: str = ""

    @classmethod
    def of(cls, row: Any) -> Booking:
        return cls(
            number=row.number,
            channel=row.channel,
            user_id=row.user_id,
            chat_id=row.chat_id,
            service=row.service,
            window=row.window,
            starts_at=row.starts_at,
            minutes=row.minutes,
            status=AppointmentStatus(row.status),
            note=row.note,
        )


def format_number(day: date, sequence: int) -> str:
    """A booking number: YY, the appointment's local date as yymmdd, the day's sequence."""
    return f"{NUMBER_PREFIX}{day:%y%m%d}{sequence:04d}"


class AppointmentBook:
    """Bookings in the relational store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def book(self, draft: BookingDraft) -> Booking:
        """Take a place in the slot and write the booking, in one transaction."""
        now = utcnow()
        async with self._engine.begin() as connection:
            await ensure_resident(connection, draft.channel, draft.user_id)  # for forgetting
            await _take(connection, draft.window, draft.starts_at, draft.capacity)
            day = draft.starts_at.astimezone(LOCAL_TZ).date()
            number = format_number(day, await next_in_day(connection, AppointmentCounter, day))
            await connection.execute(
                insert_for(connection, Appointment).values(
                    number=number,
                    channel=draft.channel,
                    user_id=draft.user_id,
                    chat_id=draft.chat_id,
                    service=draft.service,
                    window=draft.window,
                    starts_at=draft.starts_at,
                    minutes=draft.minutes,
                    status=AppointmentStatus.booked.value,
                    note="",
                    remind_at=draft.remind_at,
                    created_at=now,
                    updated_at=now,
                )
            )
        return Booking(
            number,
            draft.channel,
            draft.user_id,
            draft.chat_id,
            draft.service,
            draft.window,
            draft.starts_at,
            draft.minutes,
            AppointmentStatus.booked,
        )

    async def taken(self, window: str, first: datetime, last: datetime) -> dict[datetime, int]:
        """Places taken in a window's slots starting from ``first`` up to ``last``."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(AppointmentSlot.starts_at, AppointmentSlot.taken).where(
                    AppointmentSlot.window == window,
                    AppointmentSlot.starts_at >= first,
                    AppointmentSlot.starts_at <= last,
                )
            )
            return {_utc(starts): taken for starts, taken in rows}

    async def upcoming(self, channel: str, user_id: str, now: datetime) -> list[Booking]:
        """A resident's own bookings not yet past, soonest first."""
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(Appointment)
                .where(
                    Appointment.channel == channel,
                    Appointment.user_id == user_id,
                    Appointment.status == AppointmentStatus.booked.value,
                    Appointment.starts_at > now,
                )
                .order_by(Appointment.starts_at, Appointment.id)
            )
            return [Booking.of(row) for row in rows]

    async def cancel(self, number: str, channel: str, user_id: str) -> Booking:
        """Cancel a resident's own booking and release its place."""
        async with self._engine.begin() as connection:
            row = await _own(connection, number, channel, user_id)
            await _release(connection, row)
            await _set_status(connection, row.id, AppointmentStatus.cancelled, "")
        return Booking.of(row)

    async def move(
        self, number: str, channel: str, user_id: str, starts_at: datetime, capacity: int
    ) -> Booking:
        """Move a resident's own booking to another slot of its window (``SlotFull`` if full).

        The new place is taken before the old one is released, in one transaction: a
        resident who cannot move keeps the booking they had.
        """
        async with self._engine.begin() as connection:
            row = await _own(connection, number, channel, user_id)
            await _take(connection, row.window, starts_at, capacity)
            await _release(connection, row)
            remind_at = None
            if row.remind_at is not None:
                remind_at = row.remind_at + (starts_at - _utc(row.starts_at))
            await connection.execute(
                update(Appointment)
                .where(Appointment.id == row.id)
                .values(
                    starts_at=starts_at,
                    remind_at=remind_at,
                    reminded_at=None,
                    remind_lease=None,
                    updated_at=utcnow(),
                )
            )
        moved = Booking.of(row)
        return Booking(
            moved.number,
            moved.channel,
            moved.user_id,
            moved.chat_id,
            moved.service,
            moved.window,
            starts_at,
            moved.minutes,
            moved.status,
        )

    # -- staff -------------------------------------------------------------------------

    async def get(self, number: str) -> Booking:
        """Any booking by number (staff only; residents go through their own lists)."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(Appointment).where(Appointment.number == number.strip().upper())
                )
            ).first()
        if row is None:
            raise AppointmentNotFound(number)
        return Booking.of(row)

    async def list_day(self, day: date, window: str | None = None) -> list[Booking]:
        """Every booking of a local day (of one window), in time order."""
        first = datetime.combine(day, time.min, LOCAL_TZ)
        query = select(Appointment).where(
            Appointment.starts_at >= first, Appointment.starts_at < first + timedelta(days=1)
        )
        if window:
            query = query.where(Appointment.window == window)
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                query.order_by(Appointment.starts_at, Appointment.window, Appointment.id)
            )
            return [Booking.of(row) for row in rows]

    async def no_show(self, number: str) -> Booking:
        """Mark a booked resident as not having come."""
        async with self._engine.begin() as connection:
            row = await _booked(connection, number)
            await _set_status(connection, row.id, AppointmentStatus.no_show, "")
        return Booking.of(row)

    async def cancel_by_staff(
        self, number: str, note: str, message: str, fields: Sequence[tuple[str, str]] = ()
    ) -> Booking:
        """Cancel a booking, release its place, and queue ``message`` to the resident
        (``fields``: its facts for the WeChat template, outside the 48-hour window).

        The push is a row of the notification queue written in the same transaction.
        """
        async with self._engine.begin() as connection:
            row = await _booked(connection, number)
            await _release(connection, row)
            await _set_status(connection, row.id, AppointmentStatus.cancelled, note)
            await queue_message(connection, row.channel, row.chat_id, message, fields)
        return Booking.of(row)


async def _take(
    connection: AsyncConnection, window: str, starts_at: datetime, capacity: int
) -> None:
    """Take one place in a slot or raise ``SlotFull`` (the conditional UPDATE)."""
    await connection.execute(
        insert_for(connection, AppointmentSlot)
        .values(window=window, starts_at=starts_at, taken=0)
        .on_conflict_do_nothing(index_elements=["window", "starts_at"])
    )
    result = await connection.execute(
        update(AppointmentSlot)
        .where(
            AppointmentSlot.window == window,
            AppointmentSlot.starts_at == starts_at,
            AppointmentSlot.taken < capacity,
        )
        .values(taken=AppointmentSlot.taken + 1)
    )
    if result.rowcount != 1:
        raise SlotFull(window, starts_at)


async def _release(connection: AsyncConnection, row: Any) -> None:
    await connection.execute(
        update(AppointmentSlot)
        .where(
            and_(
                AppointmentSlot.window == row.window,
                AppointmentSlot.starts_at == row.starts_at,
                AppointmentSlot.taken > 0,
            )
        )
        .values(taken=AppointmentSlot.taken - 1)
    )


async def _own(connection: AsyncConnection, number: str, channel: str, user_id: str) -> Any:
    """A resident's own booked appointment, locked; anyone else's is not found."""
    query = select(Appointment).where(
        Appointment.number == number.strip().upper(),
        Appointment.channel == channel,
        Appointment.user_id == user_id,
        Appointment.status == AppointmentStatus.booked.value,
    )
    row = (await connection.execute(_locked(connection, query))).first()
    if row is None:
        raise AppointmentNotFound(number)
    return row


async def _booked(connection: AsyncConnection, number: str) -> Any:
    query = select(Appointment).where(
        Appointment.number == number.strip().upper(),
        Appointment.status == AppointmentStatus.booked.value,
    )
    row = (await connection.execute(_locked(connection, query))).first()
    if row is None:
        raise AppointmentNotFound(number)
    return row


def _locked(connection: AsyncConnection, query: Any) -> Any:
    return query.with_for_update() if connection.dialect.name == "postgresql" else query


async def _set_status(
    connection: AsyncConnection, appointment_id: int, status: AppointmentStatus, note: str
) -> None:
    await connection.execute(
        update(Appointment)
        .where(Appointment.id == appointment_id)
        .values(status=status.value, note=note, updated_at=utcnow())
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
