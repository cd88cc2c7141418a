"""Status queries: a resident's open cases (reported or joined), or one case by number."""

from __future__ import annotations

import re

from handlers.catalog import Catalog
from handlers.flows.base import CaseDesk, Turn
from handlers.messages import Outbound
from handlers.state import ConversationState
from integration.cases import CaseView
from integration.errors import CaseNotFound
from integration.privacy import mask_personal

CASE_NUMBER = re.compile(r"(?<![A-Za-z0-9])YM\d{10,}(?!\d)", re.IGNORECASE)


class StatusFlow:
    """Answers 我的进度 with every open case and its latest status, or the typed case."""

    name = "status"

    def __init__(self, desk: CaseDesk, catalog: Catalog) -> None:
        self._desk = desk
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Answer in one message; the conversation stays idle."""
        inbound = turn.inbound
        match = CASE_NUMBER.search(turn.text)
        if match:
            number = match.group().upper()
            try:
                case = await self._desk.get(number)
            except CaseNotFound:
                case = None
            # Only the resident who reported a case, or joined it, may read it here.
            if case is None or not case.readable_by(inbound.channel, inbound.chat_id):
                return [Outbound(self._t("status_query.not_found", number=number))]
            return [Outbound(self._detail(case, (inbound.channel, inbound.chat_id)))]
        cases = await self._desk.open_cases(inbound.channel, inbound.user_id)
        if not cases:
            return [Outbound(self._t("status_query.none"))]
        lines = [self._t("status_query.header", count=len(cases))]
        lines += [self._line(c, (inbound.channel, inbound.chat_id)) for c in cases]
        return [Outbound("\n".join(lines))]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """A one-message flow is never resumed; answer afresh."""
        return await self.start(turn, state)

    def _line(self, case: CaseView, chat: tuple[str, str]) -> str:
        joined = (case.channel, case.chat_id) != chat
        last_note = note_for(case, chat)
        note = self._t("status_query.line_note", note=last_note) if last_note else ""
        return self._t(
            "status_query.line",
            number=case.number,
            category=self._t(f"category.{case.category}"),
            status=self._t(f"status.{case.status.value}"),
            address=case.address,
            note=note,
            followed=self._t("status_query.followed") if joined else "",
        )

    def _detail(self, case: CaseView, chat: tuple[str, str]) -> str:
        last_note = note_for(case, chat)
        note = self._t("status_query.note_line", note=last_note) if last_note else ""
        return self._t(
            "status_query.detail",
            number=case.number,
            category=self._t(f"category.{case.category}"),
            status=self._t(f"status.{case.status.value}"),
            address=case.address,
            note=note,
        ).rstrip()


def note_for(case: CaseView, chat: tuple[str, str]) -> str:
    """The case's latest staff note as ``chat`` may read it: whole for the reporter,
    with phone and ID numbers masked for a follower (the note may be for the reporter)."""
    if (case.channel, case.chat_id) == chat:
        return case.last_note
    return mask_personal(case.last_note)
