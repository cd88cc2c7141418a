"""Party-member volunteers: registrations, their channel accounts, invitation and link codes.

A volunteer registers by chat (handlers.flows.volunteer) and waits in ``pending``
until staff approve (`yimen volunteers approve`), unless they give a community's
invitation code, which approves at once. A code is used once (a conditional UPDATE of
``used_at``, so two registrations racing for one code cannot both have it) and expires.
Each channel account belongs to at most one volunteer; a second channel account joins
the same volunteer with a link code sent to an account already linked.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.models import (
    Volunteer,
    VolunteerAccount,
    VolunteerCode,
    VolunteerSkill,
    VolunteerSlot,
    VolunteerStatus,
    utcnow,
)
from integration.models.services import SKILL_NOTE_LIMIT
from integration.notifications import queue_message
from integration.privacy import mask

INVITE_DAYS = 14
LINK_MINUTES = 30
PARTS = ("morning", "afternoon", "evening")


class VolunteerError(IntegrationError):
    """Root of the volunteer registry's refusals."""


class VolunteerNotFound(VolunteerError):
    """No volunteer has this number."""


class AlreadyRegistered(VolunteerError):
    """This channel account already belongs to a volunteer (``volunteer``)."""

    def __init__(self, volunteer: VolunteerView) -> None:
        super().__init__(f"account already registered as volunteer {volunteer.id}")
        self.volunteer = volunteer


class PhoneTaken(VolunteerError):
    """Another account registered this phone: the account may be linked instead."""

    def __init__(self, volunteer_id: int) -> None:
        super().__init__(f"phone already registered by volunteer {volunteer_id}")
        self.volunteer_id = volunteer_id


