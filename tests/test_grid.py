"""Grid workers (网格员) by chat, through the whole app, the real pipeline and NLU.

On SQLite with memory state and on PostgreSQL with Redis: a grid account is linked to
a chat by the console's one-time code; its reports are filed at once with its grid
id; it closes its grid's cases with a photo, and is refused others' and residents'
cases with no change; an ordinary resident still confirms.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bots.app import SERVICES
from console.accounts import AccountBook, AccountError
from handlers.catalog import Catalog
from handlers.messages import Inbound, Media
from integration.db import create_engine, session_factory
from integration.models import (
    AuditEntry,
    Case,
    CaseEvent,
    CaseMedia,
    CaseStatus,
    StaffAccount,
    StaffRole,
)
from tests.console_client import PASSWORD, console_client, page_csrf, sign_in
from tests.test_staff_cli import yimen

REPORT = "金辉小区5号楼门口的路灯不亮了"
_CODE = re.compile(r"绑定(\d{6})")


@pytest.fixture
async def client(data_dir: Path, backend: dict[str, Any]) -> Any:
    async with console_client(data_dir, **backend) as client:
        book = AccountBook(client.server.app[SERVICES].sessions)
        await book.create("gw", PASSWORD, StaffRole.grid, "金辉小区", "G-3-07")
        await book.create("gw8", PASSWORD, StaffRole.grid, "金辉小区", "G-3-08")
        yield client


class Chat:
    """One chat account talking to the running app's pipeline."""

    def __init__(self, client: Any, chat: str) -> None:
        self.services = client.server.app[SERVICES]
        self.chat = chat
        self.sent = 0

    async def say(self, text: str = "", *, photo: str = "") -> str:
        self.sent += 1
        media = (Media("image", photo, f"/media/{photo}"),) if photo else ()
        inbound = Inbound("webchat", self.chat, self.chat, f"{self.chat}-{self.sent}", text)
        replies = await self.services.pipeline.handle(
            Inbound(inbound.channel, self.chat, self.chat, inbound.message_id, text, media=media)
        )
        assert replies is not None
        return "\n".join(r.text for r in replies)


async def link_in_console(client: Any, username: str, chat: Chat) -> str:
    """Sign in as ``username``, take the code from the console, send it from ``chat``."""
    assert (await sign_in(client, username)).status == 303
    cases = await (await client.get("/console/cases")).text()
    assert "绑定我的聊天账号" in cases
    token = await page_csrf(client, "/console/cases")
    page = await (await client.post("/console/inbox/link", data={"csrf": token})).text()
    found = _CODE.search(page)
    assert found, page
    await client.post("/console/signout", data={"csrf": token})
    return await chat.say(f"绑定{found.group(1)}")


async def case_row(client: Any, number: str) -> Case:
    async with client.server.app[SERVICES].sessions() as session:
        return (await session.scalars(select(Case).where(Case.number == number))).one()


async def count(client: Any, model: Any) -> int:
    async with client.server.app[SERVICES].sessions() as session:
        return len(list(await session.scalars(select(model))))


async def file_report(chat: Chat, catalog: Catalog) -> str:
    """A grid worker's report: filed as soon as the slots are complete; its number."""
    asked = await chat.say(REPORT)
    assert "照片" in asked
    filed = await chat.say("没有照片")
    assert "请确认" not in filed
    found = re.search(r"工单号：(YM\d+)", filed)
    assert found, filed
    assert "G-3-" in filed
    return found.group(1)


async def test_linked_grid_worker_files_without_confirmation_and_closes_with_photo(
    client: Any, catalog: Catalog
) -> None:
    worker = Chat(client, "gw-chat")
    linked = await link_in_console(client, "gw", worker)
    assert linked == catalog("grid.linked", staff="gw", grid="G-3-07")

    number = await file_report(worker, catalog)
    case = await case_row(client, number)
    assert (case.grid, case.status) == ("G-3-07", "received")
    assert case.address.startswith("金辉小区5号楼")

    # the desk sees the grid id on the case page
    assert (await sign_in(client, "desk")).status == 303
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert "G-3-07" in page

    asked = await worker.say(f"结案 {number}")
    assert asked == catalog("grid.ask_photo", number=number)
    again = await worker.say("好了")
    assert again == catalog("grid.photo_again")
    assert (await case_row(client, number)).status == "received"
    done = await worker.say(photo="done-1.jpg")
    assert done == catalog("grid.closed", number=number)

    async with client.server.app[SERVICES].sessions() as session:
        case = (await session.scalars(select(Case).where(Case.number == number))).one()
        media = list(await session.scalars(select(CaseMedia).where(CaseMedia.case_id == case.id)))
        events = list(await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)))
        audited = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "case.grid_close"))
        )
    assert case.status == CaseStatus.closed.value
    assert [m.ref for m in media] == ["done-1.jpg"]
    assert (events[-1].status, events[-1].actor) == ("closed", "grid:gw")
    assert events[-1].note == catalog("grid.close_note", staff="gw", grid="G-3-07")
    assert [(a.actor, a.role, a.target) for a in audited] == [("gw", "grid", number)]
    assert '"closed"' in audited[0].after and '"received"' in audited[0].before

    # closing it again is refused, and nothing more is written
    assert await worker.say(f"办结{number}") == catalog("grid.refused.finished", number=number)
    assert await count(client, CaseMedia) == 1


