"""`yimen bench --channel rasa-rest --url URL --wrk SECONDS`: a stock Rasa REST channel.

Issue 16's goal is a multiple of "a stock Rasa 3.6 REST channel measured side by side".
This plays that channel exactly as the WeChat bench plays Yimen: the same scenario
conversations, a new resident (Rasa's ``sender``) per conversation, one message in
flight per connection, played by the same wrk player (bots/bench/wrk.py) with JSON
bodies instead of signed XML. A good answer is HTTP 200 with a JSON list; ``[]`` (Rasa
said nothing) counts as unanswered, like WeChat's late answers.

The assistant measured is nlu/rasa/stock/ (`scripts/rasa-server.sh stock`): Rasa's own
REST channel, the same NLU data and pipeline as Yimen's Rasa backend, one rule per
intent, no storage. Each kind of conversation is played once first, unmeasured.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from bots.bench import Scenarios, describe, house_numbers, script, wrk
from bots.bench.wechat import WeChatBenchResult

MODE = "rasa-rest"


def delivery(sender: str, text: str) -> tuple[dict[str, str], str]:
    """One message to Rasa's REST channel: no query, a JSON body."""
    return {}, json.dumps({"sender": sender, "message": text}, ensure_ascii=False)


def post(url: str, sender: str, text: str, timeout: float = 30.0) -> list[dict[str, object]]:
    """Send one message; Rasa's answers. ValueError when ``url`` is not a REST channel."""
    _, body = delivery(sender, text)
    request = urllib.request.Request(  # noqa: S310 (the operator's own --url)
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{url} is not a Rasa REST channel that answers: {exc}") from exc
    if not isinstance(answer, list):
        raise ValueError(f"{url} answered {str(answer)[:200]!r}, not a list of messages")
    return answer


def warm_up(url: str, scenarios: Scenarios) -> None:
    """Each kind of conversation once, unmeasured; fails fast on a wrong URL."""
    houses, run = house_numbers(), uuid.uuid4().hex[:8]
    for kind in scenarios.kinds:
        for text in script(kind, next(houses)):
            post(url, f"warmup-{run}-{kind.name}", text)


def bench_rasa_rest(
    url: str,
    connections: int,
    seconds: int,
    scenarios: Scenarios,
    advance: Callable[[int], None] = lambda _n: None,
) -> WeChatBenchResult:
    """Warm up, then play new residents at ``url`` with wrk for ``seconds``."""
    warm_up(url, scenarios)
    played = wrk.play(
        url, delivery, scenarios, connections, seconds, advance=advance, answers="json"
    )
    return WeChatBenchResult(MODE, played.result, played.late, errors=played.errors)


def report(
    url: str, connections: int, seconds: int, json_path: Path | None, scenarios: Scenarios
) -> int:
    """Run, print the figures; the exit status."""
    from bots.bench.report import write
    from bots.progress import counting

    problem = wrk.available()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(
        f"Rasa REST channel at {url}: wrk, {connections} connections for {seconds} s, "
        f"new residents ({describe(scenarios)})"
    )
    try:
        with counting(MODE, seconds) as advance:
            measured = bench_rasa_rest(url, connections, seconds, scenarios, advance)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    late, errors = measured.late, measured.errors
    print(f"  {MODE} {measured.result.summary()}; {late} unanswered ([]), {errors} errors")
    for line in write([(MODE, measured.as_dict(), None)], json_path, None):
        print(line)
    return 0
