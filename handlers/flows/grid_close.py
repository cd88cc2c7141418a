"""A grid worker (网格员) closes a case assigned to them, on the spot, with a photo.

Started by the ``CLOSE`` trigger (结案 YM2612040001 / 办结…). From a chat that is not a
linked grid worker's the flow declines, and the message is routed as before. The case
must be assigned to the worker (integration.grid: filed in their grid); otherwise the
answer says why and nothing changes. Then the worker sends a photo of the finished
work, and the case is closed with it (step ``photo``); 取消 leaves it as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from handlers.catalog import Catalog
from handlers.flows.base import HANDOFF_INTENT, STANDARD_INTERRUPTS, Declined, Expect, Turn
from handlers.flows.report_slots import has_images
from handlers.messages import Outbound
from handlers.state import ConversationState
from handlers.words import clean, words
from integration.cases import CaseView
from integration.grid import GridRefused, GridWorker

CLOSE = words("grid_close", r"(结案|办结|销案|关闭工单)")
_NUMBER = re.compile(r"ym\d{8,}")
# While the photo is awaited, only these interrupt: a worker's 好了 / 弄完了 is not a
# volunteer's report or a new complaint, and is asked for the photo again.
_INTERRUPTS = {
    intent: paused
    for intent, paused in STANDARD_INTERRUPTS.items()
    if intent in (HANDOFF_INTENT, "check_status", "help", "goodbye")
}


class GridDesk(Protocol):
    """Grid workers and their closes (integration.grid.GridBook)."""

    async def worker(self, channel: str, chat_id: str) -> GridWorker | None:
        """The linked grid worker of this chat, or None."""
        ...

    async def assigned(self, worker: GridWorker, number: str) -> CaseView:
        """The case when the worker may close it; raises ``GridRefused``."""
        ...

    async def close(
        self, worker: GridWorker, number: str, note: str, media: Sequence[tuple[str, str, str]]
    ) -> CaseView:
        """Close it with the photo; raises ``GridRefused``."""
        ...


class GridCloseFlow:
    """结案 <number>, then a photo: a grid worker closes an assigned case."""

    name = "grid_close"

    def __init__(self, grid: GridDesk, catalog: Catalog) -> None:
        self._grid = grid
        self._t = catalog

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """Check the worker and the case; ask for the photo (or close with one sent)."""
        inbound = turn.inbound
        worker = await self._grid.worker(inbound.channel, inbound.chat_id)
        if worker is None:
            raise Declined
        found = _NUMBER.search(clean(turn.text))
        if found is None:
            return [Outbound(self._t("grid.which_case"))]
        try:
            case = await self._grid.assigned(worker, found.group())
        except GridRefused as refused:
            return [self._refused(refused)]
        state.begin(self.name, "photo", {"number": case.number})
        if has_images(inbound):
            return await self.resume(turn, state)
        return self.ask(state)

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        """A photo closes the case; anything else is asked for one again."""
        inbound = turn.inbound
        if not has_images(inbound):
            return [Outbound(self._t("grid.photo_again"))]
        worker = await self._grid.worker(inbound.channel, inbound.chat_id)
        number = state.slots["number"]
        state.finish()
        if worker is None:  # unlinked meanwhile: nothing is closed
            return [Outbound(self._t("grid.refused.not_yours", number=number))]
        media = [(m.kind, m.ref, m.url) for m in inbound.media if m.kind == "image"]
        note = self._t("grid.close_note", staff=worker.username, grid=worker.grid)
        try:
            await self._grid.close(worker, number, note, media)
        except GridRefused as refused:
            return [self._refused(refused)]
        return [Outbound(self._t("grid.closed", number=number))]

    def expect(self, state: ConversationState) -> Expect:
        """A photo answers; other text is asked for the photo again."""
        return Expect(media=True, text=True, interrupts=_INTERRUPTS)

    def ask(self, state: ConversationState) -> list[Outbound]:
        """The photo question."""
        return [Outbound(self._t("grid.ask_photo", number=state.slots["number"]))]

    def _refused(self, refused: GridRefused) -> Outbound:
        return Outbound(self._t(f"grid.refused.{refused.reason}", number=refused.number))
