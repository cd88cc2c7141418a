"""Service items: help-at-home requests and staff posts that volunteers claim.

A resident's request (助餐, 陪同就医, 代购, 上门维修, 探访, 家政保洁, 助浴, 其他) is a row in
``pending``; ``yimen items approve ITEM`` opens it (with its time window, community
and skills wanted); staff post items open at once (``yimen items add``). Volunteers
claim, do and report them (integration.claims). Every status change is a history row
(``service_item_events``: who and when). Lists mask the contact phone
(integration.privacy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.models import (
    ClaimStatus,
    ItemClaim,
    ItemStatus,
    ServiceItem,
    ServiceItemEvent,
    ServiceItemSkill,
    utcnow,
)
from integration.notifications import queue_message


class ItemNotFound(IntegrationError):
    """No service item has this number."""


class ItemNotPending(IntegrationError):
    """The item was already approved."""


class ItemNotDone(IntegrationError):
    """Only an item its volunteers reported done can be confirmed."""


SKILLS = ("elder", "repair", "legal", "medical", "education", "culture", "other")
OTHER_KIND = "other"  # a request of no listed kind: its note holds the resident's words
# The skill a help-at-home request wants, by its kind.
KIND_SKILLS = {
    "meal": "elder",
    "medical": "medical",
    "shopping": "elder",
    "repair": "repair",
    "visit": "elder",
    "housework": "elder",
    "bath": "elder",
    OTHER_KIND: "other",
}
# A resident's request they may still withdraw themselves: no visit has begun.
WITHDRAWABLE = frozenset({ItemStatus.pending, ItemStatus.open, ItemStatus.claimed})
DEFAULT_HOURS = 2.0  # an item without an end counts this many hours
# A resident's request still under way: awaiting staff, volunteers, the visit, or the
# resident's confirmation that it was done.
UNDER_WAY = frozenset(
    {
        ItemStatus.pending,
        ItemStatus.open,
        ItemStatus.claimed,
        ItemStatus.in_progress,
        ItemStatus.done,
    }
)


@dataclass(frozen=True, slots=True)
class Window:
    """An item's time window, ``end`` optional."""

    start: datetime
    end: datetime | None = None

    @property
    def hours(self) -> float:
        """The window's length in hours (DEFAULT_HOURS without an end)."""
        if self.end is None or self.end <= self.start:
            return DEFAULT_HOURS
        return round((self.end - self.start) / timedelta(hours=1), 2)


@dataclass(frozen=True, slots=True)
class ItemPost:
    """A service item staff post for volunteers (no resident behind it)."""

    community: str
    title: str
    description: str
    skills: tuple[str, ...]
    window: Window
    address: str
    capacity: int = 1
    actor: str = "staff"


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
    user_id: str = ""
    community: str = ""
    title: str = ""
    description: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    capacity: int = 1
    taken: int = 0
    share_phone: bool = False
    done_at: datetime | None = None
    rating: int | None = None
    skills: tuple[str, ...] = ()

    @property
    def left(self) -> int:
        """Places still free."""
        return max(self.capacity - self.taken, 0)

    @property
    def has_resident(self) -> bool:
        """Whether a resident asked for it (not a staff post)."""
        return bool(self.user_id)

    @property
    def window(self) -> Window | None:
        """The time window, when one was set."""
        return Window(self.starts_at, self.ends_at) if self.starts_at else None


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
    ServiceItem.user_id,
    ServiceItem.community,
    ServiceItem.title,
    ServiceItem.description,
    ServiceItem.starts_at,
    ServiceItem.ends_at,
    ServiceItem.capacity,
    ServiceItem.taken,
    ServiceItem.share_phone,
    ServiceItem.done_at,
    ServiceItem.rating,
)


def _view(row: object, skills: Iterable[str] = ()) -> ItemView:
    values = dict(row._mapping)  # type: ignore[attr-defined]
    values["status"] = ItemStatus(values["status"])
    return ItemView(**values, skills=tuple(sorted(skills)))


