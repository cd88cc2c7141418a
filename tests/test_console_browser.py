"""The console in a real browser (Debian's Chromium through Playwright).

Sign in, the case list, a case page, a status change, the dashboard's charts drawn
(canvas present and sized), at a desktop's and a phone's width. Screenshots go to
var/screenshots, or to docs/ (the README's) with YIMEN_SCREENSHOTS=docs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from bots.app import SERVICES, create_app
from bots.settings import Settings
from console.accounts import AccountBook
from handlers.messages import Inbound
from integration.dispatch.ratings import Score
from integration.models import CaseStatus, Rating, StaffRole
from tests.console_client import PASSWORD
from tests.test_chat_page import DESKTOP, PHONE, browser, screenshot  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(data_dir: Path) -> AsyncIterator[TestServer]:
    settings = Settings(data_dir=data_dir, push_poll_interval=0.1)
    async with TestServer(create_app(settings)) as server:
        services = server.app[SERVICES]
        await AccountBook(services.sessions).create("desk", PASSWORD, StaffRole.staff)
        await AccountBook(services.sessions).create(
            "jinhui", PASSWORD, StaffRole.community, "金辉小区"
        )
        yield server


async def converse(server: TestServer, chat: str, *messages: str) -> str:
    services = server.app[SERVICES]
    for index, message in enumerate(messages):
        await services.pipeline.handle(Inbound("webchat", chat, chat, f"{chat}-{index}", message))
    return (await services.cases.open_cases("webchat", chat))[0].number


async def some_cases(server: TestServer) -> str:
    """A few residents' reports, one accepted and one resolved and rated; the first number."""
    first = await converse(
        server, "r1", "楼下烧烤店每天半夜还很吵", "金辉小区3号楼", "跳过", "提交"
    )
    second = await converse(server, "r2", "路灯不亮了", "交通社区5号楼", "跳过", "提交")
    await converse(server, "r3", "小区门口垃圾好几天没人清运", "金泰苑北门", "跳过", "提交")
    services = server.app[SERVICES]
    urge = Inbound("webchat", "r1", "r1", "r1-urge", "都三天了还这么吵，能不能快点")
    replies = await services.pipeline.handle(urge)
    assert replies and "已为您催办" in replies[0].text
    await services.pipeline.handle(Inbound("webchat", "r4", "r4", "r4-0", "阿巴阿巴阿巴"))
    await services.cases.change_status(second, CaseStatus.accepted, "已受理", "console:desk")
    await services.cases.change_status(second, CaseStatus.resolved, "已修好", "console:desk")
    async with services.sessions() as session:
        asked = await session.scalar(select(Rating.id).where(Rating.chat_id == "r2"))
    assert asked is not None
    await services.dispatch.ratings.rate(asked, Score.satisfied)
    return first


async def sign_in(page: Page, server: TestServer, username: str = "desk") -> None:
    await page.goto(str(server.make_url("/console/cases")))
    await expect(page).to_have_url(re.compile(r"/console/signin"))
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit].primary")
    await expect(page).to_have_url(re.compile(r"/console/cases$"))


async def test_staff_sign_in_open_a_case_change_its_status_and_see_the_dashboard(
    server: TestServer,
    browser: Browser,  # noqa: F811
) -> None:
    first = await some_cases(server)
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Everything comes from Yimen itself (an intranet has no internet).
    own = str(server.make_url("/"))
    page.on("request", lambda r: errors.append(r.url) if not r.url.startswith(own) else None)
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    await sign_in(page, server)
    rows = page.locator("table.cases tbody tr")
    await expect(rows).to_have_count(3)
    await expect(page.locator("table.cases .badge.urged")).to_have_text(["催办 1"])
    await page.click(f"text={first}")
    await expect(page.locator("h1")).to_contain_text(first)
    await expect(page.locator(".transcript")).to_contain_text("烧烤")
    await expect(page.locator(".transcript .intent").first).to_have_text("反映·噪音扰民")
    await expect(page.locator(".urges li")).to_have_count(1)
    await expect(page.locator(".urges")).to_contain_text("都三天了")
    await page.screenshot(path=screenshot("console-case.png"), full_page=True)
    await page.select_option("select[name=status]", "accepted")
    await page.fill("textarea[name=note]", "已派城管中队，今晚核查")
    await page.click("text=保存并通知居民")
    await expect(page.locator(".notice")).to_be_visible()
    await expect(page.locator("h1 .badge").first).to_have_text("已受理")
    await expect(page.locator(".history")).to_contain_text("已派城管中队，今晚核查")
    services = server.app[SERVICES]
    assert (await services.cases.get(first)).status is CaseStatus.accepted

    await page.click("nav >> text=数据看板")
    await expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "1")
    for chart in ("chart-cases", "chart-times", "chart-overdue", "chart-satisfaction"):
        canvas = page.locator(f"#{chart} canvas")
        await expect(canvas).to_have_count(1)
        size = await canvas.bounding_box()
        assert size is not None and size["width"] > 200 and size["height"] > 150
    await expect(page.locator("#satisfaction-counts")).to_contain_text("未评价")
    await page.screenshot(path=screenshot("console-dashboard.png"), full_page=True)
    assert not errors, errors
    await context.close()


async def test_the_console_works_at_a_phones_width(
    server: TestServer,
    browser: Browser,  # noqa: F811
) -> None:
    first = await some_cases(server)
    context = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    page = await context.new_page()
    await sign_in(page, server)
    # The list is stacked as cards, each cell under its column's name: nothing is cut off.
    wrap = page.locator(".table-wrap")
    assert await wrap.evaluate("w => w.scrollWidth <= w.clientWidth"), "the list is cut off"
    await expect(page.locator('table.cases td[data-label="地址"]')).to_have_count(3)
    await expect(page.locator("table.cases thead")).to_be_hidden()
    await page.screenshot(path=screenshot("console-cases-phone.png"), full_page=True)
    await page.goto(str(server.make_url(f"/console/cases/{first}")))
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the case page scrolls sideways on a phone"
    button = await page.locator("text=保存并通知居民").bounding_box()
    assert button is not None and button["height"] >= 36
    await page.screenshot(path=screenshot("console-case-phone.png"), full_page=True)
    await page.goto(str(server.make_url("/console/dashboard")))
    await expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "1")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.screenshot(path=screenshot("console-dashboard-phone.png"), full_page=True)
    await context.close()


async def test_a_community_account_sees_its_own_community_in_the_browser(
    server: TestServer,
    browser: Browser,  # noqa: F811
) -> None:
    await some_cases(server)
    context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await context.new_page()
    await sign_in(page, server, "jinhui")
    rows = page.locator("table.cases tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("金辉小区")
    await expect(page.locator("select[name=community]")).to_have_count(0)
    await context.close()
