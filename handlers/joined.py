"""A second request joined to the first in one message (我想预约明天办老年证，另外小区
路灯坏了): the pipeline splits it (``Turn.also``), the router does the first, and this
sets the second aside to be taken up once the first is done, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from handlers.catalog import Catalog
from handlers.flows.base import Flow, Turn
from handlers.flows.guide import GuideFlow
from handlers.messages import Outbound
from handlers.state import ConversationState, Frame
from nlu.contract import REPORT_INTENTS


async def then_also(
    flows: Mapping[str, Flow],
    t: Catalog,
    turn: Turn,
    state: ConversationState,
    replies: list[Outbound],
) -> list[Outbound]:
    """The second request joined to the first (``Turn.also``), set aside to be taken
    up once the first is done (said so), or at once when it is done already: a
    report, or a question naming a service (老年证要带什么; not 身份证要带吗, which
    asks about the first request's papers)."""
    also = turn.also
    if also is None:
        return replies
    if also.parse.intent in REPORT_INTENTS:
        complaint = flows.get("complaint")
        if complaint is None:
            return replies
        if state.flow is None:  # the first is done already: the report now
            return replies + await complaint.start(also, state)
        aside = ConversationState(recent=dict(state.recent))  # where it would stand
        await complaint.start(also, aside)
        if aside.flow is None:
            return replies
        frame = Frame(aside.flow, aside.step, aside.slots)
    else:
        guide = flows.get("guide")
        asked = guide.also_asked(also) if isinstance(guide, GuideFlow) else None
        if asked is None:
            return replies
        asked.slots.pop("word", None)
        frame = asked
    state.wait(frame)
    if state.flow is None:
        return replies  # the guide's answer follows at once (the router's ``_after``)
    note = t("chat.also_waits", text=also.text)
    if not replies:
        return [Outbound(note)]
    last = replies[-1]
    return [*replies[:-1], replace(last, text=f"{last.text}\n{note}")]
