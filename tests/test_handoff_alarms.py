"""Handoff service-level alarms and staff replies, on real PostgreSQL (and SQLite).

A handoff waiting past its service level raises one alarm: claimed under a lease like
a booking reminder, so a worker that dies holding it loses nothing after a restart,
and none is raised twice. The note goes to the on-duty member's linked chat.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.catalog import Catalog
from handlers.handoff_alarms import HandoffAlarms
from integration.db import session_factory
from integration.handoff import HandoffBook, HandoffRequest
from integration.handoff_hours import StaffHours
from integration.services import load_catalogue
from tests import test_reminders
from tests.test_reminders import pushes

engine = test_reminders.engine  # the fixture: an engine on the session's PostgreSQL
MONDAY_10 = datetime.fromisoformat("2026-12-07T10:00:00+08:00")
SATURDAY_20 = datetime.fromisoformat("2026-12-12T20:00:00+08:00")


def handoff_book(engine: AsyncEngine) -> HandoffBook:
    hours = StaffHours.parse(
        "1-5 08:30-12:00 14:00-18:00; 6 09:00-12:00", load_catalogue().calendar
    )
    return HandoffBook(session_factory(engine), hours, timedelta(minutes=5))


async def on_duty(book: HandoffBook) -> None:
    code = await book.link_code("zhang", MONDAY_10)
    assert await book.redeem("000000" if code != "000000" else "111111", "telegram", "x") == ""
    assert await book.redeem(code, "telegram", "staff-chat", MONDAY_10) == "zhang"
    assert await book.redeem(code, "telegram", "other", MONDAY_10) == ""  # one time only
    await book.set_duty("zhang")


async def test_a_restart_loses_no_alarm_and_raises_none_twice(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    book = handoff_book(engine)
    await on_duty(book)
    for n in range(3):
        await book.open(HandoffRequest("webchat", f"r{n}", f"r{n}", "asked", "", MONDAY_10))
    due = MONDAY_10 + timedelta(minutes=5)
    assert await book.claim_alarms(due - timedelta(seconds=1)) == []  # not yet overdue
    dead = await book.claim_alarms(due)  # the worker that dies before raising them
    assert len(dead) == 3 and all(a.chat_id == "staff-chat" for a in dead)

    restarted = HandoffAlarms(handoff_book(engine), catalog)
    assert await restarted.run_once(due + timedelta(minutes=1)) == 0  # still leased
    assert await restarted.run_once(due + timedelta(minutes=6)) == 3  # the lease lapsed
    assert await restarted.run_once(due + timedelta(minutes=12)) == 0
    assert not any([await book.raise_alarm(a, "late", due + timedelta(minutes=7)) for a in dead])

    sent = await pushes(engine)
    assert [chat for chat, _ in sent] == ["staff-chat"] * 3
    assert all("转人工超时" in text and "11分钟" in text for _, text in sent)
    listed = await book.open_list()
    assert all(h.alarmed and h.overdue(due) for h in listed)


async def test_two_workers_at_once_raise_each_alarm_once(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    book = handoff_book(engine)
    await on_duty(book)
    for n in range(4):
        await book.open(HandoffRequest("webchat", f"r{n}", f"r{n}", "asked", "", MONDAY_10))
    workers = [HandoffAlarms(handoff_book(engine), catalog) for _ in range(4)]
    late = MONDAY_10 + timedelta(minutes=6)
    assert sum(await asyncio.gather(*(w.run_once(late) for w in workers))) == 4
    assert len(await pushes(engine)) == 4


async def test_a_claimed_handoff_raises_no_alarm_and_off_hours_wait_for_the_promise(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    book = handoff_book(engine)
    claimed = await book.open(HandoffRequest("webchat", "a", "a", "asked", "", MONDAY_10))
    await book.claim(claimed.id, "li", MONDAY_10 + timedelta(minutes=1))
    night = await book.open(HandoffRequest("webchat", "b", "b", "asked", "", SATURDAY_20))
    assert night.promised_at == datetime.fromisoformat("2026-12-14T08:30:00+08:00")
    alarms = HandoffAlarms(book, catalog)
    assert await alarms.run_once(SATURDAY_20 + timedelta(hours=2)) == 0  # promise not due
    assert await alarms.run_once(datetime.fromisoformat("2026-12-14T08:31:00+08:00")) == 1
    assert await pushes(engine) == []  # nobody on duty has linked a chat: flagged only
    [flagged] = [h for h in await book.open_list() if h.alarmed]
    assert flagged.chat_id == "b"


async def test_waiting_stats_count_only_the_unclaimed(engine: AsyncEngine) -> None:
    book = handoff_book(engine)
    assert await book.waiting_stats(MONDAY_10) == (0, 0.0)
    first = await book.open(HandoffRequest("webchat", "a", "a", "asked", "", MONDAY_10))
    await book.open(
        HandoffRequest("wechat", "b", "b", "asked", "", MONDAY_10 + timedelta(minutes=2))
    )
    assert await book.waiting_stats(MONDAY_10 + timedelta(minutes=3)) == (2, 180.0)
    await book.claim(first.id, "li")
    assert await book.waiting_stats(MONDAY_10 + timedelta(minutes=3)) == (1, 60.0)
