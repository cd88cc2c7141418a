"""A staff member links their own chat account: they send 绑定 and the console's code.

The console (or `yimen handoff link`) shows a one-time code; sent from a chat, it
links that chat to the staff account, where service-level alarms are pushed while the
member is on duty (integration.handoff). A grid worker's account (integration.grid) is
linked the same way, and told what the linked chat now does. A wrong or expired code
changes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from handlers.catalog import Catalog
from handlers.flows.base import OneMessageFlow, Turn
from handlers.messages import Outbound
from handlers.state import ConversationState
from handlers.words import words

if TYPE_CHECKING:
    from handlers.flows.grid_close import GridDesk

LINK = words("staff_link", r"^(绑定|绑定工作人员|staff)\d{6}$")
_CODE = re.compile(r"\d{6}")


class StaffLinks(Protocol):
    """Where one-time codes are redeemed (integration.handoff.HandoffBook)."""

    async def redeem(
        self, code: str, channel: str, chat_id: str, at: datetime | None = None
    ) -> str:
        """Link the chat to the code's staff member; their name, or "" when invalid."""
        ...


class StaffLinkFlow(OneMessageFlow):
    """Redeems a staff member's one-time code (started by the ``LINK`` trigger)."""

    name = "staff_link"

    def __init__(self, links: StaffLinks, catalog: Catalog, grid: GridDesk | None = None) -> None:
        self._links = links
        self._t = catalog
        self._grid = grid

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Link the chat, or say the code is no good."""
        found = _CODE.search(turn.text)
        inbound = turn.inbound
        staff = (
            await self._links.redeem(found.group(), inbound.channel, inbound.chat_id, inbound.time)
            if found
            else ""
        )
        if not staff:
            return [Outbound(self._t("handoff.link_invalid"))]
        worker = await self._grid.worker(inbound.channel, inbound.chat_id) if self._grid else None
        if worker is not None:
            return [Outbound(self._t("grid.linked", staff=staff, grid=worker.grid))]
        return [Outbound(self._t("handoff.linked", staff=staff))]
