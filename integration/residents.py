"""Forgetting a resident on request (`yimen residents forget`).

What goes, in one transaction:

- the resident's identity row, their conversations and every transcript line of them;
- the pushes queued or sent to their chats, and their follows of others' cases;
- their rating comments (the scores stay, without the chat, for the statistics);
- their bookings' link to them (the bookings stay on the windows' lists, anonymous).

What stays: the cases they reported are public-service records the street office
must keep and the dispatch platform already holds. They are kept, detached from the
resident (moved to one anonymous placeholder identity, with no chat to push to), and
phone and ID numbers in their descriptions are masked. Their photos stay with them.
Their help-at-home requests (service items) stay too, detached, the phone masked; a
remembered contact phone goes with the identity row.

Photos that only the transcript referenced are returned for the caller to delete
(files live in the channels' media directory, which this package does not know).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.models import (
    Appointment,
    Case,
    CaseFollower,
    CaseMedia,
    Conversation,
    Message,
    Notification,
    Rating,
    Resident,
    ServiceItem,
)
from integration.privacy import mask
from integration.upsert import ensure_resident, resident_ids

FORGOTTEN = "forgotten"  # channel and id of the placeholder that keeps forgotten cases


class ResidentNotFound(IntegrationError):
    """No resident has this identity (or, without a channel, it names several)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A resident's identity on one channel."""

    channel: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What forgetting a resident removed, and what it kept detached."""

    identity: Identity
    chats: tuple[str, ...]  # the chat ids whose conversation state should go too
    messages: int
    notifications: int
    follows: int
    comments: int
    cases_kept: int
    media: tuple[str, ...]  # transcript-only photo refs (/media/…) to delete


class ResidentBook:
    """Finds residents by their channel identity and forgets them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    async def find(self, user_id: str, channel: str | None = None) -> Identity:
        """The one identity ``user_id`` names (on ``channel`` when given).

        Raises ``ResidentNotFound`` when there is none, or several on different channels.
        """
        query = select(Resident.channel).where(Resident.external_id == user_id)
        if channel:
            query = query.where(Resident.channel == channel)
        async with self._engine.connect() as connection:
            channels = sorted(set(await connection.scalars(query)) - {FORGOTTEN})
        if not channels:
            raise ResidentNotFound(f"no resident {user_id}" + (f" on {channel}" if channel else ""))
        if len(channels) > 1:
            raise ResidentNotFound(
                f"{user_id} is a resident on {', '.join(channels)}: say which with --channel"
            )
        return Identity(channels[0], user_id)

    async def forget(self, identity: Identity) -> Forgotten:
        """Delete the resident's data and detach their cases (see the module docstring)."""
        async with self._engine.begin() as connection:
            resident_id = await connection.scalar(
                select(Resident.id).where(
                    Resident.channel == identity.channel, Resident.external_id == identity.user_id
                )
            )
            if resident_id is None:
                raise ResidentNotFound(f"no resident {identity.channel}:{identity.user_id}")
            return await self._forget(connection, identity, resident_id)

    async def _forget(
        self, connection: AsyncConnection, identity: Identity, resident_id: int
    ) -> Forgotten:
        conversations = (
            await connection.execute(
                select(Conversation.id, Conversation.chat_id).where(
                    Conversation.resident_id == resident_id
                )
            )
        ).all()
        ids = [row.id for row in conversations]
        chats = tuple(row.chat_id for row in conversations)
        channel = identity.channel
        refs = set(
            await connection.scalars(
                select(Message.media_ref).where(
                    Message.conversation_id.in_(ids), Message.media_ref != ""
                )
            )
        )
        photos = {ref for joined in refs for ref in joined.split(",") if ref}
        messages = await _count(connection, Message, Message.conversation_id.in_(ids))
        await connection.execute(delete(Message).where(Message.conversation_id.in_(ids)))
        await connection.execute(delete(Conversation).where(Conversation.id.in_(ids)))
        in_chats = (Notification.channel == channel) & Notification.chat_id.in_(chats)
        notifications = await _count(connection, Notification, in_chats)
        await connection.execute(delete(Notification).where(in_chats))
        mine = CaseFollower.resident_id == resident_id
        follows = await _count(connection, CaseFollower, mine)
        await connection.execute(delete(CaseFollower).where(mine))
        rated = (Rating.channel == channel) & Rating.chat_id.in_(chats)
        comments = await _count(connection, Rating, rated & (Rating.comment != ""))
        await connection.execute(update(Rating).where(rated).values(chat_id="", comment=""))
        booked = (Appointment.channel == channel) & (Appointment.user_id == identity.user_id)
        await connection.execute(
            update(Appointment)
            .where(booked)
            .values(channel=FORGOTTEN, user_id=FORGOTTEN, chat_id="")
        )
        cases_kept = await self._detach_cases(connection, resident_id)
        # Help-at-home requests stay for the records, detached, with the phone masked.
        mine_items = (ServiceItem.channel == channel) & (ServiceItem.user_id == identity.user_id)
        for item_id, phone in (
            await connection.execute(select(ServiceItem.id, ServiceItem.phone).where(mine_items))
        ).all():
            await connection.execute(
                update(ServiceItem)
                .where(ServiceItem.id == item_id)
                .values(user_id=FORGOTTEN, chat_id="", phone=mask(phone))
            )
        kept_media = set(await connection.scalars(select(CaseMedia.ref)))
        await connection.execute(delete(Resident).where(Resident.id == resident_id))
        resident_ids(connection).drop(identity.channel, identity.user_id)
        return Forgotten(
            identity=identity,
            chats=chats,
            messages=messages,
            notifications=notifications,
            follows=follows,
            comments=comments,
            cases_kept=cases_kept,
            media=tuple(sorted(photos - kept_media)),
        )

    async def _detach_cases(self, connection: AsyncConnection, resident_id: int) -> int:
        """Move the resident's cases to the placeholder, with personal numbers masked."""
        rows = (
            await connection.execute(
                select(Case.id, Case.description).where(Case.resident_id == resident_id)
            )
        ).all()
        if not rows:
            return 0
        placeholder = await ensure_resident(connection, FORGOTTEN, FORGOTTEN)
        for row in rows:
            await connection.execute(
                update(Case)
                .where(Case.id == row.id)
                .values(
                    resident_id=placeholder,
                    chat_id="",
                    description=mask(row.description),
                )
            )
        return len(rows)


async def _count(connection: AsyncConnection, model: type, condition: object) -> int:
    query = select(func.count()).select_from(model).where(condition)  # type: ignore[arg-type]
    return int(await connection.scalar(query) or 0)
