"""Reminders to volunteers before an item's time window: durable rows claimed under a lease.

The due time is a column of the claim (``remind_at``, set when the place is taken).
Claimed and queued exactly like appointment reminders (integration.leases
.claim_leased): a worker that dies holding some only delays them, a late one queues
nothing twice, and a withdrawn claim is never reminded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.items import ItemView, read_items
from integration.leases import claim_leased
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
        rows = await claim_leased(
            self._engine,
            ItemClaim,
            (
                ItemClaim.status == ClaimStatus.active.value,
                ItemClaim.reminded_at.is_(None),
                ItemClaim.remind_at <= now,
                ItemClaim.item_id.in_(select(ServiceItem.id).where(ServiceItem.starts_at > now)),
            ),
            ItemClaim.remind_lease,
            (ItemClaim.remind_at, ItemClaim.id),
            now,
            lease=lease,
            limit=limit,
        )
        if not rows:
            return []
        async with self._engine.connect() as connection:
            ids = list({row.item_id for row in rows})
            items = {i.id: i for i in await read_items(connection, [ServiceItem.id.in_(ids)])}
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
