"""The web chat page in a real browser (Debian's Chromium driven by Playwright).

At a phone's 390×844 (and 360 and 430 wide) and a desktop's 1280×800: the first
screen greets with the menu, a whole report runs through the page, a reload shows the
conversation again, the layout holds (sizes asserted, not just looked at), old
buttons are disabled, messages carry times, case numbers copy with one tap, the
page shows when it is reconnecting, and 大字 makes everything larger. Screenshots of
the phone and desktop views are written to docs/ for the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from bots.app import SERVICES, WEBCHAT, create_app
from bots.identity import COOKIE, VisitorIdentity
from bots.settings import Settings
from bots.webchat import STATIC, WebChatChannel, WebChatParts
from handlers.catalog import Catalog
from handlers.messages import Inbound, Outbound
from integration.models import CaseStatus
from integration.state.keys import KeyBuilder
from integration.state.throttle import MemoryThrottle
from tests.test_webchat import NoHistory, NoPhotos

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
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Where the screenshots go: var/screenshots, to look at after a run, or docs/ (the README's)
# with YIMEN_SCREENSHOTS=docs, so a plain test run leaves the working tree clean.
SHOTS = Path(__file__).parent.parent / os.environ.get("YIMEN_SCREENSHOTS", "var/screenshots")
T = Catalog.load()

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


async def phone(browser: Browser, **size: int) -> BrowserContext:
    viewport = size or PHONE
    return await browser.new_context(
        viewport=viewport, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
    )


async def open_chat(context: BrowserContext, server: TestServer) -> Page:
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat")))
    await expect(page.locator("#status")).to_have_class(re.compile("online"))
    return page


async def send(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


def last_bot(page: Page) -> Any:
    return page.locator(".row-msg.bot").last


async def box(page: Page, selector: str) -> dict[str, float]:
    found = await page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


def screenshot(name: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return str(SHOTS / name)


# -- the first screen -----------------------------------------------------------------


async def test_the_first_screen_greets_with_the_main_menu(
    server: TestServer, browser: Browser
) -> None:
    context = await phone(browser)
    page = await open_chat(context, server)
    greeting = page.locator(".row-msg.greeting")
    await expect(greeting).to_contain_text(T("chat.greet"))
    menu = greeting.locator(".buttons button")
    await expect(menu).to_have_text(
        [T("button.menu_report"), T("button.menu_status"), T("button.menu_human")]
    )
    for i in range(3):
        size = await menu.nth(i).bounding_box()
        assert size is not None and size["height"] >= 44 and size["width"] >= 44
    # The vendored Chinese font is served and loads (a phone without one uses it).
    loaded = await page.evaluate(
        "async () => (await document.fonts.load('16px \"Yimen Sans\"', '一门受理')).length"
    )
    assert loaded == 1
    await page.screenshot(path=screenshot("webchat-phone-first-screen.png"))
    # A menu button works like typing the entry.
    await menu.first.click()
    await expect(last_bot(page)).to_contain_text(T("complaint.ask_what")[:6])
    await expect(menu.first).to_be_disabled()
    await context.close()


@pytest.mark.parametrize("width", [360, 390, 430])
async def test_the_phone_layout_holds_without_wrapping(
    server: TestServer, browser: Browser, width: int
) -> None:
    context = await phone(browser, width=width, height=800)
    page = await open_chat(context, server)
    await send(page, "楼下烧烤店每天半夜还很吵")
    await expect(last_bot(page)).to_contain_text("具体位置")
    for large in (False, True):
        if large:
            await page.click("#large")
            await expect(page.locator("html")).to_have_class(re.compile("large"))
        line = await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        for selector in ("#photo", "#locate", "#send", "#large"):
            size = await box(page, selector)
            # One line of text: far less than two lines tall, wide enough for the label.
            assert 44 <= size["height"] < 2 * line + 16, (selector, size, large)
            assert size["width"] >= 56, (selector, size)
        text_box = await box(page, "#text")
        assert text_box["width"] >= 150 and text_box["height"] >= 44
        # The placeholder fits in the box.
        fits = await page.evaluate(
            """() => {
                const input = document.getElementById('text');
                const style = getComputedStyle(input);
                const ctx = document.createElement('canvas').getContext('2d');
                ctx.font = `${style.fontSize} ${style.fontFamily}`;
                const room = input.clientWidth - parseFloat(style.paddingLeft)
                             - parseFloat(style.paddingRight);
                return ctx.measureText(input.placeholder).width <= room;
            }"""
        )
        assert fits, (width, large)
        # Nothing sticks out sideways, and the quick replies are large.
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        cancel = page.locator(".row-msg.bot .buttons button").last
        size = await cancel.bounding_box()
        assert size is not None and size["height"] >= 44
        font = await cancel.evaluate("b => parseFloat(getComputedStyle(b).fontSize)")
        assert font >= (20 if large else 17)
    if width == 390:
        await page.screenshot(path=screenshot("webchat-phone-large-text.png"))
    await context.close()


# -- a whole report, then a reload ----------------------------------------------------------


async def test_a_whole_report_survives_a_reload_with_times_and_copyable_numbers(
    server: TestServer, browser: Browser
) -> None:
    context = await phone(browser)
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await open_chat(context, server)
    await send(page, "楼下烧烤店每天半夜还很吵")
    await expect(last_bot(page)).to_contain_text("具体位置")
    await send(page, "金辉小区3号楼")
    await expect(last_bot(page)).to_contain_text("跳过")
    await last_bot(page).get_by_role("button", name="跳过").click()
    await expect(last_bot(page)).to_contain_text("请确认")
    skip = page.locator(".row-msg.bot").nth(-2).get_by_role("button", name="跳过")
    await expect(skip).to_be_disabled()  # an answered question's buttons are spent
    await last_bot(page).get_by_role("button", name="提交").click()
    confirmation = last_bot(page)
    await expect(confirmation).to_contain_text("工单号")
    number = await confirmation.locator(".case-no").inner_text()
    assert re.fullmatch(r"YM\d{10}", number)
    await confirmation.get_by_role("button", name=f"复制工单号 {number}").click()
    await expect(confirmation.locator(".copy")).to_have_text("已复制")
    assert await page.evaluate("navigator.clipboard.readText()") == number

    services: Any = server.app[SERVICES]
    await services.cases.change_status(number, CaseStatus.in_progress, "已派城管中队")
    push = page.locator(".row-msg.push")
    await expect(push).to_contain_text(number)
    await expect(push).to_contain_text("已派城管中队")
    for meta in await page.locator(".row-msg:not(.greeting) .meta").all_inner_texts():
        assert re.fullmatch(r"\d{2}:\d{2}", meta), meta
    await page.screenshot(path=screenshot("webchat-phone-report.png"), full_page=True)

    # A reload shows the whole conversation again, old buttons spent.
    before = [
        text.replace("已复制", "复制")  # the copy button's label, back after 2 s
        for text in await page.locator(".row-msg .bubble").all_inner_texts()
    ]
    await page.reload()
    await expect(page.locator("#status")).to_have_class(re.compile("online"))
    await expect(page.locator(".row-msg.push")).to_contain_text(number)
    assert await page.locator(".row-msg .bubble").all_inner_texts() == before
    for button in await page.locator(".row-msg:not(.greeting) .buttons button").all():
        await expect(button).to_be_disabled()
    await send(page, "我的进度")
    await expect(last_bot(page)).to_contain_text(number)

    desktop = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    await desktop.add_cookies(await context.cookies())  # the same browser, a wider window
    wide = await open_chat(desktop, server)
    await expect(wide.locator(".row-msg.push")).to_contain_text(number)
    await wide.screenshot(path=screenshot("webchat-desktop.png"))
    await desktop.close()
    await context.close()


async def test_the_page_shows_it_is_reconnecting_and_comes_back(
    server: TestServer, browser: Browser
) -> None:
    context = await phone(browser)
    page = await open_chat(context, server)
    [cookie] = [c for c in await context.cookies() if c["name"] == COOKIE]
    visitor = cookie["value"].split(".")[0]
    assert server.app[WEBCHAT].disconnect(visitor) == 1
    await expect(page.locator("#status")).to_have_text("连接已断开，正在重新连接…")
    await expect(page.locator("#status")).to_be_visible()
    await expect(page.locator("#status")).to_have_class(re.compile("online"))
    await send(page, "你好")
    await expect(last_bot(page)).to_contain_text(T("chat.greet")[:8])
    await context.close()


async def test_large_text_is_remembered(server: TestServer, browser: Browser) -> None:
    context = await phone(browser)
    page = await open_chat(context, server)
    small = await page.locator(".bubble").first.evaluate(
        "b => parseFloat(getComputedStyle(b).fontSize)"
    )
    await page.click("#large")
    await expect(page.locator("#large")).to_have_attribute("aria-pressed", "true")
    await page.reload()
    await expect(page.locator("#status")).to_have_class(re.compile("online"))
    large = await page.locator(".bubble").first.evaluate(
        "b => parseFloat(getComputedStyle(b).fontSize)"
    )
    assert large >= small + 4
    await context.close()


async def test_photo_upload_is_shown_and_kept_with_the_case(
    server: TestServer, browser: Browser, tmp_path: Path
) -> None:
    png = tmp_path / "photo.png"
    Image.new("RGB", (120, 90), (90, 140, 60)).save(png, "PNG")  # a whole, real picture
    context = await phone(browser)
    page = await open_chat(context, server)
    await send(page, "井盖丢了很危险")
    await expect(last_bot(page)).to_contain_text("具体位置")
    await send(page, "伊煤路与天骄路交叉口")
    await expect(last_bot(page)).to_contain_text("跳过")
    await page.set_input_files("#file", str(png))
    await expect(page.locator(".row-msg.me img")).to_have_count(1)
    await expect(last_bot(page)).to_contain_text("照片：1张")
    await context.close()


async def test_a_broken_picture_is_refused_with_a_chinese_answer(
    server: TestServer, browser: Browser, tmp_path: Path
) -> None:
    broken = tmp_path / "photo.png"  # PNG magic and header, but its pixels cut short
    broken.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000185d114090000000049454e44ae426082"
        )
    )
    context = await phone(browser)
    page = await open_chat(context, server)
    await page.set_input_files("#file", str(broken))
    await expect(last_bot(page)).to_have_text(re.compile(T("webchat.upload_not_image")))
    await expect(page.locator(".row-msg.me")).to_have_count(0)
    await context.close()


async def test_the_page_stops_resending_a_message_the_server_keeps_refusing(
    browser: Browser,
) -> None:
    """The old defect: a "busy" answer was resent every 3 s forever."""
    calls: list[str] = []

    async def always_busy(inbound: Inbound) -> list[Outbound] | None:
        calls.append(inbound.message_id)
        raise TimeoutError("the conversation lock is never free")

    async def on_connect(_: str) -> None:
        return None

    channel = WebChatChannel(VisitorIdentity(b"k" * 32))
    channel.bind(
        WebChatParts(
            media=NoPhotos(),
            throttle=MemoryThrottle(),
            history=NoHistory(),
            keys=KeyBuilder(),
            catalog=T,
            greeting=Outbound(T("chat.greet")),
        )
    )
    app = web.Application()
    app.add_routes(channel.routes(always_busy, on_connect))
    app.router.add_static("/chat/static", STATIC / "assets")
    async with TestServer(app) as server:
        context = await phone(browser)
        page = await open_chat(context, server)
        await send(page, "你好")
        failed = page.locator(".row-msg.me.failed")
        await expect(failed).to_contain_text("系统繁忙", timeout=20_000)
        await page.wait_for_timeout(4000)  # longer than a resend would take
        assert len(calls) == 3 and len(set(calls)) == 1
        # The resident can try again by hand.
        await failed.get_by_role("button", name="重发").click()
        await expect(page.locator(".row-msg.me.failed")).to_have_count(1, timeout=20_000)
        assert len(calls) >= 4
        await context.close()
