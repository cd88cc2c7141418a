"""HMAC-SHA256 signatures of webhook bodies, both ways.

The signing string is ``{timestamp}.{raw body}``: the decimal Unix time in seconds,
a full stop, then the exact bytes of the HTTP body. The signature is sent as
``X-Yimen-Signature: sha256=<lowercase hex>`` beside ``X-Yimen-Timestamp: <timestamp>``.
A callback older or newer than the tolerance is stale; the same signature seen twice
is a replay (see integration.dispatch.sync).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from integration.dispatch.errors import CallbackRefused

TIMESTAMP_HEADER = "X-Yimen-Timestamp"
SIGNATURE_HEADER = "X-Yimen-Signature"
SCHEME = "sha256="


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value signing ``body`` at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SCHEME + digest.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers that sign ``body`` now."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float,
    now: float | None = None,
) -> str:
    """Check a signed body; its signature's hex digest (the replay key) when valid.

    Raises ``CallbackRefused`` for a missing, malformed, wrong or stale signature.
    """
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not given:
        raise CallbackRefused("unsigned callback")
    if not (timestamp.isascii() and given.isascii()):
        # Never a signature we made; compare_digest would fail on it with a TypeError.
        raise CallbackRefused("malformed signature headers", status=400)
    if not timestamp.isdigit() or len(timestamp) > 12 or not given.startswith(SCHEME):
        raise CallbackRefused("malformed signature headers")
    if not secrets.compare_digest(given, signature(secret, timestamp, body)):
        raise CallbackRefused("bad signature")
    moment = time.time() if now is None else now
    if abs(moment - int(timestamp)) > tolerance:
        raise CallbackRefused("stale callback")
    return given.removeprefix(SCHEME)
