"""The web chat page in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright, expect

from bots.app import SERVICES, create_app
from bots.settings import Settings
from integration.models import CaseStatus

CHROMIUM = "/usr/bin/chromium"
# Chromium as root in a sandbox with no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(data_dir: Path) -> AsyncIterator[TestServer]:
    settings = Settings(data_dir=data_dir, push_poll_interval=0.1)
    async with TestServer(create_app(settings)) as server:
        yield server


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def send(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def test_resident_reports_a_problem_and_sees_the_status_update(
    server: TestServer, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(str(server.make_url("/chat")))
    await expect(page.locator("#status")).to_have_text("在线")

    await send(page, "楼下烧烤店每天半夜还很吵")
    await expect(page.locator(".row.bot").last).to_contain_text("具体位置")
    await send(page, "金辉小区3号楼")
    await expect(page.locator(".row.bot").last).to_contain_text("跳过")
    await page.locator(".row.bot").last.get_by_role("button", name="跳过").click()
    await expect(page.locator(".row.bot").last).to_contain_text("请确认")
    await page.locator(".row.bot").last.get_by_role("button", name="提交").click()
    confirmation = page.locator(".row.bot").last
    await expect(confirmation).to_contain_text("工单号")
    number = re.search(r"YM\d{10}", await confirmation.inner_text())
    assert number is not None

    services: Any = server.app[SERVICES]
    await services.cases.change_status(number.group(), CaseStatus.in_progress, "已派城管中队")
    push = page.locator(".row.push")
    await expect(push).to_contain_text(number.group())
    await expect(push).to_contain_text("已派城管中队")

    # A reload keeps the visitor (localStorage), so the conversation is the same one.
    await page.reload()
    await expect(page.locator("#status")).to_have_text("在线")
    await send(page, "我的进度")
    await expect(page.locator(".row.bot").last).to_contain_text(number.group())


async def test_photo_upload_is_shown_and_kept_with_the_case(
    server: TestServer, browser: Browser, tmp_path: Path
) -> None:
    png = tmp_path / "photo.png"
    png.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000185d114090000000049454e44ae426082"
        )
    )
    page = await browser.new_page()
    await page.goto(str(server.make_url("/chat")))
    await expect(page.locator("#status")).to_have_text("在线")
    await send(page, "井盖丢了很危险")
    await expect(page.locator(".row.bot").last).to_contain_text("具体位置")
    await send(page, "伊煤路与天骄路交叉口")
    await expect(page.locator(".row.bot").last).to_contain_text("跳过")
    await page.set_input_files("#file", str(png))
    await expect(page.locator(".row.me img")).to_have_count(1)
    await expect(page.locator(".row.bot").last).to_contain_text("照片：1张")
