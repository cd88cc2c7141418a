"""Delivers queued status pushes to residents on the channel they used.

The queue lives in the relational store (integration.notifications), so a push
queued by any process (the staff CLI, the console, a platform callback) is delivered
by whichever running process serves that channel.

No chat can hold up another: each chat with due pushes gets a lane of its own (a task
sending that chat's pushes one after another, oldest first), and the pump's pass only
claims pushes and hands them to lanes, never waiting for a send. Every send is bounded
by ``send_timeout``; a push that times out or fails stays queued and is tried again
later, and the chat's later pushes wait behind it so they still arrive in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from handlers.catalog import Catalog
from handlers.flows.handoff import handback_buttons
from handlers.flows.rating import rating_buttons
from handlers.messages import Button, Channel, DeliveryError, Outbound
from integration.cases import local_minute
from integration.metrics import PUSH_FAILURES
from integration.models import NotificationKind
from integration.notifications import NotificationQueue, PendingPush

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """What the pump is doing, for /healthz and metrics.

    ``stalled`` is true when no pass has finished for ``stall_after`` seconds while
    the pump runs, or when a send has been going on for longer than its timeout
    allows (which a working timeout never lets happen).
    """

    running: bool
    last_pass: datetime | None  # when the last pass finished
    last_pass_age: float | None  # seconds since then
    chats: int  # chats with pushes in hand
    sending: int  # pushes being sent right now
    longest_send: float  # seconds the oldest send in flight has taken so far
    stalled: bool

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return {
            "running": self.running,
            "last_pass": self.last_pass.isoformat() if self.last_pass else None,
            "last_pass_age": round(self.last_pass_age, 3)
            if self.last_pass_age is not None
            else None,
            "chats": self.chats,
            "sending": self.sending,
            "longest_send": round(self.longest_send, 3),
            "stalled": self.stalled,
        }


@dataclass(slots=True)
class _Lane:
    """One chat's pushes in hand, sent in order by one task."""

    pending: deque[PendingPush] = field(default_factory=deque)
    task: asyncio.Task[int] | None = None


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
        send_timeout: float = 30.0,
        lease: float = 60.0,
        batch: int = 50,
        max_chats: int = 200,
        stall_after: float | None = None,
    ) -> None:
        if send_timeout >= lease:
            # A send outliving its lease could be claimed and sent again by another pass.
            raise ValueError("a push's send timeout must be shorter than its lease")
        self._queue = queue
        self._channels = channels
        self._t = catalog
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._offline_retry = offline_retry
        self._send_timeout = send_timeout
        self._lease = lease
        self._batch = batch
        self._max_chats = max_chats
        # No finished pass for this long while running means the pump is stuck.
        self._stall_after = stall_after or max(30.0, 10 * poll_interval)
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._running = False
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._held: set[int] = set()  # ids of pushes in some lane
        self._sending: dict[int, float] = {}  # push id -> when its send began (monotonic)
        self._last_pass: tuple[float, datetime] | None = None
        self._started = 0.0  # when run began (monotonic)

    def render(self, push: PendingPush) -> Outbound:
        """The resident-facing text of a status change; a resolution also asks for a rating."""
        if push.kind is NotificationKind.reply or push.status is None:
            buttons = tuple(Button(label, payload) for label, payload in push.buttons)
            return Outbound(
                push.text, buttons or handback_buttons(self._t, push.text), data=push.fields
            )
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
        """Stop claiming, let the sends in hand finish, then return from ``run``.

        Stopping rather than cancelling matters: a task cancelled mid-query leaves its
        pooled connection unclosed. Pushes claimed but not sent (the app's grace
        period ran out) are claimed again once their lease ends.
        """
        self._stopping = True
        self._wakeup.set()

    def status(self) -> PumpStatus:
        """How the pump stands now (cheap: no I/O)."""
        now = time.monotonic()
        age = now - self._last_pass[0] if self._last_pass else None
        longest = max((now - began for began in self._sending.values()), default=0.0)
        since = age if age is not None else (now - self._started if self._started else 0.0)
        stalled = self._running and (
            since > self._stall_after or longest > self._send_timeout + 5.0
        )
        return PumpStatus(
            running=self._running,
            last_pass=self._last_pass[1] if self._last_pass else None,
            last_pass_age=age,
            chats=len(self._lanes),
            sending=len(self._sending),
            longest_send=longest,
            stalled=stalled,
        )

    async def deliver_due(self) -> int:
        """Send every due push and wait for the sends; the number delivered."""
        delivered = 0
        while lanes := await self._pass():
            delivered += sum(await asyncio.gather(*lanes))
        await self._settle()
        return delivered

    async def run(self) -> None:
        """Deliver until ``stop``, polling the queue and waking early on ``wake``."""
        self._running, self._started = True, time.monotonic()
        try:
            while not self._stopping:
                try:
                    await self._pass()
                except Exception:  # a database hiccup must not stop delivery for good
                    log.exception("notification pass failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval):
                        await self._wakeup.wait()
                self._wakeup.clear()
            await self._settle()
        finally:
            self._running = False
            # Cancelled (not stopped): the lanes are cancelled too, and awaited, so no
            # send or query is left running on a connection the caller is about to close.
            lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
            for task in lanes:
                task.cancel()
            if lanes:
                await asyncio.gather(*lanes, return_exceptions=True)

    async def _settle(self) -> None:
        """Wait for every lane in hand to finish."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            await asyncio.wait(tasks)

    async def _pass(self) -> list[asyncio.Task[int]]:
        """Claim due pushes and give each to its chat's lane; the lanes it started.

        Never waits for a send, so a chat whose sends hang holds up no other chat.
        """
        started: list[asyncio.Task[int]] = []
        while not self._stopping and len(self._lanes) < self._max_chats:
            pushes = await self._queue.claim_due(
                list(self._channels), limit=self._batch, lease=self._lease
            )
            fresh = [push for push in pushes if push.id not in self._held]
            for push in fresh:
                key = (push.channel, push.chat_id)
                lane = self._lanes.get(key)
                if lane is None:
                    lane = self._lanes[key] = _Lane()
                    lane.task = asyncio.create_task(self._drive(key, lane), name=f"push-{key}")
                    started.append(lane.task)
                lane.pending.append(push)
                self._held.add(push.id)
            if len(pushes) < self._batch or not fresh:
                break
        self._last_pass = (time.monotonic(), datetime.now(UTC))
        return started

    async def _drive(self, key: tuple[str, str], lane: _Lane) -> int:
        """Send one chat's pushes in order; after a failure the rest wait behind it."""
        delivered = 0
        try:
            while lane.pending:
                push = lane.pending[0]
                retry = await self._deliver(push)
                lane.pending.popleft()
                self._held.discard(push.id)
                if retry is None:
                    delivered += 1
                elif retry[0] > 0 and lane.pending:
                    # Keep the chat's order: its later pushes go after this one does.
                    for later in lane.pending:
                        await self._queue.retry_later(
                            later.id, retry[1], retry[0], count_attempt=False
                        )
                        self._held.discard(later.id)
                    lane.pending.clear()
        except Exception:
            log.exception("pushes to %s:%s failed; they will be claimed again", *key)
        finally:
            for push in lane.pending:
                self._held.discard(push.id)
            if self._lanes.get(key) is lane:
                del self._lanes[key]
        return delivered

    async def _deliver(self, push: PendingPush) -> tuple[float, str] | None:
        """Send one push; None when sent, else (the delay before it is tried again,
        or 0 when it has failed for good; the reason)."""
        channel = self._channels[push.channel]
        self._sending[push.id] = time.monotonic()
        try:
            async with asyncio.timeout(self._send_timeout):
                await channel.push(push.chat_id, self.render(push))
        except (DeliveryError, TimeoutError) as exc:
            error = exc if isinstance(exc, DeliveryError) else DeliveryError("send timed out")
            return await self._failed(push, error)
        finally:
            self._sending.pop(push.id, None)
        await self._queue.mark_sent(push.id)
        return None

    async def _failed(self, push: PendingPush, exc: DeliveryError) -> tuple[float, str]:
        outcome = (
            "offline"
            if exc.offline
            else "retry"
            if exc.retryable and push.attempts + 1 < self._max_attempts
            else "failed"
        )
        PUSH_FAILURES.labels(push.channel, outcome).inc()
        if exc.offline:
            await self._queue.retry_later(
                push.id, exc.reason, self._offline_retry, count_attempt=False
            )
            return self._offline_retry, exc.reason
        if exc.retryable and push.attempts + 1 < self._max_attempts:
            delay = min(5.0 * 2**push.attempts, 3600.0)
            log.warning("push %s failed (%s), retrying in %.0fs", push.id, exc.reason, delay)
            await self._queue.retry_later(push.id, exc.reason, delay)
            return delay, exc.reason
        log.error("push %s failed for good: %s", push.id, exc.reason)
        await self._queue.mark_failed(push.id, exc.reason)
        return 0.0, exc.reason
