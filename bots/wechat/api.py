"""The few WeChat API endpoints Yimen calls, spoken over the process's one aiohttp session.

wechatpy's client is synchronous (requests), so it would block the event loop; these
calls are small enough to make directly. Every call carries the shared access_token
(bots.wechat.tokens) and is retried once with a refreshed token when WeChat says the
token is invalid or expired.

Pacing: WeChat publishes daily call quotas per API (errcode 45009 once one is used up)
rather than a per-second rate, so messages are not paced by default. ``rate`` (from
YIMEN_WECHAT_RATE) spreads customer-service and template messages to at most that
many per second, all residents together, with the same limiter Telegram's sends use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from bots.telegram.limiter import SendLimiter, SendLimits
from bots.wechat.errors import TOKEN_ERRORS, WeChatAPIError, WeChatUnavailable
from bots.wechat.tokens import AccessTokens, TokenCache

log = logging.getLogger(__name__)


def check_response(status: int, body: Any) -> dict[str, Any]:
    """The JSON body of a successful call; raises the error the answer stands for."""
    if status >= 500 or status == 429:
        raise WeChatUnavailable(f"HTTP {status}")
    if not isinstance(body, dict):
        raise WeChatUnavailable(f"HTTP {status} without a JSON object")
    errcode = body.get("errcode", 0)
    if errcode:
        try:
            code = int(errcode)
        except (TypeError, ValueError):
            code = -2  # not WeChat's shape; treated as a permanent error
        raise WeChatAPIError(code, str(body.get("errmsg", "")))
    if status != 200:
        raise WeChatUnavailable(f"HTTP {status}")
    return body


class WeChatAPI:
    """token, message/custom/send, message/template/send and menu/create."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        app_id: str,
        app_secret: str,
        cache: TokenCache,
        rate: float = 0.0,
    ) -> None:
        self._session = session
        self._pacer = SendLimiter(SendLimits(rate=rate, chat_interval=0.0)) if rate else None
        self._base = base if base.endswith("/") else f"{base}/"
        self._app_id = app_id
        self._app_secret = app_secret
        self.tokens = AccessTokens(self._fetch_token, cache)

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service text message (within the 48-hour window)."""
        await self._paced(openid)
        await self.call(
            "message/custom/send", {"touser": openid, "msgtype": "text", "text": {"content": text}}
        )

    async def send_template(self, openid: str, template_id: str, data: Mapping[str, str]) -> None:
        """A template message, allowed outside the window."""
        await self._paced(openid)
        body = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        await self.call("message/template/send", body)

    async def _paced(self, openid: str) -> None:
        """Wait for a send slot when messages are paced."""
        if self._pacer is not None:
            await self._pacer.acquire(openid)

    async def create_menu(self, menu: Mapping[str, Any]) -> None:
        """Install the custom menu."""
        await self.call("menu/create", menu)

    async def call(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``payload`` to ``path`` with the access_token; refreshes it once if stale."""
        token = await self.tokens.get()
        try:
            return await self._post(path, token, payload)
        except WeChatAPIError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            log.info("WeChat refused the access_token (%s); refreshing", exc.errcode)
        token = await self.tokens.refresh(token)
        return await self._post(path, token, payload)

    async def _post(self, path: str, token: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        # Unescaped UTF-8: some WeChat endpoints show \u escapes (\u4e00 for 一) literally.
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            async with self._session.post(
                self._base + path, params={"access_token": token}, data=data, headers=headers
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WeChatUnavailable(f"{path}: {type(exc).__name__}") from None
        return check_response(status, body)

    async def _fetch_token(self) -> tuple[str, float]:
        params = {
            "grant_type": "client_credential",
            "appid": self._app_id,
            "secret": self._app_secret,
        }
        try:
            async with self._session.get(self._base + "token", params=params) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WeChatUnavailable(f"token: {type(exc).__name__}") from None
        answer = check_response(status, body)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatUnavailable("token: no access_token in the answer")
        try:
            expires_in = float(answer.get("expires_in") or 7200)
        except (TypeError, ValueError):
            expires_in = 7200.0
        log.info("fetched a new WeChat access_token, valid %.0f s", expires_in)
        return token, expires_in
