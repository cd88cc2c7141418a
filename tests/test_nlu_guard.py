"""Long messages are parsed off the event loop and read only in part (issue 10, Medium 3).

A 2,000-character message cost about 100 ms of NLU on the event loop, and a flood of
them made every other resident (and /healthz) wait for seconds. The bounded
interpreter parses long text in a worker thread of its own, so the loop keeps
serving short messages while long ones queue there.
"""

from __future__ import annotations

import asyncio
import threading
import time

from handlers.nlu_guard import BoundedInterpreter
from nlu.embedded import EmbeddedInterpreter
from nlu.types import Parse


class SlowModel:
    """Parses like the embedded model: on the calling thread, taking CPU time."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[str, int]] = []  # (thread name, length read)

    def parse_sync(self, text: str) -> Parse:
        self.calls.append((threading.current_thread().name, len(text)))
        if len(text) > 10:
            time.sleep(self.seconds)  # holds its thread, as CPU-bound parsing does
        return Parse(text, "greet", 0.9)

    async def parse(self, text: str) -> Parse:
        return self.parse_sync(text)


class RemoteModel:
    """An interpreter with no synchronous form (the Rasa client)."""

    def __init__(self) -> None:
        self.read: list[int] = []

    async def parse(self, text: str) -> Parse:
        self.read.append(len(text))
        return Parse(text, "greet", 0.9)


async def test_short_text_is_parsed_inline_and_long_text_off_the_loop_truncated() -> None:
    model = SlowModel()
    bounded = BoundedInterpreter(model, inline_chars=10, max_chars=50)
    try:
        await bounded.parse("你好")
        parse = await bounded.parse("吵" * 2000)
    finally:
        bounded.close()
    (short_thread, short_len), (long_thread, long_len) = model.calls
    assert short_thread == threading.current_thread().name and short_len == 2
    assert long_thread.startswith("nlu-long") and long_len == 50
    assert parse.intent == "greet"


async def test_a_remote_interpreter_is_awaited_with_the_text_truncated() -> None:
    remote = RemoteModel()
    bounded = BoundedInterpreter(remote, inline_chars=10, max_chars=50)
    await bounded.parse("吵" * 2000)
    bounded.close()
    assert remote.read == [50]


async def test_the_loop_answers_short_messages_while_long_ones_are_parsed() -> None:
    model = SlowModel(seconds=0.2)
    bounded = BoundedInterpreter(model, inline_chars=10, max_chars=1000)
    finished: list[str] = []

    async def long_one(i: int) -> None:
        await bounded.parse("吵" * 2000)
        finished.append(f"long{i}")

    async def short_one() -> None:
        await asyncio.sleep(0.05)  # after the flood has started
        await bounded.parse("你好")
        finished.append("short")

    try:
        await asyncio.gather(*(long_one(i) for i in range(5)), short_one())
    finally:
        bounded.close()
    # Five long parses take a second one after another in their thread; the short
    # message is answered while the first of them is still being parsed.
    assert finished.index("short") <= 1
    assert sorted(finished) == sorted(["short", *(f"long{i}" for i in range(5))])


async def test_the_real_model_gives_the_same_intent_off_the_loop(
    interpreter: EmbeddedInterpreter,
) -> None:
    bounded = BoundedInterpreter(interpreter, inline_chars=5, max_chars=1000)
    try:
        text = "楼下烧烤店每天半夜还很吵，" * 10
        off_loop = await bounded.parse(text)
    finally:
        bounded.close()
    assert off_loop.intent == (await interpreter.parse(text)).intent == "report_noise"
