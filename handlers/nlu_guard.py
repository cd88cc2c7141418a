"""Bounds the NLU work one message can cost the event loop.

A short message is parsed where it arrives, in well under a millisecond. A long one
(a 2,000-character letter takes about 100 ms) would stall every other resident for
that long, and a flood of them for seconds; so text past ``inline_chars`` is parsed
in one worker thread of its own (long messages queue there, one at a time, while the
loop keeps answering everyone else), and only its first ``max_chars`` characters are
read at all. The flows keep the whole text: a complaint's description is what the
resident wrote, not what the model read.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from nlu.types import Interpreter, Parse


@runtime_checkable
class SyncInterpreter(Protocol):
    """An interpreter that can also parse on the calling thread (the embedded one)."""

    def parse_sync(self, text: str) -> Parse:
        """Parse without awaiting anything."""
        ...


class BoundedInterpreter:
    """An Interpreter that truncates long text and parses it off the event loop."""

    def __init__(self, inner: Interpreter, *, inline_chars: int = 200, max_chars: int = 1000):
        self._inner = inner
        self._inline_chars = inline_chars
        self._max_chars = max_chars
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="nlu-long")

    async def parse(self, text: str) -> Parse:
        """Parse ``text``: inline when short, in the worker thread when long."""
        text = text[: self._max_chars]
        if len(text) <= self._inline_chars or not isinstance(self._inner, SyncInterpreter):
            # A remote interpreter (Rasa) spends its time on the server, not here.
            return await self._inner.parse(text)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._inner.parse_sync, text)

    def close(self) -> None:
        """Let the worker thread go (it finishes the parse in hand)."""
        self._thread.shutdown(wait=False, cancel_futures=True)
