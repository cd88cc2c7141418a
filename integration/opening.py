"""Opening a case in one statement on PostgreSQL, and in one hand-off on SQLite.

A new case is four writes: the day's counter, the case, its first history entry and,
when cases go to a platform, its forwarding job. Inside residents' turns, four
statements in a transaction are six round trips to the server. PostgreSQL runs them as
one statement of data-modifying CTEs, atomic without a transaction around it, in one
round trip. On SQLite the four statements and the commit run on sqlite3 in one
hand-off to aiosqlite's thread (``open_on_sqlite``; integration.sqlite_driver), instead
of six through SQLAlchemy. ``CaseBook.create_case`` uses these when the case has no
media or consent and the resident's id is known; otherwise it writes statement by
statement through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

from integration.changes import JOB_COLUMNS, job_row, outbox_key
from integration.db import driver_sql
from integration.models import (
    Case,
    CaseCounter,
    CaseEvent,
    CaseStatus,
    OutboxJob,
    OutboxKind,
    OutboxState,
)
from integration.sqlite_driver import first


def _param(column: Any, name: str | None = None) -> Any:
    """A bound parameter typed like ``column`` (asyncpg needs every parameter's type)."""
    return bindparam(name or column.key, type_=column.type)


def _statement() -> Select[Any]:
    counter = (
        pg_insert(CaseCounter)
        .values(day=_param(CaseCounter.day), last=1)
        .on_conflict_do_update(
            index_elements=[CaseCounter.day], set_={"last": CaseCounter.last + 1}
        )
        .returning(CaseCounter.last)
        .cte("counter")
    )
    digits = cast(counter.c.last, String)
    numbered = select(
        (
            bindparam("prefix", type_=String)
            + func.lpad(digits, func.greatest(4, func.length(digits)), "0")
        ).label("number")
    ).cte("numbered")
    now = _param(Case.created_at, "now")
    values = {
        "number": numbered.c.number,
        "resident_id": _param(Case.resident_id),
        "channel": _param(Case.channel),
        "chat_id": _param(Case.chat_id),
        "category": _param(Case.category),
        "description": _param(Case.description),
        "address": _param(Case.address),
        "latitude": _param(Case.latitude),
        "longitude": _param(Case.longitude),
        "status": literal(CaseStatus.received.value),
        "platform": _param(Case.platform),
        "platform_id": case((bindparam("local", type_=Boolean), numbered.c.number), else_=null()),
        "platform_updated_at": null(),
        "grid": _param(Case.grid),
        "created_at": now,
        "updated_at": now,
    }
    new_case = (
        pg_insert(Case)
        .from_select(list(values), select(*values.values()))
        .returning(Case.id, Case.number)
        .cte("new_case")
    )
    event = (
        pg_insert(CaseEvent)
        .from_select(
            ["case_id", "status", "note", "actor", "created_at"],
            select(
                new_case.c.id,
                literal(CaseStatus.received.value),
                literal(""),
                _param(CaseEvent.actor),
                now,
            ),
        )
        .returning(CaseEvent.id)
        .cte("event")
    )
    head, tail = outbox_key("\0", OutboxKind.create).split("\0")
    job = (
        pg_insert(OutboxJob)
        .from_select(
            list(JOB_COLUMNS),
            select(
                new_case.c.id,
                literal(OutboxKind.create.value),
                literal(head) + new_case.c.number + literal(tail),
                literal(""),
                literal(OutboxState.pending.value),
                literal(0, Integer),
                now,
                null(),
                null(),
                literal(""),
                now,
                null(),
            ).where(bindparam("forward", type_=Boolean)),
        )
        .returning(OutboxJob.id)
        .cte("job")
    )
    return select(new_case.c.id, new_case.c.number).add_cte(event, job)


OPEN_CASE = _statement()


def _values(table: Any, columns: list[str]) -> Any:
    """An INSERT of ``columns``, each a parameter of its own name and type."""
    return insert(table).values(
        {name: bindparam(name, type_=table.__table__.c[name].type) for name in columns}
    )


_SQLITE_COUNTER = (
    sqlite_insert(CaseCounter)
    .values(day=_param(CaseCounter.day), last=1)
    .on_conflict_do_update(index_elements=[CaseCounter.day], set_={"last": CaseCounter.last + 1})
    .returning(CaseCounter.last)
)
_SQLITE_CASE = _values(
    Case,
    [
        "number",
        "resident_id",
        "channel",
        "chat_id",
        "category",
        "description",
        "address",
        "latitude",
        "longitude",
        "status",
        "platform",
        "platform_id",
        "platform_updated_at",
        "grid",
        "created_at",
        "updated_at",
    ],
).returning(Case.id)
_SQLITE_EVENT = _values(CaseEvent, ["case_id", "status", "note", "actor", "created_at"])
_SQLITE_JOB = _values(OutboxJob, list(JOB_COLUMNS))


def sqlite_opening(dialect: Dialect) -> tuple[Any, Any, Any, Any]:
    """The four statements of ``open_on_sqlite``, compiled for ``dialect`` (once)."""
    return tuple(  # type: ignore[return-value]
        driver_sql(statement, dialect)
        for statement in (_SQLITE_COUNTER, _SQLITE_CASE, _SQLITE_EVENT, _SQLITE_JOB)
    )


def open_on_sqlite(
    db: Any,
    statements: tuple[Any, Any, Any, Any],
    day: Any,
    number_of: Callable[[int], str],
    case_row: Mapping[str, Any],
    forward: bool,
) -> str:
    """On aiosqlite's thread, in the caller's transaction: the day's next number, the
    case in ``received``, its first history entry and, with ``forward``, its forwarding
    job. ``case_row`` holds the case's columns but its number and platform id."""
    counter, new_case, new_event, new_job = statements
    (last,) = first(db, counter.compiled.string, counter.args({"day": day}))
    number = number_of(int(last))
    row = {**case_row, "number": number, "platform_id": None if forward else number}
    (case_id,) = first(db, new_case.compiled.string, new_case.args(row))
    now = case_row["created_at"]
    event = {
        "case_id": case_id,
        "status": CaseStatus.received.value,
        "note": "",
        "actor": f"grid:{case_row['grid']}" if case_row["grid"] else "resident",
        "created_at": now,
    }
    db.execute(new_event.compiled.string, new_event.args(event)).close()
    if forward:
        job = job_row(case_id, number, OutboxKind.create, now)
        db.execute(new_job.compiled.string, new_job.args(job)).close()
    return number
