"""Conversation flows: one per capability, each plain code over a ConversationState.

The one registry of flows (``standard_flows``), the intents that start each
(``ROUTES``) and the rule triggers that start one whatever the model says
(``TRIGGERS``). A new flow is added here and nowhere else (see handlers.flows.base).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handlers.catalog import Catalog
from handlers.flows.base import HANDOFF_INTENT, CaseDesk, Flow, RatingDesk, Turn
from handlers.flows.booking import BookingFlow
from handlers.flows.booking_slots import AppointmentDesk
from handlers.flows.chat import ChatFlow
from handlers.flows.complaint import ComplaintFlow, Places
from handlers.flows.contact import CHANGE_PHONE, FORGET_PHONE, ContactFlow, Contacts
from handlers.flows.grid_close import CLOSE, GridCloseFlow, GridDesk
from handlers.flows.guide import GuideFlow
from handlers.flows.guide_match import GUIDE_WORDS, OPENING, QUESTION
from handlers.flows.handoff import HandoffDesk, HandoffFlow
from handlers.flows.home import HomeFlow, ItemDesk
from handlers.flows.home_withdraw import WITHDRAW_HOME, HomeWithdrawFlow
from handlers.flows.proxy import ProxyFlow
from handlers.flows.rating import RATING_WORDS, RatingFlow
from handlers.flows.rebooking import RebookingFlow
from handlers.flows.staff_link import LINK, StaffLinkFlow
from handlers.flows.status import DesksUnderWay, StatusFlow, UnderWayDesk
from handlers.flows.volunteer import RegisterFlow
from handlers.flows.volunteer_done import (
    CONFIRM_WORDS,
    CONSENT_WORDS,
    RECORD_WORDS,
    CompleteFlow,
    ConfirmFlow,
    ConsentFlow,
    RecordFlow,
)
from handlers.flows.volunteer_items import (
    MINE,
    WITHDRAW,
    BrowseFlow,
    ClaimFlow,
    ItemClaims,
    WithdrawFlow,
)
from handlers.flows.volunteer_steps import VolunteerDesk
from handlers.words import NO, REPORT_REQUEST, YES, AnyOf, Brief, Matcher, words
from integration.contacts import MemoryContacts
from integration.items_memory import MemoryItems
from integration.services import ServiceCatalogue, load_catalogue
from nlu.contract import REPORT_INTENTS

# Intent -> the name of the flow it starts. Intents not listed go to DEFAULT_FLOW.
ROUTES: Mapping[str, str] = {
    **dict.fromkeys(REPORT_INTENTS, "complaint"),
    "report": "complaint",  # the menu's 我要反映, before the resident says what
    "check_status": "status",
    "rate_service": "rating",
    "ask_service_info": "guide",
    "book_appointment": "booking",
    "cancel_appointment": "rebooking",
    "proxy_service": "proxy",
    "request_home_service": "home",
    "volunteer_register": "volunteer_register",
    "volunteer_browse": "volunteer_browse",
    "volunteer_claim": "volunteer_claim",
    "volunteer_complete": "volunteer_complete",
    HANDOFF_INTENT: "handoff",
}
DEFAULT_FLOW = "chat"


@dataclass(frozen=True, slots=True)
class Trigger:
    """Words that start a flow in an idle conversation, before the intent is looked at."""

    matcher: Matcher
    flow: str

    def fires(self, turn: Turn) -> bool:
        """Whether the message carries the trigger's words."""
        return bool(turn.text) and self.matcher.search(turn.text)


# CASE_NUMBER over the clean (lower-cased, unpunctuated) text.
_CASE_NUMBER = words("case_number", r"(?<![a-z0-9])ym\d{10,}(?!\d)")


TRIGGERS: tuple[Trigger, ...] = (
    Trigger(LINK, "staff_link"),  # 绑定123456: a staff member links this chat
    Trigger(CLOSE, "grid_close"),  # 结案 YM…: a linked grid worker closes a case (else declined)
    Trigger(_CASE_NUMBER, "status"),  # a typed case number asks about that case
    Trigger(AnyOf("phone_words", (FORGET_PHONE, CHANGE_PHONE)), "contact"),  # 忘记我的电话
    Trigger(WITHDRAW_HOME, "home_withdraw"),  # 取消上门服务: not a new request
    Trigger(REPORT_REQUEST, "complaint"),
    Trigger(RECORD_WORDS, "volunteer_record"),  # 我的服务记录
    Trigger(WITHDRAW, "volunteer_withdraw"),  # 这个我去不了了
    Trigger(MINE, "volunteer_browse"),  # 我报了几个: a volunteer's held items (else declined)
    Trigger(CONFIRM_WORDS, "volunteer_confirm"),  # 确认完成 5分, after a volunteer's visit
    Trigger(CONSENT_WORDS, "volunteer_consent"),  # 同意告知电话, once a volunteer is coming
    Trigger(RATING_WORDS, "rating"),  # 满意 / 1分 / 根本没修好: answers a pending question
    Trigger(Brief("yes_or_no", AnyOf("yes_or_no", (YES, NO)), 6), "rating"),  # 嗯 after a push
    # A question the model took for small talk that names a service (退役军人优待证怎么办);
    # the guide declines any other. Last: a declined trigger ends the search.
    Trigger(GUIDE_WORDS, "guide"),  # 办事指南 / 我想办个事, typed
    Trigger(QUESTION, "guide"),
    Trigger(OPENING, "guide"),  # 明天几点开门 / 你们街道办在哪, read as small talk
)


