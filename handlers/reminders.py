"""Day-before reminders of bookings: claimed from the store, queued as pushes.

Each booking carries its reminder's due time (the day before, at the configured
hour). ``BookingReminders.run`` claims due ones under a lease, renders them and
queues each push once (integration.appointment_reminders); the notification pump delivers
them like any other push. A restart loses none (the lease lapses and they are claimed
again) and sends none twice (queueing is conditional on not being reminded yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from handlers.catalog import Catalog
from handlers.flows.booking_slots import slot_label
from integration.appointment_reminders import DueReminder, ReminderQueue
from integration.services import ServiceCatalogue

log = logging.getLogger(__name__)
INTERVAL = 60.0  # seconds between looks for due reminders


async def run_every(
    run_once: Callable[[], Awaitable[int]], stop: asyncio.Event, interval: float, what: str
) -> None:
    """Call ``run_once`` every ``interval`` seconds until ``stop`` is set, logging how many
    ``what`` it queued; a failing pass is logged and the next one tried."""
    while not stop.is_set():
        try:
            queued = await run_once()
            if queued:
                log.info("queued %d %s", queued, what)
        except Exception:
            log.exception("queueing %s failed", what)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()


class BookingReminders:
    """Turns due reminders into queued pushes."""

    def __init__(self, queue: ReminderQueue, services: ServiceCatalogue, catalog: Catalog) -> None:
        self._queue = queue
        self._services = services
        self._t = catalog

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim what is due and queue it; how many pushes were queued."""
        now = now or datetime.now(UTC)
        queued = 0
        for reminder in await self._queue.claim_reminders(now):
            text, fields = self.render(reminder), self.fields(reminder)
            if await self._queue.queue_reminder(reminder, text, now, fields):
                queued += 1
        return queued

    async def run(self, stop: asyncio.Event, interval: float = INTERVAL) -> None:
        """``run_once`` every ``interval`` seconds until ``stop`` is set."""
        await run_every(self.run_once, stop, interval, "appointment reminders")

    def fields(self, reminder: DueReminder) -> tuple[tuple[str, str], ...]:
        """The reminder's facts for the WeChat template, outside the 48-hour window."""
        booking = reminder.booking
        service = self._services.services.get(booking.service)
        window = self._services.windows.get(booking.window)
        return (
            ("number", booking.number),
            ("status", self._t("booking.template_reminder")),
            (
                "note",
                f"{service.name if service else booking.service} "
                f"{window.name if window else booking.window}",
            ),
            ("time", slot_label(booking.starts_at)),
        )

    def render(self, reminder: DueReminder) -> str:
        """The reminder as the resident reads it."""
        booking = reminder.booking
        service = self._services.services.get(booking.service)
        window = self._services.windows.get(booking.window)
        return self._t(
            "booking.reminder",
            number=booking.number,
            name=service.name if service else booking.service,
            time=slot_label(booking.starts_at),
            window=window.name if window else booking.window,
            place=window.place if window else "",
            materials="、".join(service.materials) if service else "",
        )
