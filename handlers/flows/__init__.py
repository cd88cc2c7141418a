"""Conversation flows: one per capability, each plain code over a ConversationState."""

from __future__ import annotations

from handlers.catalog import Catalog
from handlers.flows.base import CaseDesk, Flow
from handlers.flows.chat import ChatFlow
from handlers.flows.complaint import ComplaintFlow, Places
from handlers.flows.status import StatusFlow


def standard_flows(
    desk: CaseDesk, catalog: Catalog, places: Places | None = None
) -> dict[str, Flow]:
    """Every flow by the name the router knows it by."""
    return {
        "complaint": ComplaintFlow(desk, catalog, places),
        "status": StatusFlow(desk, catalog),
        "chat": ChatFlow(catalog),
    }
