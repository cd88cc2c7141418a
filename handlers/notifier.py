"""Delivers queued status pushes to residents on the channel they used.

The queue lives in the relational store (integration.notifications), so a push
queued by any process (the staff CLI, the console, a platform callback) is delivered
by whichever running process serves that channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from handlers.catalog import Catalog
from handlers.flows.rating import rating_buttons
from handlers.messages import Channel, DeliveryError, Outbound
from integration.cases import local_minute
from integration.models import NotificationKind
from integration.notifications import NotificationQueue, PendingPush

log = logging.getLogger(__name__)


class NotificationPump:
    """Claims due pushes for the channels this process serves and sends them."""

    def __init__(
        self,
        queue: NotificationQueue,
        channels: Mapping[str, Channel[Any]],
        catalog: Catalog,
        *,
        poll_interval: float = 1.0,
        max_attempts: int = 10,
        offline_retry: float = 30.0,
    ) -> None:
        self._queue = queue
        self._channels = channels
        self._t = catalog
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._offline_retry = offline_retry
        self._wakeup = asyncio.Event()
        self._stopping = False

    def render(self, push: PendingPush) -> Outbound:
        """The resident-facing text of a status change; a resolution also asks for a rating."""
        if push.kind is NotificationKind.reply or push.status is None:
            return Outbound(push.text)
        category = self._t(f"category.{push.category}")
        if push.kind is NotificationKind.reminder:
            text = self._t("rating.reminder", number=push.case_number, category=category)
            return Outbound(text, rating_buttons(self._t, push.case_number))
        status = self._t(f"status.{push.status.value}")
        time = local_minute(push.changed_at)
        text = self._t(
            "push.status",
            number=push.case_number,
            category=category,
            status=status,
            note=push.note,
            time=time,
        )
        text = "\n".join(line for line in text.splitlines() if line.strip())
        # The same facts as fields, for channels that send a template (WeChat, off-window).
        data = (
            ("number", push.case_number),
            ("status", status),
            ("note", push.note),
            ("time", time),
        )
        if push.kind is NotificationKind.rating:
            return Outbound(
                f"{text}\n{self._t('rating.ask')}",
                rating_buttons(self._t, push.case_number),
                data=data,
            )
        return Outbound(text, data=data)

    def wake(self) -> None:
        """Look for due pushes now instead of at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the batch in hand, then return from ``run``.

        Stopping rather than cancelling matters: a task cancelled mid-query leaves its
        pooled connection unclosed. Pushes claimed by a pass cut short (the app's grace
        period ran out) are claimed again once their lease ends.
        """
        self._stopping = True
        self._wakeup.set()

    async def deliver_due(self) -> int:
        """One pass: send every due push; the number delivered."""
        return await self._pass(stoppable=False)

    async def run(self) -> None:
        """Deliver until ``stop``, polling the queue and waking early on ``wake``."""
        while not self._stopping:
            try:
                await self._pass(stoppable=True)
            except Exception:  # a database hiccup must not stop delivery for good
                log.exception("notification pass failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def _pass(self, *, stoppable: bool) -> int:
        delivered = 0
        while pushes := await self._queue.claim_due(list(self._channels)):
            # Chats are served side by side (a channel's rate limiter paces them); each
            # chat's pushes go one after another, oldest first, so they arrive in order.
            by_chat: dict[tuple[str, str], list[PendingPush]] = {}
            for push in pushes:
                by_chat.setdefault((push.channel, push.chat_id), []).append(push)
            counts = await asyncio.gather(*(self._deliver_in_order(c) for c in by_chat.values()))
            delivered += sum(counts)
            if stoppable and self._stopping:
                break  # the batch in hand is finished; the rest waits for the next run
        return delivered

    async def _deliver_in_order(self, pushes: list[PendingPush]) -> int:
        delivered = 0
        for push in pushes:
            delivered += await self._deliver(push)
        return delivered

    async def _deliver(self, push: PendingPush) -> int:
        channel = self._channels[push.channel]
        try:
            await channel.push(push.chat_id, self.render(push))
        except DeliveryError as exc:
            if exc.offline:
                await self._queue.retry_later(
                    push.id, exc.reason, self._offline_retry, count_attempt=False
                )
            elif exc.retryable and push.attempts + 1 < self._max_attempts:
                delay = min(5.0 * 2**push.attempts, 3600.0)
                log.warning("push %s failed (%s), retrying in %.0fs", push.id, exc.reason, delay)
                await self._queue.retry_later(push.id, exc.reason, delay)
            else:
                log.error("push %s failed for good: %s", push.id, exc.reason)
                await self._queue.mark_failed(push.id, exc.reason)
            return 0
        await self._queue.mark_sent(push.id)
        return 1
