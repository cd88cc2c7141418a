"""Service items: help-at-home requests that staff approve and volunteers will claim.

A resident's request (助餐, 陪同就医, 代购, 上门维修, 探访, 其他) is a row in
``pending``; ``yimen items approve ITEM`` moves it to ``approved`` (the volunteers
issue adds claiming). Lists mask the contact phone (integration.privacy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.models import (
    ItemStatus,
    ServiceItem,
    utcnow,
)
from integration.notifications import queue_message


class ItemNotFound(IntegrationError):
    """No service item has this number."""


class ItemNotPending(IntegrationError):
    """The item was already approved."""


@dataclass(frozen=True, slots=True)
class ItemDraft:
    """What the help-at-home flow knows when it asks for an item."""

    channel: str
    user_id: str
    chat_id: str
    kind: str
    when: str
    address: str
    whom: str
    phone: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class ItemView:
    """A read-only snapshot of a service item."""

    id: int
    kind: str
    when: str
    address: str
    whom: str
    phone: str
    note: str
    status: ItemStatus
    channel: str
    chat_id: str
    created_at: datetime
    approved_by: str = ""


_COLUMNS = (
    ServiceItem.id,
    ServiceItem.kind,
    ServiceItem.when,
    ServiceItem.address,
    ServiceItem.whom,
    ServiceItem.phone,
    ServiceItem.note,
    ServiceItem.status,
    ServiceItem.channel,
    ServiceItem.chat_id,
    ServiceItem.created_at,
    ServiceItem.approved_by,
)


def _view(row: object) -> ItemView:
    values = dict(row._mapping)  # type: ignore[attr-defined]
    values["status"] = ItemStatus(values["status"])
    return ItemView(**values)


class ItemBook:
    """Service items in the relational store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def create(self, draft: ItemDraft) -> ItemView:
        """Record a request in ``pending``; returns it with its number (id)."""
        async with self._engine.begin() as connection:
            item_id = await connection.scalar(
                insert(ServiceItem)
                .values(
                    channel=draft.channel,
                    user_id=draft.user_id,
                    chat_id=draft.chat_id,
                    kind=draft.kind,
                    when=draft.when,
                    address=draft.address,
                    whom=draft.whom,
                    phone=draft.phone,
                    note=draft.note,
                    status=ItemStatus.pending.value,
                    created_at=utcnow(),
                    approved_by="",
                )
                .returning(ServiceItem.id)
            )
        return await self.get(int(item_id or 0))

    async def get(self, item_id: int) -> ItemView:
        """One item; raises ``ItemNotFound``."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(select(*_COLUMNS).where(ServiceItem.id == item_id))
            ).first()
        if row is None:
            raise ItemNotFound(f"no service item {item_id}")
        return _view(row)

    async def list_items(
        self, statuses: Sequence[ItemStatus] = (), limit: int = 100
    ) -> list[ItemView]:
        """The newest items first, optionally only those in ``statuses``."""
        query = select(*_COLUMNS).order_by(ServiceItem.id.desc()).limit(limit)
        if statuses:
            query = query.where(ServiceItem.status.in_([s.value for s in statuses]))
        async with self._engine.connect() as connection:
            return [_view(row) for row in await connection.execute(query)]

    async def approve(
        self,
        item_id: int,
        actor: str = "staff",
        tell: str = "",
        fields: Sequence[tuple[str, str]] = (),
    ) -> ItemView:
        """Approve a pending item (once): volunteers may then claim it.

        ``tell``, when given, is pushed to the resident's chat, queued in the same
        transaction as the approval (delivered by the push pump like any push), with
        ``fields`` for the WeChat template outside the 48-hour window.
        """
        now = utcnow()
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    update(ServiceItem)
                    .where(
                        ServiceItem.id == item_id,
                        ServiceItem.status == ItemStatus.pending.value,
                    )
                    .values(status=ItemStatus.approved.value, approved_at=now, approved_by=actor)
                    .returning(ServiceItem.channel, ServiceItem.chat_id)
                )
            ).first()
            if row is not None and tell and row.chat_id:
                await queue_message(connection, row.channel, row.chat_id, tell, fields, now)
        if row is None:
            await self.get(item_id)  # raises ItemNotFound when there is none
            raise ItemNotPending(f"service item {item_id} is already approved")
        return await self.get(item_id)


class MemoryItems:
    """Service items in process memory (flows tested without a database)."""

    def __init__(self) -> None:
        self.items: list[ItemView] = []

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
        )
        self.items.append(item)
        return item
