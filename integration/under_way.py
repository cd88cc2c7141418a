"""What a resident has under way besides cases: window bookings to come and help-at-home
requests not yet confirmed (我的进度 lists them beside the cases).

Most residents who ask 我的进度 have neither, so ``UnderWayBook`` asks one small EXISTS
query first and reads the rows only when there are some: a status query costs one
round trip more than the cases alone, not two full reads.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.appointments import AppointmentBook, Booking
from integration.items import UNDER_WAY, ItemBook, ItemView
from integration.models import Appointment, AppointmentStatus, ServiceItem


class UnderWayBook:
    """A resident's bookings to come and requests under way, from the relational store."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        appointments: AppointmentBook,
        items: ItemBook,
    ) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._appointments = appointments
        self._items = items

    async def under_way(
        self, channel: str, user_id: str, now: datetime
    ) -> tuple[list[Booking], list[ItemView]]:
        """The bookings (soonest first) and the requests (newest first); each read only
        when the EXISTS query says there is one."""
        query = select(
            exists().where(
                Appointment.channel == channel,
                Appointment.user_id == user_id,
                Appointment.status == AppointmentStatus.booked.value,
                Appointment.starts_at > now,
            ),
            exists().where(
                ServiceItem.channel == channel,
                ServiceItem.user_id == user_id,
                ServiceItem.status.in_([s.value for s in UNDER_WAY]),
            ),
        )
        async with self._engine.connect() as connection:
            booked, requested = (await connection.execute(query)).one()
        bookings = await self._appointments.upcoming(channel, user_id, now) if booked else []
        requests = await self._items.requested_by(channel, user_id) if requested else []
        return bookings, requests
