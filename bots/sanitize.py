"""Checks every channel applies at its edge, before anything is stored.

Text arrives from JSON and XML parsers that accept what no database will store: lone
UTF-16 surrogates (``"\\ud800"``), NUL characters, other control characters. They are
cleaned here, once, so the transcript write never fails on them (and a platform never
redelivers such a message forever). Coordinates are checked for range, and JSON
bodies for a sane nesting depth.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from handlers.messages import Location

# C0 and C1 controls except tab and newline, and the bidirectional overrides that can
# make a message read differently in the staff console than it was written.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# What a quick-reply payload may hold: printable ASCII, no spaces, at most 64 characters
# (Telegram's callback-data limit). Payloads are ours; anything else is not one.
_PAYLOAD = re.compile(r"^[\x21-\x7e]{1,64}$")
MAX_LABEL = 200  # characters of a location's label
MAX_JSON_DEPTH = 32


class RefusedInput(ValueError):
    """Input a channel refuses at its edge; ``reason`` says why (for logs and tests)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_text(text: str) -> str:
    """``text`` safe to store: surrogate pairs joined, lone surrogates replaced (U+FFFD),
    control characters dropped, line ends made ``\\n``."""
    if not text.isascii():
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def clean_payload(value: Any) -> str:
    """A button payload as the bot sent it, or "" for anything that cannot be one."""
    return value if isinstance(value, str) and _PAYLOAD.match(value) else ""


def location(latitude: Any, longitude: Any, label: Any = "") -> Location:
    """A checked Location; ``RefusedInput`` for coordinates no place on Earth has."""
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError, OverflowError):
        raise RefusedInput("coordinates are not numbers") from None
    if isinstance(latitude, bool) or isinstance(longitude, bool):
        raise RefusedInput("coordinates are not numbers")
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise RefusedInput("coordinates are not finite")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise RefusedInput("coordinates out of range")
    text = clean_text(label if isinstance(label, str) else "").strip()[:MAX_LABEL]
    return Location(lat, lon, text)


def load_json(raw: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON no deeper than ``max_depth``; ``RefusedInput`` for anything else.

    NaN and Infinity (which Python's parser accepts by default) are refused too. The
    depth is checked before parsing, so a body nested 100,000 deep costs one scan.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if _depth(text) > max_depth:
            raise RefusedInput("JSON nested too deep")
        return json.loads(text, parse_constant=_refuse_constant)
    except RefusedInput:
        raise
    except (ValueError, RecursionError) as exc:
        raise RefusedInput(f"not JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":  # noqa: S105 (a bracket, not a password)
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":  # noqa: S105
            depth -= 1
    return deepest
