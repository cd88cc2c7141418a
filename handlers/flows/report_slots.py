"""The complaint flow's slots: what a message adds to a report being prepared.

Slots (JSON-safe, in the conversation state): ``category``, ``description``,
``address``, ``latitude``/``longitude``, ``pinned`` (the coordinates come from a
location pin, not from the gazetteer), ``address_from_pin`` (no address was typed,
so the pin's label stands in), ``photos`` (kind, ref, url), and bookkeeping
(``checked``, ``duplicate``, ``editing``).

A pin adds coordinates to a typed address and never replaces it; a typed address
replaces an address that only came from a pin's label, and keeps the pin's
coordinates (they are more precise than a community's).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from handlers.messages import Inbound
from nlu.gazetteer import Community
from nlu.types import Entity, Parse

MAX_PHOTOS = 5
MAX_DESCRIPTION = 1000

Slots = dict[str, Any]


class Places(Protocol):
    """Finds the community an address names (the gazetteer), for its coordinates."""

    def locate(self, text: str) -> Community | None:
        """The community named in ``text``, if any."""
        ...


def take_media(inbound: Inbound, slots: Slots) -> bool:
    """Keep the message's photos; False when there were none or the limit is reached."""
    photos: list[dict[str, str]] = slots.setdefault("photos", [])
    images = [m for m in inbound.media if m.kind == "image"]
    room = MAX_PHOTOS - len(photos)
    if not images or room <= 0:
        return False
    photos += [{"kind": m.kind, "ref": m.ref, "url": m.url} for m in images[:room]]
    return True


def has_images(inbound: Inbound) -> bool:
    """Whether the message carries a photo."""
    return any(m.kind == "image" for m in inbound.media)


def take_pin(inbound: Inbound, slots: Slots) -> bool:
    """Keep a location pin's coordinates; its label is the address only if none was typed."""
    location = inbound.location
    if location is None:
        return False
    slots["latitude"], slots["longitude"], slots["pinned"] = (
        location.latitude,
        location.longitude,
        True,
    )
    if not slots.get("address") or slots.get("address_from_pin"):
        label = location.label or f"{location.latitude:.5f},{location.longitude:.5f}"
        slots["address"], slots["address_from_pin"] = label, True
    return True


# A 路/街 that is the start of a word, not the end of a place: 路灯, 路面, 街灯.
_NOT_A_PLACE_END = re.compile(r"[路街](?=[灯面牌障沿])")
# Words no place name holds: 不知道叫啥路 is not an address.
_NOT_A_PLACE = re.compile("不知道|不清楚|不记得|啥|什么|哪")


def typed_address(parse: Parse) -> Entity | None:
    """The message's address entity, unless it is no place at all.

    The extractor's spans are taken as they are, except a word cut in half (楼下路|灯)
    and a "place" that says it is not known (不知道叫啥路).
    """
    places = [e for e in parse.entities if e.entity == "address"]
    entity = places[0] if places else None
    if len(places) > 1 and "不是" in parse.text[: places[-1].start]:
        entity = places[-1]  # 不是3号楼，是金辉小区南门: the place meant comes last
    if entity is None or _NOT_A_PLACE_END.match(parse.text, entity.end - 1):
        return None
    if _NOT_A_PLACE.search(entity.value):
        return None
    return entity


# A part of a place: a building, a gate, a number on a road (5号楼, 6栋, 南门, 90号).
_PART = r"(?:\d+|[一二三四五六七八九十]+)(?:号楼|栋|幢|号)|[东南西北]{1,2}(?:大门|侧门|门)"
_PART_ALONE = re.compile(
    rf"(?:{_PART})(?:[和与跟、](?:{_PART}))*(?:口|门口|那边|这边|旁边|楼下|中间|之间)?"
)
# The part said as the correction at the end of a message (地址说错了，是南门; 改成6栋吧);
# the model does not take a part alone for a place.
_PART_SAID = re.compile(
    rf"(?:^|是|在|改成|改为|换成)\s*({_PART_ALONE.pattern})[吧呀啊了。.!！\s]*$"
)
_A_PART_IN = re.compile(rf"\d|{_PART}|门|单元")


def part_only(slots: Slots, places: Places | None) -> bool:
    """Whether the typed address is only a part of a place (3号楼, 南门, 5栋): which
    estate or road it is in is missing, and nobody could be sent to it."""
    address = str(slots.get("address") or "")
    if slots.get("pinned") or not address:
        return False
    if places is not None and places.locate(address) is not None:
        return False
    return bool(_PART_ALONE.fullmatch(address))


# Where a place's own part begins: after its estate (金辉小区|3号楼门口), or after its road
# for a house number (幸福路|88号).
_ESTATE = re.compile(r"^.*?(?:小区|花园|家园|新村|苑|村|社区|大院|公寓|大厦|广场)")
_ROAD = re.compile(r"^.*?(?:路|街|大道|巷)(?=\d)")


# A unit or a room said alone (4单元401, 402室) corrects the same part of a home address.
_UNIT = re.compile(r"\d+单元")
_UNIT_ROOM = re.compile(r"\d+单元(?:\d{3,4}(?:室|号)?)?")
_ROOM = re.compile(r"\d{3,4}(?:室|号)?")
# A unit, a room or a part said as the correction at the end of a message (门牌号不对，是402).
_HOME_PART_SAID = re.compile(
    r"(?:^|是|在|改成|改为|换成)\s*(\d+单元(?:\d{3,4}(?:室|号)?)?|\d{3,4}(?:室|号)?)[吧呀啊了。.!！\s]*$"
)
_BUILDING_AT_END = re.compile(r"(?:号楼|栋|幢)$")
_UNIT_AT_END = re.compile(r"(?:单元|号楼|栋|幢)$")
_ROOM_AT_END = re.compile(r"(?:(?<=单元)|(?<=号楼)|(?<=[栋幢]))\d{3,4}(?:室|号)?$")


