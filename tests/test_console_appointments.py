"""The console's appointments day view: no-shows and cancellations with a message."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bots.app import SERVICES
from integration.appointments import AppointmentBook, BookingDraft
from integration.models import AppointmentStatus, AuditEntry, Notification
from integration.services.calendar import LOCAL_TZ
from tests.console_client import console_client, page_csrf, sign_in

pytestmark = pytest.mark.slow
AT = datetime(2026, 12, 8, 9, 30, tzinfo=LOCAL_TZ)
NASTY = "<script>alert(1)</script>'; DROP TABLE appointments; --"


@pytest.fixture
async def client(data_dir: Path) -> Any:
    async with console_client(data_dir) as client:
        yield client


async def test_a_days_bookings_a_no_show_and_a_cancellation_with_a_message(client: Any) -> None:
    book = AppointmentBook(client.server.app[SERVICES].sessions)
    first = await book.book(
        BookingDraft("webchat", "r1", "r1", "residence_permit", "population", AT, 15, 5)
    )
    second = await book.book(
        BookingDraft("webchat", "r2", "r2", "social_security_card", "social_security", AT, 15, 5)
    )
    # Community accounts have no appointments page.
    assert (await sign_in(client, "jinhui")).status == 303
    assert (await client.get("/console/appointments?day=2026-12-08")).status == 403
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "desk")).status == 303
    page = await (await client.get("/console/appointments?day=2026-12-08")).text()
    assert first.number in page and second.number in page and "09:30" in page
    token = await page_csrf(client, "/console/appointments?day=2026-12-08")
    marked = await client.post(
        f"/console/appointments/{first.number}/no-show", data={"csrf": token}
    )
    assert marked.status == 200 and "未到" in await marked.text()
    assert (await book.get(first.number)).status is AppointmentStatus.no_show
    # A cancellation needs a reason; the resident is told it.
    empty = await client.post(
        f"/console/appointments/{second.number}/cancel", data={"csrf": token, "note": " "}
    )
    assert empty.status == 400
    assert (await book.get(second.number)).status is AppointmentStatus.booked
    done = await client.post(
        f"/console/appointments/{second.number}/cancel", data={"csrf": token, "note": NASTY}
    )
    body = await done.text()
    assert done.status == 200 and "<script>alert" not in body and "&lt;script&gt;" in body
    assert (await book.get(second.number)).status is AppointmentStatus.cancelled
    async with client.server.app[SERVICES].sessions() as session:
        pushes = (await session.scalars(select(Notification))).all()
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert [p.chat_id for p in pushes] == ["r2"] and NASTY in pushes[0].text
    assert "appointment.no_show" in actions and "appointment.cancel" in actions
    # Twice is refused.
    again = await client.post(
        f"/console/appointments/{second.number}/cancel", data={"csrf": token, "note": "x"}
    )
    assert again.status == 409
