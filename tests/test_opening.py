"""Opening a case: the path at once (one statement on PostgreSQL, one hand-off on
SQLite: integration.opening) and the statement-by-statement path write the same rows,
on both backends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.bench.counters import Counters
from integration.cases import LOCAL_TZ, CaseBook, CaseDraft, format_number
from integration.changes import outbox_key
from integration.models import (
    Case,
    CaseCounter,
    CaseEvent,
    OutboxJob,
    OutboxKind,
    OutboxState,
    Resident,
    utcnow,
)
from integration.upsert import resident_ids
from tests.test_storage import draft as storage_draft

Sessions = async_sessionmaker[AsyncSession]
COMPARED = (
    "channel",
    "chat_id",
    "category",
    "description",
    "address",
    "latitude",
    "longitude",
    "status",
    "platform",
    "grid",
)


def draft(user: str = "u1", **changes: Any) -> CaseDraft:
    return storage_draft(user, channel="wechat", **changes)


async def rows(sessions: Sessions, model: Any, *where: Any) -> list[Any]:
    async with sessions() as session:
        return list(await session.scalars(select(model).where(*where).order_by(model.id)))


async def known(book: CaseBook, user: str) -> None:
    """Open two cases so that ``user``'s id is in the process cache afterwards."""
    await book.create_case(draft(user))
    await book.create_case(draft(user))
    engine = book.sessions.kw["bind"]
    assert resident_ids(engine).get("wechat", user) is not None


async def test_a_known_residents_case_takes_one_statement_on_postgresql(
    sessions: Sessions,
) -> None:
    book = CaseBook(sessions)
    await known(book, "u1")

    counters = Counters().install()  # SQLAlchemy's statements and the driver's
    try:
        case = await book.create_case(draft("u1"))
    finally:
        counters.uninstall()

    postgres = sessions.kw["bind"].dialect.name == "postgresql"
    # SQLite: counter, case, history entry (the resident's id is cached), committed in
    # one hand-off to aiosqlite's thread (integration.opening.open_on_sqlite).
    assert counters.snapshot().statements == (1 if postgres else 3)
    assert counters.snapshot().transactions == (0 if postgres else 1)
    assert int(case.number[-4:]) == 3
    assert case.number == format_number(case.created_at.astimezone(LOCAL_TZ).date(), 3)


async def test_both_paths_write_the_same_rows(sessions: Sessions) -> None:
    book = CaseBook(sessions, platform="webhook")
    await known(book, "u1")  # the second case came the long way, with a known id
    third = await book.create_case(draft("u1"))

    cases = await rows(sessions, Case)
    assert [c.number for c in cases][-1] == third.number
    long_way, at_once = cases[1], cases[2]
    for name in COMPARED:
        assert getattr(at_once, name) == getattr(long_way, name), name
    assert at_once.resident_id == long_way.resident_id
    assert at_once.platform_id is None and long_way.platform_id is None
    for case in (long_way, at_once):
        events = await rows(sessions, CaseEvent, CaseEvent.case_id == case.id)
        assert [(e.status, e.note, e.actor) for e in events] == [("received", "", "resident")]
        jobs = await rows(sessions, OutboxJob, OutboxJob.case_id == case.id)
        assert [(j.kind, j.key, j.state, j.attempts) for j in jobs] == [
            (
                OutboxKind.create.value,
                outbox_key(case.number, OutboxKind.create),
                OutboxState.pending.value,
                0,
            )
        ]
        assert jobs[0].next_attempt_at == case.created_at


async def test_the_local_desk_keeps_its_own_number_and_queues_no_job(
    sessions: Sessions,
) -> None:
    book = CaseBook(sessions)
    await known(book, "u1")
    case = await book.create_case(draft("u1", grid="G7"))

    stored = (await rows(sessions, Case, Case.number == case.number))[0]
    assert stored.platform_id == case.number
    assert stored.grid == "G7"
    assert await rows(sessions, OutboxJob) == []
    events = await rows(sessions, CaseEvent, CaseEvent.case_id == stored.id)
    assert [e.actor for e in events] == ["grid:G7"]


async def test_numbers_past_9999_keep_every_digit(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    await known(book, "u1")
    day = utcnow().astimezone(LOCAL_TZ).date()
    async with sessions() as session, session.begin():
        await session.execute(update(CaseCounter).where(CaseCounter.day == day).values(last=9998))

    numbers = [(await book.create_case(draft("u1"))).number for _ in range(2)]

    assert numbers == [format_number(day, 9999), format_number(day, 10000)]
    assert numbers[1].endswith("10000")


async def test_a_stale_cached_resident_id_falls_back_and_opens_the_case(
    sessions: Sessions,
) -> None:
    book = CaseBook(sessions)
    await known(book, "u1")
    engine = sessions.kw["bind"]
    resident_ids(engine).put("wechat", "u2", 987_654)  # forgotten elsewhere, say

    case = await book.create_case(draft("u2"))

    stored = (await rows(sessions, Case, Case.number == case.number))[0]
    u2 = (await rows(sessions, Resident, Resident.external_id == "u2"))[0]
    assert stored.resident_id == u2.id != 987_654
    assert resident_ids(engine).get("wechat", "u2") != 987_654


async def test_the_view_returned_matches_the_stored_case(sessions: Sessions) -> None:
    book = CaseBook(sessions)
    await known(book, "u1")
    before = datetime.now(tz=LOCAL_TZ)

    case = await book.create_case(draft("u1"))

    again = await book.get(case.number)
    assert (again.number, again.status, again.address, again.channel, again.chat_id) == (
        case.number,
        case.status,
        case.address,
        case.channel,
        case.chat_id,
    )
    assert again.created_at >= before