async def read_items(
    connection: AsyncConnection,
    where: Sequence[ColumnElement[bool]],
    order: Sequence[Any] = (),
    limit: int = 100,
) -> list[ItemView]:
    """Items matching ``where`` (with their skills), in ``order``."""
    query = select(*_COLUMNS).where(*where).order_by(*order, ServiceItem.id.desc()).limit(limit)
    rows = (await connection.execute(query)).all()
    ids = [row.id for row in rows]
    skills: dict[int, list[str]] = {}
    if ids:
        found = await connection.execute(
            select(ServiceItemSkill.item_id, ServiceItemSkill.skill).where(
                ServiceItemSkill.item_id.in_(ids)
            )
        )
        for item_id, skill in found:
            skills.setdefault(item_id, []).append(skill)
    return [_view(row, skills.get(row.id, ())) for row in rows]


async def record_move(
    connection: AsyncConnection,
    item_id: int,
    before: ItemStatus | str,
    after: ItemStatus | str,
    actor: str,
    at: datetime,
) -> None:
    """One history row: the item went from ``before`` to ``after``, by ``actor``, at ``at``."""
    await connection.execute(
        insert(ServiceItemEvent).values(
            item_id=item_id, from_status=str(before), to_status=str(after), actor=actor, at=at
        )
    )


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
            await record_move(
                connection, int(item_id or 0), "", ItemStatus.pending, "resident", utcnow()
            )
        return await self.get(int(item_id or 0))

    async def post(self, post: ItemPost) -> ItemView:
        """Post an item for volunteers, open at once; returns it with its number."""
        now = utcnow()
        async with self._engine.begin() as connection:
            item_id = int(
                await connection.scalar(
                    insert(ServiceItem)
                    .values(
                        channel="",
                        user_id="",
                        chat_id="",
                        kind=OTHER_KIND,
                        when="",
                        address=post.address,
                        whom="",
                        phone="",
                        note="",
                        status=ItemStatus.open.value,
                        created_at=now,
                        approved_at=now,
                        approved_by=post.actor,
                        community=post.community,
                        title=post.title,
                        description=post.description,
                        starts_at=post.window.start,
                        ends_at=post.window.end,
                        capacity=post.capacity,
                        taken=0,
                        share_phone=False,
                    )
                    .returning(ServiceItem.id)
                )
                or 0
            )
            await _add_skills(connection, item_id, post.skills)
            await record_move(connection, item_id, "", ItemStatus.open, post.actor, now)
        return await self.get(item_id)

    async def get(self, item_id: int) -> ItemView:
        """One item; raises ``ItemNotFound``."""
        async with self._engine.connect() as connection:
            found = await read_items(connection, [ServiceItem.id == item_id])
        if not found:
            raise ItemNotFound(f"no service item {item_id}")
        return found[0]

    async def list_items(
        self, statuses: Sequence[ItemStatus] = (), limit: int = 100
    ) -> list[ItemView]:
        """The newest items first, optionally only those in ``statuses``."""
        where = [ServiceItem.status.in_([s.value for s in statuses])] if statuses else []
        async with self._engine.connect() as connection:
            return await read_items(connection, where, limit=limit)

    async def requested_by(self, channel: str, user_id: str) -> list[ItemView]:
        """A resident's own help-at-home requests still under way, newest first."""
        where = [
            ServiceItem.channel == channel,
            ServiceItem.user_id == user_id,
            ServiceItem.status.in_([s.value for s in UNDER_WAY]),
        ]
        async with self._engine.connect() as connection:
            return await read_items(connection, where, limit=20)

    async def open_items(self, now: datetime, limit: int = 200) -> list[ItemView]:
        """Items with places left that have not begun, soonest first."""
        where = [
            ServiceItem.status == ItemStatus.open.value,
            ServiceItem.taken < ServiceItem.capacity,
            (ServiceItem.starts_at.is_(None)) | (ServiceItem.starts_at > now),
        ]
        async with self._engine.connect() as connection:
            return await read_items(connection, where, order=[ServiceItem.starts_at], limit=limit)

    async def unconfirmed(
        self, now: datetime, after: timedelta = timedelta(hours=72)
    ) -> list[ItemView]:
        """Items reported done more than ``after`` ago that nobody confirmed (for staff)."""
        where = [ServiceItem.status == ItemStatus.done.value, ServiceItem.done_at <= now - after]
        async with self._engine.connect() as connection:
            return await read_items(connection, where, order=[ServiceItem.done_at])

    async def history(self, item_id: int) -> list[tuple[str, str, str, datetime]]:
        """The item's status changes, oldest first: (from, to, who, when)."""
        query = (
            select(
                ServiceItemEvent.from_status,
                ServiceItemEvent.to_status,
                ServiceItemEvent.actor,
                ServiceItemEvent.at,
            )
            .where(ServiceItemEvent.item_id == item_id)
            .order_by(ServiceItemEvent.id)
        )
        async with self._engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(query)]  # type: ignore[misc]

    async def approve(
        self,
        item_id: int,
        actor: str = "staff",
        tell: str = "",
        fields: Sequence[tuple[str, str]] = (),
        *,
        window: Window | None = None,
        community: str = "",
        capacity: int = 1,
    ) -> ItemView:
        """Approve a pending item (once): it opens, and volunteers may claim it.

        ``window`` is its time window (reminders and withdrawals go by it), ``community``
        where it is; the skill wanted follows from its kind. ``tell``, when given, is
        pushed to the resident's chat, queued in the same transaction as the approval
        (delivered by the push pump like any push), with ``fields`` for the WeChat
        template outside the 48-hour window.
        """
        now = utcnow()
        values: dict[str, object] = {
            "status": ItemStatus.open.value,
            "approved_at": now,
            "approved_by": actor,
            "capacity": capacity,
        }
        if window is not None:
            values.update(starts_at=window.start, ends_at=window.end)
        if community:
            values["community"] = community
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(
                    update(ServiceItem)
                    .where(
                        ServiceItem.id == item_id,
                        ServiceItem.status == ItemStatus.pending.value,
                    )
                    .values(**values)
                    .returning(ServiceItem.channel, ServiceItem.chat_id, ServiceItem.kind)
                )
            ).first()
            if row is not None:
                await _add_skills(connection, item_id, (KIND_SKILLS.get(row.kind, "other"),))
                await record_move(
                    connection, item_id, ItemStatus.pending, ItemStatus.open, actor, now
                )
            if row is not None and tell and row.chat_id:
                await queue_message(connection, row.channel, row.chat_id, tell, fields, now)
        if row is None:
            await self.get(item_id)  # raises ItemNotFound when there is none
            raise ItemNotPending(f"service item {item_id} is already approved")
        return await self.get(item_id)

    async def cancel(
        self,
        item_id: int,
        actor: str = "staff",
        *,
        owner: tuple[str, str] | None = None,
        tell: str = "",
    ) -> ItemView:
        """Cancel an item not yet done (staff), or, with ``owner`` (channel, user id), a
        resident's own request not yet begun; its claims stay as history. ``tell`` is
        queued to each volunteer holding it, in the cancellation's transaction."""
        now = utcnow()
        live = set(WITHDRAWABLE)
        where = [ServiceItem.id == item_id]
        if owner is None:
            live.add(ItemStatus.in_progress)
        else:
            where += [ServiceItem.channel == owner[0], ServiceItem.user_id == owner[1]]
        item = await self.get(item_id)
        async with self._engine.begin() as connection:
            changed = await connection.execute(
                update(ServiceItem)
                .where(*where, ServiceItem.status.in_([s.value for s in live]))
                .values(status=ItemStatus.cancelled.value)
                .returning(ServiceItem.status)
            )
            if changed.first() is None:
                raise ItemNotPending(f"service item {item_id} is {item.status.value}")
            await record_move(connection, item_id, item.status, ItemStatus.cancelled, actor, now)
            if tell:
                held = await connection.execute(
                    select(ItemClaim.channel, ItemClaim.chat_id).where(
                        ItemClaim.item_id == item_id, ItemClaim.status == ClaimStatus.active.value
                    )
                )
                for channel, chat_id in held.all():
                    await queue_message(connection, channel, chat_id, tell, now=now)
        return await self.get(item_id)


async def _add_skills(connection: AsyncConnection, item_id: int, skills: Iterable[str]) -> None:
    for skill in dict.fromkeys(skills):
        await connection.execute(insert(ServiceItemSkill).values(item_id=item_id, skill=skill))
