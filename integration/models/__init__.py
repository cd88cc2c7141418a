"""SQLAlchemy models: residents, conversations, messages, cases and their history, the
services beside cases, and staff.

The same models serve SQLite (embedded default) and PostgreSQL; Alembic migrations
under integration/migrations/ create them. Times are stored in UTC. The tables live in
four modules; every model is importable from here, as before the split:

- ``base``: the declarative base and the shared column types;
- ``cases``: residents, conversations, messages, cases and the forwarding outbox;
- ``services``: appointments, service items (代办, help at home) and volunteers;
- ``staff``: handoffs, staff accounts and sessions, the audit trail, NLU corrections.
"""

from integration.models.base import (
    Base,
    BigId,
    UTCDateTime,
    utcnow,
)
from integration.models.cases import (
    CallbackReceipt,
    Case,
    CaseCounter,
    CaseEvent,
    CaseFollower,
    CaseMedia,
    CaseStatus,
    CaseUrge,
    Conversation,
    Direction,
    MediaUpload,
    Message,
    Notification,
    NotificationKind,
    NotificationState,
    OutboxJob,
    OutboxKind,
    OutboxState,
    Rating,
    Resident,
)
from integration.models.services import (
    Appointment,
    AppointmentCounter,
    AppointmentSlot,
    AppointmentStatus,
    ClaimStatus,
    ItemClaim,
    ItemStatus,
    ProxyConsent,
    ServiceItem,
    ServiceItemEvent,
    ServiceItemSkill,
    Volunteer,
    VolunteerAccount,
    VolunteerCode,
    VolunteerSkill,
    VolunteerSlot,
    VolunteerStatus,
)
from integration.models.staff import (
    AuditEntry,
    Handoff,
    HandoffStatus,
    NluCorrection,
    StaffAccount,
    StaffChat,
    StaffRole,
    StaffSession,
)

__all__ = [
    "Appointment",
    "AppointmentCounter",
    "AppointmentSlot",
    "AppointmentStatus",
    "AuditEntry",
    "Base",
    "BigId",
    "CallbackReceipt",
    "Case",
    "CaseCounter",
    "CaseEvent",
    "CaseFollower",
    "CaseMedia",
    "CaseStatus",
    "CaseUrge",
    "ClaimStatus",
    "Conversation",
    "Direction",
    "Handoff",
    "HandoffStatus",
    "ItemClaim",
    "ItemStatus",
    "MediaUpload",
    "Message",
    "NluCorrection",
    "Notification",
    "NotificationKind",
    "NotificationState",
    "OutboxJob",
    "OutboxKind",
    "OutboxState",
    "ProxyConsent",
    "Rating",
    "Resident",
    "ServiceItem",
    "ServiceItemEvent",
    "ServiceItemSkill",
    "StaffAccount",
    "StaffChat",
    "StaffRole",
    "StaffSession",
    "UTCDateTime",
    "Volunteer",
    "VolunteerAccount",
    "VolunteerCode",
    "VolunteerSkill",
    "VolunteerSlot",
    "VolunteerStatus",
    "utcnow",
]
