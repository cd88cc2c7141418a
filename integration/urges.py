"""催办: a resident pressing for an open case.

Each urge is kept beside the case (``case_urges``), not in its status history: urging
changes no status, and the history's latest note is what the resident reads as the
case's news. Staff see the count and the words in the console. A platform that takes
urges (the webhook platform) is asked too, through the outbox, once it has the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from integration.changes import count_jobs, lock_case, queue_job
from integration.errors import CaseNotFound
from integration.lifecycle import OPEN
from integration.models import Case, CaseStatus, CaseUrge, OutboxKind, utcnow
from integration.privacy import mask

# A chat's second 催办 of a case within this gap is answered but not counted again:
# residents press twice in a row, and staff should see how often, not how fast, a
# resident had to ask.
URGE_GAP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Urged:
    """What came of a resident's 催办.

    ``count``: the case's urges so far; ``counted``: this one was recorded (not the same
    chat again within ``URGE_GAP``); ``forwarded``: the platform is asked too.
    """

    count: int
    counted: bool
    forwarded: bool


async def record_urge(
    connection: AsyncConnection,
    number: str,
    channel: str,
    chat_id: str,
    text: str,
    now: datetime,
    forward: bool,
) -> Urged:
    """Record an urge of an open case in the caller's transaction; with ``forward``, a
    job asks the platform too when it has the case. Raises ``CaseNotFound`` for an
    unknown or finished case (nothing is left to hurry)."""
    case = await lock_case(connection, Case.number == number.upper())
    if case is None or CaseStatus(case.status) not in OPEN:
        raise CaseNotFound(number)
    last = await connection.scalar(
        select(CaseUrge.created_at)
        .where(CaseUrge.case_id == case.id, CaseUrge.channel == channel)
        .where(CaseUrge.chat_id == chat_id)
        .order_by(CaseUrge.id.desc())
        .limit(1)
    )
    counted = last is None or now - last >= URGE_GAP
    forwarded = False
    if counted:
        words = mask(text)[:500]
        await connection.execute(
            insert(CaseUrge).values(
                case_id=case.id, channel=channel, chat_id=chat_id, text=words, created_at=now
            )
        )
        # A case not yet on the platform is hurried there by its own forwarding.
        if forward and case.platform_id:
            round_ = await count_jobs(connection, case.id, OutboxKind.urge) + 1
            due = utcnow()  # at once, whatever time the urge is dated
            await queue_job(
                connection, case.id, case.number, OutboxKind.urge, due, note=words, round_=round_
            )
            forwarded = True
    count = await connection.scalar(
        select(func.count()).select_from(CaseUrge).where(CaseUrge.case_id == case.id)
    )
    return Urged(count=int(count or 0), counted=counted, forwarded=forwarded)
