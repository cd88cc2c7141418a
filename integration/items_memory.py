"""Service items in process memory: the help-at-home flow tested without a database."""

from __future__ import annotations

from dataclasses import replace

from integration.items import (
    UNDER_WAY,
    WITHDRAWABLE,
    ItemDraft,
    ItemNotFound,
    ItemNotPending,
    ItemView,
)
from integration.models import ItemStatus, utcnow


class MemoryItems:
    """Service items in process memory (flows tested without a database)."""

    def __init__(self) -> None:
        self.items: list[ItemView] = []

    async def requested_by(self, channel: str, user_id: str) -> list[ItemView]:
        """A resident's own requests still under way, newest first."""
        return [
            item
            for item in reversed(self.items)
            if (item.channel, item.user_id) == (channel, user_id) and item.status in UNDER_WAY
        ]

    async def get(self, item_id: int) -> ItemView:
        """One request (ItemNotFound when there is none)."""
        if not 0 < item_id <= len(self.items):
            raise ItemNotFound(f"no service item {item_id}")
        return self.items[item_id - 1]

    async def cancel(
        self,
        item_id: int,
        actor: str = "staff",
        *,
        owner: tuple[str, str] | None = None,
        tell: str = "",
    ) -> ItemView:
        """Cancel a request not yet begun (``tell``: nobody claims in memory); staff
        (no ``owner``) cancel the same ones here, as nothing begins in memory."""
        item = await self.get(item_id)
        mine = owner is None or (item.channel, item.user_id) == owner
        if not mine or item.status not in WITHDRAWABLE:
            raise ItemNotPending(f"service item {item_id} is {item.status.value}")
        self.items[item_id - 1] = replace(item, status=ItemStatus.cancelled)
        return self.items[item_id - 1]

    async def create(self, draft: ItemDraft) -> ItemView:
        """Record a request."""
        item = ItemView(
            id=len(self.items) + 1,
            kind=draft.kind,
            when=draft.when,
            address=draft.address,
            whom=draft.whom,
            phone=draft.phone,
            note=draft.note,
            status=ItemStatus.pending,
            channel=draft.channel,
            chat_id=draft.chat_id,
            created_at=utcnow(),
            user_id=draft.user_id,
        )
        self.items.append(item)
        return item
