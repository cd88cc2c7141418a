"""`yimen bench --url ws://HOST:PORT/chat/ws`: a running server's web chat, from outside.

Each conversation is a new visitor, as a browser is one: a cookie jar of its own, the
page loaded once (which issues the signed visitor cookie), then the WebSocket, whose
first frame is the history. It plays the same scenario conversations as the WeChat
bench, one message at a time, and times each from the frame sent to the ``reply``
frame answering it (pushes in between are skipped). An ``error`` frame (``busy``,
``bad_frame``), the rate-limit refusal (a reply, but the message was not processed), a
closed socket or no answer within the timeout is an error.

The server's limits must allow the load: every visitor comes from this machine's
address, so raise YIMEN_WEBCHAT_ADDRESS_LIMIT (120 messages a minute by default) and
YIMEN_RATE_LIMIT for a run of any size.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from yarl import URL

from bots.bench import BenchResult, Samples, Scenario, Scenarios, describe, house_numbers, script

TIMEOUT = 30.0  # seconds to wait for one answer


def _refusal() -> str:
    """The text of the rate-limit refusal (the web chat's and the pipeline's)."""
    from handlers.catalog import Catalog

    return Catalog.load()("chat.rate_limited")


@dataclass(frozen=True, slots=True)
class WebChatBench:
    """What a run against a running server's web chat measured."""

    url: str
    result: BenchResult
    answered: int
    samples: Samples

    @property
    def errors(self) -> int:
        return len(self.samples.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "webchat",
            "url": self.url,
            **self.result.as_dict(),
            "answered": self.answered,
            "errors": self.errors,
            "messages_by_scenario": self.samples.by_scenario(),
        }


def page_url(ws_url: str) -> tuple[URL, str]:
    """The chat page (``/chat`` beside ``/chat/ws``) and the origin to send."""
    url = URL(ws_url)
    if url.scheme not in ("ws", "wss") or not url.host:
        raise ValueError(f"not a WebSocket URL: {ws_url}")
    http = url.with_scheme("http" if url.scheme == "ws" else "https")
    path = url.path.removesuffix("/ws") or "/chat"
    page = http.with_path(path).with_query(None)
    return page, str(page.origin())


async def _visitor(
    ws_url: str,
    scenario: Scenario,
    house: int,
    samples: Samples,
    answered: list[int],
    refusal: str,
) -> None:
    """One visitor's conversation; failures are noted in ``samples.errors``."""
    page, origin = page_url(ws_url)
    jar = aiohttp.CookieJar(unsafe=True)  # a loopback address is a host too
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        try:
            async with session.get(page) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status} for {page}")
            async with session.ws_connect(ws_url, headers={"Origin": origin}) as ws:
                first = await ws.receive_json(timeout=TIMEOUT)
                if first.get("type") != "history":
                    raise RuntimeError(f"first frame {first.get('type')!r}, not the history")
                for text in script(scenario, house):
                    message_id = uuid.uuid4().hex
                    with samples.timing(scenario.name):
                        await ws.send_json({"type": "message", "id": message_id, "text": text})
                        frame = await _answer(ws, message_id)
                    texts = [m.get("text") for m in frame.get("messages") or []]
                    if frame.get("type") != "reply":
                        samples.errors.append(f"{scenario.name}: {frame} for {text!r}")
                    elif refusal in texts:
                        samples.errors.append(f"{scenario.name}: rate-limited at {text!r}")
                    else:
                        answered.append(1)
        except (aiohttp.ClientError, RuntimeError, TimeoutError, ValueError) as exc:
            samples.errors.append(f"{scenario.name}: {type(exc).__name__}: {exc}")


async def _answer(ws: aiohttp.ClientWebSocketResponse, message_id: str) -> dict[str, Any]:
    """The frame answering ``message_id`` (a reply, or an error naming it)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            message = await ws.receive()
            if message.type != WSMsgType.TEXT:
                raise RuntimeError(f"socket {message.type.name.lower()}")
            frame: dict[str, Any] = message.json()
            if frame.get("in_reply_to") == message_id or (
                frame.get("type") == "error" and "in_reply_to" not in frame
            ):
                return frame


async def drive(
    ws_url: str,
    conversations: int,
    concurrency: int,
    scenarios: Scenarios | None = None,
    advance: Callable[[int], None] = lambda _n: None,
) -> WebChatBench:
    """``conversations`` visitors, ``concurrency`` at a time, after one warm-up visitor
    per scenario kind (not measured)."""
    page_url(ws_url)  # a wrong URL is refused before anything is sent
    scenarios = scenarios or Scenarios.load()
    plan = scenarios.plan(conversations)
    houses, refusal = house_numbers(), _refusal()
    for kind in scenarios.kinds:
        await _visitor(ws_url, kind, next(houses), Samples(), [], refusal)
    samples, answered = Samples(), list[int]()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(conversations):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            await _visitor(ws_url, plan[index], next(houses), samples, answered, refusal)
            advance(1)

    samples.restart()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - samples.started
    result = (
        BenchResult.of(samples.latencies, elapsed)
        if samples.latencies
        else BenchResult(0, elapsed, 0.0, 0.0, 0.0)
    )
    return WebChatBench(ws_url, result, len(answered), samples)


def report(
    url: str,
    conversations: int,
    concurrency: int,
    json_path: Path | None,
    scenarios: Scenarios,
    png: Path | None = None,
) -> int:
    """`yimen bench --url ws://...`: run, print the figures; the exit status."""
    from bots.bench.report import write
    from bots.progress import counting

    print(
        f"web chat at {url}: {conversations} conversations ({describe(scenarios)}), "
        f"{concurrency} at once"
    )
    try:
        with counting("webchat", conversations) as advance:
            measured = asyncio.run(drive(url, conversations, concurrency, scenarios, advance))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    answered, errors = measured.answered, measured.errors
    print(f"  webchat {measured.result.summary()}; {answered} answered, {errors} errors")
    for error in measured.samples.errors[:5]:
        print(f"    {error}", file=sys.stderr)
    for line in write([("webchat", measured.as_dict(), measured.samples)], json_path, png):
        print(line)
    return 0
