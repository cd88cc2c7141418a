"""The case status lifecycle: which changes are allowed.

received → accepted → dispatched → in_progress → resolved → closed along the main
line, where platforms may skip steps forward but never go back; ``rejected`` ends an
open case; ``reopened`` revives a resolved, closed or rejected one, after which it
moves forward again from ``accepted``.
"""

from __future__ import annotations

from integration.models import CaseStatus

MAIN_LINE = (
    CaseStatus.received,
    CaseStatus.accepted,
    CaseStatus.dispatched,
    CaseStatus.in_progress,
    CaseStatus.resolved,
    CaseStatus.closed,
)
OPEN = frozenset(
    {
        CaseStatus.received,
        CaseStatus.accepted,
        CaseStatus.dispatched,
        CaseStatus.in_progress,
        CaseStatus.reopened,
    }
)
FINISHED = frozenset({CaseStatus.resolved, CaseStatus.closed, CaseStatus.rejected})


def can_move(current: CaseStatus, new: CaseStatus) -> bool:
    """Whether a case in ``current`` may move to ``new``."""
    if new == CaseStatus.rejected:
        return current in OPEN
    if new == CaseStatus.reopened:
        return current in FINISHED
    if current == CaseStatus.reopened:
        return new in MAIN_LINE[1:]
    if current in MAIN_LINE:
        return MAIN_LINE.index(new) > MAIN_LINE.index(current)
    return False
