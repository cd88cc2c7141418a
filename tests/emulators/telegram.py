"""A loopback Telegram Bot API server for tests: real HTTP, the Bot API's JSON shapes.

It answers the methods Yimen uses (getMe, getUpdates, setWebhook, deleteWebhook,
setMyCommands, sendMessage, answerCallbackQuery, getFile and file downloads) the way
api.telegram.org does, records every call, and plays the residents' side: a
``Resident`` builds the updates a Telegram client causes, and ``deliver`` queues an
update for getUpdates or, once a webhook is set, POSTs it there with the secret
header, as Telegram does.

Flood control: ``flood`` makes chosen sendMessage calls answer 429 with
``parameters.retry_after``, pausing the whole bot (``scope="global"``) or that chat;
a send the pause covers that arrives before it is over is counted in ``early`` (and
answered 429 again, as Telegram would). A client with several requests on the wire
when a global 429 comes back cannot recall them, so strict global counting suits a
sender with one request at a time. Accepted sends are measured against a per-chat
spacing and a global rate; what exceeds them lands in ``violations``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

BOT_NAME = "一门"
BOT_USERNAME = "yimen_test_bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_TEXT = 4096


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional parameters."""

    def __init__(self, status: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class Call:
    """One API request as the emulator received it."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass
class Sent:
    """A message the bot sent (sendMessage accepted)."""

    message_id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    date: int
    at: float

    def json(self, bot: dict[str, Any]) -> dict[str, Any]:
        """The Message object Telegram returns for it and includes in callback queries."""
        message: dict[str, Any] = {
            "message_id": self.message_id,
            "from": bot,
            "chat": {"id": self.chat_id, "first_name": "居民", "type": "private"},
            "date": self.date,
            "text": self.text,
        }
        if self.reply_markup is not None:
            message["reply_markup"] = self.reply_markup
        return message

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The inline keyboard's buttons, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]

    @property
    def labels(self) -> list[str]:
        """The inline keyboard's button texts, in order."""
        return [button["text"] for button in self.buttons]


@dataclass
class Webhook:
    """What setWebhook registered."""

    url: str = ""
    secret: str = ""
    allowed_updates: list[str] = field(default_factory=list)


class TelegramEmulator:
    """The Bot API of one bot on 127.0.0.1; use as an async context manager.

    ``chat_interval`` and ``rate`` (messages per second over ``window`` seconds) are
    the limits accepted sends are measured against; ``tolerance`` is the fraction of
    slack allowed for scheduling jitter on a shared event loop.
    """

    def __init__(
        self,
        token: str,
        *,
        chat_interval: float = 0.0,
        rate: float = 0.0,
        window: float = 1.0,
        tolerance: float = 0.25,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.chat_interval = chat_interval
        self.rate = rate
        self.window = window
        self.tolerance = tolerance
        self.calls: list[Call] = []
        self.sent: list[Sent] = []
        self.webhook = Webhook()
        self.commands: list[dict[str, str]] = []
        self.files: dict[str, tuple[str, bytes]] = {}
        self.blocked: set[int] = set()
        self.answered: list[str] = []
        self.violations: list[str] = []
        self.too_many = 0  # 429 answers given
        self.early = 0  # sends that came while a retry_after pause was still running
        self.confirmed = 0  # every update below this id was confirmed by getUpdates
        # Fault injection: sends numbered hold_from and later are delivered (kept in
        # ``sent``: the resident has them) but not answered until ``release`` is set, as
        # when the bot's process dies between Telegram's delivery and its answer.
        self.hold_from: int | None = None
        self.held: list[Sent] = []
        self.release = asyncio.Event()
        self._updates: list[dict[str, Any]] = []
        self._queries: set[str] = set()
        self._failures: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
        self._flood_at: set[int] = set()
        self._retry_after = 1
        self._flood_scope = "global"
        self._flood_until: dict[int | None, float] = {}  # None: the whole bot
        self._closing = False
        self._send_requests = 0
        self._last_sent: dict[int, float] = {}
        self._recent: deque[float] = deque()
        self._read: dict[int, int] = defaultdict(int)
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        # Telegram numbers a bot's updates from an arbitrary point, never from 1.
        self._update_ids = itertools.count(random.randrange(100_000_000, 900_000_000))
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> TelegramEmulator:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.add_routes(
            [
                web.route("*", "/bot{token}/{method}", self._api),
                web.get("/file/bot{token}/{path:.+}", self._file),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        self._client = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *_: object) -> None:
        async with self._changed:  # end pending long polls now, not at their timeout
            self._closing = True
            self._changed.notify_all()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the test's controls ---------------------------------------------------------

    @property
    def bot(self) -> dict[str, Any]:
        """The bot's User object."""
        return {"id": self.bot_id, "is_bot": True, "first_name": BOT_NAME, "username": BOT_USERNAME}

    def resident(self, user_id: int, name: str = "居民") -> Resident:
        """A resident talking to the bot in a private chat."""
        return Resident(self, user_id, name)

    def flood(self, *ordinals: int, retry_after: int = 1, scope: str = "global") -> None:
        """Answer 429 to the sendMessage requests with these 1-based ordinals.

        Each pauses the bot (``scope="global"``) or just the request's chat ("chat").
        """
        assert scope in ("global", "chat")
        self._flood_at.update(ordinals)
        self._retry_after = retry_after
        self._flood_scope = scope

    def fail(self, method: str, status: int, description: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with this error."""
        self._failures[method.lower()].extend([(status, description)] * times)

    def add_file(self, file_id: str, data: bytes, path: str) -> None:
        """A file getFile can find and the file endpoint serves."""
        self.files[file_id] = (path, data)

    def calls_of(self, method: str) -> list[Call]:
        """The recorded calls of one method."""
        return [call for call in self.calls if call.method == method.lower()]

    def next_update_id(self) -> int:
        return next(self._update_ids)

    async def deliver(self, update: dict[str, Any]) -> int | None:
        """Hand an update to the bot: the webhook's HTTP status, or None when queued."""
        if self.webhook.url:
            assert self._client is not None
            headers = {SECRET_HEADER: self.webhook.secret} if self.webhook.secret else {}
            async with self._client.post(self.webhook.url, json=update, headers=headers) as got:
                await got.read()
                return got.status
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return None

    async def receive(self, chat_id: int, count: int = 1, within: float = 30.0) -> list[Sent]:
        """The next ``count`` messages the bot sends to ``chat_id`` that were not read yet."""
        start = self._read[chat_id]

        def ready() -> bool:
            return len(self.messages_to(chat_id)) >= start + count

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), within)
            except TimeoutError:
                got = [m.text for m in self.messages_to(chat_id)[start:]]
                raise AssertionError(
                    f"chat {chat_id}: wanted {count} messages, got {got}"
                ) from None
        self._read[chat_id] = start + count
        return self.messages_to(chat_id)[start : start + count]

    async def wait_for(self, method: str, within: float = 30.0) -> Call:
        """The first call of ``method``, waiting for it if needed."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: bool(self.calls_of(method))), within
            )
        return self.calls_of(method)[0]

    async def wait_until(self, predicate: Any, within: float = 30.0) -> None:
        """Wait until ``predicate()`` holds; it is checked after every API call."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), within)

    def messages_to(self, chat_id: int) -> list[Sent]:
        """Everything sent to one chat, in order."""
        return [message for message in self.sent if message.chat_id == chat_id]

    # -- HTTP --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        params = await _params(request)
        self.calls.append(Call(method, params, time.monotonic()))
        async with self._changed:
            self._changed.notify_all()
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if self._failures[method]:
                status, description = self._failures[method].popleft()
                raise ApiError(status, description)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params)
        except ApiError as error:
            body: dict[str, Any] = {
                "ok": False,
                "error_code": error.status,
                "description": error.description,
            }
            if error.parameters:
                body["parameters"] = error.parameters
            return web.json_response(body, status=error.status)
        finally:
            async with self._changed:
                self._changed.notify_all()
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            raise web.HTTPUnauthorized()
        for path, data in self.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=data, content_type="image/jpeg")
        raise web.HTTPNotFound()

    # -- methods -----------------------------------------------------------------------

    async def _m_getme(self, _: dict[str, Any]) -> dict[str, Any]:
        return {**self.bot, "can_join_groups": False, "can_read_all_group_messages": False}

    async def _m_setmycommands(self, params: dict[str, Any]) -> bool:
        commands = json.loads(params.get("commands", "[]"))
        for command in commands:
            if not _COMMAND.match(command.get("command", "")):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = commands
        return True

    async def _m_setwebhook(self, params: dict[str, Any]) -> bool:
        secret = params.get("secret_token", "")
        if secret and not _SECRET.match(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates") == "true":
            self._updates.clear()
        allowed = json.loads(params.get("allowed_updates", "[]"))
        self.webhook = Webhook(params.get("url", ""), secret, allowed)
        return True

    async def _m_deletewebhook(self, params: dict[str, Any]) -> bool:
        if params.get("drop_pending_updates") == "true":
            self._updates.clear()
        self.webhook = Webhook()
        return True

    async def _m_getupdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset", 0))
        limit = int(params.get("limit", 100))
        timeout = float(params.get("timeout", 0))
        if offset > 0:  # confirms every update before it
            self.confirmed = max(self.confirmed, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: bool(self._updates) or self._closing), timeout
                )
            except TimeoutError:
                return []
        return self._updates[:limit]

    async def _m_sendmessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        text = params.get("text", "")
        self._send_requests += 1
        now = time.monotonic()
        until = max(self._flood_until.get(None, 0.0), self._flood_until.get(chat_id, 0.0))
        if now < until:
            self.early += 1
            self.too_many += 1
            retry = math.ceil(until - now)
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)
        if self._send_requests in self._flood_at:
            self.too_many += 1
            scope = None if self._flood_scope == "global" else chat_id
            self._flood_until[scope] = now + self._retry_after
            raise ApiError(
                429,
                f"Too Many Requests: retry after {self._retry_after}",
                retry_after=self._retry_after,
            )
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        self._measure(chat_id, now)
        markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
        message = Sent(next(self._ids), chat_id, text, markup, int(time.time()), now)
        self.sent.append(message)
        if self.hold_from is not None and len(self.sent) >= self.hold_from:
            self.held.append(message)
            async with self._changed:
                self._changed.notify_all()
            await self.release.wait()
        return message.json(self.bot)

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> bool:
        query = params.get("callback_query_id", "")
        if query not in self._queries:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self._queries.discard(query)
        self.answered.append(query)
        return True

    async def _m_getfile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id", "")
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": path,
        }

    def _measure(self, chat_id: int, now: float) -> None:
        last = self._last_sent.get(chat_id)
        if self.chat_interval and last is not None:
            gap = now - last
            if gap < self.chat_interval * (1 - self.tolerance):
                self.violations.append(f"chat {chat_id}: {gap * 1000:.1f} ms after the last")
        self._last_sent[chat_id] = now
        if self.rate:
            self._recent.append(now)
            while self._recent[0] < now - self.window:
                self._recent.popleft()
            allowed = (self.rate * self.window + 1) * (1 + self.tolerance)
            if len(self._recent) > allowed:
                self.violations.append(f"{len(self._recent)} sends within {self.window}s")


