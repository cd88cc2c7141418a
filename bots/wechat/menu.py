"""The Official Account's custom menu, and what each of its click keys means.

WeChat allows at most three top-level buttons (five under each), so the five entries
are laid out as 我要反映 | 我的进度 | 便民服务 ▸ (预约办事, 办事指南, 志愿服务): the two a
resident uses most are one tap away. A click does what typing the entry would: its
key names an intent, passed to the pipeline as the ``intent:<name>`` payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.catalog import Catalog
from handlers.pipeline import INTENT_PAYLOAD


@dataclass(frozen=True, slots=True)
class MenuItem:
    """One click entry: its key (also the intent it stands for) and its catalogue label."""

    key: str
    label: str

    @property
    def payload(self) -> str:
        """The payload the pipeline receives, as for the same quick-reply button."""
        return f"{INTENT_PAYLOAD}{self.key}"


REPORT = MenuItem("report", "wechat.menu_report")  # the router's menu intent for 我要反映
STATUS = MenuItem("check_status", "wechat.menu_status")
BOOK = MenuItem("book_appointment", "wechat.menu_book")
GUIDE = MenuItem("ask_service_info", "wechat.menu_guide")
VOLUNTEER = MenuItem("volunteer_browse", "wechat.menu_volunteer")

# Top-level entries: an item, or a group label with its items.
LAYOUT: tuple[MenuItem | tuple[str, tuple[MenuItem, ...]], ...] = (
    REPORT,
    STATUS,
    ("wechat.menu_services", (BOOK, GUIDE, VOLUNTEER)),
)
ITEMS = {item.key: item for item in (REPORT, STATUS, BOOK, GUIDE, VOLUNTEER)}


def menu_item(key: str) -> MenuItem | None:
    """The entry a CLICK event's EventKey names; None for keys of an older menu."""
    return ITEMS.get(key)


def menu_definition(catalog: Catalog) -> dict[str, Any]:
    """The menu/create request body."""

    def click(item: MenuItem) -> dict[str, str]:
        return {"type": "click", "name": catalog(item.label), "key": item.key}

    buttons: list[dict[str, Any]] = []
    for entry in LAYOUT:
        if isinstance(entry, MenuItem):
            buttons.append(click(entry))
        else:
            label, items = entry
            buttons.append({"name": catalog(label), "sub_button": [click(i) for i in items]})
    return {"button": buttons}
