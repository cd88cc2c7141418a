"""The console's volunteers page over HTTP: approving registrations and items, posting
items, confirming completions, the monthly ranking and report, scoping by community,
escaping and auditing; on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from openpyxl import load_workbook
from playwright.async_api import Browser, expect
from sqlalchemy import select

from bots.app import SERVICES, create_app
from bots.settings import Settings
from console.accounts import AccountBook
from integration.claims import ClaimBook
from integration.items import ItemBook, ItemDraft
from integration.models import (
    AuditEntry,
    ItemStatus,
    ServiceItemEvent,
    StaffRole,
    VolunteerStatus,
    utcnow,
)
from integration.services.calendar import LOCAL_TZ
from integration.volunteer_report import VolunteerRecords
from integration.volunteers import PARTS, VolunteerBook, VolunteerDraft
from tests.console_client import PASSWORD, console_client, page_csrf, sign_in
from tests.test_chat_page import DESKTOP, PHONE, browser, screenshot  # noqa: F401
from tests.test_console_browser import sign_in as browser_sign_in

pytestmark = pytest.mark.slow

NASTY = "<script>alert('x')</script>\"'; DROP TABLE volunteers; --"
PAGE = "/console/volunteers"
MESSAGE_IDS = itertools.count()


@pytest.fixture
async def client(data_dir: Path, backend: dict[str, Any]) -> Any:
    async with console_client(data_dir, **backend) as client:
        yield client


async def register(
    client: Any, user: str, community: str, name: str = "王建国", skill_note: str = ""
) -> int:
    """A pending registration (no invitation code) of a webchat account; its number."""
    book = VolunteerBook(client.server.app[SERVICES].sessions)
    view = await book.register(
        VolunteerDraft(
            "webchat",
            user,
            user,
            name,
            f"1391234{int(user[1:]):04d}",
            "市自来水公司",
            "自来水公司第一党支部",
            community,
            ("elder",),
            tuple((day, part) for day in range(7) for part in PARTS),  # 随时
            skill_note,
        )
    )
    assert view.status is VolunteerStatus.pending
    return view.id


async def say(client: Any, user: str, *messages: str) -> list[str]:
    """Messages of a webchat account through the real pipeline; the bot's answers."""
    from handlers.messages import Inbound

    pipeline = client.server.app[SERVICES].pipeline
    answers: list[str] = []
    for message in messages:
        index = next(MESSAGE_IDS)
        replies = await pipeline.handle(Inbound("webchat", user, user, f"{user}-{index}", message))
        answers.extend(r.text for r in replies or ())
    return answers


def tomorrow(hour: int) -> str:
    day = (datetime.now(LOCAL_TZ) + timedelta(days=1)).date()
    return f"{day.isoformat()}T{hour:02d}:00"


async def post_item(client: Any, token: str, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "csrf": token,
        "community": "金辉小区",
        "title": "义务理发",
        "description": "为老人理发",
        "skill": "elder",
        "start": tomorrow(9),
        "end": tomorrow(11),
        "place": "金辉小区活动室",
        "capacity": "2",
    }
    data.update(fields)
    return await client.post(f"{PAGE}/items", data=data, allow_redirects=False)


async def audited(client: Any, action: str) -> list[AuditEntry]:
    async with client.server.app[SERVICES].sessions() as session:
        return list(
            (await session.scalars(select(AuditEntry).where(AuditEntry.action == action))).all()
        )


