"""Yimen's app served with the WeChat channel on, and residents writing to it."""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bots.app import SERVICES, create_app
from bots.runtime import Services
from bots.settings import Settings
from bots.wechat import WECHAT, WeChatChannel, WeChatOptions, WeChatTiming
from handlers.catalog import Catalog
from tests.emulators.wechat import (
    AES_KEY,
    APP_ID,
    APP_SECRET,
    TEMPLATE_ID,
    TOKEN,
    Delivery,
    Tencent,
    WeChatAPIEmulator,
)

_openids = itertools.count(1)

CASE_NUMBER = re.compile(r"YM\d{10}")
COMPLAINT = "楼下烧烤店每天半夜还很吵"
ADDRESS = "金辉小区3号楼"
T = Catalog.load()


def number_in(text: str) -> str:
    """The case number a reply mentions."""
    found = CASE_NUMBER.search(text)
    assert found, text
    return found.group()


def options(*labels: str) -> str:
    """How a reply's buttons read in WeChat: numbered lines."""
    return "\n".join(
        T("wechat.option", number=i, label=label) for i, label in enumerate(labels, start=1)
    )


def far_away() -> tuple[float, float]:
    """A pin far from the gazetteer's communities and from other tests' pins."""
    return 30 + random.random(), 100 + random.random()


@dataclass
class Clock:
    """Wall time plus an offset a test can move (to leave the 48-hour window)."""

    offset: float = 0.0
    frozen: float | None = None

    def __call__(self) -> float:
        return (self.frozen if self.frozen is not None else time.time()) + self.offset


def wechat_settings(
    data_dir: Path,
    emulator: WeChatAPIEmulator,
    *,
    safe: bool = False,
    template: str = TEMPLATE_ID,
    **extra: Any,
) -> Settings:
    """Settings with the WeChat channel on, talking to ``emulator``."""
    return Settings(
        data_dir=data_dir,
        push_poll_interval=0.05,
        wechat_token=TOKEN,
        wechat_app_id=APP_ID,
        wechat_app_secret=APP_SECRET,
        wechat_aes_key=AES_KEY if safe else "",
        wechat_api_base=emulator.base,
        wechat_template_status=template,
        **extra,
    )


@dataclass
class Yimen:
    """The running app, the emulated WeChat API, and the platform delivering to it."""

    client: TestClient[Any, Any]
    api: WeChatAPIEmulator
    tencent: Tencent
    clock: Clock

    @property
    def services(self) -> Services:
        return self.client.app[SERVICES]

    @property
    def channel(self) -> WeChatChannel:
        return self.client.app[WECHAT]

    def resident(self, openid: str = "") -> Resident:
        return Resident(self, openid or f"o-resident-{next(_openids):06d}-{id(self) % 10**6}")

    def texts_to(self, openid: str) -> list[str]:
        """The customer-service texts sent to ``openid`` so far."""
        return [sent.text for sent in self.api.texts if sent.openid == openid]

    async def wait_texts(self, openid: str, count: int) -> list[str]:
        """The customer-service texts to ``openid``, once there are ``count``."""
        await self.api.wait_for(lambda: len(self.texts_to(openid)) >= count)
        return self.texts_to(openid)


@dataclass
class Resident:
    """One follower of the account: each method is one message and its delivery."""

    yimen: Yimen
    openid: str
    deliveries: list[Delivery] = field(default_factory=list)

    async def send(self, xml: str) -> Delivery:
        delivery = await self.yimen.tencent.deliver(xml)
        self.deliveries.append(delivery)
        return delivery

    async def say(self, words: str) -> str:
        """Send text; the passive reply's text."""
        return (await self.send(self.yimen.tencent.text(self.openid, words))).text

    async def pin(self, lat: float, lon: float, label: str) -> str:
        return (await self.send(self.yimen.tencent.location(self.openid, lat, lon, label))).text

    async def photo(self, media_id: str) -> str:
        return (await self.send(self.yimen.tencent.image(self.openid, media_id))).text

    async def click(self, key: str) -> str:
        return (await self.send(self.yimen.tencent.event(self.openid, "CLICK", key))).text

    async def to_confirm(self, description: str = COMPLAINT) -> str:
        """Report at a pin of one's own (no other case is near), skip the photo: the summary."""
        await self.say(description)
        lat, lon = far_away()
        await self.pin(lat, lon, f"测试路{random.randint(1, 99999)}号")
        return await self.say(T("button.skip"))

    async def open_case(self) -> str:
        """Report noise at a pin of one's own and submit it: the case number."""
        await self.to_confirm()
        return number_in(await self.say(T("button.submit")))


@asynccontextmanager
async def serve(
    settings: Settings,
    api: WeChatAPIEmulator,
    *,
    deadline: float = 4.0,
    clock: Clock | None = None,
) -> AsyncIterator[Yimen]:
    """Run the app with the WeChat channel (the ``postgres`` fixture empties PostgreSQL)."""
    clock = clock or Clock()
    options = WeChatOptions(WeChatTiming(deadline=deadline, send_backoff=0.01), clock)
    app = create_app(settings, wechat_options=options)
    async with TestClient(TestServer(app)) as client:
        yimen = Yimen(
            client,
            api,
            Tencent(client, aes_key=settings.wechat_aes_key, clock=clock),
            clock,
        )
        yield yimen
