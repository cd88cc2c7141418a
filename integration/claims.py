"""Volunteers' claims on service items: atomic places, withdrawals, completion, confirmation.

A claim takes a place with one conditional UPDATE (``taken < capacity`` and the item
open and not begun), so twenty volunteers claiming an item of two places at once get
exactly two; the claim row, the history row and the push telling the resident who is
coming are written in the same transaction. Every refusal changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.items import ItemNotDone, ItemNotFound, ItemView, read_items, record_move
from integration.models import ClaimStatus, ItemClaim, ItemStatus, ServiceItem
from integration.notifications import queue_message

REMIND_BEFORE = timedelta(hours=2)


class ClaimRefused(IntegrationError):
    """A claim, withdrawal or report that cannot be made: ``reason`` says why.

    Reasons: full, closed (cancelled, expired, done …), begun, already (the volunteer
    holds it), not_held (the volunteer does not hold it), own (a volunteer confirming
    their own item), not_resident (someone else's item).
    """

    def __init__(self, reason: str, item: ItemView) -> None:
        super().__init__(f"item {item.id}: {reason}")
        self.reason = reason
        self.item = item


@dataclass(frozen=True, slots=True)
class Held:
    """An item a volunteer holds a place on, and the claim's state."""

    item: ItemView
    status: ClaimStatus


class ClaimBook:
    """Claims in the relational store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def _item(self, connection: AsyncConnection, item_id: int) -> ItemView:
        found = await read_items(connection, [ServiceItem.id == item_id])
        if not found:
            raise ItemNotFound(f"no service item {item_id}")
        return found[0]

    async def claim(
        self,
        item_id: int,
        volunteer_id: int,
        channel: str,
        chat_id: str,
        now: datetime,
        tell: str = "",
        remind_before: timedelta = REMIND_BEFORE,
    ) -> ItemView:
        """Take a place; ``tell`` (who is coming) is queued to the resident, if any."""
        try:
            async with self._engine.begin() as connection:
                item = await self._item(connection, item_id)
                held = await connection.scalar(
                    select(ItemClaim.status).where(
                        ItemClaim.item_id == item_id, ItemClaim.volunteer_id == volunteer_id
                    )
                )
                if held in (ClaimStatus.active.value, ClaimStatus.done.value):
                    raise ClaimRefused("already", item)
                taken = (
                    await connection.execute(
                        update(ServiceItem)
                        .where(
                            ServiceItem.id == item_id,
                            ServiceItem.status == ItemStatus.open.value,
                            ServiceItem.taken < ServiceItem.capacity,
                            (ServiceItem.starts_at.is_(None)) | (ServiceItem.starts_at > now),
                        )
                        .values(
                            taken=ServiceItem.taken + 1,
                            status=case(
                                (
                                    ServiceItem.taken + 1 >= ServiceItem.capacity,
                                    ItemStatus.claimed.value,
                                ),
                                else_=ItemStatus.open.value,
                            ),
                        )
                        .returning(ServiceItem.status)
                    )
                ).first()
                if taken is None:
                    item = await self._item(connection, item_id)  # as the race left it
                    raise ClaimRefused(_why_not(item, now), item)
                remind_at = item.starts_at - remind_before if item.starts_at else None
                values = {
                    "channel": channel,
                    "chat_id": chat_id,
                    "status": ClaimStatus.active.value,
                    "claimed_at": now,
                    "done_at": None,
                    "remind_at": remind_at,
                    "remind_lease": None,
                    "reminded_at": None,
                }
                if held is None:
                    await connection.execute(
                        insert(ItemClaim).values(
                            item_id=item_id,
                            volunteer_id=volunteer_id,
                            hours=0.0,
                            note="",
                            photo="",
                            **values,
                        )
                    )
                else:  # claimed again after a withdrawal
                    await connection.execute(
                        update(ItemClaim)
                        .where(ItemClaim.item_id == item_id, ItemClaim.volunteer_id == volunteer_id)
                        .values(**values)
                    )
                await _moved(connection, item, taken.status, volunteer_id, now, tell)
                return await self._item(connection, item_id)
        except IntegrityError:  # the same volunteer claiming twice at once
            async with self._engine.connect() as connection:
                raise ClaimRefused("already", await self._item(connection, item_id)) from None

    async def withdraw(
        self, item_id: int, volunteer_id: int, now: datetime, tell: str = ""
    ) -> ItemView:
        """Give a place back before the item begins; the item opens again."""
        async with self._engine.begin() as connection:
            item = await self._item(connection, item_id)
            if item.starts_at is not None and item.starts_at <= now:
                raise ClaimRefused("begun", item)
            dropped = await connection.execute(
                update(ItemClaim)
                .where(
                    ItemClaim.item_id == item_id,
                    ItemClaim.volunteer_id == volunteer_id,
                    ItemClaim.status == ClaimStatus.active.value,
                )
                .values(status=ClaimStatus.withdrawn.value, remind_lease=None)
            )
            if dropped.rowcount != 1:
                raise ClaimRefused("not_held", item)
            await connection.execute(
                update(ServiceItem)
                .where(ServiceItem.id == item_id)
                .values(taken=ServiceItem.taken - 1, status=ItemStatus.open.value)
            )
            await _moved(connection, item, ItemStatus.open, volunteer_id, now, tell)
            return await self._item(connection, item_id)

    async def held(
        self, volunteer_id: int, statuses: tuple[ClaimStatus, ...] = (ClaimStatus.active,)
    ) -> list[Held]:
        """The items the volunteer holds (by claim status), soonest first."""
        async with self._engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(ItemClaim.item_id, ItemClaim.status).where(
                        ItemClaim.volunteer_id == volunteer_id,
                        ItemClaim.status.in_([s.value for s in statuses]),
                    )
                )
            ).all()
            status = {row.item_id: ClaimStatus(row.status) for row in rows}
            items = (
                await read_items(
                    connection,
                    [ServiceItem.id.in_(list(status))],
                    order=[ServiceItem.starts_at],
                )
                if status
                else []
            )
        return [Held(item, status[item.id]) for item in items]

    async def complete(
        self,
        item_id: int,
        volunteer_id: int,
        now: datetime,
        note: str = "",
        photo: str = "",
        tell: str = "",
    ) -> ItemView:
        """Report the volunteer's part done; the item is done when every holder reported.

        ``tell`` (asking the resident to confirm and rate) is queued when it is done.
        """
        async with self._engine.begin() as connection:
            item = await self._item(connection, item_id)
            window = item.window
            hours = window.hours if window else 2.0
            done = await connection.execute(
                update(ItemClaim)
                .where(
                    ItemClaim.item_id == item_id,
                    ItemClaim.volunteer_id == volunteer_id,
                    ItemClaim.status == ClaimStatus.active.value,
                )
                .values(
                    status=ClaimStatus.done.value,
                    done_at=now,
                    note=note[:500],
                    photo=photo[:500],
                    hours=hours,
                )
            )
            if done.rowcount != 1:
                raise ClaimRefused("not_held", item)
            active = await connection.scalar(
                select(func.count())
                .select_from(ItemClaim)
                .where(ItemClaim.item_id == item_id, ItemClaim.status == ClaimStatus.active.value)
            )
            if not active and item.status in (
                ItemStatus.open,
                ItemStatus.claimed,
                ItemStatus.in_progress,
            ):
                await connection.execute(
                    update(ServiceItem)
                    .where(ServiceItem.id == item_id)
                    .values(status=ItemStatus.done.value, done_at=now)
                )
                await _moved(connection, item, ItemStatus.done, volunteer_id, now, tell)
            return await self._item(connection, item_id)

    async def share_phone(self, channel: str, user_id: str, text: str, now: datetime) -> int:
        """The resident agrees their phone goes to the volunteers of their claimed items.

        ``text`` (with ``{number}`` and ``{phone}``) is queued to each volunteer holding
        one, in the same transaction. How many items were shared (0: nothing to share).
        """
        held = (ItemStatus.open, ItemStatus.claimed, ItemStatus.in_progress)
        async with self._engine.begin() as connection:
            items = await read_items(
                connection,
                [
                    ServiceItem.channel == channel,
                    ServiceItem.user_id == user_id,
                    ServiceItem.status.in_([s.value for s in held]),
                    ServiceItem.taken > 0,
                    ServiceItem.share_phone.is_(False),
                    ServiceItem.phone != "",
                ],
            )
            for item in items:
                await connection.execute(
                    update(ServiceItem).where(ServiceItem.id == item.id).values(share_phone=True)
                )
                chats = await connection.execute(
                    select(ItemClaim.channel, ItemClaim.chat_id).where(
                        ItemClaim.item_id == item.id, ItemClaim.status == ClaimStatus.active.value
                    )
                )
                message = text.format(number=item.id, phone=item.phone)
                for claim_channel, chat_id in chats.all():
                    await queue_message(connection, claim_channel, chat_id, message, now=now)
        return len(items)

    async def awaiting(self, channel: str, user_id: str) -> list[ItemView]:
        """The resident's items done and waiting for their confirmation, newest first."""
        async with self._engine.connect() as connection:
            return await read_items(
                connection,
                [
                    ServiceItem.channel == channel,
                    ServiceItem.user_id == user_id,
                    ServiceItem.status == ItemStatus.done.value,
                ],
            )

    async def confirm(
        self,
        item_id: int,
        actor: str,
        now: datetime,
        rating: int | None = None,
        volunteer_id: int | None = None,
        resident: tuple[str, str] | None = None,
    ) -> ItemView:
        """Confirm a done item (resident or staff), with an optional 1-5 rating.

        ``volunteer_id``: the confirming account's volunteer, refused when they hold the
        item (``own``); ``resident``: (channel, user_id) who must be the one it serves.
        """
        async with self._engine.begin() as connection:
            item = await self._item(connection, item_id)
            if resident is not None and (item.channel, item.user_id) != resident:
                raise ClaimRefused("not_resident", item)
            if volunteer_id is not None:
                own = await connection.scalar(
                    select(func.count())
                    .select_from(ItemClaim)
                    .where(
                        ItemClaim.item_id == item_id,
                        ItemClaim.volunteer_id == volunteer_id,
                        ItemClaim.status != ClaimStatus.withdrawn.value,
                    )
                )
                if own:
                    raise ClaimRefused("own", item)
            confirmed = await connection.execute(
                update(ServiceItem)
                .where(ServiceItem.id == item_id, ServiceItem.status == ItemStatus.done.value)
                .values(status=ItemStatus.confirmed.value, rating=rating)
            )
            if confirmed.rowcount != 1:
                raise ItemNotDone(f"service item {item_id} is {item.status.value}, not done")
            await record_move(
                connection, item_id, ItemStatus.done, ItemStatus.confirmed, actor, now
            )
            return await self._item(connection, item_id)

    async def advance(self, now: datetime) -> int:
        """Items whose window began: held ones go in_progress, unclaimed past ones expire."""
        moved = 0
        async with self._engine.begin() as connection:
            begun = await read_items(
                connection,
                [
                    ServiceItem.status.in_([ItemStatus.open.value, ItemStatus.claimed.value]),
                    ServiceItem.starts_at <= now,
                ],
                limit=500,
            )
            for item in begun:
                over = (item.ends_at or item.starts_at or now) <= now
                if item.taken:
                    after = ItemStatus.in_progress
                elif over:
                    after = ItemStatus.expired
                else:
                    continue
                changed = await connection.execute(
                    update(ServiceItem)
                    .where(ServiceItem.id == item.id, ServiceItem.status == item.status.value)
                    .values(status=after.value)
                )
                if changed.rowcount == 1:
                    await record_move(connection, item.id, item.status, after, "system", now)
                    moved += 1
        return moved


async def _moved(
    connection: AsyncConnection,
    item: ItemView,
    after: ItemStatus | str,
    volunteer_id: int,
    now: datetime,
    tell: str,
) -> None:
    """A volunteer's change of ``item``: its history row (when the status changed) and
    ``tell`` queued to the resident (when there is one), in the caller's transaction."""
    if str(after) != item.status.value:
        await record_move(connection, item.id, item.status, after, f"volunteer:{volunteer_id}", now)
    if tell and item.chat_id:
        await queue_message(connection, item.channel, item.chat_id, tell, now=now)


def _why_not(item: ItemView, now: datetime) -> str:
    if item.status is ItemStatus.claimed or (item.status is ItemStatus.open and item.left == 0):
        return "full"
    if item.status is ItemStatus.open and item.starts_at is not None and item.starts_at <= now:
        return "begun"
    return "closed"
