"""What a resident has under way besides cases: window bookings to come and help-at-home
requests not yet confirmed (我的进度 lists them beside the cases).

Most residents who ask 我的进度 have neither, so ``UnderWayBook`` asks one small EXISTS
query first and reads the rows only when there are some: a status query costs one
round trip more than the cases alone, not two full reads.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BindParameter, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.appointments import AppointmentBook, Booking
from integration.case_reads import constants
from integration.db import autocommit, fetch_rows
from integration.items import UNDER_WAY, ItemBook, ItemView
from integration.models import Appointment, AppointmentStatus, ServiceItem

# Built once and run on the driver (``fetch_rows``): a status query only binds the
# resident and the time (building the expression on every call cost more than running it).
_CHANNEL: BindParameter[str] = bindparam("channel")
_USER: BindParameter[str] = bindparam("user_id")
_ANY = select(
    exists().where(
        Appointment.channel == _CHANNEL,
        Appointment.user_id == _USER,
        Appointment.status == AppointmentStatus.booked.value,
        Appointment.starts_at > bindparam("now"),
    ),
    exists().where(
        ServiceItem.channel == _CHANNEL,
        ServiceItem.user_id == _USER,
        ServiceItem.status.in_(constants([s.value for s in UNDER_WAY])),
    ),
)


class UnderWayBook:
    """A resident's bookings to come and requests under way, from the relational store."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        appointments: AppointmentBook,
        items: ItemBook,
    ) -> None:
        self._reads: AsyncEngine = autocommit(sessions.kw["bind"])
        self._appointments = appointments
        self._items = items

    async def under_way(
        self, channel: str, user_id: str, now: datetime
    ) -> tuple[list[Booking], list[ItemView]]:
        """The bookings (soonest first) and the requests (newest first); each read only
        when the EXISTS query says there is one."""
        bound = {"channel": channel, "user_id": user_id, "now": now}
        async with self._reads.connect() as connection:
            [(booked, requested)] = await fetch_rows(connection, _ANY, bound)
        bookings = await self._appointments.upcoming(channel, user_id, now) if booked else []
        requests = await self._items.requested_by(channel, user_id) if requested else []
        return bookings, requests