class CodeRefused(VolunteerError):
    """A code that cannot be used: ``reason`` is unknown, used or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"code {reason}")
        self.reason = reason


class NotPending(VolunteerError):
    """Only a pending registration can be approved or rejected."""


@dataclass(frozen=True, slots=True)
class VolunteerDraft:
    """What the registration flow collected."""

    channel: str
    user_id: str
    chat_id: str
    name: str
    phone: str
    employer: str
    branch: str
    community: str
    skills: tuple[str, ...]
    slots: tuple[tuple[int, str], ...]  # (weekday 0-6, part of PARTS)
    skill_note: str = ""  # their own words for skills the list has no name for


@dataclass(frozen=True, slots=True)
class VolunteerView:
    """A read-only snapshot of a volunteer."""

    id: int
    name: str
    phone: str
    employer: str
    branch: str
    community: str
    status: VolunteerStatus
    created_at: datetime
    skills: tuple[str, ...] = ()
    slots: tuple[tuple[int, str], ...] = ()
    skill_note: str = ""

    @property
    def approved(self) -> bool:
        """Whether the volunteer may claim items."""
        return self.status is VolunteerStatus.approved

    @property
    def surname(self) -> str:
        """The family name, as residents are told it (王师傅)."""
        return self.name[:1]


def _code(digits: bool) -> str:
    if digits:
        return f"{secrets.randbelow(10**6):06d}"
    return "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))


class VolunteerBook:
    """Volunteers in the relational store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine: AsyncEngine = sessions.kw["bind"]

    # -- reading ---------------------------------------------------------------------------

    async def get(self, volunteer_id: int) -> VolunteerView:
        """One volunteer; raises ``VolunteerNotFound``."""
        async with self._engine.connect() as connection:
            found = await _read(connection, [Volunteer.id == volunteer_id])
        if not found:
            raise VolunteerNotFound(f"no volunteer {volunteer_id}")
        return found[0]

    async def of_account(self, channel: str, user_id: str) -> VolunteerView | None:
        """The volunteer this channel account belongs to, if any."""
        async with self._engine.connect() as connection:
            volunteer_id = await connection.scalar(
                select(VolunteerAccount.volunteer_id).where(
                    VolunteerAccount.channel == channel, VolunteerAccount.user_id == user_id
                )
            )
            if volunteer_id is None:
                return None
            found = await _read(connection, [Volunteer.id == volunteer_id])
        return found[0] if found else None

    async def list_volunteers(
        self, statuses: Sequence[VolunteerStatus] = (), limit: int = 200
    ) -> list[VolunteerView]:
        """Volunteers, oldest first, optionally only those in ``statuses``."""
        where = [Volunteer.status.in_([s.value for s in statuses])] if statuses else []
        async with self._engine.connect() as connection:
            return await _read(connection, where, limit)

    # -- registering -----------------------------------------------------------------------

    async def register(
        self, draft: VolunteerDraft, code: str = "", now: datetime | None = None
    ) -> VolunteerView:
        """Record a registration: approved at once with a valid invitation ``code``.

        Raises ``AlreadyRegistered`` (this account), ``PhoneTaken`` (another account
        has the phone: link instead) or ``CodeRefused``; none of them changes anything.
        """
        now = now or utcnow()
        async with self._engine.begin() as connection:
            await self._refuse_known(connection, draft)
            approved = False
            if code:
                await _use_code(connection, code, "invite", now, draft.community)
                approved = True
            volunteer_id = int(
                await connection.scalar(
                    insert(Volunteer)
                    .values(
                        name=draft.name,
                        phone=draft.phone,
                        employer=draft.employer,
                        branch=draft.branch,
                        community=draft.community,
                        skill_note=mask(draft.skill_note)[:SKILL_NOTE_LIMIT],
                        status=(
                            VolunteerStatus.approved if approved else VolunteerStatus.pending
                        ).value,
                        created_at=now,
                        decided_at=now if approved else None,
                        decided_by=f"invite:{code}" if approved else "",
                    )
                    .returning(Volunteer.id)
                )
                or 0
            )
            for skill in dict.fromkeys(draft.skills):
                await connection.execute(
                    insert(VolunteerSkill).values(volunteer_id=volunteer_id, skill=skill)
                )
            for weekday, part in dict.fromkeys(draft.slots):
                await connection.execute(
                    insert(VolunteerSlot).values(
                        volunteer_id=volunteer_id, weekday=weekday, part=part
                    )
                )
            await _link(connection, volunteer_id, draft.channel, draft.user_id, draft.chat_id, now)
        return await self.get(volunteer_id)

    async def _refuse_known(self, connection: AsyncConnection, draft: VolunteerDraft) -> None:
        account = await connection.scalar(
            select(VolunteerAccount.volunteer_id).where(
                VolunteerAccount.channel == draft.channel, VolunteerAccount.user_id == draft.user_id
            )
        )
        if account is not None:
            raise AlreadyRegistered((await _read(connection, [Volunteer.id == account]))[0])
        owner = await connection.scalar(select(Volunteer.id).where(Volunteer.phone == draft.phone))
        if owner is not None:
            raise PhoneTaken(int(owner))

    async def decide(self, volunteer_id: int, approve: bool, actor: str = "staff") -> VolunteerView:
        """Approve or reject a pending registration (once)."""
        status = VolunteerStatus.approved if approve else VolunteerStatus.rejected
        async with self._engine.begin() as connection:
            changed = await connection.execute(
                update(Volunteer)
                .where(
                    Volunteer.id == volunteer_id, Volunteer.status == VolunteerStatus.pending.value
                )
                .values(status=status.value, decided_at=utcnow(), decided_by=actor)
            )
        if changed.rowcount != 1:
            current = await self.get(volunteer_id)  # raises VolunteerNotFound
            raise NotPending(f"volunteer {volunteer_id} is already {current.status.value}")
        return await self.get(volunteer_id)

    # -- codes -----------------------------------------------------------------------------

    async def invite(
        self,
        community: str,
        actor: str = "staff",
        now: datetime | None = None,
        days: int = INVITE_DAYS,
    ) -> tuple[str, datetime]:
        """A new single-use invitation code of ``community``, and when it expires."""
        now = now or utcnow()
        expires = now + timedelta(days=days)
        code = _code(digits=False)
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(VolunteerCode).values(
                    code=code,
                    kind="invite",
                    community=community,
                    volunteer_id=None,
                    channel="",
                    user_id="",
                    created_by=actor,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return code, expires

    async def code_problem(self, code: str, now: datetime | None = None) -> str:
        """Why an invitation code cannot be used (unknown, used, expired), or "" if it can.

        Only a look: the code is used, once, by ``register``.
        """
        now = now or utcnow()
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(VolunteerCode.used_at, VolunteerCode.expires_at).where(
                        VolunteerCode.code == code.strip().upper(), VolunteerCode.kind == "invite"
                    )
                )
            ).first()
        if row is None:
            return "unknown"
        if row.used_at is not None:
            return "used"
        return "expired" if row.expires_at <= now else ""

    async def offer_link(
        self,
        volunteer_id: int,
        channel: str,
        user_id: str,
        text: str,
        now: datetime | None = None,
    ) -> str:
        """Send a link code to the volunteer's linked accounts; the new account types it.

        ``text`` has a ``{code}`` placeholder. Returns the code (for tests and logs).
        """
        now = now or utcnow()
        code = _code(digits=True)
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(VolunteerCode).values(
                    code=code,
                    kind="link",
                    community="",
                    volunteer_id=volunteer_id,
                    channel=channel,
                    user_id=user_id,
                    created_by="",
                    created_at=now,
                    expires_at=now + timedelta(minutes=LINK_MINUTES),
                )
            )
            accounts = await connection.execute(
                select(VolunteerAccount.channel, VolunteerAccount.chat_id).where(
                    VolunteerAccount.volunteer_id == volunteer_id
                )
            )
            for other_channel, chat_id in accounts.all():
                await queue_message(
                    connection, other_channel, chat_id, text.format(code=code), now=now
                )
        return code

    async def link(
        self, channel: str, user_id: str, chat_id: str, code: str, now: datetime | None = None
    ) -> VolunteerView:
        """Join this account to the volunteer a link code was sent for (``CodeRefused``)."""
        now = now or utcnow()
        async with self._engine.begin() as connection:
            volunteer_id = await _use_code(connection, code, "link", now, "", channel, user_id)
            await _link(connection, volunteer_id, channel, user_id, chat_id, now)
        return await self.get(volunteer_id)


