"""Grid workers (网格员) in chat: who is one, and closing a case on the spot.

A grid account (console role ``grid``) carries a grid id (``StaffAccount.grid``, e.g.
G-3-07). Linked to a chat account by the staff link code (integration.handoff,
handlers.flows.staff_link), that chat is the grid worker's: their reports carry the
grid id and skip the confirmation step (handlers.flows.complaint), and they may close
the cases assigned to them with a photo (handlers.flows.grid_close).

"Assigned to them" means: a case filed in their grid (``Case.grid`` equal to their
account's grid id), by them or by another worker of the same grid. A resident's case
has no grid and is assigned to nobody here: the desk closes it. The close goes through
``CaseBook.change_status`` with a note, keeps the photo as the case's media, and is
written to the audit log as the grid account's action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, literal_column, select

from console.audit import Actor, AuditLog
from integration.cases import CaseBook, CaseView
from integration.db import autocommit, fetch_rows
from integration.errors import CaseNotFound, IntegrationError, InvalidTransition
from integration.lifecycle import can_move
from integration.models import CaseStatus, StaffAccount, StaffChat, StaffRole


@dataclass(frozen=True, slots=True)
class GridWorker:
    """A linked grid worker: their console account name, grid id, community and chat."""

    username: str
    grid: str
    community: str
    channel: str
    chat_id: str


class GridRefused(IntegrationError):
    """A grid worker may not close this case; ``reason`` is the catalogue key's last part.

    ``not_found`` (no such case), ``unassigned`` (a case with no grid), ``not_yours``
    (another grid's case) or ``finished`` (already closed or rejected).
    """

    def __init__(self, reason: str, number: str) -> None:
        super().__init__(f"{number}: {reason}")
        self.reason = reason
        self.number = number


# Is this chat an active grid worker's? Asked once in every conversation, so built once
# (see integration.case_reads): ``channel`` and ``chat_id`` go in as parameters.
_WORKER = (
    select(StaffAccount.username, StaffAccount.grid, StaffAccount.community)
    .join(StaffChat, StaffChat.staff == StaffAccount.username)
    .where(StaffChat.channel == bindparam("channel"), StaffChat.chat_id == bindparam("chat_id"))
    .where(StaffAccount.role == literal_column(f"'{StaffRole.grid.value}'"))
    .where(StaffAccount.active.is_(True), StaffAccount.grid != literal_column("''"))
)


class GridBook:
    """Grid workers' chats and their on-the-spot closes, over the local case desk."""

    def __init__(self, cases: CaseBook) -> None:
        self._cases = cases
        self._sessions = cases.sessions
        self._reads = autocommit(cases.sessions.kw["bind"])

    async def worker(self, channel: str, chat_id: str) -> GridWorker | None:
        """The active grid worker whose linked chat this is, else None (a resident)."""
        async with self._reads.connect() as connection:
            rows = await fetch_rows(connection, _WORKER, {"channel": channel, "chat_id": chat_id})
        if not rows:
            return None
        row = rows[0]
        return GridWorker(row.username, row.grid, row.community, channel, chat_id)

    async def assigned(self, worker: GridWorker, number: str) -> CaseView:
        """The case when ``worker`` may close it now; ``GridRefused`` saying why not."""
        try:
            case = await self._cases.get(number)
        except CaseNotFound:
            raise GridRefused("not_found", number.upper()) from None
        if not case.grid:
            raise GridRefused("unassigned", case.number)
        if case.grid != worker.grid:
            raise GridRefused("not_yours", case.number)
        if not can_move(case.status, CaseStatus.closed):
            raise GridRefused("finished", case.number)
        return case

    async def close(
        self, worker: GridWorker, number: str, note: str, media: Sequence[tuple[str, str, str]]
    ) -> CaseView:
        """Close an assigned case with its photo and a note; audited as the worker's act."""
        case = await self.assigned(worker, number)
        try:
            closed = await self._cases.change_status(
                case.number,
                CaseStatus.closed,
                note,
                actor=f"grid:{worker.username}",
                # the reporter is told unless it is the worker who closes it
                notify_reporter=(case.channel, case.chat_id) != (worker.channel, worker.chat_id),
                media=media,
            )
        except InvalidTransition:  # closed meanwhile by someone else
            raise GridRefused("finished", case.number) from None
        await AuditLog(self._sessions).write(
            Actor(worker.username, StaffRole.grid.value, "chat"),
            "case.grid_close",
            case.number,
            {"status": case.status.value, "media": case.media_count},
            {"status": closed.status.value, "media": closed.media_count, "note": note},
        )
        return closed
