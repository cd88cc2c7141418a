"""The console's cases desk over HTTP: filters, scoping by community, status changes,
dead-letter retries, escaping. (The browser tests are in test_console_browser.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bots.app import SERVICES
from handlers.pipeline import TAKEN_FALLBACK
from integration.models import (
    AuditEntry,
    CaseEvent,
    Message,
    Notification,
    OutboxJob,
    OutboxState,
)
from nlu.types import FALLBACK_INTENT
from tests.console_client import console_client, open_case, page_csrf, report, sign_in

pytestmark = pytest.mark.slow

NASTY = "<script>alert('x')</script>\"'; DROP TABLE cases; --"


@pytest.fixture
async def client(data_dir: Path, backend: dict[str, Any]) -> Any:
    async with console_client(data_dir, **backend) as client:
        yield client


async def test_a_community_account_sees_only_its_own_communitys_cases(client: Any) -> None:
    mine = await open_case(client, "金辉小区3号楼", chat="a")
    theirs = await open_case(client, "交通社区5号楼", chat="b")
    assert (await sign_in(client, "jinhui")).status == 303
    listing = await (await client.get("/console/cases")).text()
    assert mine in listing and theirs not in listing
    # Asking for another community by the query string changes nothing.
    listing = await (await client.get("/console/cases?community=交通社区")).text()
    assert mine in listing and theirs not in listing
    assert (await client.get(f"/console/cases/{mine}")).status == 200
    for path in (f"/console/cases/{theirs}", f"/console/cases/{theirs.lower()}"):
        assert (await client.get(path)).status == 404
    token = await page_csrf(client, "/console/cases")
    refused = await client.post(
        f"/console/cases/{theirs}/status", data={"csrf": token, "status": "accepted"}
    )
    assert refused.status == 404
    export = await (await client.get("/console/cases.csv?community=交通社区")).text()
    assert mine in export and theirs not in export
    # The desk sees both.
    await client.post("/console/signout", data={"csrf": token})
    assert (await sign_in(client, "desk")).status == 303
    listing = await (await client.get("/console/cases")).text()
    assert mine in listing and theirs in listing
    only = await (await client.get("/console/cases?community=交通社区")).text()
    assert theirs in only and mine not in only


async def test_changing_a_status_tells_the_resident_and_is_audited(client: Any) -> None:
    number = await report(
        client, "res1", "楼下烧烤店每天半夜还很吵", "金辉小区3号楼", "跳过", "提交"
    )
    assert (await sign_in(client, "desk")).status == 303
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert "烧烤" in page and "金辉小区3号楼" in page
    # The transcript shows the NLU's intent (as staff name it) and its confidence.
    assert '<span class="intent">反映·噪音扰民</span>' in page
    token = await page_csrf(client, f"/console/cases/{number}")
    response = await client.post(
        f"/console/cases/{number}/status",
        data={"csrf": token, "status": "accepted", "note": "已派城管中队"},
        allow_redirects=False,
    )
    assert response.status == 303
    services = client.server.app[SERVICES]
    assert (await services.cases.get(number)).status.value == "accepted"
    async with services.sessions() as session:
        events = (await session.scalars(select(CaseEvent).order_by(CaseEvent.id))).all()
        pushes = (await session.scalars(select(Notification))).all()
        entries = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "case.status"))
        ).all()
    assert events[-1].note == "已派城管中队" and events[-1].actor == "console:desk"
    assert any(p.event_id == events[-1].id and p.chat_id == "res1" for p in pushes)
    assert len(entries) == 1 and entries[0].target == number and entries[0].actor == "desk"
    assert '"received"' in entries[0].before and "已派城管中队" in entries[0].after
    # Staff read who did it and what, in Chinese: the history and the audit log.
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert '<small class="muted">居民</small>' in page and "工作人员 desk" in page
    assert "<dd>网页聊天</dd>" in page
    audit = await (await client.get("/console/audit")).text()
    assert "变更工单状态" in audit and "desk <small>（工作人员）</small>" in audit
    # A move the lifecycle forbids is refused, and nothing changes.
    refused = await client.post(
        f"/console/cases/{number}/status", data={"csrf": token, "status": "received"}
    )
    assert refused.status == 409 and "不能变更" in await refused.text()
    assert (await services.cases.get(number)).status.value == "accepted"


async def test_injection_in_every_case_form_field_is_kept_as_text(client: Any) -> None:
    number = await open_case(client, "金辉小区1号楼", description=NASTY)
    assert (await sign_in(client, "desk")).status == 303
    token = await page_csrf(client, f"/console/cases/{number}")
    response = await client.post(
        f"/console/cases/{number}/status", data={"csrf": token, "status": "accepted", "note": NASTY}
    )
    assert response.status == 200
    page = await response.text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    # A bogus status is refused plainly.
    bad = await client.post(
        f"/console/cases/{number}/status", data={"csrf": token, "status": NASTY, "note": "x"}
    )
    assert bad.status == 400
    for query in ({"status": NASTY}, {"category": NASTY}, {"community": NASTY}):
        listing = await client.get("/console/cases", params=query)
        assert listing.status == 200 and "<script>alert" not in await listing.text()
    services = client.server.app[SERVICES]
    assert (await services.cases.get(number)).description == NASTY
    audit = await (await client.get("/console/audit")).text()
    assert "<script>alert" not in audit and "&lt;script&gt;" in audit
    export = await (await client.get("/console/cases.csv")).text()
    assert number in export


async def test_a_dead_letter_forward_is_listed_and_retried(client: Any) -> None:
    number = await open_case(client, "金辉小区2号楼")
    services = client.server.app[SERVICES]
    from integration.changes import queue_job
    from integration.models import Case, OutboxKind, utcnow

    async with services.engine.begin() as connection:
        case_id = await connection.scalar(select(Case.id).where(Case.number == number))
        await queue_job(
            connection,
            case_id,
            number,
            OutboxKind.create,
            utcnow(),
            state=OutboxState.dead,
            error="platform said 500",
        )
    assert (await sign_in(client, "desk")).status == 303
    dead = await (await client.get("/console/cases?dead=1")).text()
    assert number in dead
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert "platform said 500" in page
    token = await page_csrf(client, f"/console/cases/{number}")
    response = await client.post(f"/console/cases/{number}/retry", data={"csrf": token})
    assert response.status == 200
    async with services.sessions() as session:
        states = (await session.scalars(select(OutboxJob.state))).all()
    # Queued again (the app's worker may already have forwarded it).
    assert states in ([OutboxState.pending.value], [OutboxState.done.value])
    assert number not in await (await client.get("/console/cases?dead=1")).text()
    again = await client.post(f"/console/cases/{number}/retry", data={"csrf": token})
    assert again.status == 409


async def test_overdue_cases_are_flagged_and_filtered(client: Any) -> None:
    old = await open_case(client, "金辉小区2号楼", chat="old")
    new = await open_case(client, "金辉小区4号楼", chat="new")
    services = client.server.app[SERVICES]
    from datetime import timedelta

    from integration.models import Case, utcnow

    async with services.sessions.begin() as session:
        await session.execute(
            update(Case).where(Case.number == old).values(created_at=utcnow() - timedelta(days=4))
        )
    assert (await sign_in(client, "desk")).status == 303
    overdue = await (await client.get("/console/cases?overdue=1")).text()
    assert old in overdue and new not in overdue


async def test_phone_numbers_are_masked_and_revealing_one_is_audited(client: Any) -> None:
    number = await open_case(client, "金辉小区6号楼", description="代办：联系电话13912345678")
    assert (await sign_in(client, "jinhui")).status == 303
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert "139****5678" in page and "13912345678" not in page
    assert "显示号码" not in page
    token = await page_csrf(client, f"/console/cases/{number}")
    assert (
        await client.post(f"/console/cases/{number}/reveal", data={"csrf": token})
    ).status == 403
    listing = await (await client.get("/console/cases")).text()
    assert "13912345678" not in listing
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "desk")).status == 303
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert "139****5678" in page and "13912345678" not in page and "显示号码" in page
    token = await page_csrf(client, f"/console/cases/{number}")
    shown = await client.post(f"/console/cases/{number}/reveal", data={"csrf": token})
    assert shown.status == 200 and "13912345678" in await shown.text()
    async with client.server.app[SERVICES].sessions() as session:
        reveals = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "case.reveal"))
        ).all()
    assert [(r.actor, r.target) for r in reveals] == [("desk", number)]
    # The next plain visit is masked again.
    again = await (await client.get(f"/console/cases/{number}")).text()
    assert "13912345678" not in again


async def test_the_dashboard_counts_only_what_the_account_may_see(client: Any) -> None:
    await open_case(client, "金辉小区3号楼", chat="a")
    await open_case(client, "交通社区5号楼", chat="b")
    await open_case(client, "交通社区6号楼", chat="c")
    assert (await sign_in(client, "desk")).status == 303
    data = await (await client.get("/console/dashboard/data?days=7")).json()
    assert sum(sum(c["counts"]) for c in data["categories"]) == 3
    assert len(data["days"]) == 7 and data["nlu"] is not None
    assert data["satisfaction"]["unrated"] == 0 and data["satisfaction"]["rate"] is None
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "jinhui")).status == 303
    data = await (await client.get("/console/dashboard/data?days=7")).json()
    assert sum(sum(c["counts"]) for c in data["categories"]) == 1
    assert data["nlu"] is None  # residents' words from every community: not for them


async def test_only_fallbacks_nothing_took_count_as_unrecognised(client: Any) -> None:
    number = await report(client, "res9", "路灯坏了好几天了", "金辉小区3号楼", "跳过", "提交")
    services = client.server.app[SERVICES]
    async with services.sessions.begin() as session:
        for text, intent in (("金辉小区3号楼", TAKEN_FALLBACK), ("跳过", FALLBACK_INTENT)):
            await session.execute(update(Message).where(Message.text == text).values(intent=intent))
    assert (await sign_in(client, "desk")).status == 303
    nlu = (await (await client.get("/console/dashboard/data?days=7")).json())["nlu"]
    assert (nlu["unrecognised"], nlu["taken"]) == (1, 1)
    assert nlu["overall"] == round(1 / nlu["messages"], 4)
    assert [t["text"] for t in nlu["top"]] == ["跳过"]
    # Staff read the labels in Chinese, never the recorded names.
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert '<span class="intent">未识别（已由规则接住）</span>' in page
    assert '<span class="intent">未识别</span>' in page
    assert ">nlu_fallback" not in page
    dashboard = await (await client.get("/console/dashboard")).text()
    assert "未识别率" in dashboard and "nlu_fallback" not in dashboard


async def test_numbers_in_the_transcript_are_masked_for_a_community_account(client: Any) -> None:
    number = await report(
        client, "res8", "楼下路灯坏了，我电话13912345678", "金辉小区3号楼", "跳过", "提交"
    )
    assert (await sign_in(client, "jinhui")).status == 303
    page = await (await client.get(f"/console/cases/{number}")).text()
    assert "路灯" in page and "139****5678" in page
    assert "13912345678" not in page  # neither the resident's line nor the bot's echo


async def test_urged_cases_are_flagged_filtered_and_their_urges_shown(client: Any) -> None:
    from integration.models import utcnow
    from integration.urges import URGE_GAP

    urged = await open_case(client, "金辉小区2号楼", chat="urger")
    calm = await open_case(client, "金辉小区4号楼", chat="calm")
    cases = client.server.app[SERVICES].cases
    case = await cases.get(urged)
    await cases.urge(urged, case.channel, case.chat_id, "能不能快点，电话13800138000")
    later = utcnow() + URGE_GAP
    await cases.urge(urged, case.channel, case.chat_id, "还要等多久", now=later)
    assert (await sign_in(client, "desk")).status == 303

    listing = await (await client.get("/console/cases")).text()
    assert listing.count("催办 2") == 1 and calm in listing
    only = await (await client.get("/console/cases?urged=1")).text()
    assert urged in only and calm not in only
    page = await (await client.get(f"/console/cases/{urged}")).text()
    assert "居民催办" in page and "2 次" in page and "还要等多久" in page
    assert "13800138000" not in page and "能不能快点" in page
    assert "居民催办" not in await (await client.get(f"/console/cases/{calm}")).text()
    rows = (await (await client.get("/console/cases.csv")).text()).splitlines()
    assert rows[0].rstrip().endswith("催办次数")
    assert {
        row.split(",")[0].lstrip("\ufeff"): row.rstrip().split(",")[-1] for row in rows[1:]
    } == {
        urged: "2",
        calm: "0",
    }
