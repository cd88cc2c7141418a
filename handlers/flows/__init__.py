"""Conversation flows: one per capability, each plain code over a ConversationState."""

from __future__ import annotations

from handlers.catalog import Catalog
from handlers.flows.base import CaseDesk, Flow, RatingDesk
from handlers.flows.chat import ChatFlow
from handlers.flows.complaint import ComplaintFlow, Places
from handlers.flows.rating import RatingFlow
from handlers.flows.status import StatusFlow


def standard_flows(
    desk: CaseDesk,
    catalog: Catalog,
    places: Places | None = None,
    ratings: RatingDesk | None = None,
) -> dict[str, Flow]:
    """Every flow by the name the router knows it by."""
    return {
        "complaint": ComplaintFlow(desk, catalog, places),
        "status": StatusFlow(desk, catalog),
        "rating": RatingFlow(ratings, catalog),
        "chat": ChatFlow(catalog),
    }
