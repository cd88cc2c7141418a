"""`yimen volunteers …` and `yimen items add|confirm|unconfirmed`: staff until the console."""

from __future__ import annotations

import asyncio
import csv
import shutil
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from bots.cli import app
from integration.claims import ClaimBook
from integration.db import create_engine, session_factory
from integration.items import ItemBook
from integration.models import ItemStatus, VolunteerStatus
from integration.services.calendar import LOCAL_TZ
from integration.volunteers import VolunteerBook, VolunteerDraft

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    shutil.copy(sqlite_template, tmp_path / "v.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"
    monkeypatch.setenv("YIMEN_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    return url


def run(url: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        engine = create_engine(url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def draft(n: int) -> VolunteerDraft:
    return VolunteerDraft(
        "webchat",
        f"v{n}",
        f"v{n}",
        f"张{n}",
        f"1380000{n:04d}",
        "第二中学",
        "教育支部",
        "金辉小区",
        ("education",),
        (),
    )


def yimen(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_approve_reject_and_invite(url: str) -> None:
    first = run(url, lambda s: VolunteerBook(s).register(draft(1)))
    second = run(url, lambda s: VolunteerBook(s).register(draft(2)))
    listed = yimen("volunteers", "list")
    assert "138****0001" in listed and "13800000001" not in listed and "pending" in listed
    assert f"{first.id} -> approved" in yimen("volunteers", "approve", str(first.id))
    assert f"{second.id} -> rejected" in yimen("volunteers", "reject", str(second.id))
    again = runner.invoke(app, ["volunteers", "approve", str(second.id)])
    assert again.exit_code == 1 and "already rejected" in again.output
    only = yimen("volunteers", "list", "--status", "approved")
    assert "张1" in only and "张2" not in only

    issued = yimen("volunteers", "invite", "--community", "金辉小区")
    code = next(line for line in issued.splitlines() if "expires" in line).split()[0]
    bad = runner.invoke(app, ["volunteers", "invite", "--community", "不存在社区"])
    assert bad.exit_code == 2
    third = run(url, lambda s: VolunteerBook(s).register(draft(3), code))
    assert third.status is VolunteerStatus.approved


def test_items_add_confirm_unconfirmed_and_the_monthly_report(url: str) -> None:
    volunteer = run(url, lambda s: VolunteerBook(s).register(draft(1)))
    added = yimen(
        "items",
        "add",
        "--community",
        "金辉小区",
        "--title",
        "义务辅导作业",
        "--start",
        "2026-11-14 09:00",
        "--end",
        "2026-11-14 12:00",
        "--place",
        "金辉小区活动室",
        "--skill",
        "education",
        "--capacity",
        "2",
    )
    item_id = int(added.splitlines()[-1].split()[0])
    assert "open" in added and "0/2" in added
    bad = runner.invoke(
        app,
        [
            "items",
            "add",
            "--community",
            "金辉小区",
            "--title",
            "x",
            "--start",
            "2026-11-14 09:00",
            "--place",
            "x",
            "--skill",
            "飞行",
        ],
    )
    assert bad.exit_code == 2

    start = datetime(2026, 11, 14, 9, 0, tzinfo=LOCAL_TZ)

    async def claim_and_do(s: Any) -> None:
        claims = ClaimBook(s)
        await claims.claim(item_id, volunteer.id, "webchat", "v1", start - timedelta(days=1))
        await claims.complete(item_id, volunteer.id, start + timedelta(hours=3))

    run(url, claim_and_do)
    assert "no unconfirmed" not in yimen("items", "unconfirmed", "--hours", "1")
    assert f"{item_id} -> confirmed" in yimen("items", "confirm", str(item_id), "--rating", "5")
    again = runner.invoke(app, ["items", "confirm", str(item_id)])
    assert again.exit_code == 1 and "not done" in again.output
    assert run(url, lambda s: ItemBook(s).get(item_id)).status is ItemStatus.confirmed

    assert "1 volunteer(s)" in yimen(
        "volunteers", "report", "--month", "2026-11", "--format", "csv"
    )
    with open("volunteers-2026-11.csv", encoding="utf-8-sig") as handle:
        table = list(csv.reader(handle))
    assert table[1][:8] == [
        "volunteer",
        str(volunteer.id),
        "张1",
        "金辉小区",
        "教育支部",
        "1",
        "3.0",
        "0",
    ]
    assert ["community", "", "", "金辉小区", "", "1", "3.0", "0"] in table
    assert ["branch", "", "", "", "教育支部", "1", "3.0", "0"] in table

    yimen("volunteers", "report", "--month", "2026-11", "--format", "xlsx")
    sheet = load_workbook("volunteers-2026-11.xlsx").active
    assert sheet is not None
    assert [c.value for c in sheet[2]][:6] == [
        "volunteer",
        volunteer.id,
        "张1",
        "金辉小区",
        "教育支部",
        1,
    ]
    bad_month = runner.invoke(app, ["volunteers", "report", "--month", "November"])
    assert bad_month.exit_code == 2
