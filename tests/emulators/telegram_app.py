"""Yimen's app served against the Telegram emulator, and what tests need around it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient, TestServer, unused_port
from PIL import Image
from yarl import URL

from bots.app import SERVICES, create_app
from bots.runtime import Services
from bots.settings import Settings
from bots.telegram import SendLimits
from tests.emulators.telegram import Resident, Sent, TelegramEmulator

TOKEN = "7000000001:AAE-yimen-emulated-bot_token"
# Telegram's limits, sped up so a conversation takes milliseconds per turn.
FAST = SendLimits(rate=1000.0, chat_interval=0.02)


def jpeg(width: int = 64, height: int = 48) -> bytes:
    """A real JPEG photo (a colour gradient)."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 4 % 256, y * 5 % 256, 128) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@dataclass
class Yimen:
    """The running app and the emulated Telegram it talks to."""

    client: TestClient[Any, Any]
    emulator: TelegramEmulator
    mode: str

    @property
    def services(self) -> Services:
        return self.client.app[SERVICES]

    async def send(self, update: dict[str, Any]) -> None:
        """Deliver an update the way Telegram would in this mode; the webhook must take it."""
        status = await self.emulator.deliver(update)
        assert status in (None, 200), status

    async def say(self, update: dict[str, Any], resident: Resident, count: int = 1) -> list[Sent]:
        """Deliver an update and return the ``count`` messages the bot answers with."""
        await self.send(update)
        return await self.emulator.receive(resident.id, count)

    async def one(self, update: dict[str, Any], resident: Resident) -> Sent:
        """Deliver an update and return the bot's single answer."""
        (answer,) = await self.say(update, resident)
        return answer


def telegram_settings(base: Settings, emulator: TelegramEmulator, mode: str) -> Settings:
    """``base`` with the Telegram channel on, in "polling" or "webhook" mode."""
    update: dict[str, Any] = {"telegram_token": TOKEN, "telegram_api_base": emulator.base_url}
    if mode == "webhook":
        update["telegram_webhook_url"] = f"http://127.0.0.1:{unused_port()}/telegram"
    return base.model_copy(update=update)


@asynccontextmanager
async def serve(
    settings: Settings, emulator: TelegramEmulator, limits: SendLimits = FAST
) -> AsyncIterator[Yimen]:
    """Run the app (on the webhook URL's port in webhook mode) until Telegram is set up."""
    mode = "webhook" if settings.telegram_webhook_url else "polling"
    port = URL(settings.telegram_webhook_url).port if mode == "webhook" else None
    server = TestServer(create_app(settings, telegram_limits=limits), port=port)
    async with TestClient(server) as client:
        await emulator.wait_for("setWebhook" if mode == "webhook" else "getUpdates")
        yield Yimen(client, emulator, mode)
