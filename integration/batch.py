"""Group commit: concurrent writes share one transaction.

Under load, many turns want to write a row at once. Instead of a transaction each,
the first writer starts a flush and everyone who arrives while it runs joins the next
one, so the cost of a commit is shared and nothing waits on a timer: a lone write is
flushed at once. Each caller still gets its own result or exception, and a failed
batch is retried row by row so one bad row cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Writes a batch; returns one result (or the exception for that item) per item, in order.
Writer = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    """Batches concurrent ``submit`` calls into calls of ``write``."""

    def __init__(self, write: Writer[T, R], max_batch: int = 256) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write ``item`` with whatever else is pending; its result once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a caller that gives up must not cancel its neighbours' commit.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._commit(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for _, future in batch + self._pending:
                if not future.done():
                    future.set_exception(exc)
            self._pending.clear()
            raise
        finally:
            self._flusher = None

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                results = [exc]
            else:  # find the culprit: each row in its own transaction
                for single in batch:
                    await self._commit([single])
                return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
