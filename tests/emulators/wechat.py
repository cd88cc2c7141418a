"""WeChat on loopback for tests: the API server, and the platform calling our webhook.

``WeChatAPIEmulator`` answers the endpoints Yimen uses (token, message/custom/send,
message/template/send, menu/create) with WeChat's JSON shapes and errcodes. It hands
out one valid access_token at a time (a new fetch invalidates the old one, which is
what makes workers fetching their own tokens harmful), checks it on every call,
records what was sent, and injects faults: an errcode or an HTTP 5xx for the next
calls to an endpoint.

``Tencent`` plays the platform's side of the webhook: it builds the XML WeChat
delivers, signs it (plain mode) or encrypts and signs it (safe mode) with wechatpy's
own crypto, POSTs it, and opens the reply, checking its signature.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import xmltodict
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.utils import WeChatSigner

APP_ID = "wx2c2769f8efd9abc2"
APP_SECRET = "emulator-secret"
TOKEN = "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_10f6c3c3ac5a"
TEMPLATE_ID = "status-template-1"
MAX_TEXT_BYTES = 2048
WAIT = 10.0  # seconds a test waits for the app to call the API


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


@dataclass
class Call:
    """One API request as the emulator received it."""

    path: str
    token: str
    body: dict[str, Any]


@dataclass
class Sent:
    """A delivered customer-service text or template message."""

    openid: str
    text: str = ""
    template_id: str = ""
    data: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when it was accepted


class WeChatAPIError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg = errcode, errmsg


class WeChatAPIEmulator:
    """api.weixin.qq.com/cgi-bin/ on loopback."""

    def __init__(self, app_id: str = APP_ID, secret: str = APP_SECRET) -> None:
        self.app_id, self.secret = app_id, secret
        self.calls: list[Call] = []
        self.texts: list[Sent] = []
        self.templates: list[Sent] = []
        self.menus: list[dict[str, Any]] = []
        self.token_fetches = 0
        self.token_delay = 0.0  # seconds each token fetch takes (to overlap refreshes)
        self._token = ""
        self._serial = itertools.count(1)
        self._faults: dict[str, deque[int]] = defaultdict(deque)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    # -- control ---------------------------------------------------------------------

    def fail(self, path: str, *codes: int) -> None:
        """The next calls to ``path`` answer these errcodes (500-599: that HTTP status)."""
        self._faults[path].extend(codes)

    def revoke_token(self) -> None:
        """Invalidate the current token, as a fetch by someone else would."""
        self._token = f"revoked-{next(self._serial)}"

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate`` holds (checked after every recorded call); 10 s at most."""
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/cgi-bin/token", self._token_endpoint),
                web.post("/cgi-bin/message/custom/send", self._custom_send),
                web.post("/cgi-bin/message/template/send", self._template_send),
                web.post("/cgi-bin/menu/create", self._menu_create),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}/cgi-bin/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> WeChatAPIEmulator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- endpoints ---------------------------------------------------------------------

    async def _token_endpoint(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        if query.get("appid") != self.app_id:
            return _error(40013, "invalid appid")
        if query.get("secret") != self.secret:
            return _error(40125, "invalid appsecret")
        self.token_fetches += 1
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        self._token = f"TOKEN-{next(self._serial)}"  # the previous one stops working
        return web.json_response({"access_token": self._token, "expires_in": 7200})

    async def _custom_send(self, request: web.Request) -> web.Response:
        async def handle(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("msgtype") != "text" or not isinstance(body.get("text"), dict):
                raise WeChatAPIError(40008, "invalid message type")
            content = body["text"].get("content")
            if not isinstance(content, str) or not content:
                raise WeChatAPIError(44003, "empty news data")
            if len(content.encode()) > MAX_TEXT_BYTES:
                raise WeChatAPIError(45002, "content size out of limit")
            self.texts.append(Sent(_openid(body), text=content))
            return {}

        return await self._api(request, "message/custom/send", handle)

    async def _template_send(self, request: web.Request) -> web.Response:
        async def handle(body: dict[str, Any]) -> dict[str, Any]:
            data = body.get("data")
            if body.get("template_id") != TEMPLATE_ID:
                raise WeChatAPIError(40037, "invalid template_id")
            if not isinstance(data, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("value"), str) and v["value"]
                for v in data.values()
            ):
                raise WeChatAPIError(47003, "argument invalid! data.value empty")
            fields = {key: value["value"] for key, value in data.items()}
            self.templates.append(Sent(_openid(body), template_id=TEMPLATE_ID, data=fields))
            return {"msgid": next(self._serial)}

        return await self._api(request, "message/template/send", handle)

    async def _menu_create(self, request: web.Request) -> web.Response:
        async def handle(body: dict[str, Any]) -> dict[str, Any]:
            _check_menu(body)
            self.menus.append(body)
            return {}

        return await self._api(request, "menu/create", handle)

    async def _api(self, request: web.Request, path: str, handle: Any) -> web.Response:
        token = request.query.get("access_token", "")
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.calls.append(Call(path, token, body if isinstance(body, dict) else {}))
        try:
            if self._faults[path]:
                code = self._faults[path].popleft()
                if 500 <= code < 600:
                    return web.Response(status=code, text="upstream error")
                raise WeChatAPIError(code, "injected")
            if not token:
                raise WeChatAPIError(41001, "access_token missing")
            if token != self._token:
                raise WeChatAPIError(40001, "invalid credential, access_token is invalid")
            if not isinstance(body, dict):
                raise WeChatAPIError(47001, "data format error")
            extra = await handle(body)
        except WeChatAPIError as exc:
            return _error(exc.errcode, exc.errmsg)
        finally:
            self._changed.set()
        return web.json_response({"errcode": 0, "errmsg": "ok", **extra})


def _openid(body: dict[str, Any]) -> str:
    openid = body.get("touser")
    if not isinstance(openid, str) or not openid:
        raise WeChatAPIError(40003, "invalid openid")
    return openid


def _check_menu(body: dict[str, Any]) -> None:
    """WeChat's menu limits: 1-3 buttons, 1-5 sub-buttons, names and keys by bytes."""
    buttons = body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise WeChatAPIError(40016, "invalid button size")
    for button in buttons:
        if len(str(button.get("name", "")).encode()) > 16 or not button.get("name"):
            raise WeChatAPIError(40018, "invalid button name size")
        subs = button.get("sub_button")
        if subs is None:
            _check_click(button)
            continue
        if not isinstance(subs, list) or not 1 <= len(subs) <= 5:
            raise WeChatAPIError(40023, "invalid sub button size")
        for sub in subs:
            if len(str(sub.get("name", "")).encode()) > 60 or not sub.get("name"):
                raise WeChatAPIError(40024, "invalid sub button name size")
            _check_click(sub)


def _check_click(button: Mapping[str, Any]) -> None:
    if button.get("type") != "click":
        raise WeChatAPIError(40017, "invalid button type")
    key = button.get("key")
    if not isinstance(key, str) or not key or len(key.encode()) > 128:
        raise WeChatAPIError(40019, "invalid button key size")


def _error(errcode: int, errmsg: str) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg})


