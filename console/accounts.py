"""Console accounts and their server-side sessions.

Passwords are kept as argon2id hashes (argon2-cffi). A session is a random token in the
browser's cookie; the database keeps only its SHA-256, the account it belongs to, the
session's CSRF token and its expiry, so every worker sees the same sessions and a
stolen database yields no usable cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integration.errors import IntegrationError
from integration.models import StaffAccount, StaffRole, StaffSession, utcnow

SESSION_TTL = timedelta(hours=8)
MIN_PASSWORD = 10
_HASHER = PasswordHasher()
# Verified against when the username is unknown, so both answers take as long.
_DUMMY_HASH = _HASHER.hash("yimen-no-such-account")


class AccountError(IntegrationError):
    """An account cannot be created as asked (taken name, short password, bad role)."""


@dataclass(frozen=True, slots=True)
class StaffMember:
    """The signed-in staff member a console handler acts for.

    ``community`` is set for community and grid accounts: they see only that
    community's cases. ``csrf`` is the session's token every form must send back.
    ``grid`` is a grid worker's grid id (G-3-07), which their chat reports carry.
    """

    id: int
    username: str
    role: StaffRole
    community: str
    csrf: str
    grid: str = ""

    @property
    def scoped(self) -> bool:
        """Whether this member sees one community only."""
        return self.role in (StaffRole.community, StaffRole.grid)

    def sees_community(self, community: str) -> bool:
        """Whether this member may see what belongs to ``community``."""
        return not self.scoped or community == self.community


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


class AccountBook:
    """Staff accounts and sessions in the relational store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self, username: str, password: str, role: StaffRole, community: str = "", grid: str = ""
    ) -> int:
        """Add an account; ``AccountError`` when the name is taken or the input is unfit.

        ``grid`` is a grid worker's grid id: only grid accounts have one.
        """
        username = username.strip()
        if not username or len(username) > 64:
            raise AccountError("a username of 1 to 64 characters is needed")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
        scoped = role in (StaffRole.community, StaffRole.grid)
        if scoped != bool(community.strip()):
            raise AccountError("community and grid accounts (and only they) name a community")
        grid = grid.strip()
        if (grid and role != StaffRole.grid) or len(grid) > 32:
            raise AccountError("only grid accounts have a grid id (up to 32 characters)")
        # Argon2 is deliberately slow (tens of ms): off the event loop, outside the transaction.
        password_hash = await asyncio.to_thread(_HASHER.hash, password)
        try:
            async with self._sessions.begin() as session:
                return int(
                    await session.scalar(  # type: ignore[arg-type]
                        insert(StaffAccount)
                        .values(
                            username=username,
                            password_hash=password_hash,
                            role=role.value,
                            community=community.strip(),
                            grid=grid,
                            active=True,
                            created_at=utcnow(),
                        )
                        .returning(StaffAccount.id)
                    )
                )
        except IntegrityError:
            raise AccountError(f"the username {username!r} is taken") from None

    async def verify(self, username: str, password: str) -> int | None:
        """The id of the active account with these credentials, else None."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(StaffAccount.id, StaffAccount.password_hash, StaffAccount.active).where(
                        StaffAccount.username == username.strip()
                    )
                )
            ).first()
        try:
            await asyncio.to_thread(
                _HASHER.verify, row.password_hash if row else _DUMMY_HASH, password
            )
        except (VerificationError, InvalidHashError):
            return None
        return int(row.id) if row is not None and row.active else None

    async def open_session(self, account_id: int, now: datetime | None = None) -> str:
        """A new session for the account: the cookie's token (kept only hashed)."""
        now = now or utcnow()
        token = secrets.token_urlsafe(32)
        async with self._sessions.begin() as session:
            await session.execute(delete(StaffSession).where(StaffSession.expires_at < now))
            await session.execute(
                insert(StaffSession).values(
                    token_hash=token_hash(token),
                    account_id=account_id,
                    csrf=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                )
            )
        return token

    async def member(self, token: str, now: datetime | None = None) -> StaffMember | None:
        """Who holds this session token, when it is current and the account active."""
        now = now or utcnow()
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(
                        StaffAccount.id,
                        StaffAccount.username,
                        StaffAccount.role,
                        StaffAccount.community,
                        StaffSession.csrf,
                        StaffAccount.grid,
                    )
                    .join(StaffAccount, StaffAccount.id == StaffSession.account_id)
                    .where(StaffSession.token_hash == token_hash(token))
                    .where(StaffSession.expires_at > now)
                    .where(StaffAccount.active.is_(True))
                )
            ).first()
        if row is None:
            return None
        return StaffMember(
            row.id, row.username, StaffRole(row.role), row.community, row.csrf, row.grid
        )

    async def close_session(self, token: str) -> None:
        """Sign a browser out: its session stops working at once."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(StaffSession).where(StaffSession.token_hash == token_hash(token))
            )

    async def deactivate(self, username: str) -> bool:
        """Stop an account from signing in (its sessions stop working too)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(StaffAccount).where(StaffAccount.username == username).values(active=False)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
