"""SQLAlchemy models: residents, conversations, messages, cases and their history.

The same models serve SQLite (embedded default) and PostgreSQL; Alembic migrations
under integration/migrations/ create them. Times are stored in UTC.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite wants INTEGER PRIMARY KEY for autoincrement; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


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


class Base(DeclarativeBase):
    """Declarative base of every Yimen table."""


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


class AppointmentStatus(enum.StrEnum):
    """Where a booking stands."""

    booked = "booked"
    cancelled = "cancelled"  # by the resident, or by staff with a note
    no_show = "no_show"


class AppointmentSlot(Base):
    """How many residents one slot of a window holds: the row bookings race for.

    A booking raises ``taken`` with ``UPDATE … WHERE taken < capacity``, so however
    many book at once, no more than the capacity get in.
    """

    __tablename__ = "appointment_slots"

    window: Mapped[str] = mapped_column(String(32), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    taken: Mapped[int] = mapped_column(Integer, default=0)


class AppointmentCounter(Base):
    """The last booking sequence number handed out for a day of appointments."""

    __tablename__ = "appointment_counters"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(Base):
    """A resident's booking of a slot at a window.

    ``remind_at`` is when the day-before reminder is due; ``reminded_at`` when it was
    queued; ``remind_lease`` the claiming worker's lease (as the outbox's).
    """

    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_owner", "channel", "user_id", "status", "starts_at"),
        Index("ix_appointments_day", "starts_at", "window"),
        Index("ix_appointments_reminders", "status", "reminded_at", "remind_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str] = mapped_column(String(128))
    service: Mapped[str] = mapped_column(String(64))
    window: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    minutes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=AppointmentStatus.booked.value)
    note: Mapped[str] = mapped_column(Text, default="")
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    remind_lease: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProxyConsent(Base):
    """A resident's consent that staff run an errand (代办) for them: the words shown, and when.

    One row per 代办 case, written with the case in the same transaction.
    """

    __tablename__ = "proxy_consents"
    __table_args__ = (UniqueConstraint("case_id", name="uq_proxy_consents_case_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    words: Mapped[str] = mapped_column(Text)
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ItemStatus(enum.StrEnum):
    """Where a service item stands.

    A resident's request starts ``pending`` until staff approve it; a staff-posted item
    starts ``open``. open → claimed (every place taken) → in_progress (its time window
    began) → done (the volunteers reported it) → confirmed (the resident or staff);
    ``cancelled`` by staff, ``expired`` when its window passed unclaimed.
    """

    pending = "pending"
    open = "open"
    claimed = "claimed"
    in_progress = "in_progress"
    done = "done"
    confirmed = "confirmed"
    cancelled = "cancelled"
    expired = "expired"


class ServiceItem(Base):
    """A help-at-home request (助餐, 陪同就医 …): approved by staff, claimed by volunteers.

    ``when`` is the resident's words for the time (明天上午); ``phone`` is the contact
    number in clear (staff and the volunteer call it); lists show it masked.
    """

    __tablename__ = "service_items"
    __table_args__ = (Index("ix_service_items_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    when: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(256))
    whom: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.pending.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    approved_by: Mapped[str] = mapped_column(String(64), default="")
    # Volunteers (migration 0008): an empty channel/user_id means staff posted it.
    community: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    taken: Mapped[int] = mapped_column(Integer, default=0)
    share_phone: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)


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


class ServiceItemSkill(Base):
    """A skill a service item wants (one row each: 助老, 维修 …)."""

    __tablename__ = "service_item_skills"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("service_items.id", ondelete="CASCADE"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(16), primary_key=True)


class ServiceItemEvent(Base):
    """One status change of a service item: who, when, and from what to what."""

    __tablename__ = "service_item_events"
    __table_args__ = (Index("ix_service_item_events_item", "item_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("service_items.id", ondelete="CASCADE"))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class VolunteerStatus(enum.StrEnum):
    """A volunteer's registration: staff (or an invitation code) approve it."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class Volunteer(Base):
    """A party member who serves the community where they live."""

    __tablename__ = "volunteers"
    __table_args__ = (Index("ix_volunteers_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    employer: Mapped[str] = mapped_column(String(128))
    branch: Mapped[str] = mapped_column(String(128))
    community: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=VolunteerStatus.pending.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_by: Mapped[str] = mapped_column(String(64), default="")


class VolunteerSkill(Base):
    """One of a volunteer's skills."""

    __tablename__ = "volunteer_skills"

    volunteer_id: Mapped[int] = mapped_column(
        ForeignKey("volunteers.id", ondelete="CASCADE"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(16), primary_key=True)


class VolunteerSlot(Base):
    """A part of a weekday a volunteer is usually free (weekday 0 = Monday)."""

    __tablename__ = "volunteer_slots"

    volunteer_id: Mapped[int] = mapped_column(
        ForeignKey("volunteers.id", ondelete="CASCADE"), primary_key=True
    )
    weekday: Mapped[int] = mapped_column(Integer, primary_key=True)
    part: Mapped[str] = mapped_column(String(16), primary_key=True)


class VolunteerAccount(Base):
    """A channel account of a volunteer: one identity per channel account."""

    __tablename__ = "volunteer_accounts"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteers.id", ondelete="CASCADE"))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VolunteerCode(Base):
    """A one-time code: a community's invitation, or a link of another channel account.

    An invitation (``kind`` invite) names its community and approves at once; a link
    code (``kind`` link) is sent to the volunteer's known account and names the new
    account that may use it. Either is used once (``used_at``) and expires.
    """

    __tablename__ = "volunteer_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    community: Mapped[str] = mapped_column(String(64), default="")
    volunteer_id: Mapped[int | None] = mapped_column(
        ForeignKey("volunteers.id", ondelete="CASCADE"), nullable=True
    )
    channel: Mapped[str] = mapped_column(String(32), default="")
    user_id: Mapped[str] = mapped_column(String(128), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ClaimStatus(enum.StrEnum):
    """A volunteer's hold on a place of an item."""

    active = "active"
    withdrawn = "withdrawn"
    done = "done"


class ItemClaim(Base):
    """A volunteer's place on a service item, with its reminder (a durable due row).

    The reminder is claimed under a lease like appointment reminders
    (integration.volunteer_reminders); ``hours`` are counted when the item is done.
    """

    __tablename__ = "item_claims"
    __table_args__ = (
        UniqueConstraint("item_id", "volunteer_id", name="uq_item_claims_item_volunteer"),
        Index("ix_item_claims_remind", "reminded_at", "remind_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("service_items.id", ondelete="CASCADE"))
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=ClaimStatus.active.value)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    hours: Mapped[float] = mapped_column(Float, default=0.0)
    note: Mapped[str] = mapped_column(Text, default="")
    photo: Mapped[str] = mapped_column(String(512), default="")
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    remind_lease: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
