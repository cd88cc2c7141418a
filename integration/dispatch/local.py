"""The built-in local dispatch desk: the embedded default platform.

Cases on the local desk live in our own database, where staff move them with
`yimen cases set-status` (and the console). Nothing travels anywhere, so creating a
case needs no outbox job; this adapter exists so the outbox and status sync can treat
every platform alike (for instance, jobs left over after switching back to local).
"""

from __future__ import annotations

from collections.abc import Sequence

from integration.dispatch.types import CaseTicket, Receipt, StatusReport


class LocalDeskPlatform:
    """The desk is our database: a case's platform id is its number."""

    name = "local"
    can_reopen = True
    can_urge = False  # staff read urges on the case itself

    async def create(self, ticket: CaseTicket, *, maybe_sent: bool) -> Receipt:
        """Already on the desk."""
        return Receipt(platform_id=ticket.number)

    async def resolve_token(self, token: str) -> str | None:
        """The desk never hands out tokens."""
        return token

    async def statuses(self, platform_ids: Sequence[str]) -> list[StatusReport]:
        """Desk changes are recorded directly; there is nothing to poll."""
        return []

    async def reopen(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """Reopening on the desk is the status change itself; nothing to send."""

    async def urge(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """Urges are recorded on the case, where desk staff read them; nothing to send."""
