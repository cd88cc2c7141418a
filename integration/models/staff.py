"""Staff: handoffs of conversations to a person, staff accounts and sessions, the
audit trail and staff's corrections of the NLU."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from integration.models.base import Base, BigId, UTCDateTime, utcnow


class HandoffStatus(enum.StrEnum):
    """Where a conversation handed to a person stands."""

    waiting = "waiting"  # nobody has claimed it yet
    claimed = "claimed"  # a staff member holds it
    closed = "closed"  # handed back, closed by staff, or withdrawn by the resident


class Handoff(Base):
    """A conversation handed to a person (integration.handoff).

    ``reason`` is why (asked, fallbacks, rule, staff), ``detail`` the rule and the words
    that fired it, shown in the console. ``promised_at`` is the answer time promised
    off hours; ``sla_due`` when waiting becomes too long. ``alarmed_at`` and
    ``alarm_lease`` are the service-level alarm's, claimed like booking reminders.
    """

    __tablename__ = "handoffs"
    __table_args__ = (
        Index("ix_handoffs_chat", "channel", "chat_id", "status"),
        Index("ix_handoffs_alarm", "status", "alarmed_at", "sla_due"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=HandoffStatus.waiting.value)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(256), default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    promised_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sla_due: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_how: Mapped[str] = mapped_column(String(16), default="")
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    alarmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    alarm_lease: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StaffChat(Base):
    """A staff member's own chat account, linked by a one-time code, and their duty.

    ``code``/``code_expires``: the pending one-time code the staff member sends in chat
    to link it. The on-duty member's linked chat receives service-level alarms.
    """

    __tablename__ = "staff_chats"

    staff: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), default="")
    chat_id: Mapped[str] = mapped_column(String(128), default="")
    code: Mapped[str] = mapped_column(String(16), default="")
    code_expires: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)


class StaffRole(enum.StrEnum):
    """What a console account may see and do."""

    admin = "admin"  # everything, accounts included
    staff = "staff"  # the street office's desk: every community
    community = "community"  # one community's cases only
    grid = "grid"  # a grid worker (网格员): one community's cases, no personal numbers


class StaffAccount(Base):
    """A console account: its argon2 password hash, its role and, for community roles, where."""

    __tablename__ = "staff_accounts"
    __table_args__ = (UniqueConstraint("username", name="uq_staff_accounts_username"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    community: Mapped[str] = mapped_column(String(64), default="")
    grid: Mapped[str] = mapped_column(String(32), default="")  # a grid worker's grid (G-3-07)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StaffSession(Base):
    """A signed-in browser: the SHA-256 of its cookie token, its CSRF token, its expiry."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One staff action: who, what, on what, when, and the state before and after (JSON).

    Append-only: nothing in Yimen updates or deletes these rows, and the database's
    triggers refuse to.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="")
    before: Mapped[str] = mapped_column(Text, default="")
    after: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")


class NluCorrection(Base):
    """A staff member's correction of one transcript message: its intent, or its address span."""

    __tablename__ = "nlu_corrections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    address: Mapped[str | None] = mapped_column(String(256), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
