"""Opening a case in one statement on PostgreSQL.

A new case is four writes: the day's counter, the case, its first history entry and,
when cases go to a platform, its forwarding job. Inside residents' turns, four
statements in a transaction are six round trips to the server. PostgreSQL runs them as
one statement of data-modifying CTEs, atomic without a transaction around it, in one
round trip. ``CaseBook.create_case`` uses it when the case has no media or consent and
the resident's id is known; otherwise, and on SQLite, it writes statement by statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Integer, String, bindparam, case, cast, func, literal, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import Select

from integration.changes import outbox_key
from integration.models import (
    Case,
    CaseCounter,
    CaseEvent,
    CaseStatus,
    OutboxJob,
    OutboxKind,
    OutboxState,
)


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
            [
                "case_id",
                "kind",
                "key",
                "note",
                "state",
                "attempts",
                "next_attempt_at",
                "first_attempt_at",
                "token",
                "last_error",
                "created_at",
                "done_at",
            ],
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
