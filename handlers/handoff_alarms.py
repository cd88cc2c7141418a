"""Service-level alarms of handoffs: one note to the on-duty staff member's own chat.

A handoff waiting past its service level (integration.handoff) is claimed under a
lease like a booking reminder, and marked alarmed in the transaction that queues the
note, so a restart loses none and sends none twice. The console flags it whether or
not anyone on duty has linked a chat.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from handlers.catalog import Catalog
from handlers.reminders import INTERVAL, run_every
from integration.handoff import DueAlarm, HandoffBook


class HandoffAlarms:
    """Turns handoffs waiting too long into alarms (and queued notes to the on-duty chat)."""

    def __init__(self, book: HandoffBook, catalog: Catalog) -> None:
        self._book = book
        self._t = catalog

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim what is overdue and raise its alarm; how many were raised."""
        now = now or datetime.now(UTC)
        raised = 0
        for alarm in await self._book.claim_alarms(now):
            if await self._book.raise_alarm(alarm, self.render(alarm, now), now):
                raised += 1
        return raised

    async def run(self, stop: asyncio.Event, interval: float = INTERVAL / 4) -> None:
        """``run_once`` every ``interval`` seconds until ``stop`` is set."""
        await run_every(self.run_once, stop, interval, "handoff alarms")

    def render(self, alarm: DueAlarm, now: datetime) -> str:
        """The note the on-duty member reads in their own chat."""
        handoff = alarm.handoff
        return self._t(
            "handoff.alarm",
            channel=self._t.get(f"handoff.channel.{handoff.channel}", handoff.channel),
            minutes=int(handoff.waited(now).total_seconds() // 60),
            reason=reason_label(self._t, handoff.reason, handoff.detail),
        )


def reason_label(t: Catalog, reason: str, detail: str) -> str:
    """Why a conversation went to a person, as staff read it (规则触发：火情「着火」)."""
    label = t.get(f"handoff.reason.{reason}", reason)
    if reason == "rule" and detail:
        rule, _, found = detail.partition(":")
        return f"{label}：{t.get(f'handoff.rule.{rule}', rule)}「{found}」"
    return label
