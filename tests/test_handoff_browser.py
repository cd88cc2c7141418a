"""The full handoff loop in a real browser (Debian's Chromium driven by Playwright).

One resident writes in the web chat page and another through the signed WeChat
webhook (the WeChat API is the emulator on loopback); both conversations appear in the
console's inbox live, without a reload. Staff claim the web chat one and reply, the
resident's page shows the reply, staff hand it back, and the bot answers the next
message itself. The WeChat resident gets a staff reply too, through the emulated
customer-service API. A screenshot of the inbox goes to var/screenshots (or docs/ with
YIMEN_SCREENSHOTS=docs) for the README.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from console.accounts import AccountBook
from integration.cases import local_minute
from integration.models import StaffRole, utcnow
from tests import test_chat_page
from tests.emulators.wechat import WeChatAPIEmulator
from tests.emulators.wechat_app import T, Yimen, serve, wechat_settings
from tests.test_chat_page import DESKTOP, PHONE, screenshot

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"
browser = test_chat_page.browser  # the fixture: headless Chromium


@pytest.fixture
async def yimen(data_dir: Path, wechat_api: WeChatAPIEmulator) -> AsyncIterator[Yimen]:
    async with serve(wechat_settings(data_dir, wechat_api), wechat_api) as running:
        await AccountBook(running.services.sessions).create(
            "xiaozhang", PASSWORD, StaffRole.staff, ""
        )
        yield running


def url(yimen: Yimen, path: str) -> str:
    return str(yimen.client.server.make_url(path))


async def send(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def test_the_handoff_loop_from_two_channels_to_the_inbox_and_back(
    yimen: Yimen, browser: Browser
) -> None:
    staff = await (await browser.new_context(viewport=DESKTOP, locale="zh-CN")).new_page()
    await staff.goto(url(yimen, "/console/inbox"))
    await staff.fill("input[name=username]", "xiaozhang")
    await staff.fill("input[name=password]", PASSWORD)
    await staff.click("button[type=submit]")
    await expect(staff.locator("#live-state")).to_have_text("实时")
    await expect(staff.locator("#inbox-rows")).to_contain_text("暂无等待人工的会话")

    resident = await (await browser.new_context(viewport=PHONE, locale="zh-CN")).new_page()
    await resident.goto(url(yimen, "/chat"))
    await expect(resident.locator("#status")).to_have_class(re.compile("online"))
    await send(resident, "我要找工作人员 楼道灯坏了好几天了")
    bot = resident.locator(".row-msg.bot")
    await expect(bot.last).to_contain_text("工作人员")

    wechat = yimen.resident()
    passive = await wechat.say("让真人来回答 我家暖气不热")
    assert "工作人员" in passive
    held = await wechat.send(yimen.tencent.text(wechat.openid, "暖气片是凉的"))
    assert held.empty  # held: the bot says nothing ("success", no passive reply)

    rows = staff.locator("#inbox-rows tr")
    await expect(rows).to_have_count(2)  # both arrived live, no reload
    await expect(rows.nth(0)).to_contain_text("网页聊天")
    await expect(rows.nth(1)).to_contain_text("微信")
    await expect(rows.nth(0)).to_contain_text("居民要求转人工")
    await staff.evaluate("document.fonts.ready.then(() => true)")
    await staff.screenshot(path=screenshot("console-inbox.png"), full_page=True)

    await rows.nth(0).locator("a").click()
    await expect(staff.locator("#transcript")).to_contain_text("楼道灯坏了好几天了")
    await expect(staff.locator("#transcript .nlu").first).to_contain_text("转人工")
    # Live lines carry the time as the server writes it (Asia/Shanghai), whatever the
    # browser's time zone (UTC here).
    stamp = await staff.locator("#transcript .at").first.text_content()
    assert stamp in {local_minute(utcnow() - timedelta(minutes=m)) for m in range(3)}, stamp
    await staff.get_by_role("button", name="接入此会话").click()
    await staff.locator("[data-canned]").first.click()
    await expect(staff.locator("#reply-text")).to_have_value(re.compile(r"\{name\}您好"))
    await staff.fill("#reply-text", "您好，我是街道工作人员小张，马上联系物业处理楼道灯。")
    await staff.get_by_role("button", name="发送").click()
    await expect(staff.locator("#transcript li.staff")).to_contain_text("小张")

    await expect(bot.last).to_contain_text("我是街道工作人员小张")  # pushed to the page
    await staff.get_by_role("button", name="交还机器人").click()
    await expect(staff.locator("#inbox-rows tr")).to_have_count(1)  # only WeChat waits
    await expect(bot.last).to_contain_text(T("handoff.returned"))
    # Nothing was under way: the bot's main choices come with it, ready to press.
    await expect(bot.last.locator(".buttons button")).to_have_text(
        [T("button.menu_report"), T("button.menu_status"), T("button.menu_human")]
    )

    count = await bot.count()
    await send(resident, "小区门口路灯坏了")
    await expect(bot).to_have_count(count + 1)
    await expect(bot.last).to_contain_text("具体位置")  # the bot answers again itself

    [waiting] = await yimen.services.handoffs.open_list()
    assert waiting.channel == "wechat"
    await staff.goto(url(yimen, f"/console/inbox/{waiting.id}"))
    await expect(staff.locator("#transcript")).to_contain_text("暖气片是凉的")
    await staff.get_by_role("button", name="接入此会话").click()
    await staff.fill("#reply-text", "{name}您好，供热站已派人上门检查。")
    await staff.get_by_role("button", name="发送").click()
    texts = await yimen.wait_texts(wechat.openid, 1)
    assert texts[-1] == "居民朋友您好，供热站已派人上门检查。"