def part_said(text: str) -> str | None:
    """A part of a place said alone as a correction at the end of ``text`` (是南门, 改成6栋,
    是4单元401, 是402), which the model does not take for a place; else None."""
    said = _PART_SAID.search(text) or _HOME_PART_SAID.search(text)
    return said.group(1) if said else None


def within(old: str, new: str) -> str:
    """``new`` as a correction of ``old``: a part alone (5号楼, 南门) keeps ``old``'s estate
    (金辉小区3号楼门口 → 金辉小区5号楼), a house number its road (幸福路88号 → 幸福路90号),
    a unit or a room its building (金辉小区2号楼3单元401 → 金辉小区2号楼4单元401, → …402);
    the estate or road of a part said alone before goes in front of it (3号楼, then
    金辉小区 → 金辉小区3号楼); anything else replaces it."""
    if old and _UNIT_ROOM.fullmatch(new):
        if unit := _UNIT.search(old):
            return old[: unit.start()] + new
        if _BUILDING_AT_END.search(old):  # 金辉小区5号楼, then 3单元401
            return old + new
    if old and _ROOM.fullmatch(new):
        if room := _ROOM_AT_END.search(old):
            return old[: room.start()] + new
        if _UNIT_AT_END.search(old):
            return old + new
    if old and _PART_ALONE.fullmatch(old) and not _A_PART_IN.search(new):
        return new + old
    if not old or not _PART_ALONE.fullmatch(new):
        return new
    estate = _ESTATE.match(old)
    if estate is not None:
        return estate.group() + new
    road = _ROAD.match(old)
    if road is not None and new[0].isdigit() and new.endswith("号"):
        return road.group() + new
    return new


# A spot inside a place, said after it as the whole rest of a reply (金辉小区|中心花园,
# 碧水苑|的健身器材那): the span rules end the place at the estate, but where in it is
# what the department needs to find the problem.
_SPOT = re.compile(
    r"(的)?([\u4e00-\u9fa5]{0,4}(?:花园|广场|空地|停车场|车场|健身器材|器材|草坪|绿地|凉亭|"
    r"亭子|车棚|垃圾站|垃圾房|球场|活动室|活动中心|游乐场|滑梯|花坛|水池|喷泉|地下室|车库|地库|"
    r"楼道|楼顶|天台|走廊|岗亭|充电桩|快递柜|菜地|健身区|儿童区|幼儿园|超市|菜市场)"
    r"(?:入口|出口|门口)?)"
    r"(?:那|那里|那儿|那边|这边|这里|旁边|附近)?[吧呀啊了。.!！\s]*$"
)


def with_spot(parse: Parse, entity: Entity) -> str:
    """The entity's place with the spot inside it that ends the message, if any."""
    spot = _SPOT.match(parse.text, entity.end)
    return entity.value + spot.group(2) if spot else entity.value


def take_address(parse: Parse, slots: Slots, places: Places | None) -> bool:
    """Keep a typed address; without a pin, its community's coordinates stand in.

    Once a place was typed, a part of a place alone (地址不对，是5号楼; 是南门) corrects
    it within the same estate or road (``within``); a spot inside the place that ends
    the message is kept with it (``with_spot``).
    """
    entity = typed_address(parse)
    old = "" if slots.get("address_from_pin") else str(slots.get("address") or "")
    said = part_said(parse.text) if old else None
    if entity is not None:
        typed = with_spot(parse, entity)
    elif said is not None:
        typed = said
    else:
        return False
    value = within(old, typed)
    slots["address"], slots["address_from_pin"] = value, False
    if not slots.get("pinned"):
        community = places.locate(value) if places else None
        slots["latitude"] = community.latitude if community else None
        slots["longitude"] = community.longitude if community else None
    return True


def address_only(parse: Parse) -> bool:
    """Whether the message is little more than an address (金辉小区3号楼)."""
    entity = typed_address(parse)
    if entity is None:
        return False
    rest = parse.text[: entity.start] + parse.text[entity.end :]
    return len(re.sub(r"[\W_]|就|是|在|那|个|吧|了|的", "", rest)) <= 3


# Only a road or a street: the place a pin would make findable.
_ROAD_ONLY = re.compile(r"(路|街|大街|大道|巷|胡同)(上|边|旁边|附近|那边|这边|沿线)?$")
_PRECISE = re.compile(
    r"\d|号|交叉口|路口|与|和|门|楼|栋|单元|小区|广场|公园|市场|学校|医院|花园|苑|村"
)


def road_only(slots: Slots, places: Places | None) -> bool:
    """Whether the typed address names only a road or a street, and no pin was sent."""
    address = str(slots.get("address") or "")
    if slots.get("pinned") or not address:
        return False
    if places is not None and places.locate(address) is not None:
        return False
    return not _PRECISE.search(address) and bool(_ROAD_ONLY.search(address))


# A question (电梯那个呢, 什么时候来修) asks something; it adds nothing to a description.
_QUESTION = re.compile(r"[?？]|[吗呢么嘛][\s。!！~]*$|怎么样|咋样|如何|进度|什么时候|啥时候|多久")


def add_detail(slots: Slots, text: str) -> bool:
    """Add a further description to the report; False when it says nothing new."""
    description = str(slots.get("description") or "")
    if not text or text in description or _QUESTION.search(text):
        return False
    joined = f"{description}；{text}" if description else text
    slots["description"] = joined[:MAX_DESCRIPTION]
    return True
