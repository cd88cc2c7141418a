"""The WeChat API side: the shared access_token, errcodes, pushes, and the menu."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from bots.settings import Settings
from bots.wechat import WeChatAPI, WeChatAPIError, WeChatChannel, WeChatTiming, open_api
from bots.wechat.menu import ITEMS, LAYOUT, menu_definition
from bots.wechat.security import WebhookGuard
from bots.wechat.tokens import MemoryTokenCache, RedisTokenCache, TokenCache
from handlers.catalog import Catalog
from handlers.messages import DeliveryError, Inbound, Outbound
from integration.state import KeyBuilder
from tests.emulators.wechat import (
    APP_ID,
    APP_SECRET,
    TEMPLATE_ID,
    TOKEN,
    WeChatAPIEmulator,
)

T = Catalog.load()
ROOT = Path(__file__).parent.parent
STATUS = Outbound(
    "【工单进展】YM2611250001\n噪音扰民：已受理",
    data=(("number", "YM2611250001"), ("status", "已受理"), ("note", ""), ("time", "t")),
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def redis_cache(redis: Redis, keys: KeyBuilder) -> RedisTokenCache:
    return RedisTokenCache(
        redis,
        keys.build("token", "wechat", APP_ID),
        keys.build("tokenlock", "wechat", APP_ID),
        poll=0.01,
    )


def api(session: aiohttp.ClientSession, base: str, cache: TokenCache) -> WeChatAPI:
    return WeChatAPI(session, base, APP_ID, APP_SECRET, cache)


# -- the access_token ------------------------------------------------------------------------


async def test_workers_sharing_redis_fetch_one_token_and_refresh_it_once(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession, redis: Redis, keys: KeyBuilder
) -> None:
    workers = [api(http, wechat_api.base, redis_cache(redis, keys)) for _ in range(3)]
    wechat_api.token_delay = 0.05  # so the workers' first calls overlap the fetch
    await asyncio.gather(*(w.send_text(f"o-{i}", "你好") for i, w in enumerate(workers * 3)))
    assert wechat_api.token_fetches == 1

    wechat_api.revoke_token()  # e.g. someone fetched one by hand: every worker gets 40001
    await asyncio.gather(*(w.send_text(f"o-{i}", "再见") for i, w in enumerate(workers * 3)))
    assert wechat_api.token_fetches == 2
    assert len(wechat_api.texts) == 18
    # Nobody ever fetched behind another worker's back: each call used the latest token.
    assert await redis.pttl(keys.build("tokenlock", "wechat", APP_ID)) == -2


async def test_one_worker_without_redis_fetches_once_too(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession
) -> None:
    worker = api(http, wechat_api.base, MemoryTokenCache())
    wechat_api.token_delay = 0.05
    await asyncio.gather(*(worker.send_text(f"o-{i}", "你好") for i in range(5)))
    wechat_api.revoke_token()
    await asyncio.gather(*(worker.send_text(f"o-{i}", "再见") for i in range(5)))
    assert wechat_api.token_fetches == 2
    assert len(wechat_api.texts) == 10


async def test_yimen_wechat_rate_spaces_messages_all_residents_together(
    wechat_api: WeChatAPIEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("YIMEN_WECHAT_RATE", "20")
    settings = Settings(
        data_dir=tmp_path,
        wechat_api_base=wechat_api.base,
        wechat_app_id=APP_ID,
        wechat_app_secret=APP_SECRET,
    )
    assert settings.wechat_rate == 20
    async with open_api(settings, None) as paced:
        sends = [paced.send_text(f"o-{i}", "你好") for i in range(6)]
        sends.append(paced.send_template("o-0", TEMPLATE_ID, {"number": "YM2611250001"}))
        await asyncio.gather(*sends)
    accepted = sorted(sent.at for sent in [*wechat_api.texts, *wechat_api.templates])
    gaps = [later - earlier for earlier, later in itertools.pairwise(accepted)]
    assert len(accepted) == 7
    # 1/20 s apart (half of it allowed for loopback jitter); unpaced, the seven
    # requests would all arrive within a few milliseconds.
    assert min(gaps) > 0.025


def test_wechat_messages_are_unpaced_by_default_and_a_negative_rate_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("YIMEN_WECHAT_RATE", raising=False)
    assert Settings().wechat_rate == 0
    monkeypatch.setenv("YIMEN_WECHAT_RATE", "-1")
    with pytest.raises(ValueError):
        Settings()


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_a_stale_token_is_refreshed_and_the_call_retried_once(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession, errcode: int
) -> None:
    worker = api(http, wechat_api.base, MemoryTokenCache())
    wechat_api.fail("message/custom/send", errcode)
    await worker.send_text("o-1", "你好")
    assert wechat_api.token_fetches == 2
    assert [s.text for s in wechat_api.texts] == ["你好"]

    wechat_api.fail("message/custom/send", errcode, errcode)  # refreshed, still refused
    with pytest.raises(WeChatAPIError) as refused:
        await worker.send_text("o-1", "你好")
    assert refused.value.errcode == errcode
    assert [c.path for c in wechat_api.calls].count("message/custom/send") == 4


async def test_a_wrong_app_secret_is_a_clear_error(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession
) -> None:
    worker = WeChatAPI(http, wechat_api.base, APP_ID, "wrong", MemoryTokenCache())
    with pytest.raises(WeChatAPIError) as refused:
        await worker.send_text("o-1", "你好")
    assert refused.value.errcode == 40125


# -- pushes: which way, and what a failure means for the queue ---------------------------------


def channel(
    base: str, http: aiohttp.ClientSession, last: datetime | None, template: str = TEMPLATE_ID
) -> WeChatChannel:
    async def handle(inbound: Inbound) -> list[Outbound] | None:
        return None

    async def record(inbound: Inbound) -> None:
        return None

    async def spool(chat_id: str, text: str) -> None:
        raise AssertionError("a push is never spooled by the channel")

    async def last_inbound(chat_id: str) -> datetime | None:
        return last

    return WeChatChannel(
        WebhookGuard(TOKEN),
        api(http, base, MemoryTokenCache()),
        T,
        handle=handle,
        record=record,
        spool=spool,
        last_inbound=last_inbound,
        template_id=template,
        timing=WeChatTiming(),
    )


async def test_a_push_in_the_window_is_a_customer_service_message(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession
) -> None:
    await channel(wechat_api.base, http, datetime.now(UTC)).push("o-1", STATUS)
    assert [(s.openid, s.text) for s in wechat_api.texts] == [("o-1", STATUS.text)]


async def test_a_push_to_a_resident_who_never_wrote_uses_the_template(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession
) -> None:
    await channel(wechat_api.base, http, None).push("o-1", STATUS)
    assert wechat_api.texts == []
    assert wechat_api.templates[0].data == {
        "number": "YM2611250001",
        "status": "已受理",
        "note": T("wechat.template_empty"),
        "time": "t",
    }


@pytest.mark.parametrize(
    ("fault", "retryable"),
    [(500, True), (503, True), (-1, True), (45009, True), (43004, False), (40003, False)],
    ids=["http-500", "http-503", "system-busy", "quota", "unfollowed", "bad-openid"],
)
async def test_push_failures_raise_delivery_errors_the_pump_understands(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession, fault: int, retryable: bool
) -> None:
    wechat_api.fail("message/custom/send", fault)
    with pytest.raises(DeliveryError) as failed:
        await channel(wechat_api.base, http, datetime.now(UTC)).push("o-1", STATUS)
    assert failed.value.retryable is retryable
    assert not failed.value.offline


async def test_an_unreachable_wechat_is_a_retryable_failure(http: aiohttp.ClientSession) -> None:
    with pytest.raises(DeliveryError) as failed:
        await channel("http://127.0.0.1:9/cgi-bin/", http, None).push("o-1", STATUS)
    assert failed.value.retryable


@pytest.mark.parametrize(
    ("template", "message", "reason"),
    [
        ("", STATUS, "YIMEN_WECHAT_TEMPLATE_STATUS is not set"),
        (TEMPLATE_ID, Outbound("请评价"), "no template fields"),
    ],
    ids=["no-template", "no-fields"],
)
async def test_outside_the_window_without_a_template_the_push_fails_for_good(
    wechat_api: WeChatAPIEmulator,
    http: aiohttp.ClientSession,
    template: str,
    message: Outbound,
    reason: str,
) -> None:
    with pytest.raises(DeliveryError, match=reason) as failed:
        await channel(wechat_api.base, http, None, template).push("o-1", message)
    assert not failed.value.retryable
    assert wechat_api.calls == []


async def test_a_refused_template_is_a_permanent_failure(
    wechat_api: WeChatAPIEmulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(DeliveryError) as failed:
        await channel(wechat_api.base, http, None, "no-such-template").push("o-1", STATUS)
    assert not failed.value.retryable
    assert "40037" in failed.value.reason


# -- the menu ------------------------------------------------------------------------------


def test_every_menu_entry_names_a_routable_intent_and_a_catalogue_label() -> None:
    from handlers.router import ROUTES
    from nlu.contract import INTENTS

    for item in ITEMS.values():
        assert item.key in INTENTS or item.key in ROUTES, item
        assert T(item.label)
    groups = [entry for entry in LAYOUT if isinstance(entry, tuple)]
    assert all(T(label) for label, _ in groups)


async def test_yimen_wechat_menu_installs_a_menu_wechat_accepts(
    wechat_api: WeChatAPIEmulator, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIMEN_")}
    env |= {
        "YIMEN_DATA_DIR": str(tmp_path),
        "YIMEN_WECHAT_TOKEN": TOKEN,
        "YIMEN_WECHAT_APP_ID": APP_ID,
        "YIMEN_WECHAT_APP_SECRET": APP_SECRET,
        "YIMEN_WECHAT_API_BASE": wechat_api.base,
    }
    script = str(Path(sys.executable).parent / "yimen")
    process = await asyncio.create_subprocess_exec(
        script,
        "wechat",
        "menu",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert wechat_api.menus == [menu_definition(T)]  # and the emulator checked WeChat's limits
    assert re.search(r"menu installed: 我要反映 \| 我的进度 \| 便民服务 \(", out.decode())


def test_yimen_wechat_menu_show_prints_the_menu_without_installing_it() -> None:
    from typer.testing import CliRunner

    from bots.cli import app

    result = CliRunner().invoke(app, ["wechat", "menu", "--show"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == menu_definition(T)


# -- the catalogue -----------------------------------------------------------------------------


def test_every_catalogue_key_the_wechat_channel_uses_exists() -> None:
    pattern = re.compile(r"""(?:_t|catalog|T)\(\s*["']([a-z_]+\.[a-z_]+)["']""")
    labels = re.compile(r"""["'](wechat\.[a-z_]+)["']""")
    used: set[str] = set()
    for path in (ROOT / "bots" / "wechat").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        used |= set(pattern.findall(source)) | set(labels.findall(source))
    assert {"wechat.welcome", "wechat.option", "chat.retry"} <= used
    assert used - set(T.keys()) == set()
