"""The dispatch worker: forwards the outbox, polls statuses, sends rating reminders.

Runs inside `yimen run` and alone as `yimen worker`. Forwarding claims due jobs in
batches with a lease and sends them concurrently over the one shared HTTP session;
failures come back with exponential backoff and jitter, and jobs that keep failing
(or that the platform refuses outright) go to the dead-letter list for staff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from integration.dispatch.errors import DispatchError, DispatchRetryAfter
from integration.dispatch.outbox import Job, Outbox
from integration.dispatch.ratings import RatingBook
from integration.dispatch.sync import Outcome, StatusSync, news
from integration.dispatch.types import DispatchPlatform
from integration.errors import CaseNotFound
from integration.metrics import DISPATCH_ERRORS
from integration.models import OutboxKind, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerTiming:
    """The worker's tunables; the composition root fills them from settings."""

    batch: int = 50  # jobs claimed at once
    concurrency: int = 16  # requests in flight at once
    lease: float = 60.0  # seconds a claimed job is ours; must exceed the HTTP timeout
    backoff: float = 2.0  # first retry delay, doubled each attempt
    backoff_max: float = 900.0
    max_attempts: int = 12  # then the job goes to the dead-letter list
    poll_interval: float = 1.0  # seconds between looks at the outbox
    status_interval: float = 60.0  # seconds between status polls (0: never)
    reminder_after: float = 86_400.0  # an unanswered rating is reminded once after this
    housekeeping_interval: float = 60.0
    receipt_ttl: float = 900.0  # replay receipts kept this long (beyond the tolerance)


def backoff_delay(attempts: int, base: float, ceiling: float) -> float:
    """Exponential backoff with jitter: between half and all of ``base * 2**(n-1)``."""
    delay = min(base * 2 ** max(attempts - 1, 0), ceiling)
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 (retry jitter, not a secret)


class DispatchWorker:
    """Forwards jobs, polls statuses and reminds; ``on_change`` hears of every change."""

    def __init__(
        self,
        outbox: Outbox,
        platform: DispatchPlatform,
        sync: StatusSync,
        ratings: RatingBook,
        timing: WorkerTiming | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._platform = platform
        self._sync = sync
        self._ratings = ratings
        self._timing = timing or WorkerTiming()
        self._on_change = on_change or (lambda: None)
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(self._timing.concurrency)
        # Why the last attempt to reach the platform failed; None once one succeeds
        # (for /readyz: the platform is named there, and queued cases wait safely).
        self.last_error: str | None = None

    def wake(self) -> None:
        """Look at the outbox now (a case was just created in this process)."""
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the current steps and return from ``run`` (cancelling mid-query would
        leave database connections half-used)."""
        self._stopping.set()
        self._wakeup.set()

    async def forward_due(self) -> int:
        """One pass over the jobs due now; how many were forwarded."""
        started = utcnow()
        forwarded = 0
        timing = self._timing
        while jobs := await self._outbox.claim(
            limit=timing.batch, lease=timing.lease, due_by=started
        ):
            results = await asyncio.gather(*(self._forward(job) for job in jobs))
            forwarded += sum(results)
        return forwarded

    async def poll_statuses(self) -> int:
        """Ask the platform about every case that may still change; changes applied."""
        if self._platform.name == "local":
            return 0  # desk changes are recorded directly
        known = await self._sync.tracked()
        if not known:
            return 0
        applied = 0
        for report in news(await self._platform.statuses(list(known)), known):
            try:
                outcome = await self._sync.apply(report)
            except CaseNotFound:
                continue
            applied += outcome is Outcome.applied
        if applied:
            self._on_change()
        return applied

    async def housekeeping(self) -> None:
        """Rating reminders and old replay receipts."""
        if await self._ratings.remind(timedelta(seconds=self._timing.reminder_after)):
            self._on_change()
        await self._sync.forget_receipts(timedelta(seconds=self._timing.receipt_ttl))

    async def run(self) -> None:
        """All three loops, until ``stop`` (or cancelled)."""
        await asyncio.gather(
            self._loop(self.forward_due, self._timing.poll_interval, self._wakeup),
            self._loop(self.poll_statuses, self._timing.status_interval),
            self._loop(self.housekeeping, self._timing.housekeeping_interval),
        )

    async def _loop(
        self, step: Callable[[], object], interval: float, wakeup: asyncio.Event | None = None
    ) -> None:
        if interval <= 0:
            return
        while not self._stopping.is_set():
            try:
                await step()  # type: ignore[misc]
            except Exception:  # a database or network hiccup must not stop the worker
                log.exception("dispatch worker step %s failed", getattr(step, "__name__", step))
            # asyncio.wait, not asyncio.timeout: on Python 3.11 a cancellation that lands
            # as the timeout expires can be swallowed, and the worker would never stop.
            waiter = asyncio.ensure_future((wakeup or self._stopping).wait())
            try:
                await asyncio.wait({waiter}, timeout=interval)
            finally:
                waiter.cancel()
            if wakeup is not None and not self._stopping.is_set():
                wakeup.clear()

    async def _forward(self, job: Job) -> bool:
        async with self._slots:
            try:
                changed = await self._attempt(job)
            except DispatchError as exc:
                await self._failed(job, exc)
                return False
            except Exception as exc:  # a bug or a database error: retry, loudly
                log.exception("forwarding case %s failed", job.ticket.number)
                await self._failed(job, exc)
                return False
        self.last_error = None
        if changed:
            self._on_change()
        return changed is not None

    async def _attempt(self, job: Job) -> bool | None:
        """One try: whether the case's status changed; None while a token is pending."""
        platform = self._platform
        if job.kind in (OutboxKind.reopen, OutboxKind.urge):
            if not job.platform_id:
                raise CaseNotFound(job.ticket.number)
            follow_up = platform.reopen if job.kind is OutboxKind.reopen else platform.urge
            await follow_up(job.platform_id, job.ticket.key, job.ticket.number, job.note)
            return await self._outbox.complete(job)
        if job.token:
            platform_id = await platform.resolve_token(job.token)
            if platform_id is None:
                raise _TokenPending(job.token)
        else:
            receipt = await platform.create(job.ticket, maybe_sent=job.maybe_sent)
            platform_id = receipt.platform_id
            if platform_id is None and receipt.token:
                platform_id = await platform.resolve_token(receipt.token)
                if platform_id is None:
                    await self._outbox.save_token(job, receipt.token, self._timing.poll_interval)
                    return None
            if platform_id is None:
                raise _TokenPending("")
        return await self._outbox.complete(job, platform_id)

    async def _failed(self, job: Job, exc: Exception) -> None:
        timing = self._timing
        reason = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, _TokenPending):
            DISPATCH_ERRORS.labels(self._platform.name, type(exc).__name__).inc()
            self.last_error = reason[:300]
        retryable = getattr(exc, "retryable", True)
        if not retryable or job.attempts >= timing.max_attempts:
            log.error("case %s %s gave up: %s", job.ticket.number, job.kind.value, reason)
            await self._outbox.bury(job, reason)
            return
        delay = backoff_delay(job.attempts, timing.backoff, timing.backoff_max)
        if isinstance(exc, DispatchRetryAfter):
            delay = max(delay, exc.retry_after)
        log.warning(
            "case %s %s failed (%s); retry %d in %.1fs",
            job.ticket.number,
            job.kind.value,
            reason,
            job.attempts,
            delay,
        )
        await self._outbox.retry_later(job, reason, delay)


class _TokenPending(DispatchError):
    """The platform has not turned a create token into an id yet."""

    def __init__(self, token: str) -> None:
        super().__init__(f"token {token} not resolved yet")
