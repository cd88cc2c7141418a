"""Reminders to volunteers before their items begin, and items moved on as time passes.

Each claim carries its reminder's due time (two hours before the item's window).
``VolunteerReminders.run_once`` moves begun items on (in_progress, or expired when
nobody claimed them), then claims due reminders under a lease and queues each push
once (integration.volunteer_reminders, the same lease as appointment reminders); the
notification pump delivers them. A restart loses none and sends none twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from handlers.catalog import Catalog
from handlers.flows.volunteer_steps import what, when
from handlers.reminders import INTERVAL, run_every
from integration.claims import ClaimBook
from integration.volunteer_reminders import DueVolunteerReminder, VolunteerReminderQueue


class VolunteerReminders:
    """Turns due volunteer reminders into queued pushes."""

    def __init__(self, queue: VolunteerReminderQueue, claims: ClaimBook, catalog: Catalog) -> None:
        self._queue = queue
        self._claims = claims
        self._t = catalog

    async def run_once(self, now: datetime | None = None) -> int:
        """Move begun items on, then queue what is due; how many pushes were queued."""
        now = now or datetime.now(UTC)
        await self._claims.advance(now)
        queued = 0
        for reminder in await self._queue.claim_reminders(now):
            if await self._queue.queue_reminder(reminder, self.render(reminder), now):
                queued += 1
        return queued

    async def run(self, stop: asyncio.Event, interval: float = INTERVAL) -> None:
        """``run_once`` every ``interval`` seconds until ``stop`` is set."""
        await run_every(self.run_once, stop, interval, "volunteer reminders")

    def render(self, reminder: DueVolunteerReminder) -> str:
        """The reminder as the volunteer reads it."""
        item = reminder.item
        return self._t(
            "volunteer.reminder",
            number=item.id,
            what=what(self._t, item),
            when=when(self._t, item),
            where=item.address,
        )