class Resident:
    """One Telegram user in a private chat with the bot: builds the updates they cause."""

    def __init__(self, emulator: TelegramEmulator, user_id: int, name: str) -> None:
        self.emulator = emulator
        self.id = user_id
        self.name = name
        self._message_ids = itertools.count(1)

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": False, "first_name": self.name, "language_code": "zh-hans"}

    def message(self, chat: dict[str, Any] | None = None, **content: Any) -> dict[str, Any]:
        """An update carrying a message with ``content`` (the Message fields)."""
        return {
            "update_id": self.emulator.next_update_id(),
            "message": {
                "message_id": next(self._message_ids),
                "from": self.user,
                "chat": chat or {"id": self.id, "first_name": self.name, "type": "private"},
                "date": int(time.time()),
                **content,
            },
        }

    def text(self, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
        return self.message(**content)

    def location(self, latitude: float, longitude: float) -> dict[str, Any]:
        return self.message(location={"latitude": latitude, "longitude": longitude})

    def venue(self, latitude: float, longitude: float, title: str, address: str) -> dict[str, Any]:
        pin = {"latitude": latitude, "longitude": longitude}
        return self.message(
            location=pin, venue={"location": pin, "title": title, "address": address}
        )

    def photo(self, data: bytes, caption: str = "") -> dict[str, Any]:
        """A photo as clients send it: three sizes, each a file of its own."""
        stem = f"p{self.id}x{self.emulator.next_update_id()}"
        sizes = []
        for label, side, blob in (("s", 90, data[:64]), ("m", 320, data[:512]), ("x", 1280, data)):
            file_id = f"{stem}{label}"
            self.emulator.add_file(file_id, blob, f"photos/file_{file_id}.jpg")
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_id}",
                    "width": side,
                    "height": side * 3 // 4,
                    "file_size": len(blob),
                }
            )
        content: dict[str, Any] = {"photo": sizes}
        if caption:
            content["caption"] = caption
        return self.message(**content)

    def contact(self, phone_number: str) -> dict[str, Any]:
        return self.message(
            contact={"phone_number": phone_number, "first_name": self.name, "user_id": self.id}
        )

    def sticker(self, emoji: str) -> dict[str, Any]:
        return self.message(
            sticker={
                "file_id": f"st{self.id}",
                "file_unique_id": f"ust{self.id}",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": emoji,
            }
        )

    def voice(self) -> dict[str, Any]:
        return self.message(
            voice={
                "file_id": f"v{self.id}",
                "file_unique_id": f"uv{self.id}",
                "duration": 3,
                "mime_type": "audio/ogg",
            }
        )

    def in_group(self, text: str) -> dict[str, Any]:
        group = {"id": -1000000000000 - self.id, "title": "小区业主群", "type": "supergroup"}
        return self.message(chat=group, text=text)

    def press(self, message: Sent, label: str, *, inaccessible: bool = False) -> dict[str, Any]:
        """An update for pressing the button labelled ``label`` under ``message``.

        ``inaccessible``: Telegram no longer includes the message (older than 48 hours),
        only an InaccessibleMessage (its chat and id, date 0), so there is no keyboard
        to read the label from.
        """
        data = {b["text"]: b.get("callback_data") for b in message.buttons}
        assert label in data, f"no {label} button in {list(data)}"
        query_id = f"{self.id}{self.emulator.next_update_id()}"
        self.emulator._queries.add(query_id)
        shown = message.json(self.emulator.bot)
        if inaccessible:
            shown = {"chat": shown["chat"], "message_id": shown["message_id"], "date": 0}
        return {
            "update_id": self.emulator.next_update_id(),
            "callback_query": {
                "id": query_id,
                "from": self.user,
                "message": shown,
                "chat_instance": f"ci{self.id}",
                "data": data[label],
            },
        }


async def _params(request: web.Request) -> dict[str, Any]:
    """The method's parameters, however aiogram encoded them (form, multipart, JSON)."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            form = await request.post()
            params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params
