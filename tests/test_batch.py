"""Group commit: shared transactions, individual results, no neighbour harmed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from integration.batch import GroupCommit


class Recorder:
    def __init__(self, poison: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.poison = poison

    async def write(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)
        if self.poison in items:
            raise ValueError("bad row")
        return [i * 10 if i % 7 else KeyError(i) for i in items]


async def test_concurrent_submissions_share_batches_and_keep_their_results() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.write)
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)  # the first write is under way
    results = [await first] + await asyncio.gather(
        *(commit.submit(i) for i in range(2, 21)), return_exceptions=True
    )
    assert [r for r in results if not isinstance(r, BaseException)] == [
        i * 10 for i in range(1, 21) if i % 7
    ]
    assert [type(r) for r in results if isinstance(r, BaseException)] == [KeyError, KeyError]
    assert recorder.batches[0] == [1]  # a lone first write is not held back
    assert len(recorder.batches) == 2  # everyone else joined the next flush


async def test_a_poison_row_fails_alone() -> None:
    recorder = Recorder(poison=3)
    commit = GroupCommit(recorder.write)
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(commit.submit(i)) for i in (2, 3, 4)]
    assert await first == 10
    assert await rest[0] == 20 and await rest[2] == 40
    with pytest.raises(ValueError):
        await rest[1]
    assert [2, 3, 4] in recorder.batches and [3] in recorder.batches


async def test_max_batch_splits_large_bursts() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.write, max_batch=4)
    await asyncio.gather(*(commit.submit(i) for i in range(1, 11)), return_exceptions=True)
    assert all(len(batch) <= 4 for batch in recorder.batches)
    assert sorted(i for batch in recorder.batches for i in batch) == list(range(1, 11))
