"""Residents, their conversations and messages, and cases with their history: media,
events, notifications, followers, ratings and the forwarding outbox."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from integration.models.base import Base, BigId, UTCDateTime, utcnow


class CaseStatus(enum.StrEnum):
    """The case lifecycle shared with the dispatch platforms."""

    received = "received"
    accepted = "accepted"
    dispatched = "dispatched"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"
    rejected = "rejected"
    reopened = "reopened"


class Direction(enum.StrEnum):
    """Which way a transcript message travelled."""

    inbound = "in"
    outbound = "out"


class NotificationState(enum.StrEnum):
    """Delivery state of a queued push."""

    pending = "pending"
    sent = "sent"
    failed = "failed"


class NotificationKind(enum.StrEnum):
    """What a queued push says: a status change, one that also asks for a rating, a reminder."""

    status = "status"
    rating = "rating"
    reminder = "reminder"
    reply = "reply"  # an answer to a message that could not be sent at once (no case event)


class OutboxState(enum.StrEnum):
    """Where a forwarding job stands."""

    pending = "pending"
    done = "done"
    dead = "dead"


class OutboxKind(enum.StrEnum):
    """What a forwarding job asks the platform to do."""

    create = "create"
    reopen = "reopen"
    urge = "urge"  # 催办: a resident pressed for the case


class Resident(Base):
    """One resident identity on one channel (a WeChat openid, a Telegram user...)."""

    __tablename__ = "residents"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_residents_identity"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(128), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Conversation(Base):
    """A resident's chat on a channel (its last inbound message dates push windows)."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "chat_id", name="uq_conversations_chat"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Message(Base):
    """One transcript line, inbound or outbound."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_messages_external"),
        Index("ix_messages_conversation", "conversation_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(3))
    # The platform's message id for inbound messages; NULL for ours (NULLs never collide).
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    location_label: Mapped[str] = mapped_column(String(256), default="")
    media_ref: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseCounter(Base):
    """The last case sequence number handed out on a day (Asia/Shanghai)."""

    __tablename__ = "case_counters"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    """A work order: what a resident reported, where, and where it stands."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_resident", "resident_id", "status"),
        Index("ix_cases_status", "status", "created_at"),
        Index("ix_cases_category", "category", "created_at"),
        # The duplicate check before a report is filed: the same address, or a point
        # nearby (integration.case_reads.similar), without scanning a day's cases.
        Index("ix_cases_address", "address", "category"),
        Index("ix_cases_point", "latitude", "longitude"),
        # One platform id belongs to one case (NULLs, not yet forwarded, never collide).
        UniqueConstraint("platform", "platform_id", name="uq_cases_platform_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="RESTRICT"))
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(String(256), default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.received.value)
    platform: Mapped[str] = mapped_column(String(32), default="local")
    platform_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The platform's time of the last status report applied: older reports are stale.
    platform_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    grid: Mapped[str] = mapped_column(String(32), default="")  # filed by that grid's worker
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    media: Mapped[list[CaseMedia]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseMedia.id"
    )
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseEvent.id"
    )
    followers: Mapped[list[CaseFollower]] = relationship(
        cascade="all, delete-orphan", order_by="CaseFollower.id"
    )
    urges: Mapped[list[CaseUrge]] = relationship(
        cascade="all, delete-orphan", order_by="CaseUrge.id"
    )


class CaseMedia(Base):
    """A photo or other attachment of a case."""

    __tablename__ = "case_media"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(512))
    url: Mapped[str] = mapped_column(String(1024), default="")

    case: Mapped[Case] = relationship(back_populates="media")


class CaseEvent(Base):
    """One entry of a case's status history."""

    __tablename__ = "case_events"
    # A case's history in order, and its latest entry (the last note a case view
    # shows) found at once, however long the whole history table grows.
    __table_args__ = (Index("ix_case_events_case_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="events")


class Notification(Base):
    """A push to a resident, queued in the same transaction as the change it reports."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "state", "channel", "next_attempt_at"),
        UniqueConstraint(
            "event_id", "channel", "chat_id", "kind", name="uq_notifications_event_chat_kind"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The change reported; None for a reply, whose words are in ``text``.
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("case_events.id", ondelete="CASCADE"), nullable=True
    )
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default=NotificationKind.status.value)
    text: Mapped[str] = mapped_column(Text, default="")
    # A message's facts as JSON [[key, value], ...], for a channel's template (WeChat's
    # status template outside its 48-hour window); "" when it has none.
    fields: Mapped[str] = mapped_column(Text, default="", server_default="")
    # A message's quick replies as JSON [[label, payload], ...] (the question of a flow
    # that resumes when staff hand a conversation back); "" when it has none.
    buttons: Mapped[str] = mapped_column(Text, default="", server_default="")
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    event: Mapped[CaseEvent | None] = relationship()


class CaseFollower(Base):
    """A resident who joined another resident's case (加入已有工单) and receives its updates."""

    __tablename__ = "case_followers"
    __table_args__ = (
        UniqueConstraint("case_id", "channel", "chat_id", name="uq_case_followers_chat"),
        Index("ix_case_followers_resident", "resident_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseUrge(Base):
    """A resident pressing for an open case (催办): when, from which chat, in what words.

    Kept beside the case, not in its status history: urging changes no status, and the
    history's latest note is what the resident reads as the case's news.
    """

    __tablename__ = "case_urges"
    __table_args__ = (Index("ix_case_urges_case_id", "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text, default="")  # phone and ID numbers masked
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxJob(Base):
    """Something the dispatch platform must be told, queued with the change that needs it.

    ``key`` is the idempotency key sent with every attempt; ``first_attempt_at`` is set
    before the first request leaves, so a later attempt knows the platform may already
    have the case (and looks it up before creating it again).
    """

    __tablename__ = "dispatch_outbox"
    __table_args__ = (Index("ix_dispatch_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=OutboxKind.create.value)
    key: Mapped[str] = mapped_column(String(96), unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    token: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Rating(Base):
    """A satisfaction question asked when a case was resolved, and the resident's answer."""

    __tablename__ = "ratings"
    __table_args__ = (Index("ix_ratings_chat", "channel", "chat_id", "answered_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    # The ``resolved`` event that asked: one question per resolution.
    event_id: Mapped[int] = mapped_column(
        ForeignKey("case_events.id", ondelete="CASCADE"), unique=True
    )
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    score: Mapped[str | None] = mapped_column(String(16), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    reopened: Mapped[bool] = mapped_column(Boolean, default=False)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CallbackReceipt(Base):
    """A signed platform callback already accepted, kept to refuse its replay."""

    __tablename__ = "dispatch_receipts"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class MediaUpload(Base):
    """A photo kept in the media directory, and who sent it.

    A web-chat upload belongs to the visitor who sent it and is ``used`` once a message
    of theirs names it; one still unused at ``expires_at`` is an orphan, and the sweeper
    deletes its file and this row (``sweep_until`` is the sweeper's lease).
    """

    __tablename__ = "media_uploads"
    __table_args__ = (
        Index("ix_media_uploads_owner", "channel", "chat_id", "created_at"),
        Index("ix_media_uploads_orphans", "used_at", "expires_at"),
        UniqueConstraint("name", name="uq_media_uploads_name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sweep_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
