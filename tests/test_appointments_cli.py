"""`yimen appointments list|no-show|cancel`, run as staff run it: the installed script.

A booking made through the appointment book is listed by day and window, marked as a
no-show, or cancelled with a note that reaches the resident through the push queue.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from integration.appointments import AppointmentBook, BookingDraft
from integration.db import create_engine, session_factory, upgrade
from integration.models import Notification, NotificationKind
from integration.services.calendar import LOCAL_TZ
from tests.test_staff_cli import yimen

pytestmark = pytest.mark.slow

AT = datetime(2026, 12, 8, 9, 30, tzinfo=LOCAL_TZ)


async def test_staff_list_mark_and_cancel_with_a_note(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'yimen.db'}")
    await upgrade(engine)
    book = AppointmentBook(session_factory(engine))
    drafts = [
        BookingDraft("webchat", "r1", "r1", "residence_permit", "population", AT, 15, 5),
        BookingDraft("wechat", "r2", "r2", "social_security_card", "social_security", AT, 15, 5),
    ]
    first, second = [await book.book(d) for d in drafts]
    try:
        code, out, _ = await yimen(tmp_path, "appointments", "list", "--day", "2026-12-08")
        assert code == 0 and "2 booking(s)" in out
        assert first.number in out and second.number in out and "09:30" in out
        code, out, _ = await yimen(
            tmp_path, "appointments", "list", "--day", "2026-12-08", "--window", "population"
        )
        assert first.number in out and second.number not in out
        code, out, _ = await yimen(tmp_path, "appointments", "no-show", first.number)
        assert code == 0 and "no-show" in out
        code, out, _ = await yimen(
            tmp_path, "appointments", "cancel", second.number, "--note", "窗口设备检修"
        )
        assert code == 0 and "cancelled" in out
        code, _, err = await yimen(tmp_path, "appointments", "cancel", second.number, "--note", "x")
        assert code == 1 and "no booked appointment" in err
        async with engine.connect() as connection:
            pushes = (await connection.execute(select(Notification))).all()
        assert len(pushes) == 1
        push = pushes[0]
        assert (push.channel, push.chat_id, push.kind) == ("wechat", "r2", NotificationKind.reply)
        assert second.number in push.text and "窗口设备检修" in push.text
        fields = dict(json.loads(push.fields))  # for WeChat's template, outside 48 hours
        assert fields["number"] == second.number and fields["note"] == "窗口设备检修"
        assert fields["status"] == "预约已取消"
        code, out, _ = await yimen(tmp_path, "appointments", "list", "--day", "2026-12-08")
        assert "no_show" in out and "cancelled" in out
    finally:
        await engine.dispose()