async def test_approving_a_registration_lets_the_volunteer_claim(client: Any) -> None:
    volunteer = await register(client, "v1", "金辉小区", skill_note="开车<b>")
    assert (await sign_in(client, "desk")).status == 303
    token = await page_csrf(client, PAGE)
    assert (await post_item(client, token)).status == 303
    services = client.server.app[SERVICES]
    items = await ItemBook(services.sessions).list_items([ItemStatus.open])
    assert len(items) == 1 and items[0].title == "义务理发" and items[0].capacity == 2
    assert items[0].community == "金辉小区" and items[0].skills == ("elder",)
    assert items[0].starts_at is not None
    assert items[0].starts_at.astimezone(LOCAL_TZ).strftime("%H:%M") == "09:00"
    # Not yet approved: browsing is allowed, claiming is not.
    before = "\n".join(await say(client, "v1", "看看有哪些志愿岗位可以认领", "第1个我来"))
    assert "义务理发" in before and "认领成功" not in before
    page = await (await client.get(PAGE)).text()
    row = page.split(f'id="volunteer-{volunteer}"')[1].split("</tr>")[0]
    assert "王建国" in row and "助老<br>" in row and "开车&lt;b&gt;</small>" in row
    response = await client.post(
        f"{PAGE}/{volunteer}/approve", data={"csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert (await VolunteerBook(services.sessions).get(volunteer)).approved
    page = await (await client.get(PAGE)).text()
    assert f'id="volunteer-{volunteer}"' not in page
    after = "\n".join(await say(client, "v1", "看看有哪些志愿岗位可以认领", "第1个我来"))
    assert "认领成功" in after
    assert (await ItemBook(services.sessions).get(items[0].id)).taken == 1
    # Deciding twice is refused plainly, and nothing changes.
    again = await client.post(f"{PAGE}/{volunteer}/reject", data={"csrf": token})
    assert again.status == 409 and "已经审核过" in await again.text()
    assert (await VolunteerBook(services.sessions).get(volunteer)).approved
    [entry] = await audited(client, "volunteer.approve")
    assert entry.actor == "desk" and entry.target == str(volunteer)
    assert '"pending"' in entry.before and '"approved"' in entry.after
    [posted] = await audited(client, "item.post")
    assert posted.target == str(items[0].id) and "义务理发" in posted.after


async def test_bad_item_posts_are_refused_and_change_nothing(client: Any) -> None:
    assert (await sign_in(client, "desk")).status == 303
    token = await page_csrf(client, PAGE)
    for fields, words in (
        ({"title": ""}, "请填写标题"),
        ({"start": "明天"}, "开始时间"),
        ({"end": tomorrow(8)}, "结束时间须晚于"),
        ({"capacity": "0"}, "名额须为"),
        ({"skill": "flying"}, "有效的服务特长"),
        ({"community": "不存在社区"}, "有效的社区"),
        ({"place": ""}, "请填写地点"),
    ):
        response = await post_item(client, token, **fields)
        assert response.status == 400, fields
        assert words in await response.text(), fields
    services = client.server.app[SERVICES]
    assert await ItemBook(services.sessions).list_items() == []
    assert await audited(client, "item.post") == []


async def test_approving_a_request_and_confirming_its_completion_counts(client: Any) -> None:
    services = client.server.app[SERVICES]
    items = ItemBook(services.sessions)
    request = await items.create(
        ItemDraft(
            "webchat", "res1", "res1", "meal", "明天上午", "金辉小区3号楼 13912345678", "self", ""
        )
    )
    volunteer = await register(client, "v2", "金辉小区")
    await VolunteerBook(services.sessions).decide(volunteer, True)
    assert (await sign_in(client, "desk")).status == 303
    token = await page_csrf(client, PAGE)
    page = await (await client.get(PAGE)).text()
    assert f'id="item-{request.id}"' in page and "明天上午" in page
    # A number the resident put in their words is masked, like on a case page.
    assert "139****5678" in page and "13912345678" not in page
    response = await client.post(
        f"{PAGE}/items/{request.id}/approve",
        data={"csrf": token, "start": tomorrow(14), "end": tomorrow(16), "capacity": "1"},
        allow_redirects=False,
    )
    assert response.status == 303
    opened = await items.get(request.id)
    assert opened.status is ItemStatus.open and opened.community == "金辉小区"
    assert opened.starts_at is not None
    assert opened.starts_at.astimezone(LOCAL_TZ).strftime("%H:%M") == "14:00"
    # The volunteer claims and does it; staff confirm it from the console.
    claims = ClaimBook(services.sessions)
    now = utcnow()
    await claims.claim(request.id, volunteer, "webchat", "v2", now)
    done_at = now + timedelta(days=2)
    await claims.complete(request.id, volunteer, done_at)
    records = VolunteerRecords(services.sessions)
    assert (await records.record(volunteer)).items == 0
    page = await (await client.get(PAGE)).text()
    assert f'id="done-{request.id}"' in page
    response = await client.post(
        f"{PAGE}/items/{request.id}/confirm", data={"csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert (await items.get(request.id)).status is ItemStatus.confirmed
    record = await records.record(volunteer)
    assert record.items == 1 and record.hours == 2.0 and record.residents == 1
    async with services.sessions() as session:
        actors = (
            await session.scalars(
                select(ServiceItemEvent.actor).where(
                    ServiceItemEvent.item_id == request.id,
                    ServiceItemEvent.to_status == ItemStatus.confirmed.value,
                )
            )
        ).all()
    assert actors == ["console:desk"]
    again = await client.post(f"{PAGE}/items/{request.id}/confirm", data={"csrf": token})
    assert again.status == 409
    assert [e.target for e in await audited(client, "item.approve")] == [str(request.id)]
    assert [e.target for e in await audited(client, "item.confirm")] == [str(request.id)]
    # The month's ranking and report count it.
    month = done_at.astimezone(LOCAL_TZ).strftime("%Y-%m")
    ranking = await (await client.get(f"{PAGE}/ranking?month={month}")).json()
    assert ranking["volunteers"][0]["items"] == 1
    assert ranking["communities"] == [
        {"name": "金辉小区", "items": 1, "hours": 2.0, "residents": 1}
    ]
    export = await client.get(f"{PAGE}/report.csv?month={month}")
    assert export.status == 200
    rows = list(csv.reader(io.StringIO((await export.read()).decode("utf-8-sig"))))
    assert rows[0][0] == "kind" and rows[1][:3] == ["volunteer", str(volunteer), "王建国"]
    xlsx = await client.get(f"{PAGE}/report.xlsx?month={month}")
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    assert sheet is not None and sheet.cell(2, 3).value == "王建国"
    assert len(await audited(client, "volunteers.export")) == 2


async def test_a_request_of_no_listed_kind_shows_the_residents_words(client: Any) -> None:
    """其他 alone told staff nothing: the resident's words are shown (numbers masked),
    on the pending row and, once done, on the row staff confirm."""
    services = client.server.app[SERVICES]
    items = ItemBook(services.sessions)
    said = "我爸瘫痪在床，想请人上门理发，电话13912345678"
    request = await items.create(
        ItemDraft("webchat", "res6", "res6", "other", "周六上午", "金辉小区5号楼", "父亲", "", said)
    )
    assert (await sign_in(client, "desk")).status == 303
    page = await (await client.get(PAGE)).text()
    row = page.split(f'id="item-{request.id}"')[1].split("</tr>")[0]
    assert "想请人上门理发" in row and "139****5678" in row and "13912345678" not in row
    volunteer = await register(client, "v6", "金辉小区")
    await VolunteerBook(services.sessions).decide(volunteer, True)
    await items.approve(request.id, capacity=1)
    claims = ClaimBook(services.sessions)
    await claims.claim(request.id, volunteer, "webchat", "v6", utcnow())
    await claims.complete(request.id, volunteer, utcnow())
    page = await (await client.get(PAGE)).text()
    done = page.split(f'id="done-{request.id}"')[1].split("</tr>")[0]
    assert "我爸瘫痪在床，想请人上门理发" in done and ">其他<" not in done


async def test_a_community_account_acts_only_on_its_own_community(client: Any) -> None:
    services = client.server.app[SERVICES]
    mine = await register(client, "v3", "金辉小区", "张三")
    theirs = await register(client, "v4", "交通社区", "李四")
    items = ItemBook(services.sessions)
    their_request = await items.create(
        ItemDraft("webchat", "res2", "res2", "meal", "明天上午", "交通社区5号楼", "self", "")
    )
    assert (await sign_in(client, "jinhui")).status == 303
    token = await page_csrf(client, PAGE)
    page = await (await client.get(PAGE)).text()
    assert "张三" in page and "李四" not in page and f'id="item-{their_request.id}"' not in page
    for path in (
        f"{PAGE}/{theirs}/approve",
        f"{PAGE}/{theirs}/reject",
        f"{PAGE}/items/{their_request.id}/approve",
        f"{PAGE}/items/{their_request.id}/confirm",
        f"{PAGE}/99999/approve",
        f"{PAGE}/x1/approve",
    ):
        refused = await client.post(path, data={"csrf": token})
        assert refused.status == 404, path
    volunteers = VolunteerBook(services.sessions)
    assert (await volunteers.get(theirs)).status is VolunteerStatus.pending
    assert (await items.get(their_request.id)).status is ItemStatus.pending
    assert (
        await client.post(f"{PAGE}/{mine}/approve", data={"csrf": token}, allow_redirects=False)
    ).status == 303
    assert (await volunteers.get(mine)).approved
    # Posts and codes are for the account's own community whatever the form says.
    assert (await post_item(client, token, community="交通社区")).status == 303
    [posted] = await items.list_items([ItemStatus.open])
    assert posted.community == "金辉小区"
    invited = await client.post(f"{PAGE}/invite", data={"csrf": token, "community": "交通社区"})
    assert invited.status == 200
    assert "（金辉小区）" in await invited.text()
    # Grid accounts have no volunteer page.
    await client.post("/console/signout", data={"csrf": token})
    assert (await sign_in(client, "grid7")).status == 303
    assert (await client.get(PAGE)).status == 403
    grid_token = await page_csrf(client, "/console/cases")
    refused = await client.post(f"{PAGE}/{mine}/reject", data={"csrf": grid_token})
    assert refused.status == 403


async def test_an_invitation_code_approves_its_registration_at_once(client: Any) -> None:
    assert (await sign_in(client, "desk")).status == 303
    token = await page_csrf(client, PAGE)
    response = await client.post(
        f"{PAGE}/invite", data={"csrf": token, "community": "金辉小区", "days": "7"}
    )
    assert response.status == 200
    page = await response.text()
    code = page.split('id="new-code">邀请码 <strong>')[1].split("</strong>")[0]
    services = client.server.app[SERVICES]
    assert await VolunteerBook(services.sessions).code_problem(code) == ""
    assert code in await (await client.get(PAGE)).text()
    bad = await client.post(
        f"{PAGE}/invite", data={"csrf": token, "community": "金辉小区", "days": "0"}
    )
    assert bad.status == 400 and "有效天数" in await bad.text()
    [entry] = await audited(client, "volunteer.invite")
    assert entry.target == "金辉小区" and code in entry.after


async def test_injected_text_is_stored_and_rendered_escaped(client: Any) -> None:
    services = client.server.app[SERVICES]
    volunteer = await register(client, "v5", "金辉小区", NASTY[:20])
    await ItemBook(services.sessions).create(
        ItemDraft("webchat", "res3", "res3", "meal", NASTY, "金辉小区3号楼" + NASTY, "self", "")
    )
    assert (await sign_in(client, "desk")).status == 303
    token = await page_csrf(client, PAGE)
    response = await post_item(client, token, title=NASTY[:40], description=NASTY, place=NASTY)
    assert response.status == 303
    page = await (await client.get(PAGE)).text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert f'id="volunteer-{volunteer}"' in page
    # A refused form echoes the input escaped too.
    refused = await post_item(client, token, title=NASTY, place=NASTY)
    assert refused.status == 400 and "<script>alert" not in await refused.text()
    [posted] = await ItemBook(services.sessions).list_items([ItemStatus.open])
    assert posted.description == NASTY and posted.address == NASTY
    for query in ({"month": NASTY}, {"month": "2026-13"}):
        assert (await client.get(PAGE, params=query)).status == 200
        assert (await client.get(f"{PAGE}/ranking", params=query)).status == 200
    audit = await (await client.get("/console/audit")).text()
    assert "<script>alert" not in audit and "&lt;script&gt;" in audit


async def test_the_dashboard_shows_handoff_waits_against_the_service_level(client: Any) -> None:
    from integration.models import Handoff, HandoffStatus

    now = utcnow()
    opened = now - timedelta(hours=1)
    rows = (  # (claimed after, due after, status): two on time, one late, one still waiting
        (timedelta(minutes=2), timedelta(minutes=5), HandoffStatus.claimed),
        (timedelta(minutes=4), timedelta(minutes=5), HandoffStatus.closed),
        (timedelta(minutes=12), timedelta(minutes=5), HandoffStatus.claimed),
        (None, timedelta(minutes=5), HandoffStatus.waiting),
    )
    async with client.server.app[SERVICES].sessions() as session:
        for index, (claimed, due, status) in enumerate(rows):
            session.add(
                Handoff(
                    channel="webchat",
                    user_id=f"h{index}",
                    chat_id=f"h{index}",
                    status=status.value,
                    reason="asked",
                    opened_at=opened,
                    sla_due=opened + due,
                    claimed_by="desk" if claimed else "",
                    claimed_at=opened + claimed if claimed else None,
                )
            )
        await session.commit()
    assert (await sign_in(client, "desk")).status == 303
    data = await (await client.get("/console/dashboard/data?days=7")).json()
    h = data["handoffs"]
    day = data["days"].index(opened.astimezone(LOCAL_TZ).date().isoformat())
    assert h["within"][day] == 2 and h["late"][day] == 1 and sum(h["late"]) == 1
    assert h["median_wait"][day] == 4.0 and h["sla_minutes"] == 5.0
    assert (h["claimed"], h["on_time"], h["waiting_late"]) == (3, 2, 1)
    # Community accounts don't see handoffs (they name no community).
    token = await page_csrf(client, "/console/dashboard")
    await client.post("/console/signout", data={"csrf": token})
    assert (await sign_in(client, "jinhui")).status == 303
    scoped = await (await client.get("/console/dashboard/data?days=7")).json()
    assert scoped["handoffs"] is None


@pytest.fixture
async def server(data_dir: Path) -> AsyncIterator[TestServer]:
    settings = Settings(data_dir=data_dir, push_poll_interval=0.1)
    async with TestServer(create_app(settings)) as server:
        book = AccountBook(server.app[SERVICES].sessions)
        await book.create("desk", PASSWORD, StaffRole.staff)
        yield server


async def test_the_page_posts_an_item_and_draws_the_ranking_in_a_browser(
    server: TestServer,
    browser: Browser,  # noqa: F811
) -> None:
    services = server.app[SERVICES]
    volunteers = VolunteerBook(services.sessions)
    volunteer = await volunteers.register(
        VolunteerDraft(
            "webchat",
            "b1",
            "b1",
            "王建国",
            "13912340009",
            "水司",
            "第一支部",
            "金辉小区",
            ("elder",),
            ((0, "morning"),),
        )
    )
    await volunteers.decide(volunteer.id, True)
    request = await ItemBook(services.sessions).create(
        ItemDraft("webchat", "res9", "res9", "meal", "明天上午", "金辉小区3号楼", "self", "")
    )
    await ItemBook(services.sessions).approve(request.id, capacity=1)
    claims = ClaimBook(services.sessions)
    await claims.claim(request.id, volunteer.id, "webchat", "b1", utcnow())
    await claims.complete(request.id, volunteer.id, utcnow())
    await claims.confirm(request.id, "res", utcnow())

    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
    page.on("dialog", lambda d: d.accept())
    await browser_sign_in(page, server)
    await page.goto(str(server.make_url(PAGE)))
    await expect(page.locator("#volunteer-charts")).to_have_attribute("data-loaded", "1")
    canvas = page.locator("#chart-volunteers canvas")
    await expect(canvas).to_have_count(1)
    size = await canvas.bounding_box()
    assert size is not None and size["width"] > 200 and size["height"] > 150
    form = page.locator("#post-item form")
    await form.locator("select[name=community]").select_option("金辉小区")
    await form.locator("input[name=title]").fill("义务理发")
    await form.locator("input[name=start]").fill(tomorrow(9))
    await form.locator("input[name=place]").fill("金辉小区活动室")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".notice")).to_be_visible()
    posted = await ItemBook(services.sessions).list_items([ItemStatus.open])
    assert [i.title for i in posted] == ["义务理发"]
    await page.goto(str(server.make_url("/console/dashboard")))
    await expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "1")
    await expect(page.locator("#chart-handoffs canvas")).to_have_count(1)
    assert not [e for e in errors if not e.endswith("/favicon.ico")], errors
    await context.close()
    # On a phone, a pending request of no listed kind shows the resident's words.
    await ItemBook(services.sessions).create(
        ItemDraft(
            "webchat",
            "r8",
            "r8",
            "other",
            "周六上午",
            "金辉小区5号楼",
            "父亲",
            "",
            "我爸瘫痪在床，想请人上门理发",
        )
    )
    phone = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await phone.new_page()
    await browser_sign_in(page, server)
    await page.goto(str(server.make_url(PAGE)))
    pending = page.locator("#pending-items")
    await expect(pending.locator("td.said")).to_have_text("我爸瘫痪在床，想请人上门理发")
    await pending.screenshot(path=screenshot("console-pending-request-phone.png"))
    await phone.close()
    wide = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await wide.new_page()
    await browser_sign_in(page, server)
    await page.goto(str(server.make_url(PAGE)))
    pending = page.locator("#pending-items")
    await expect(pending.locator("th", has_text="居民原话")).to_be_visible()
    await pending.screenshot(path=screenshot("console-pending-request.png"))
    await wide.close()


def test_a_community_accounts_report_holds_only_its_own_rows() -> None:
    from console.volunteers import _scoped_report
    from integration.volunteer_report import MonthReport, Record, ReportRow

    rows = (
        ReportRow(1, "张三", "金辉小区", "一支部", Record(2, 4.0, 2)),
        ReportRow(2, "李四", "交通社区", "一支部", Record(1, 2.0, 1)),
        ReportRow(3, "王五", "金辉小区", "二支部", Record(1, 1.5, 1)),
    )
    whole = MonthReport(
        "2026-11",
        rows,
        (("交通社区", Record(1, 2.0, 1)), ("金辉小区", Record(3, 5.5, 3))),
        (("一支部", Record(3, 6.0, 3)), ("二支部", Record(1, 1.5, 1))),
    )
    assert _scoped_report(whole, None) is whole
    mine = _scoped_report(whole, "金辉小区")
    assert [r.name for r in mine.rows] == ["张三", "王五"]
    assert mine.communities == (("金辉小区", Record(3, 5.5, 3)),)
    assert mine.branches == (("一支部", Record(2, 4.0, 2)), ("二支部", Record(1, 1.5, 1)))