async def _use_code(
    connection: AsyncConnection,
    code: str,
    kind: str,
    now: datetime,
    community: str = "",
    channel: str = "",
    user_id: str = "",
) -> int:
    """Mark a code used, once; its volunteer (0 for an invitation). Raises ``CodeRefused``."""
    conditions = [VolunteerCode.code == code.strip().upper(), VolunteerCode.kind == kind]
    if channel:
        conditions += [VolunteerCode.channel == channel, VolunteerCode.user_id == user_id]
    used = (
        await connection.execute(
            update(VolunteerCode)
            .where(*conditions, VolunteerCode.used_at.is_(None), VolunteerCode.expires_at > now)
            .values(used_at=now)
            .returning(VolunteerCode.volunteer_id, VolunteerCode.community)
        )
    ).first()
    if used is not None:
        if community and used.community and used.community != community:
            raise CodeRefused("other_community")
        return int(used.volunteer_id or 0)
    row = (
        await connection.execute(
            select(VolunteerCode.used_at, VolunteerCode.expires_at).where(*conditions)
        )
    ).first()
    if row is None:
        raise CodeRefused("unknown")
    raise CodeRefused("used" if row.used_at is not None else "expired")


async def _link(
    connection: AsyncConnection,
    volunteer_id: int,
    channel: str,
    user_id: str,
    chat_id: str,
    now: datetime,
) -> None:
    await connection.execute(
        delete(VolunteerAccount).where(
            VolunteerAccount.channel == channel, VolunteerAccount.user_id == user_id
        )
    )
    await connection.execute(
        insert(VolunteerAccount).values(
            channel=channel,
            user_id=user_id,
            chat_id=chat_id,
            volunteer_id=volunteer_id,
            linked_at=now,
        )
    )


async def _read(
    connection: AsyncConnection, where: Sequence[ColumnElement[bool]], limit: int = 200
) -> list[VolunteerView]:
    query = select(*Volunteer.__table__.columns).where(*where).order_by(Volunteer.id).limit(limit)
    rows = (await connection.execute(query)).all()
    ids = [row.id for row in rows]
    skills: dict[int, list[str]] = {}
    slots: dict[int, list[tuple[int, str]]] = {}
    if ids:
        for vid, skill in await connection.execute(
            select(VolunteerSkill.volunteer_id, VolunteerSkill.skill).where(
                VolunteerSkill.volunteer_id.in_(ids)
            )
        ):
            skills.setdefault(vid, []).append(skill)
        for vid, weekday, part in await connection.execute(
            select(VolunteerSlot.volunteer_id, VolunteerSlot.weekday, VolunteerSlot.part).where(
                VolunteerSlot.volunteer_id.in_(ids)
            )
        ):
            slots.setdefault(vid, []).append((weekday, part))
    return [
        VolunteerView(
            id=row.id,
            name=row.name,
            phone=row.phone,
            employer=row.employer,
            branch=row.branch,
            community=row.community,
            status=VolunteerStatus(row.status),
            created_at=row.created_at,
            skills=tuple(sorted(skills.get(row.id, ()))),
            slots=tuple(sorted(slots.get(row.id, ()))),
            skill_note=row.skill_note,
        )
        for row in rows
    ]
