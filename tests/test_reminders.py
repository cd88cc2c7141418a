"""Day-before reminders: durable rows claimed under a lease, each push queued once.

The restart test runs on real PostgreSQL: a worker claims the due reminders and dies
before queueing them; after a restart none is lost (the lease lapses and they are
claimed again) and none is sent twice (the dead worker's late attempt queues nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.catalog import Catalog
from handlers.reminders import BookingReminders
from integration.appointment_reminders import ReminderQueue
from integration.appointments import AppointmentBook, BookingDraft
from integration.db import create_engine, session_factory
from integration.models import Notification
from integration.services import load_catalogue
from integration.services.calendar import LOCAL_TZ

TOMORROW_9 = datetime(2026, 12, 8, 9, 0, tzinfo=LOCAL_TZ)
REMIND_AT = datetime(2026, 12, 7, 16, 0, tzinfo=LOCAL_TZ)


@pytest.fixture
async def engine(postgres: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres)
    try:
        yield engine
    finally:
        await engine.dispose()


async def book_three(book: AppointmentBook) -> list[str]:
    numbers = []
    for n in range(3):
        draft = BookingDraft(
            "webchat",
            f"r{n}",
            f"r{n}",
            "residence_permit",
            "population",
            TOMORROW_9 + timedelta(minutes=15 * n),
            15,
            5,
            remind_at=REMIND_AT,
        )
        numbers.append((await book.book(draft)).number)
    return numbers


async def pushes(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(Notification.chat_id, Notification.text))
        return sorted((chat, text) for chat, text in rows)


async def test_a_restart_loses_no_reminder_and_sends_none_twice(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    book = AppointmentBook(session_factory(engine))
    numbers = await book_three(book)
    services = load_catalogue()
    now = REMIND_AT + timedelta(minutes=1)

    queue = ReminderQueue(session_factory(engine))
    assert await queue.claim_reminders(now - timedelta(minutes=2)) == []  # not yet due
    dead = await queue.claim_reminders(now)  # the worker that dies before queueing
    assert len(dead) == 3

    restarted = BookingReminders(ReminderQueue(session_factory(engine)), services, catalog)
    assert await restarted.run_once(now + timedelta(minutes=1)) == 0  # still leased
    assert await restarted.run_once(now + timedelta(minutes=6)) == 3  # the lease lapsed
    assert await restarted.run_once(now + timedelta(minutes=12)) == 0

    late = BookingReminders(queue, services, catalog)
    assert not any(
        [await queue.queue_reminder(r, late.render(r), now + timedelta(minutes=7)) for r in dead]
    )
    sent = await pushes(engine)
    assert [chat for chat, _ in sent] == ["r0", "r1", "r2"]
    for (_, text), number in zip(sent, numbers, strict=True):
        assert number in text and "预约提醒" in text and "大厅5号窗口" in text


async def test_two_workers_at_once_queue_each_reminder_once(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    await book_three(AppointmentBook(session_factory(engine)))
    services = load_catalogue()
    workers = [
        BookingReminders(ReminderQueue(session_factory(engine)), services, catalog)
        for _ in range(4)
    ]
    now = REMIND_AT + timedelta(minutes=1)
    queued = await asyncio.gather(*(w.run_once(now) for w in workers))
    assert sum(queued) == 3 and len(await pushes(engine)) == 3


async def test_a_cancelled_or_begun_booking_is_not_reminded(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    book = AppointmentBook(session_factory(engine))
    numbers = await book_three(book)
    await book.cancel(numbers[0], "webchat", "r0")
    reminders = BookingReminders(ReminderQueue(session_factory(engine)), load_catalogue(), catalog)
    assert await reminders.run_once(TOMORROW_9 + timedelta(minutes=20)) == 1  # only 09:30 left
    assert [chat for chat, _ in await pushes(engine)] == ["r2"]