def standard_flows(
    desk: CaseDesk,
    catalog: Catalog,
    places: Places | None = None,
    ratings: RatingDesk | None = None,
    services: ServiceCatalogue | None = None,
    appointments: AppointmentDesk | None = None,
    contacts: Contacts | None = None,
    items: ItemDesk | None = None,
    handoffs: HandoffDesk | None = None,
    volunteers: VolunteerDesk | None = None,
    *,
    reminder_hour: int = 16,
    grid: GridDesk | None = None,
    under_way: UnderWayDesk | None = None,
) -> dict[str, Flow]:
    """Every flow by the name the router knows it by.

    ``handoffs`` is where conversations handed to a person are recorded: with it,
    ``handoff`` holds the conversation for staff (handlers.flows.handoff); without it
    (no staff behind this pipeline) 转人工 is answered with ``chat.human``.
    ``services`` is the service catalogue (the shipped one when not given). Without
    an ``appointments`` desk, booking requests get the guide's answer (the window to go
    to). ``contacts`` keeps residents' phones and ``items`` help-at-home requests (in
    process memory when not given). Without ``volunteers`` (the volunteer stores), the
    volunteer intents get the chat's answer. With ``grid`` (integration.grid), linked
    grid workers' reports skip the confirmation and they may close their cases by chat.
    ``under_way`` finds a resident's bookings and help-at-home requests for 我的进度
    (the two desks asked in turn when not given).
    """
    chat = ChatFlow(catalog)
    services = services or load_catalogue()
    contacts = contacts or MemoryContacts()
    booking = (
        BookingFlow(services, appointments, catalog, reminder_hour)
        if appointments is not None
        else None
    )
    guide = GuideFlow(services, catalog, fallback=chat, booking=booking)
    proxy = ProxyFlow(desk, services, catalog, contacts, guide.matcher)
    guide.proxy, proxy.guide = proxy, guide
    if booking is not None:
        booking.proxy, booking.guide = proxy, guide
    items = items or MemoryItems()
    under_way = under_way or DesksUnderWay(appointments, items)
    status = StatusFlow(desk, catalog, under_way=under_way, services=services, ratings=ratings)
    flows: dict[str, Flow] = {}
    if volunteers is not None:
        claims = ItemClaims(volunteers, catalog)
        browse = BrowseFlow(volunteers, catalog, claims)
        flows = {
            "volunteer_register": RegisterFlow(volunteers, catalog),
            "volunteer_browse": browse,
            "volunteer_claim": ClaimFlow(claims, browse),
            "volunteer_withdraw": WithdrawFlow(volunteers, catalog),
            "volunteer_complete": CompleteFlow(volunteers, catalog),
            "volunteer_confirm": ConfirmFlow(volunteers, catalog),
            "volunteer_consent": ConsentFlow(volunteers, catalog),
            "volunteer_record": RecordFlow(volunteers, catalog),
        }
    return flows | {
        "booking": booking or guide,
        "rebooking": RebookingFlow(services, appointments, catalog) if appointments else chat,
        "complaint": ComplaintFlow(desk, catalog, places, grid),
        "guide": guide,
        "proxy": proxy,
        "home": HomeFlow(items, catalog, contacts),
        "home_withdraw": HomeWithdrawFlow(items, catalog),
        "contact": ContactFlow(contacts, catalog),
        "status": status,
        "rating": RatingFlow(ratings, catalog),
        "handoff": HandoffFlow(handoffs, catalog, status) if handoffs is not None else chat,
        **({"staff_link": StaffLinkFlow(handoffs, catalog, grid)} if handoffs is not None else {}),
        **({"grid_close": GridCloseFlow(grid, catalog)} if grid is not None else {}),
        "chat": chat,
    }
