"""`yimen bench --channel wechat --wrk SECONDS`: the deliveries played by wrk.

The aiohttp load generator costs about half a millisecond of CPU a message, on the same
two cores as the server it measures. wrk (C, one epoll loop per thread) costs a small
fraction of that, so the server, PostgreSQL and Redis get the machine.

Every delivery is built, signed and encrypted here before wrk starts, as raw HTTP
requests, one file per connection. Each connection is one wrk thread that plays its
residents' conversations in order, one message in flight at a time: a resident's next
message goes only after the answer to the last, as in the aiohttp client. wrk runs
for a fixed time (that is how wrk measures); the files hold more messages than the
fastest server could take in that time, and a connection that runs out fails the run
rather than measure less. Each reply is checked in wrk's Lua (HTTP 200 and an XML
reply; ``success`` is an answer left for customer service, counted as late). The same
player drives a stock Rasa REST channel (bots/bench/rasa_rest.py), with JSON requests.

wrk's latencies are its own (from writing the request to reading the whole answer),
from its HDR histogram; it keeps no per-message times, so these runs have no PNG.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bots.bench import BenchResult, Scenarios, house_numbers, script

LUA = Path(__file__).with_name("wrk.lua")
# Messages each connection is given per second of the run: more than one connection of
# any server here could take (16 connections at 600/s each would be 9,600 msg/s), and
# together at least TOTAL_RATE (one connection to the echo webhook takes over 1,000/s).
PER_CONNECTION_RATE = 600
TOTAL_RATE = 6000
# What the requests carry, by the kind of answer expected (``play``'s ``answers``).
CONTENT_TYPES = {"xml": "text/xml; charset=utf-8", "json": "application/json"}


@dataclass(frozen=True, slots=True)
class WrkRun:
    """What wrk measured, and what its Lua found in the replies."""

    result: BenchResult
    late: int  # answered "success": left for customer service
    errors: int  # HTTP errors, socket errors, timeouts, replies that are not XML


def available() -> str | None:
    """Why wrk cannot be used here, or None."""
    if shutil.which("wrk") is None:
        return "wrk is not installed (Debian: apt-get install wrk)"
    return None


def requests_file(
    path: Path,
    url: str,
    deliver: Callable[[str, str], tuple[dict[str, str], str]],
    scenarios: Scenarios,
    messages: int,
    run: str,
    connection: int,
    houses: Iterator[int],
    content_type: str = CONTENT_TYPES["xml"],
) -> int:
    """Write one connection's raw requests (each as its length in bytes, a newline, and
    the request), whole conversations of new residents, at least ``messages`` of them,
    each resident at the next of ``houses`` (shared by the connections, so no two
    residents report at one place); the number written."""
    parts = urlsplit(url)
    written, resident = 0, 0
    with path.open("wb") as out:
        while written < messages:
            kind = scenarios.plan(1)[0]
            openid = f"o-wrk-{run}-{connection}-{resident}"
            resident += 1
            for text in script(kind, next(houses)):
                query, body = deliver(openid, text)
                payload = body.encode()
                target = f"{parts.path}?{urlencode(query)}" if query else parts.path
                request = (
                    f"POST {target} HTTP/1.1\r\n"
                    f"Host: {parts.netloc}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n"
                ).encode() + payload
                out.write(b"%d\n" % len(request))
                out.write(request)
                written += 1
    return written


def play(
    url: str,
    deliver: Callable[[str, str], tuple[dict[str, str], str]],
    scenarios: Scenarios,
    connections: int,
    seconds: int,
    on_start: Callable[[], None] = lambda: None,
    advance: Callable[[int], None] = lambda _n: None,
    answers: str = "xml",
) -> WrkRun:
    """Play new residents' conversations at ``url`` on ``connections`` connections for
    ``seconds`` seconds with wrk; ``advance(1)`` each second while it runs.

    ``answers`` is what a good reply is: ``xml`` (a WeChat passive reply; ``success``
    counts as late) or ``json`` (a JSON list, Rasa's REST channel; ``[]``, no answer,
    counts as late); the requests' Content-Type follows it."""
    problem = available()
    if problem:
        raise RuntimeError(problem)
    run = uuid.uuid4().hex[:8]
    per_connection = math.ceil(max(PER_CONNECTION_RATE, TOTAL_RATE / connections) * seconds)
    houses = house_numbers()
    with tempfile.TemporaryDirectory(prefix="yimen-wrk-") as scratch:
        for connection in range(1, connections + 1):
            requests_file(
                Path(scratch) / f"requests-{connection}.bin",
                url,
                deliver,
                scenarios,
                per_connection,
                run,
                connection,
                houses,
                CONTENT_TYPES[answers],
            )
        command = [
            "wrk",
            f"--threads={connections}",
            f"--connections={connections}",
            f"--duration={seconds}s",
            "--timeout=10s",
            f"--script={LUA}",
            url,
            "--",
            scratch,
            answers,
        ]
        on_start()
        with subprocess.Popen(  # noqa: S603 (our own arguments, no shell)
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            for _ in range(seconds):
                try:
                    process.wait(1)
                    break
                except subprocess.TimeoutExpired:
                    advance(1)
            out, err = process.communicate(timeout=seconds + 60)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.strip() or out.strip()}")
    return parse(out)


def parse(out: str) -> WrkRun:
    """The run from wrk's output: the JSON line our Lua ``done`` prints."""
    lines = [line for line in out.splitlines() if line.startswith('{"yimen_wrk"')]
    if not lines:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    figures = json.loads(lines[-1])["yimen_wrk"]
    if figures["ran_out"]:
        raise RuntimeError(
            f"{figures['ran_out']} wrk connections ran out of messages: the server took "
            f"more a second on one connection than the {PER_CONNECTION_RATE} (together "
            f"{TOTAL_RATE}) built for it"
        )
    if not figures["requests"]:
        raise RuntimeError("wrk completed no request")
    errors = sum(figures[kind] for kind in ("connect", "read", "write", "timeout", "bad"))
    result = BenchResult(
        messages=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        p95_ms=figures["p95_us"] / 1000,
    )
    return WrkRun(result, figures["late"], errors)
