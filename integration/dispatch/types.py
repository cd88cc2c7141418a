"""What travels between the outbox, status sync and a dispatch platform."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from integration.models import CaseStatus


@dataclass(frozen=True, slots=True)
class CaseTicket:
    """A case as a platform receives it. ``key`` is the same on every attempt."""

    key: str
    number: str
    category: str
    description: str
    address: str
    latitude: float | None
    longitude: float | None
    media_urls: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Receipt:
    """The platform's answer to a create: its id, or a token to exchange for one later."""

    platform_id: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A case's status as the platform reports it.

    ``updated_at`` is the platform's own time of the change: reports older than the
    last one applied are stale. ``reference`` is our case number, when echoed back.
    """

    platform_id: str
    status: CaseStatus
    note: str = ""
    updated_at: datetime | None = None
    reference: str | None = None


class DispatchPlatform(Protocol):
    """Where cases are classified, dispatched, tracked and evaluated.

    ``can_reopen`` says whether ``reopen`` works; when it does not, a resident's
    dissatisfaction is raised to staff instead. ``can_urge`` says whether ``urge``
    works; when it does not, a resident's 催办 is kept for staff alone.
    """

    name: str
    can_reopen: bool
    can_urge: bool

    async def create(self, ticket: CaseTicket, *, maybe_sent: bool) -> Receipt:
        """Create the case, exactly once: ``maybe_sent`` means an earlier attempt may
        have reached the platform, so a platform without idempotency keys must look
        the case up before creating it again."""
        ...

    async def resolve_token(self, token: str) -> str | None:
        """The platform id a create token stands for; None while it is not ready."""
        ...

    async def statuses(self, platform_ids: Sequence[str]) -> list[StatusReport]:
        """The current status of each case the platform knows (unknown ids are left out)."""
        ...

    async def reopen(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """Reopen a resolved case; raises ``DispatchUnsupported`` when impossible."""
        ...

    async def urge(self, platform_id: str, key: str, number: str, comment: str) -> None:
        """Pass on a resident's 催办 of an open case, in their (masked) words."""
        ...
