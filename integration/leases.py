"""Durable work with a due time, claimed under a lease: one mechanism for every kind.

Booking reminders and handoff service-level alarms are rows with a due time and a
lease column. A worker claims due rows by moving their lease forward, with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (as the outbox claims jobs), so two workers
never claim one row, and a worker that dies holding some only delays them: once the
lease runs out, the next worker claims them again. Completing a row is the caller's
conditional update, in the transaction that queues its effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute


async def claim_leased(
    engine: AsyncEngine,
    model: Any,
    due: Sequence[ColumnElement[bool]],
    lease_column: InstrumentedAttribute[Any],
    order: Sequence[Any],
    now: datetime,
    *,
    lease: timedelta,
    limit: int,
) -> list[Row[Any]]:
    """Claim up to ``limit`` rows of ``model`` matching ``due`` whose lease is free.

    Returns the claimed rows (their columns before the lease moved).
    """
    query = (
        select(model)
        .where(*due, (lease_column.is_(None)) | (lease_column < now))
        .order_by(*order)
        .limit(limit)
    )
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list((await connection.execute(query)).all())
        if rows:
            await connection.execute(
                update(model)
                .where(model.id.in_([row.id for row in rows]))
                .values({lease_column.key: now + lease})
            )
    return rows
