"""HTTP answers to exceptions, in one place (like aiogram's ``check_response``).

Platforms are liberal in what they send: errors come as an array of {code,
description} (GeoReport v2), a single object, ``{"errors": [...]}``, ``{"error": ...}``
or plain text. All of them end up as the same typed exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import ClientError, ClientSession

from integration.dispatch.errors import (
    DispatchAuthError,
    DispatchNotFound,
    DispatchProtocolError,
    DispatchRejected,
    DispatchRetryAfter,
    DispatchUnavailable,
)

DEFAULT_RETRY_AFTER = 30.0


def is_html(text: str) -> bool:
    """Whether an answer is an HTML page (an error page, or a server ignoring the suffix)."""
    head = text.lstrip()[:100].lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


def parse_json(text: str) -> Any:
    """JSON, or ``DispatchProtocolError`` naming what came instead."""
    if is_html(text):
        raise DispatchProtocolError("the platform answered an HTML page, not JSON")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DispatchProtocolError(f"malformed JSON from the platform: {exc}") from None


def error_pairs(document: Any) -> list[tuple[str, str]]:
    """(code, description) pairs from any of the error shapes platforms send."""
    if isinstance(document, Mapping):
        for key in ("errors", "error"):
            if key in document:
                return error_pairs(document[key])
        if "description" in document or "message" in document or "code" in document:
            description = document.get("description", document.get("message", ""))
            return [(str(document.get("code", "")), str(description))]
        return []
    if isinstance(document, list):
        return [pair for item in document for pair in error_pairs(item)]
    if document in (None, ""):
        return []
    return [("", str(document)[:300])]


def check_status(status: int, document: Any, headers: Mapping[str, str]) -> None:
    """Raise the exception an HTTP status stands for; return on 2xx."""
    if 200 <= status < 300:
        return
    errors = error_pairs(document)
    detail = f"HTTP {status}: " + ("; ".join(f"{c}: {d}" if c else d for c, d in errors) or "-")
    retry_after = _retry_after(headers)
    if status in (429, 503) and retry_after is not None:
        raise DispatchRetryAfter(detail, retry_after, status)
    if status == 429:
        raise DispatchUnavailable(detail, status)
    if status >= 500 or status == 408:
        raise DispatchUnavailable(detail, status)
    if status in (401, 403):
        raise DispatchAuthError(status, errors)
    if status == 404:
        raise DispatchNotFound(status, errors)
    raise DispatchRejected(status, errors)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds; an HTTP date counts as the default wait."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return DEFAULT_RETRY_AFTER


async def send(
    http: ClientSession, method: str, url: str, **options: Any
) -> tuple[int, str, Mapping[str, str]]:
    """One request: status, body text and headers; network trouble is ``DispatchUnavailable``.

    The session's timeout bounds every call, so a platform that takes 30 s costs
    one timeout, and the outbox retries later.
    """
    try:
        async with http.request(method, url, **options) as response:
            body = await response.read()
            return response.status, body.decode("utf-8", errors="replace"), response.headers
    except TimeoutError:
        raise DispatchUnavailable(f"{method} {url}: timed out") from None
    except ClientError as exc:
        raise DispatchUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from None