async def test_other_grids_and_residents_cases_are_refused_without_change(
    client: Any, catalog: Catalog
) -> None:
    worker, other = Chat(client, "gw-chat"), Chat(client, "gw8-chat")
    assert await link_in_console(client, "gw", worker) == catalog(
        "grid.linked", staff="gw", grid="G-3-07"
    )
    assert await link_in_console(client, "gw8", other) == catalog(
        "grid.linked", staff="gw8", grid="G-3-08"
    )
    theirs = await file_report(other, catalog)
    assert (await case_row(client, theirs)).grid == "G-3-08"

    # an ordinary resident still gets the confirmation step; their case has no grid
    resident = Chat(client, "resident")
    await resident.say("金辉小区南门的垃圾桶满了好几天没人清理")
    confirm = await resident.say("没有照片")
    assert "请确认" in confirm
    assert await count(client, Case) == 1
    submitted = await resident.say("提交")
    found = re.search(r"工单号：(YM\d+)", submitted)
    assert found, submitted
    residents = found.group(1)
    assert (await case_row(client, residents)).grid == ""

    media_before, audit_before = await count(client, CaseMedia), await count(client, AuditEntry)
    refused = await worker.say(f"结案 {theirs}")
    assert refused == catalog("grid.refused.not_yours", number=theirs)
    refused = await worker.say(f"结案 {residents}")
    assert refused == catalog("grid.refused.unassigned", number=residents)
    missing = await worker.say("结案 YM26010199999")
    assert missing == catalog("grid.refused.not_found", number="YM26010199999")
    # the refusals left no step open: a photo now is not taken as a close
    await worker.say(photo="y.jpg")
    for number in (theirs, residents):
        assert (await case_row(client, number)).status == "received"
    assert await count(client, CaseMedia) == media_before
    assert await count(client, AuditEntry) == audit_before

    # a resident who types 结案 with a number is not a grid worker: nothing is closed
    await resident.say(f"结案 {residents}")
    assert (await case_row(client, residents)).status == "received"


async def test_grid_ids_belong_to_grid_accounts(client: Any) -> None:
    book = AccountBook(client.server.app[SERVICES].sessions)
    with pytest.raises(AccountError):
        await book.create("clerk2", PASSWORD, StaffRole.community, "金辉小区", "G-1-01")
    assert (await sign_in(client, "gw")).status == 303
    page = await (await client.get("/console/cases")).text()
    assert "G-3-07" in page


async def test_admin_create_gives_a_grid_account_its_grid_id(tmp_path: Path) -> None:
    env = {"YIMEN_DATA_DIR": str(tmp_path / "var")}
    assert (await yimen(tmp_path, "db", "upgrade", **env))[0] == 0
    args = ("liu", "--role", "grid", "--community", "金辉小区", "--grid", "G-3-07")
    code, out, err = await yimen(tmp_path, "admin", "create", *args, "--password", PASSWORD, **env)
    assert code == 0, err
    assert "grid G-3-07" in out
    code, _, err = await yimen(
        tmp_path,
        "admin",
        "create",
        "li",
        "--role",
        "staff",
        "--grid",
        "G-1",
        "--password",
        PASSWORD,
        **env,
    )
    assert code == 1 and "grid id" in err
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'yimen.db'}")
    try:
        async with session_factory(engine)() as session:
            rows = (await session.execute(select(StaffAccount.username, StaffAccount.grid))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [("liu", "G-3-07")]


async def test_a_community_account_gets_no_link_code(client: Any) -> None:
    assert (await sign_in(client, "jinhui")).status == 303
    token = await page_csrf(client, "/console/cases")
    page = await (await client.get("/console/cases")).text()
    assert "绑定我的聊天账号" not in page
    refused = await client.post("/console/inbox/link", data={"csrf": token})
    assert refused.status == 403
