"""HTTP hardening for every response and request of the `yimen run` server.

- Headers: ``nosniff``, no framing (``frame-ancestors 'none'``, ``X-Frame-Options``), no
  referrer, a strict default Content-Security-Policy for responses that set none of
  their own, HSTS over HTTPS, and a ``Server`` header without versions.
- Proxies: behind a reverse proxy listed in ``YIMEN_TRUSTED_PROXIES``, the client's
  address and scheme come from ``X-Forwarded-For`` and ``X-Forwarded-Proto``, so
  per-address limits see residents (not the proxy) and cookies are marked Secure.
  From anyone else those headers are ignored.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bots.identity import ClientAddress

SERVER = "Yimen"
DEFAULT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the security headers (an ``on_response_prepare`` signal handler)."""
    headers = response.headers
    headers["Server"] = SERVER  # aiohttp's own names its and Python's versions
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", DEFAULT_POLICY)
    if request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def forwarded_middleware(addresses: ClientAddress) -> Middleware:
    """A middleware giving each request its real client address and scheme."""

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not addresses.trusts(request.remote):
            return await handler(request)
        changes: dict[str, str] = {"remote": addresses.of(request)}
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        return await handler(request.clone(**changes))  # type: ignore[arg-type]

    return forwarded