# -- the platform calling our webhook -----------------------------------------------------


@dataclass
class Delivery:
    """Our webhook's answer to one delivery."""

    status: int
    body: str
    reply: dict[str, Any] | None = None  # the opened reply's fields, if any

    @property
    def text(self) -> str:
        """The passive reply's text; asserts there is one."""
        assert self.status == 200, (self.status, self.body)
        assert self.reply is not None, f"expected a passive reply, got {self.body!r}"
        assert self.reply["MsgType"] == "text", self.reply
        return str(self.reply["Content"])

    @property
    def empty(self) -> bool:
        """Whether the webhook answered ``success`` (nothing to say now)."""
        return self.status == 200 and self.body in ("success", "")


class Tencent:
    """WeChat's servers delivering messages to our /wechat, in plain or safe mode."""

    def __init__(
        self,
        client: TestClient[Any, Any],
        *,
        token: str = TOKEN,
        aes_key: str = "",
        app_id: str = APP_ID,
        account: str = ACCOUNT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.token, self.app_id, self.account = token, app_id, account
        self.clock = clock
        self.crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None
        self._ids = itertools.count(int(time.time() * 1000) * 1000)

    def msg_id(self) -> str:
        return str(next(self._ids))

    def xml(self, openid: str, kind: str, created: int | None = None, **fields: Any) -> str:
        """A delivery's XML, as WeChat builds it (text fields in CDATA)."""
        parts = [
            f"<ToUserName><![CDATA[{self.account}]]></ToUserName>",
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
            f"<CreateTime>{int(self.clock()) if created is None else created}</CreateTime>",
            f"<MsgType><![CDATA[{kind}]]></MsgType>",
        ]
        for name, value in fields.items():
            if isinstance(value, int | float):
                parts.append(f"<{name}>{value}</{name}>")
            else:  # a "]]>" in the text is split across two CDATA sections
                value = str(value).replace("]]>", "]]]]><![CDATA[>")
                parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
        return "<xml>" + "".join(parts) + "</xml>"

    def text(self, openid: str, content: str, msg_id: str | None = None) -> str:
        return self.xml(openid, "text", Content=content, MsgId=msg_id or self.msg_id())

    def image(self, openid: str, media_id: str, url: str = "") -> str:
        url = url or f"http://mmbiz.qpic.cn/{media_id}"
        return self.xml(openid, "image", PicUrl=url, MediaId=media_id, MsgId=self.msg_id())

    def location(self, openid: str, lat: float, lon: float, label: str) -> str:
        return self.xml(
            openid,
            "location",
            Location_X=lat,
            Location_Y=lon,
            Scale=15,
            Label=label,
            MsgId=self.msg_id(),
        )

    def voice(self, openid: str, recognition: str | None = None) -> str:
        fields: dict[str, Any] = {"MediaId": "voice-media", "Format": "amr"}
        if recognition is not None:
            fields["Recognition"] = recognition
        return self.xml(openid, "voice", **fields, MsgId=self.msg_id())

    def event(self, openid: str, event: str, key: str = "", created: int | None = None) -> str:
        fields = {"Event": event, **({"EventKey": key} if key else {})}
        return self.xml(openid, "event", created, **fields)

    def query(self, body: str, *, timestamp: str | None = None, nonce: str = "") -> dict[str, str]:
        """The signed query string of a delivery of ``body`` (already sealed if safe)."""
        timestamp = timestamp or str(int(self.clock()))
        nonce = nonce or str(next(self._ids) % 10**9)
        query = {
            "signature": sign(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": "o-query",
        }
        if self.crypto is not None:
            ciphertext = xmltodict.parse(body)["xml"]["Encrypt"]
            query |= {
                "encrypt_type": "aes",
                "msg_signature": sign(self.token, timestamp, nonce, ciphertext),
            }
        return query

    def seal(self, xml: str) -> str:
        """The body WeChat POSTs: the XML itself, or its encrypted envelope in safe mode."""
        if self.crypto is None:
            return xml
        ciphertext = PrpCrypto(self.crypto.key).encrypt(xml, self.app_id).decode()
        return (
            f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
            f"<Encrypt><![CDATA[{ciphertext}]]></Encrypt></xml>"
        )

    async def deliver(
        self,
        xml: str,
        *,
        query: dict[str, str] | None = None,
        body: bytes | str | None = None,
    ) -> Delivery:
        """POST one delivery (signed unless ``query`` is given) and open the answer."""
        sealed = self.seal(xml) if body is None else body
        if query is None:
            query = self.query(sealed if isinstance(sealed, str) else sealed.decode())
        response = await self.client.post("/wechat", params=query, data=sealed)
        text = await response.text()
        reply = None
        if response.status == 200 and text not in ("success", ""):
            reply = self.open_reply(text)
        return Delivery(response.status, text, reply)

    def open_reply(self, text: str) -> dict[str, Any]:
        """A passive reply's fields; in safe mode its signature is checked first."""
        fields: dict[str, Any] = xmltodict.parse(text)["xml"]
        if self.crypto is None:
            return fields
        expected = sign(self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
        assert fields["MsgSignature"] == expected, "reply signature does not verify"
        plain = PrpCrypto(self.crypto.key).decrypt(fields["Encrypt"], self.app_id)
        opened: dict[str, Any] = xmltodict.parse(plain)["xml"]
        return opened


async def serve_app(app: web.Application) -> TestClient[Any, Any]:
    """A started TestClient over ``app`` (close it with ``await client.close()``)."""
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client
