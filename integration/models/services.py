"""The services beside cases: window appointments, errands on a resident's behalf (代办)
and help at home as service items, and the volunteers who claim them."""

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
from sqlalchemy.orm import Mapped, mapped_column

from integration.models.base import Base, BigId, UTCDateTime, utcnow


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
    __table_args__ = (
        Index("ix_service_items_status", "status", "created_at"),
        # A resident's own requests (我的进度).
        Index("ix_service_items_requester", "channel", "user_id"),
    )

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


# How much of a volunteer's own words about their skills is kept.
SKILL_NOTE_LIMIT = 100


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
    # The volunteer's own words for skills the list has no name for (会开车, 会拍照),
    # phone and ID numbers masked (migration 0016).
    skill_note: Mapped[str] = mapped_column(String(SKILL_NOTE_LIMIT), default="", server_default="")
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
