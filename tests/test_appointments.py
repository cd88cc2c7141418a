"""The appointment book and the booking flows over it, on SQLite and real PostgreSQL.

Fifty residents confirming one slot of capacity five at the same moment: exactly five
get it, the rest are offered the nearest free slots. Nobody reaches another resident's
booking, whatever number they type. The clock is always the message's own time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Turn
from handlers.flows.booking import CONFIRM, BookingFlow
from handlers.flows.booking_slots import SLOT
from handlers.flows.rebooking import DROP, MOVE, RebookingFlow
from handlers.messages import Inbound, Outbound
from handlers.state import ConversationState
from integration.appointments import (
    AppointmentBook,
    AppointmentNotFound,
    BookingDraft,
    SlotFull,
)
from integration.db import create_engine, session_factory
from integration.models import Appointment, AppointmentSlot, AppointmentStatus, Notification
from integration.residents import ResidentBook
from integration.services import ServiceCatalogue, load_catalogue
from integration.services.calendar import LOCAL_TZ
from nlu.types import Parse

NOW = datetime(2026, 12, 7, 10, 7, tzinfo=LOCAL_TZ)  # a Monday morning
SLOT_AT = datetime(2026, 12, 8, 9, 0, tzinfo=LOCAL_TZ)
_ids = itertools.count()


@pytest.fixture(scope="module")
def services() -> ServiceCatalogue:
    return load_catalogue()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """PostgreSQL with a pool as large as the crowd, so all fifty really race."""
    if database_url.startswith("postgresql"):
        engine = create_async_engine(database_url, pool_size=60, max_overflow=0)
    else:
        engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def book(engine: AsyncEngine) -> AppointmentBook:
    return AppointmentBook(session_factory(engine))


def turn(user: str, text: str = "", payload: str = "", at: datetime = NOW) -> Turn:
    inbound = Inbound("webchat", user, user, f"m{next(_ids)}", text, payload=payload, time=at)
    return Turn(inbound, Parse(text, "", 0.0), payload=payload)


def draft(user: str, at: datetime = SLOT_AT, capacity: int = 5) -> BookingDraft:
    return BookingDraft("webchat", user, user, "residence_permit", "population", at, 15, capacity)


async def test_fifty_at_once_confirm_exactly_the_capacity(
    book: AppointmentBook, engine: AsyncEngine, services: ServiceCatalogue, catalog: Catalog
) -> None:
    flow = BookingFlow(services, book, catalog)

    async def confirm(n: int) -> tuple[ConversationState, list[Outbound]]:
        state = ConversationState()
        state.begin("booking", "confirm", {"service": "residence_permit"})
        state.slots["slot"] = SLOT_AT.isoformat()
        replies = await flow.resume(turn(f"resident-{n}", "确认", CONFIRM), state)
        return state, replies

    results = await asyncio.gather(*(confirm(n) for n in range(50)))

    booked = [r for s, r in results if s.flow is None]
    offered = [(s, r) for s, r in results if s.flow is not None]
    assert len(booked) == 5 and all("预约成功" in r[0].text for r in booked)
    assert len(offered) == 45
    for state, replies in offered:
        assert state.step == "time"
        assert "约满" in replies[-1].text
        slots = [b.payload for b in replies[-1].buttons if b.payload.startswith(SLOT)]
        assert slots and SLOT_AT.isoformat() not in [s.removeprefix(SLOT) for s in slots]
        assert slots[0].removeprefix(SLOT) == (SLOT_AT + timedelta(minutes=15)).isoformat()
    async with engine.connect() as connection:
        taken = await connection.scalar(select(AppointmentSlot.taken))
        rows = await connection.scalar(select(func.count()).select_from(Appointment))
    assert (taken, rows) == (5, 5)


async def test_a_full_slot_raises_and_a_cancellation_frees_it(book: AppointmentBook) -> None:
    first = await book.book(draft("a", capacity=1))
    with pytest.raises(SlotFull):
        await book.book(draft("b", capacity=1))
    await book.cancel(first.number, "webchat", "a")
    again = await book.book(draft("b", capacity=1))
    assert again.number.startswith("YY261208") and again.number != first.number


async def test_nobody_reaches_another_residents_booking(book: AppointmentBook) -> None:
    theirs = await book.book(draft("owner"))
    with pytest.raises(AppointmentNotFound):
        await book.cancel(theirs.number, "webchat", "intruder")
    with pytest.raises(AppointmentNotFound):
        await book.cancel(theirs.number, "telegram", "owner")  # same id, other channel
    with pytest.raises(AppointmentNotFound):
        await book.move(theirs.number, "webchat", "intruder", SLOT_AT + timedelta(hours=1), 5)
    assert await book.upcoming("webchat", "intruder", NOW) == []
    assert [b.number for b in await book.upcoming("webchat", "owner", NOW)] == [theirs.number]


async def test_a_typed_number_of_someone_else_is_not_shown(
    book: AppointmentBook, services: ServiceCatalogue, catalog: Catalog
) -> None:
    theirs = await book.book(draft("owner"))
    await book.book(draft("intruder", SLOT_AT + timedelta(days=1)))
    flow = RebookingFlow(services, book, catalog)
    state = ConversationState()
    replies = await flow.start(turn("intruder", f"取消预约{theirs.number}"), state)
    assert theirs.number in replies[0].text and "没有找到" in replies[0].text
    assert state.flow is None
    assert (await book.get(theirs.number)).status is AppointmentStatus.booked


async def test_moving_takes_the_new_place_and_releases_the_old(
    book: AppointmentBook, engine: AsyncEngine, services: ServiceCatalogue, catalog: Catalog
) -> None:
    mine = await book.book(draft("me"))
    flow = RebookingFlow(services, book, catalog)
    state = ConversationState()
    replies = await flow.start(turn("me", "预约的时间我去不了，改一下"), state)
    assert state.step == "time"
    later = next(b for b in replies[-1].buttons if b.payload.startswith(SLOT))
    replies = await flow.resume(turn("me", later.label, later.payload), state)
    assert mine.number in replies[0].text and "已改约" in replies[0].text
    async with engine.connect() as connection:
        counts = dict(
            (
                await connection.execute(select(AppointmentSlot.starts_at, AppointmentSlot.taken))
            ).all()
        )
    assert sorted(counts.values()) == [0, 1]
    moved = await book.get(mine.number)
    assert moved.starts_at != SLOT_AT and moved.status is AppointmentStatus.booked


async def test_cancelling_by_buttons(
    book: AppointmentBook, services: ServiceCatalogue, catalog: Catalog
) -> None:
    mine = await book.book(draft("me"))
    flow = RebookingFlow(services, book, catalog)
    state = ConversationState()
    replies = await flow.start(turn("me", "我的预约"), state)
    assert state.step == "action" and [b.payload for b in replies[-1].buttons] == [
        DROP,
        MOVE,
        CANCEL,
    ]
    replies = await flow.resume(turn("me", "取消预约", DROP), state)
    assert "已取消预约" in replies[0].text
    assert (await book.get(mine.number)).status is AppointmentStatus.cancelled


async def test_staff_cancel_queues_a_push_to_the_resident(
    book: AppointmentBook, engine: AsyncEngine
) -> None:
    mine = await book.book(draft("me"))
    await book.cancel_by_staff(mine.number, "窗口系统维护", "您的预约已取消")
    cancelled = await book.get(mine.number)
    assert (cancelled.status, cancelled.note) == (AppointmentStatus.cancelled, "窗口系统维护")
    async with engine.connect() as connection:
        pushes = (await connection.execute(select(Notification.chat_id, Notification.text))).all()
    assert [tuple(p) for p in pushes] == [("me", "您的预约已取消")]
    with pytest.raises(AppointmentNotFound):
        await book.no_show(mine.number)


async def test_a_booking_is_reminded_the_day_before_at_the_configured_hour(
    book: AppointmentBook, engine: AsyncEngine, services: ServiceCatalogue, catalog: Catalog
) -> None:
    flow = BookingFlow(services, book, catalog, reminder_hour=18)
    state = ConversationState()
    state.begin("booking", "confirm", {"service": "residence_permit"})
    state.slots["slot"] = (SLOT_AT + timedelta(days=2)).isoformat()
    await flow.resume(turn("me", "确认", CONFIRM), state)
    async with engine.connect() as connection:
        remind_at = await connection.scalar(select(Appointment.remind_at))
    assert remind_at == datetime(2026, 12, 9, 18, 0, tzinfo=LOCAL_TZ)


async def test_a_service_that_cannot_be_booked_is_declined_with_its_window(
    book: AppointmentBook, services: ServiceCatalogue, catalog: Catalog
) -> None:
    permit = services.service("residence_permit").model_copy(update={"bookable": False})
    walk_in = dataclasses.replace(services, services={**services.services, permit.id: permit})
    flow = BookingFlow(walk_in, book, catalog)
    state = ConversationState()
    replies = await flow.book(permit, turn("me", "预约办理"), state)
    assert "不能在线预约" in replies[0].text and "大厅5号窗口" in replies[0].text
    assert state.flow is None


async def test_a_past_time_is_refused_with_the_nearest_slots(
    book: AppointmentBook, services: ServiceCatalogue, catalog: Catalog
) -> None:
    flow = BookingFlow(services, book, catalog)
    state = ConversationState()
    state.begin("booking", "time", {"service": "residence_permit"})
    late = SLOT_AT - timedelta(days=1)  # 09:00 today, an hour ago
    replies = await flow.resume(turn("me", "今天9点", f"{SLOT}{late.isoformat()}"), state)
    assert "已经过了" in replies[0].text and state.step == "time"
    first = next(b for b in replies[0].buttons if b.payload.startswith(SLOT))
    assert first.label == "12月7日 周一 10:15"


async def test_a_forgotten_resident_no_longer_owns_their_bookings(
    book: AppointmentBook, engine: AsyncEngine
) -> None:
    mine = await book.book(draft("me"))
    residents = ResidentBook(session_factory(engine))
    await residents.forget(await residents.find("me", "webchat"))
    assert await book.upcoming("webchat", "me", NOW) == []
    kept = await book.get(mine.number)
    assert (kept.channel, kept.user_id, kept.chat_id) == ("forgotten", "forgotten", "")


async def test_picking_one_of_several_by_its_position(
    book: AppointmentBook, services: ServiceCatalogue, catalog: Catalog
) -> None:
    await book.book(draft("me"))
    later = await book.book(draft("me", SLOT_AT + timedelta(days=1)))
    flow = RebookingFlow(services, book, catalog)
    state = ConversationState()
    replies = await flow.start(turn("me", "预约的时间我去不了，改一下"), state)
    assert state.step == "pick" and later.number in replies[0].text
    replies = await flow.resume(turn("me", "第二个"), state)
    assert state.step == "time" and state.slots["number"] == later.number
