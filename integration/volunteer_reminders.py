"""Reminders to volunteers before an item's time window: durable rows claimed under a lease.

The due time is a column of the claim (``remind_at``, set when the place is taken).
Claimed and queued exactly like appointment reminders (integration.appointment_reminders
.lease_due): a worker that dies holding some only delays them, a late one queues
nothing twice, and a withdrawn claim is never reminded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.appointment_reminders import lease_due
from integration.items import ItemView, read_items
from integration.models import ClaimStatus, ItemClaim, ServiceItem
from integration.notifications import queue_message


@dataclass(frozen=True, slots=True)
class DueVolunteerReminder:
    """A claim whose reminder a worker has leased: where to send it, and the item."""

    id: int
    channel: str
    chat_id: str
    item: ItemView


class VolunteerReminderQueue:
    """Volunteers' reminders, as durable rows a worker claims."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def claim_reminders(
        self, now: datetime, *, limit: int = 50, lease: timedelta = timedelta(minutes=5)
    ) -> list[DueVolunteerReminder]:
        """Lease due reminders of active claims whose item has not begun."""
        due = (
            select(ItemClaim.id, ItemClaim.item_id, ItemClaim.channel, ItemClaim.chat_id)
            .join(ServiceItem, ServiceItem.id == ItemClaim.item_id)
            .where(
                ItemClaim.status == ClaimStatus.active.value,
                ItemClaim.reminded_at.is_(None),
                ItemClaim.remind_at <= now,
                ServiceItem.starts_at > now,
                (ItemClaim.remind_lease.is_(None)) | (ItemClaim.remind_lease < now),
            )
            .order_by(ItemClaim.remind_at, ItemClaim.id)
            .limit(limit)
        )
        async with self._engine.begin() as connection:
            rows = await lease_due(connection, due, ItemClaim, now, lease)
            ids = list({row.item_id for row in rows})
            items = (
                {i.id: i for i in await read_items(connection, [ServiceItem.id.in_(ids)])}
                if ids
                else {}
            )
        return [DueVolunteerReminder(r.id, r.channel, r.chat_id, items[r.item_id]) for r in rows]

    async def queue_reminder(
        self, reminder: DueVolunteerReminder, text: str, now: datetime
    ) -> bool:
        """Queue the reminder's push once: False when it was queued already or is moot."""
        async with self._engine.begin() as connection:
            marked = await connection.execute(
                update(ItemClaim)
                .where(
                    ItemClaim.id == reminder.id,
                    ItemClaim.reminded_at.is_(None),
                    ItemClaim.status == ClaimStatus.active.value,
                )
                .values(reminded_at=now, remind_lease=None)
            )
            if marked.rowcount != 1:
                return False
            await queue_message(connection, reminder.channel, reminder.chat_id, text, now=now)
        return True
