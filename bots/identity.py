"""Who a web-chat visitor is: a server-issued id in a signed, HttpOnly cookie.

The id is 128 random bits chosen by the server (never by the page), so knowing or
guessing someone's id is not enough: the cookie carries an HMAC of it under the
process's secret key, and only a cookie this server signed is accepted. The cookie is
HttpOnly (the page's scripts never see it), SameSite=Lax (another site's pages cannot
send it with a WebSocket or an upload) and Secure whenever the page was served over
HTTPS. The socket also checks the Origin header, so another site cannot open a chat
socket in a visitor's browser.

The secret key comes from ``YIMEN_SECRET_KEY``; when that is empty, a random key is
created once in the data directory (``secret.key``, mode 0600), so restarts and every
worker on the host agree on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

COOKIE = "yimen_visitor"
COOKIE_PATH = "/chat"
COOKIE_MAX_AGE = 365 * 86_400  # renewed at every visit
KEY_FILE = "secret.key"
_VISITOR = re.compile(r"^[0-9a-f]{32}$")
_SIGNED = re.compile(r"^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$")


def load_secret_key(configured: str, data_dir: Path) -> bytes:
    """The process's secret key: the configured one, else the data directory's own.

    The file is created with O_EXCL, so workers starting together agree on one key.
    """
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _read_key(path: Path) -> bytes:
    for _ in range(100):
        key = path.read_bytes().strip()
        if len(key) >= 32:
            return key
        time.sleep(0.02)  # another worker has just created it and is writing it
    raise ValueError(f"{path} holds no usable key; delete it to have a new one made")


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose only, so a signature made for one is worthless for another."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


class VisitorIdentity:
    """Issues and checks the signed visitor cookie."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "yimen-webchat-visitor-v1")

    def sign(self, visitor: str) -> str:
        """The cookie value for ``visitor``."""
        mac = hmac.new(self._key, visitor.encode(), hashlib.sha256).digest()
        return f"{visitor}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def verify(self, value: str | None) -> str | None:
        """The visitor id a cookie value names, or None unless this server signed it."""
        match = _SIGNED.match(value or "")
        if match is None:
            return None
        visitor = match.group(1)
        return visitor if secrets.compare_digest(self.sign(visitor), value or "") else None

    def visitor(self, request: web.Request) -> str | None:
        """The request's visitor, from its cookie; None without a valid one."""
        return self.verify(request.cookies.get(COOKIE))

    def ensure(self, request: web.Request, response: web.StreamResponse) -> str:
        """The request's visitor, issuing a new id when it has none; (re)sets the cookie."""
        visitor = self.visitor(request) or new_visitor()
        response.set_cookie(
            COOKIE,
            self.sign(visitor),
            max_age=COOKIE_MAX_AGE,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
            secure=is_https(request),
        )
        return visitor


def new_visitor() -> str:
    """A fresh visitor id: 128 random bits from the operating system, as hex."""
    return secrets.token_hex(16)


def is_visitor_id(value: str) -> bool:
    """Whether ``value`` has the shape of a server-issued visitor id."""
    return bool(_VISITOR.match(value))


def is_https(request: web.Request) -> bool:
    """Whether the browser reached us over HTTPS (directly, or through a trusted proxy)."""
    return request.secure


def same_origin(request: web.Request, allowed: Iterable[str] = ()) -> bool:
    """Whether a browser request comes from our own pages (or an allowed origin).

    Browsers always send Origin with a WebSocket handshake and a cross-site POST; a
    request without one is not from another site's page, so it passes (it still needs
    the signed cookie). The origin's host must be the Host the request was sent to.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


class ClientAddress:
    """The address a request came from, looking through the proxies we trust.

    Behind a reverse proxy every request comes from the proxy, so per-address limits
    would lump all residents together. When the peer is a trusted proxy, the address
    is the last one in X-Forwarded-For that is not itself a trusted proxy.
    """

    def __init__(self, trusted: Iterable[str] = ()) -> None:
        self._trusted = [ipaddress.ip_network(item.strip(), strict=False) for item in trusted]

    def of(self, request: web.Request) -> str:
        """The client's address as text ("unknown" when the transport has none)."""
        peer = request.remote or "unknown"
        if not self._is_trusted(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self._is_trusted(hop):
                return hop
        return peer

    def trusts(self, address: str | None) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return bool(self._trusted) and address is not None and self._is_trusted(address)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)
