"""The web chat's wire format: page frames in, bot messages and history out.

See bots/webchat.py for the protocol; this module only translates and checks.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bots.sanitize import RefusedInput, clean_payload, clean_text, location
from handlers.history import HistoryItem
from handlers.messages import Inbound, Media, Outbound

MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_MEDIA = 9  # photos in one message
HISTORY_TEXT = 2000  # characters of one history line (an over-long message is cut)


def outbound_json(message: Outbound) -> dict[str, Any]:
    """The wire form of a bot message."""
    return {
        "text": message.text,
        "buttons": [{"label": b.label, "payload": b.payload} for b in message.buttons],
        "media": [{"kind": m.kind, "url": m.url or m.ref} for m in message.media],
    }


def history_json(item: HistoryItem) -> dict[str, Any]:
    """The wire form of a history line."""
    sender = {"resident": "me", "bot": "bot", "push": "push"}[item.sender]
    text = item.text if len(item.text) <= HISTORY_TEXT else item.text[:HISTORY_TEXT] + "…"
    frame: dict[str, Any] = {
        "id": item.key,
        "from": sender,
        "text": text,
        "time": stamp(item.time),
    }
    if item.message_id:
        frame["message_id"] = item.message_id
    if item.media:
        frame["media"] = list(item.media)
    if item.location is not None:
        frame["location"] = item.location
    return frame


def stamp(moment: datetime | None = None) -> str:
    """A time on the wire: ISO 8601 in UTC, to the second."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


def parse_frame(channel: str, visitor: str, frame: Any) -> Inbound:
    """A page frame as an Inbound; ``RefusedInput`` for anything malformed.

    Text is cleaned (bots.sanitize.clean_text); a payload the bot cannot have sent
    is dropped (the text still counts); coordinates must be a place on Earth.
    """
    if not isinstance(frame, dict) or frame.get("type") != "message":
        raise RefusedInput("not a message frame")
    message_id, text = frame.get("id"), frame.get("text", "")
    if not isinstance(message_id, str) or not MESSAGE_ID.match(message_id):
        raise RefusedInput("message id must be 1-64 letters, digits, - or _")
    if not isinstance(text, str):
        raise RefusedInput("text must be a string")
    pin = frame.get("location")
    if pin is not None and not isinstance(pin, dict):
        raise RefusedInput("location must be an object")
    refs = frame.get("media") or []
    if not isinstance(refs, list) or len(refs) > MAX_MEDIA:
        raise RefusedInput(f"media must be a list of at most {MAX_MEDIA} references")
    if not all(isinstance(ref, str) and len(ref) <= 64 for ref in refs):
        raise RefusedInput("media references must be short strings")
    return Inbound(
        channel=channel,
        user_id=visitor,
        chat_id=visitor,
        message_id=message_id,
        text=clean_text(text),
        location=location(pin.get("latitude"), pin.get("longitude"), pin.get("label", ""))
        if pin is not None
        else None,
        media=tuple(Media("image", ref, ref) for ref in refs),
        payload=clean_payload(frame.get("payload")),
    )
