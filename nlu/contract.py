"""The NLU contract's names (docs: shared/design/intents.md), used as written there."""

from __future__ import annotations

CONVERSATION_INTENTS = (
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "help",
    "human_handoff",
    "out_of_scope",
)
REPORT_CATEGORIES = (
    "noise",
    "sanitation",
    "street_order",
    "parking",
    "facility",
    "greenery",
    "property",
    "construction",
    "safety",
)
REPORT_INTENTS = tuple(f"report_{category}" for category in REPORT_CATEGORIES)
SERVICE_INTENTS = (
    "book_appointment",
    "cancel_appointment",
    "proxy_service",
    "ask_service_info",
    "request_home_service",
    "check_status",
    "rate_service",
)
VOLUNTEER_INTENTS = (
    "volunteer_register",
    "volunteer_browse",
    "volunteer_claim",
    "volunteer_complete",
)
INTENTS = CONVERSATION_INTENTS + REPORT_INTENTS + SERVICE_INTENTS + VOLUNTEER_INTENTS
ENTITIES = ("address", "time", "phone", "service")
