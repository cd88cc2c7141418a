"""Help at home: service items recorded, listed with phones masked, approved once."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from bots.cli import app
from integration.contacts import ContactBook
from integration.db import create_engine, session_factory
from integration.items import ItemBook, ItemDraft, ItemNotFound, ItemNotPending
from integration.models import ItemStatus, Notification
from integration.residents import Identity, ResidentBook

Sessions = async_sessionmaker[AsyncSession]


def draft(user: str = "r1") -> ItemDraft:
    return ItemDraft(
        "webchat",
        user,
        user,
        "meal",
        "每天中午",
        "金辉小区3号楼2单元501",
        "家中老人",
        "13912345678",
    )


async def test_an_item_is_pending_until_approved_once(sessions: Sessions) -> None:
    book = ItemBook(sessions)
    first = await book.create(draft())
    second = await book.create(draft("r2"))
    assert (first.status, first.phone, first.whom) == (
        ItemStatus.pending,
        "13912345678",
        "家中老人",
    )

    approved = await book.approve(first.id, "王主任")
    assert (approved.status, approved.approved_by) == (ItemStatus.open, "王主任")
    with pytest.raises(ItemNotPending):
        await book.approve(first.id)
    with pytest.raises(ItemNotFound):
        await book.approve(second.id + 100)
    pending = await book.list_items([ItemStatus.pending])
    assert [item.id for item in pending] == [second.id]
    assert [item.id for item in await book.list_items()] == [second.id, first.id]


def test_yimen_items_list_masks_phones_and_approve_approves(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(sqlite_template, tmp_path / "items.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'items.db'}"
    monkeypatch.setenv("YIMEN_DATABASE_URL", url)

    async def create() -> int:
        engine = create_engine(url)
        try:
            return (await ItemBook(session_factory(engine)).create(draft())).id
        finally:
            await engine.dispose()

    item = asyncio.run(create())
    runner = CliRunner()
    listed = runner.invoke(app, ["items", "list"])
    assert listed.exit_code == 0, listed.output
    assert "139****5678" in listed.output and "13912345678" not in listed.output
    assert "pending" in listed.output and "每天中午" in listed.output

    approved = runner.invoke(app, ["items", "approve", str(item)])
    assert approved.exit_code == 0, approved.output
    assert f"{item} -> open" in approved.output

    async def pushed() -> list[tuple[str, dict[str, str]]]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(select(Notification.text, Notification.fields))
                return [(text, dict(json.loads(fields))) for text, fields in rows]
        finally:
            await engine.dispose()

    [(push, fields)] = asyncio.run(pushed())  # the resident is told, once
    assert "已通过社区审核" in push and "助餐" in push and "每天中午" in push
    assert fields == {
        "number": str(item),
        "status": "已通过社区审核",
        "note": "助餐",
        "time": "每天中午",
    }
    again = runner.invoke(app, ["items", "approve", str(item)])
    assert again.exit_code == 1 and "already approved" in again.output


async def test_forgetting_a_resident_detaches_their_items_and_drops_their_phone(
    sessions: Sessions,
) -> None:
    contacts, items = ContactBook(sessions), ItemBook(sessions)
    await contacts.remember("webchat", "r1", "13912345678")
    item = await items.create(draft())
    other = await items.create(draft("r2"))

    await ResidentBook(sessions).forget(Identity("webchat", "r1"))

    assert await contacts.phone("webchat", "r1") == ""
    kept = await items.get(item.id)
    assert (kept.phone, kept.chat_id) == ("139****5678", "")
    assert (await items.get(other.id)).phone == "13912345678"
