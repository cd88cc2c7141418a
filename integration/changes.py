"""Recording what happens to a case, inside the caller's transaction.

A status change writes its history entry, the case's new status, and the notifications
of the reporter and every follower together; a resolution also opens the rating
question. Forwarding jobs (the dispatch outbox) are queued the same way. The case
book, the outbox, status sync and ratings all write through these functions, so a
change is never recorded without its pushes being durably queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from integration.models import (
    Case,
    CaseEvent,
    CaseFollower,
    CaseStatus,
    Notification,
    NotificationKind,
    OutboxJob,
    OutboxKind,
    OutboxState,
    Rating,
    UTCDateTime,
)

_INSERT_EVENT = insert(CaseEvent).returning(CaseEvent.id, sort_by_parameter_order=True)
_LOCKED_COLUMNS = (
    Case.id,
    Case.number,
    Case.status,
    Case.channel,
    Case.chat_id,
    Case.platform,
    Case.platform_id,
    Case.platform_updated_at,
)


def outbox_key(number: str, kind: OutboxKind, round_: int = 1) -> str:
    """The idempotency key of a forwarding job: the same on every attempt, unique per job."""
    return f"yimen-{number}-{kind.value}-{round_}"


async def lock_case(connection: AsyncConnection, where: Any) -> Any:
    """The case row matching ``where`` (or None), locked for this transaction on PostgreSQL."""
    result = await connection.execute(select(*_LOCKED_COLUMNS).where(where).with_for_update())
    return result.first()


async def locked_cases(connection: AsyncConnection, case_ids: Sequence[int]) -> Sequence[Any]:
    """Several cases' rows, locked for this transaction on PostgreSQL (in id order)."""
    query = (
        select(*_LOCKED_COLUMNS).where(Case.id.in_(case_ids)).order_by(Case.id).with_for_update()
    )
    return (await connection.execute(query)).all()


# A forwarding job's columns, as ``job_row`` fills them.
JOB_COLUMNS = (
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
)


def job_row(
    case_id: int,
    number: str,
    kind: OutboxKind,
    now: datetime,
    *,
    note: str = "",
    round_: int = 1,
    state: OutboxState = OutboxState.pending,
    error: str = "",
) -> dict[str, Any]:
    """A new forwarding job's row (``JOB_COLUMNS``), due at once."""
    return {
        "case_id": case_id,
        "kind": kind.value,
        "key": outbox_key(number, kind, round_),
        "note": note,
        "state": state.value,
        "attempts": 0,
        "next_attempt_at": now,
        "first_attempt_at": None,
        "token": None,
        "last_error": error,
        "created_at": now,
        "done_at": None,
    }


async def queue_job(
    connection: AsyncConnection,
    case_id: int,
    number: str,
    kind: OutboxKind,
    now: datetime,
    *,
    note: str = "",
    round_: int = 1,
    state: OutboxState = OutboxState.pending,
    error: str = "",
) -> None:
    """Queue a forwarding job in the caller's transaction."""
    await connection.execute(
        insert(OutboxJob),
        job_row(case_id, number, kind, now, note=note, round_=round_, state=state, error=error),
    )


def notification_row(
    event_id: int, channel: str, chat_id: str, kind: NotificationKind, now: datetime
) -> dict[str, Any]:
    """A pending push of one history entry to one chat, due now (an INSERT's values)."""
    return {
        "event_id": event_id,
        "channel": channel,
        "chat_id": chat_id,
        "kind": kind.value,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
        "created_at": now,
        "sent_at": None,
    }


@dataclass(frozen=True, slots=True)
class Change:
    """One status change of a locked case (a row from ``lock_case``), to be recorded."""

    case: Any
    status: CaseStatus
    note: str = ""
    actor: str = "staff"
    notify_reporter: bool = True  # False when the reporter caused it and was answered
    platform_time: datetime | None = None  # the platform's time of the change


_UPDATE_STATUS = (
    update(Case)
    .where(Case.id == bindparam("case_id"))
    .values(
        status=bindparam("new_status"),
        updated_at=bindparam("now"),
        platform_updated_at=func.coalesce(
            bindparam("platform_time", type_=UTCDateTime()), Case.platform_updated_at
        ),
    )
)


async def record_change(
    connection: AsyncConnection,
    case: Any,
    status: CaseStatus,
    note: str,
    actor: str,
    now: datetime,
    *,
    notify_reporter: bool = True,
    platform_time: datetime | None = None,
) -> int:
    """Write one status change of a locked case in the caller's transaction; its event id."""
    change = Change(case, status, note, actor, notify_reporter, platform_time)
    [event_id] = await record_changes(connection, [change], now)
    return event_id


async def record_changes(
    connection: AsyncConnection, changes: Sequence[Change], now: datetime
) -> list[int]:
    """Write status changes of distinct locked cases in the caller's transaction.

    Each gets its history entry, its new status and one notification for the reporter
    (unless they caused it) and each follower. A ``resolved`` change asks the reporter
    for a rating: their push carries the question and a rating row waits for the
    answer. A handful of statements for the whole list, however long: the outbox
    records a batch of forwarded cases at once. Returns the event ids, in order.
    """
    if not changes:
        return []
    events = await connection.execute(
        _INSERT_EVENT,
        [
            {
                "case_id": c.case.id,
                "status": c.status.value,
                "note": c.note,
                "actor": c.actor,
                "created_at": now,
            }
            for c in changes
        ],
    )
    event_ids = [int(row[0]) for row in events]
    await connection.execute(
        _UPDATE_STATUS,
        [
            {
                "case_id": c.case.id,
                "new_status": c.status.value,
                "now": now,
                "platform_time": c.platform_time,
            }
            for c in changes
        ],
    )
    followers: dict[int, list[tuple[str, str]]] = {}
    query = select(CaseFollower.case_id, CaseFollower.channel, CaseFollower.chat_id).where(
        CaseFollower.case_id.in_([c.case.id for c in changes])
    )
    for case_id, channel, chat_id in await connection.execute(query):
        followers.setdefault(case_id, []).append((channel, chat_id))
    notifications, ratings = [], []
    for change, event_id in zip(changes, event_ids, strict=True):
        case, resolved = change.case, change.status == CaseStatus.resolved
        recipients: dict[tuple[str, str], NotificationKind] = {}
        reporter = bool(case.chat_id)  # "" once the reporter asked to be forgotten
        if reporter and (change.notify_reporter or resolved):
            kind = NotificationKind.rating if resolved else NotificationKind.status
            recipients[(case.channel, case.chat_id)] = kind
        for chat in followers.get(case.id, ()):
            recipients.setdefault(chat, NotificationKind.status)
        notifications += [
            notification_row(event_id, channel, chat_id, kind, now)
            for (channel, chat_id), kind in recipients.items()
        ]
        if resolved and reporter:
            ratings.append(
                {
                    "case_id": case.id,
                    "event_id": event_id,
                    "channel": case.channel,
                    "chat_id": case.chat_id,
                    "score": None,
                    "comment": "",
                    "reopened": False,
                    "asked_at": now,
                    "reminded_at": None,
                    "answered_at": None,
                }
            )
    if notifications:
        await connection.execute(insert(Notification), notifications)
    if ratings:
        await connection.execute(insert(Rating), ratings)
    return event_ids


async def count_jobs(connection: AsyncConnection, case_id: int, kind: OutboxKind) -> int:
    """How many jobs of ``kind`` a case has had (the round of the next one is this + 1)."""
    return int(
        await connection.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(OutboxJob.case_id == case_id, OutboxJob.kind == kind.value)
        )
        or 0
    )
