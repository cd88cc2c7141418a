"""WeChat's XML fields to Yimen's messages, and Yimen's replies to WeChat text.

A delivery asks one of four things of the channel: ``Forward`` it to the pipeline,
``Answer`` it at once with a catalogue text (a voice note WeChat could not transcribe,
a message type we cannot use), ``Record`` it without a reply (unsubscribe), or nothing
at all (``None``: menu links, location reports, delivery receipts).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from wechatpy.replies import TextReply

from bots.wechat.menu import menu_item
from handlers.catalog import Catalog
from handlers.messages import Inbound, Location, Media, Outbound
from handlers.pipeline import INTENT_PAYLOAD

CHANNEL = "wechat"
MAX_TEXT_BYTES = 2000  # WeChat cuts text messages at 2048 bytes; keep a margin
# Characters XML 1.0 forbids; a resident's own words are echoed in confirmations.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class Forward:
    """Hand the message to the pipeline; ``welcome`` puts the greeting for new followers first."""

    inbound: Inbound
    welcome: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer at once with the catalogue text ``key``; nothing is stored."""

    key: str


@dataclass(frozen=True, slots=True)
class Record:
    """Keep the event in the transcript; WeChat expects no reply."""

    inbound: Inbound


Action = Forward | Answer | Record | None


def field(fields: dict[str, Any], name: str) -> str:
    """A text field; empty when absent, empty or not text."""
    value = fields.get(name)
    return value.strip() if isinstance(value, str) else ""


def interpret(fields: dict[str, Any], catalog: Catalog, now: float | None = None) -> Action:
    """What a delivery (its fields, sender known) asks of the channel."""
    openid = field(fields, "FromUserName")
    kind = field(fields, "MsgType").lower()
    received = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    if kind == "event":
        return _event(fields, catalog, openid, received)
    message_id = field(fields, "MsgId")
    if not kind or not message_id.isdigit():
        return Answer("wechat.malformed")
    base = Inbound(CHANNEL, openid, openid, message_id, time=received)
    if kind == "text":
        return Forward(replace(base, text=field(fields, "Content")))
    if kind == "image":
        media_id = field(fields, "MediaId")
        if not media_id:
            return Answer("wechat.malformed")
        photo = Media("image", media_id, field(fields, "PicUrl"))
        return Forward(replace(base, media=(photo,)))
    if kind == "location":
        pin = _location(fields)
        return Forward(replace(base, location=pin)) if pin else Answer("wechat.malformed")
    if kind == "voice":
        words = field(fields, "Recognition")
        return Forward(replace(base, text=words)) if words else Answer("wechat.voice")
    return Answer("wechat.unsupported")


def _event(fields: dict[str, Any], catalog: Catalog, openid: str, received: datetime) -> Action:
    """Subscribe, unsubscribe and menu clicks; other events need nothing from us."""
    event = field(fields, "Event").lower()
    created = field(fields, "CreateTime")
    if not created.isdigit():
        return None
    # Events carry no MsgId; WeChat's retries repeat the sender, CreateTime and event.
    base = Inbound(
        CHANNEL, openid, openid, f"event:{openid}:{created}:{event}"[:128], time=received
    )
    if event == "subscribe":
        text = catalog("wechat.subscribed")
        return Forward(replace(base, text=text, payload=f"{INTENT_PAYLOAD}greet"), welcome=True)
    if event == "unsubscribe":
        return Record(replace(base, text=catalog("wechat.unsubscribed")))
    if event == "click":
        item = menu_item(field(fields, "EventKey"))
        if item is None:  # a key from an older menu: show what the bot can do
            text = catalog("wechat.menu_help")
            return Forward(replace(base, text=text, payload=f"{INTENT_PAYLOAD}help"))
        return Forward(replace(base, text=catalog(item.label), payload=item.payload))
    return None


def _location(fields: dict[str, Any]) -> Location | None:
    try:
        latitude = float(field(fields, "Location_X"))
        longitude = float(field(fields, "Location_Y"))
    except ValueError:
        return None
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        return None
    return Location(latitude, longitude, field(fields, "Label")[:200])


# -- replies ---------------------------------------------------------------------------


def render(message: Outbound, catalog: Catalog) -> str:
    """One bot message as WeChat text: buttons become numbered lines to type back."""
    lines = [message.text]
    if message.buttons:
        lines.append("")
        lines += [
            catalog("wechat.option", number=number, label=button.label)
            for number, button in enumerate(message.buttons, start=1)
        ]
    lines += [media.url or media.ref for media in message.media]
    return "\n".join(lines)


def chunks(messages: list[Outbound], catalog: Catalog, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """The texts to send, joined while they fit in one WeChat message, split when too long."""
    out: list[str] = []
    for message in messages:
        text = render(message, catalog)
        if out and _size(out[-1]) + 2 + _size(text) <= limit:
            out[-1] = f"{out[-1]}\n\n{text}"
        else:
            out += _split(text, limit)
    return out


def reply_xml(account: str, openid: str, text: str, now: float) -> str:
    """A passive text reply (before sealing)."""
    content = _NOT_XML.sub("", text).replace("]]>", "]]]]><![CDATA[>")
    reply = TextReply(source=account, target=openid, content=content, time=int(now))
    return str(reply.render())


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _split(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` UTF-8 bytes, at line ends if possible."""
    pieces: list[str] = []
    while _size(text) > limit:
        cut = len(text.encode("utf-8")[:limit].decode("utf-8", "ignore"))
        newline = text.rfind("\n", 0, cut)
        cut = newline + 1 if newline > 0 else cut
        pieces.append(text[:cut].rstrip("\n"))
        text = text[cut:]
    return [*pieces, text]
