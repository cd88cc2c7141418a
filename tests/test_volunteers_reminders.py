"""Volunteers' reminders before an item's window, on real PostgreSQL.

The same lease as appointment reminders: a worker claims the due reminders and dies
before queueing them; after a restart none is lost and none is sent twice, and a
withdrawn claim is never reminded.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.catalog import Catalog
from handlers.volunteer_reminders import VolunteerReminders
from integration.claims import ClaimBook
from integration.db import session_factory
from integration.items import ItemBook, ItemPost, Window
from integration.models import Notification
from integration.services.calendar import LOCAL_TZ
from integration.volunteer_reminders import VolunteerReminderQueue
from integration.volunteers import VolunteerBook, VolunteerDraft
from tests import test_reminders

engine = test_reminders.engine  # the fixture: real PostgreSQL

START = datetime(2026, 11, 10, 9, 0, tzinfo=LOCAL_TZ)
CLAIMED = START - timedelta(days=1)
DUE = START - timedelta(hours=2)


async def three_claims(engine: AsyncEngine) -> list[int]:
    sessions = session_factory(engine)
    people, claims = VolunteerBook(sessions), ClaimBook(sessions)
    item = await ItemBook(sessions).post(
        ItemPost("金辉小区", "社区义诊", "", ("medical",), Window(START), "金辉小区活动室", 3)
    )
    ids = []
    for n in range(3):
        volunteer = await people.register(
            VolunteerDraft(
                "webchat",
                f"v{n}",
                f"v{n}",
                f"李{n}",
                f"1370000000{n}",
                "市医院",
                "医院支部",
                "金辉小区",
                ("medical",),
                (),
            )
        )
        await claims.claim(item.id, volunteer.id, "webchat", f"v{n}", CLAIMED)
        ids.append(volunteer.id)
    return [item.id, *ids]


async def pushes(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(Notification.chat_id, Notification.text))
        return sorted((chat, text) for chat, text in rows)


def reminders(engine: AsyncEngine, catalog: Catalog) -> VolunteerReminders:
    sessions = session_factory(engine)
    return VolunteerReminders(VolunteerReminderQueue(sessions), ClaimBook(sessions), catalog)


async def test_a_restart_loses_no_volunteer_reminder_and_sends_none_twice(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    await three_claims(engine)
    now = DUE + timedelta(minutes=1)
    queue = VolunteerReminderQueue(session_factory(engine))
    assert await queue.claim_reminders(DUE - timedelta(minutes=1)) == []  # not yet due
    dead = await queue.claim_reminders(now)  # the worker that dies before queueing
    assert len(dead) == 3

    restarted = reminders(engine, catalog)
    assert await restarted.run_once(now + timedelta(minutes=1)) == 0  # still leased
    assert await restarted.run_once(now + timedelta(minutes=6)) == 3  # the lease lapsed
    assert await restarted.run_once(now + timedelta(minutes=12)) == 0

    late = [await queue.queue_reminder(r, "late", now + timedelta(minutes=7)) for r in dead]
    assert not any(late)
    sent = await pushes(engine)
    assert [chat for chat, _ in sent] == ["v0", "v1", "v2"]
    assert all("志愿服务提醒" in text and "社区义诊" in text for _, text in sent)


async def test_four_workers_at_once_queue_each_reminder_once(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    await three_claims(engine)
    workers = [reminders(engine, catalog) for _ in range(4)]
    queued = await asyncio.gather(*(w.run_once(DUE + timedelta(minutes=1)) for w in workers))
    assert sum(queued) == 3 and len(await pushes(engine)) == 3


async def test_a_withdrawn_claim_is_not_reminded(engine: AsyncEngine, catalog: Catalog) -> None:
    item_id, first, *_ = await three_claims(engine)
    await ClaimBook(session_factory(engine)).withdraw(item_id, first, CLAIMED)
    assert await reminders(engine, catalog).run_once(DUE + timedelta(minutes=1)) == 2
    assert [chat for chat, _ in await pushes(engine)] == ["v1", "v2"]
