"""The `yimen` console script end to end, as residents and staff use it.

Every test runs the installed console script in a subprocess with its own data
directory (SQLite, media and a copy of the session's NLU model) and nothing but
YIMEN_* variables for configuration.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bots.runtime import open_services
from bots.settings import Settings
from handlers.catalog import Catalog
from integration.cases import CaseDraft
from integration.models import CaseStatus
from integration.state import KeyBuilder
from nlu.embedded import EmbeddedModel, fingerprint
from nlu.training_data import load as load_training_data
from tests.conftest import REDIS_URL
from tests.emulators.dispatch_base import free_port

pytestmark = pytest.mark.slow

TIMEOUT = 60.0  # generous: a cold start imports scikit-learn and jieba
# `yimen bench` starts a server process (and wrk) and plays seconds of load: on a new
# machine it shares the cores with the Rasa install and training.
BENCH_TIMEOUT = 200.0
TRAINING_TIMEOUT = 900.0  # `yimen nlu train` fits and calibrates: minutes on a busy machine
CASE_NUMBER = re.compile(r"YM\d{10}")
COMPLAINT = "楼下烧烤店每天半夜还很吵"
ADDRESS = "金辉小区3号楼"
NOTE = "已派城管中队"

T = Catalog.load()


def yimen_script() -> str:
    """The console script installed beside this interpreter."""
    found = shutil.which("yimen", path=str(Path(sys.executable).parent))
    assert found, f"no yimen console script next to {sys.executable}"
    return found


@dataclass
class Env:
    """A data directory and the environment that points the CLI at it."""

    data_dir: Path
    vars: dict[str, str]
    cwd: Path


@pytest.fixture
def env(tmp_path: Path, data_dir: Path, model_dir: Path) -> Env:
    """A fresh data directory with the session's model linked in."""
    variables = {k: v for k, v in os.environ.items() if not k.startswith("YIMEN_")}
    variables |= {
        "YIMEN_DATA_DIR": str(data_dir),
        "YIMEN_MODEL_CACHE": str(model_dir),  # never the user's real cache
        "YIMEN_PUSH_POLL_INTERVAL": "0.2",
        "PYTHONIOENCODING": "utf-8",
    }
    cwd = tmp_path / "cwd"  # no stray .env file is read
    cwd.mkdir()
    return Env(data_dir, variables, cwd)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def yimen(
    env: Env, *args: str, stdin: bytes | None = None, limit: float | None = None
) -> Result:
    """Run one `yimen` command to completion (within ``limit`` seconds; by default
    ``BENCH_TIMEOUT`` for a benchmark, ``TIMEOUT`` for anything else)."""
    limit = limit or (BENCH_TIMEOUT if args[:1] == ("bench",) else TIMEOUT)
    process = await asyncio.create_subprocess_exec(
        yimen_script(),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env.vars,
        cwd=env.cwd,
        start_new_session=True,  # its own process group: _stop ends what it started too
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await process.communicate(stdin)
    finally:
        await _stop(process)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill a process that is still running, with its process group, and reap it.

    The group matters: a benchmark killed at its time limit leaves its server and wrk
    holding its stdout, and asyncio's wait() returns only once every pipe is closed.
    """
    if process.returncode is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


@asynccontextmanager
async def spawned(
    env: Env, *args: str, stdin: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A long-running `yimen` process, killed if still running when the block ends."""
    with (env.data_dir.parent / "stderr.log").open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            yimen_script(),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env.vars,
            cwd=env.cwd,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            await _stop(process)


class Lines:
    """Reads a process's stdout line by line, keeping all of it for error messages."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        self._stdout = process.stdout
        self.seen: list[str] = []

    async def until(self, pattern: str) -> str:
        """Everything read up to and including the first line matching ``pattern``."""
        read: list[str] = []
        try:
            async with asyncio.timeout(TIMEOUT):
                while line := (await self._stdout.readline()).decode():
                    read.append(line)
                    self.seen.append(line)
                    if re.search(pattern, line):
                        return "".join(read)
        except TimeoutError:
            pass
        raise AssertionError(f"no line matching {pattern!r} in output:\n{''.join(self.seen)}")


async def write(process: asyncio.subprocess.Process, line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(f"{line}\n".encode())
    await process.stdin.drain()


# -- the acceptance scenario ------------------------------------------------------------


async def test_resident_reports_in_terminal_staff_moves_case_and_resident_is_told(
    env: Env,
) -> None:
    async with spawned(env, "chat", stdin=True) as chat:
        out = Lines(chat)
        await write(chat, COMPLAINT)
        said = await out.until("具体位置")
        assert T("complaint.ask_where", category=T("category.noise")) in said

        await write(chat, ADDRESS)
        said = await out.until(r"\[1\] 跳过")
        assert T("complaint.ask_photo", address=ADDRESS) in said

        await write(chat, "跳过")
        said = await out.until(r"\[1\] 提交")
        assert f"地点：{ADDRESS}" in said
        assert f"照片：{T('complaint.no_photo')}" in said

        await write(chat, "提交")
        said = await out.until(CASE_NUMBER.pattern)
        number = CASE_NUMBER.findall(said)[-1]

        # Staff move the case from another process while the resident's chat runs.
        moved = await yimen(env, "cases", "set-status", number, "in_progress", "--note", NOTE)
        assert moved.returncode == 0, moved.stderr
        assert f"{number} -> in_progress" in moved.stdout

        pushed = await out.until(NOTE)
        assert "【工单进展】" in pushed
        assert number in pushed
        assert T("status.in_progress") in pushed  # 正在处理

        assert chat.stdin is not None
        chat.stdin.close()
        async with asyncio.timeout(TIMEOUT):
            assert await chat.wait() == 0

    listed = await yimen(env, "cases", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 1, listed.stdout
    assert re.fullmatch(
        rf"{number}\s+noise\s+in_progress\s+{ADDRESS}\s+\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}",
        lines[0],
    ), lines[0]


async def test_piped_script_opens_a_case(env: Env) -> None:
    # Buttons chosen by label (跳过) and by number (1 = 提交), one message a line.
    script = [COMPLAINT, ADDRESS, T("button.skip"), "1"]
    command = f"printf '%s\\n' {shlex.join(script)} | {shlex.quote(yimen_script())} chat"
    process = await asyncio.create_subprocess_shell(
        command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env.vars,
        cwd=env.cwd,
        start_new_session=True,  # its own process group: _stop ends what it started too
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            out, err = await process.communicate()
    finally:
        await _stop(process)
    output = out.decode()
    assert process.returncode == 0, err.decode()
    numbers = CASE_NUMBER.findall(output)
    assert len(numbers) == 1, output
    assert T("complaint.submitted", number=numbers[0]) in output
    assert T("terminal.banner") not in output  # the banner is for interactive terminals


async def test_terminal_does_not_show_another_residents_push(env: Env) -> None:
    # Bob's case moved while no terminal was open: the push waits in the queue.
    number = await _case_in_progress(env, "bob")

    alice = await yimen(env, "chat", "--user", "alice", stdin=b"")
    assert alice.returncode == 0, alice.stderr
    assert number not in alice.stdout, "alice's terminal printed bob's case update"

    bob = await yimen(env, "chat", "--user", "bob", stdin=b"")
    assert bob.returncode == 0, bob.stderr
    assert number in bob.stdout, "bob never got his case update"
    assert NOTE in bob.stdout


# -- staff errors -------------------------------------------------------------------------


async def _case_in_progress(env: Env, resident: str = "resident") -> str:
    """Open a terminal resident's case in the data directory's database; move it along."""
    settings = Settings(data_dir=env.data_dir)
    async with open_services(settings, with_nlu=False) as services:
        case = await services.cases.create_case(
            CaseDraft("terminal", resident, resident, "noise", COMPLAINT, ADDRESS)
        )
        await services.cases.change_status(case.number, CaseStatus.in_progress, NOTE)
    return case.number


async def _status_of(env: Env, number: str) -> CaseStatus:
    async with open_services(Settings(data_dir=env.data_dir), with_nlu=False) as services:
        return (await services.cases.get(number)).status


async def test_set_status_refuses_unknown_cases_bad_transitions_and_bad_statuses(
    env: Env,
) -> None:
    number = await _case_in_progress(env)
    unknown, backwards, bogus = await asyncio.gather(
        yimen(env, "cases", "set-status", "YM0001010999", "accepted"),
        yimen(env, "cases", "set-status", number, "received", "--note", "退回"),
        yimen(env, "cases", "set-status", number, "done"),
    )

    assert unknown.returncode == 1
    assert "error:" in unknown.stderr
    assert "YM0001010999" in unknown.stderr
    assert "->" not in unknown.stdout

    assert backwards.returncode == 1
    assert "error:" in backwards.stderr
    assert "in_progress" in backwards.stderr
    assert "received" in backwards.stderr

    assert bogus.returncode == 2  # a typer/click usage error
    assert "done" in bogus.stderr

    assert await _status_of(env, number) == CaseStatus.in_progress


# -- the server -----------------------------------------------------------------------------


async def test_a_fresh_data_dir_starts_from_the_shared_model_cache(
    env: Env, model_dir: Path, nlu_model: EmbeddedModel
) -> None:
    # A new checkout or data directory: nothing under it, the user's cache already warm.
    fresh = env.data_dir.parent / "fresh"
    env = Env(fresh, env.vars | {"YIMEN_DATA_DIR": str(fresh)}, env.cwd)
    port = free_port()
    async with spawned(env, "run", "--port", str(port)) as server:
        await Lines(server).until(r"\bhealth\b")
        url = f"http://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
    cached = model_dir / f"embedded-{nlu_model.fingerprint}.joblib"
    stderr = (fresh.parent / "stderr.log").read_text(encoding="utf-8")
    assert f"NLU model loaded from {cached}" in stderr  # loaded, not trained
    assert "training the NLU model" not in stderr
    assert not (fresh / "models").exists()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_run_serves_the_chat_and_health_until_stopped(env: Env, stop: signal.Signals) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with spawned(env, "run", "--port", str(port)) as server:
        out = Lines(server)
        banner = await out.until(r"\bhealth\b")
        assert f"{base}/chat" in banner
        assert f"{base}/healthz" in banner

        async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
            assert response.status == 200
            health = await response.json()
            assert (health["status"], health["database"]) == ("ok", "ok")
            assert health["pump"]["stalled"] is False

        server.send_signal(stop)
        async with asyncio.timeout(10):  # it stops promptly, not when the test gives up
            code = await server.wait()
    assert code == 0, code  # both signals shut the server down cleanly


async def test_run_with_two_workers_serves_from_both_and_stops_both(
    env: Env, postgres: str, keys: KeyBuilder
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env.vars |= {
        "YIMEN_DATABASE_URL": postgres,
        "YIMEN_REDIS_URL": REDIS_URL,
        "YIMEN_REDIS_PREFIX": keys.prefix,
    }
    async with spawned(env, "run", "--port", str(port), "--workers", "2") as server:
        out = Lines(server)
        banner = await out.until(r"\bworkers\b")
        assert re.search(r"workers\s+2", banner)

        seen: set[int] = set()
        async with asyncio.timeout(TIMEOUT):
            while len(seen) < 2:  # the second worker may still be loading its model
                connector = aiohttp.TCPConnector(force_close=True)  # a new connection each
                async with aiohttp.ClientSession(connector=connector) as http:
                    for _ in range(20):
                        try:
                            async with http.get(f"{base}/readyz") as response:
                                report = await response.json()
                        except aiohttp.ClientConnectionError:
                            continue
                        assert response.status == 200, report
                        seen.add(report["worker"])
                await asyncio.sleep(0.2)
        assert server.pid not in seen  # the supervisor serves nothing itself
        async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
            metrics = await response.text()
        assert response.status == 200
        # Multiprocess mode: whichever worker answers adds up every worker's samples.
        assert 'yimen_outbox_depth{state="pending"} 0.0' in metrics

        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            code = await server.wait()
    assert code == 0, code
    for pid in seen:  # both workers are gone too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_several_workers_on_the_embedded_defaults_are_refused(env: Env) -> None:
    refused = await yimen(env, "run", "--workers", "2")
    assert refused.returncode == 2
    assert "--workers 2 needs PostgreSQL" in refused.stderr
    bench = await yimen(env, "bench", "--channel", "wechat", "--workers", "1", "--workers", "2")
    assert bench.returncode == 2
    assert "--workers 2 needs PostgreSQL" in bench.stderr


# -- NLU training ---------------------------------------------------------------------------


async def test_nlu_train_reports_its_data_and_writes_the_model(
    env: Env, small_data_dir: Path
) -> None:
    # A part of nlu/data, so the test trains in seconds; `--data` defaults to nlu/data.
    cache = env.data_dir.parent / "cache"
    env.vars["YIMEN_MODEL_CACHE"] = str(cache)
    trained = await yimen(
        env, "nlu", "train", "--data", str(small_data_dir), limit=TRAINING_TIMEOUT
    )
    assert trained.returncode == 0, trained.stderr

    files = await asyncio.to_thread(lambda: sorted(small_data_dir.glob("*.yml")))
    data = load_training_data(files)
    assert f"{len(data.examples)} examples, {len(data.intents)} intents" in trained.stdout
    models = model_files(cache)
    # The cache key is the data's fingerprint, the one every start looks the model up by.
    assert models == [f"embedded-{fingerprint(small_data_dir)}.joblib"]
    assert f"-> {cache / models[0]}" in trained.stdout
    assert "NLU training" in trained.stderr  # the progress bar (its final state off a terminal)


async def test_bench_measures_the_pipeline_and_the_signed_wechat_webhook(env: Env) -> None:
    measured = re.compile(r"([\d,]+) messages/s; latency p50 [\d.]+ ms, (p95 [\d.]+ ms, )?p99")
    # The old single script is still there: --scenarios complaint.
    pipeline = await yimen(
        env, "bench", "--conversations", "3", "--concurrency", "2", "--scenarios", "complaint"
    )
    assert pipeline.returncode == 0, pipeline.stderr
    assert "pipeline: 21 messages (3 conversations, 2 at once; scenarios complaint" in (
        pipeline.stdout
    )
    assert measured.search(pipeline.stdout), pipeline.stdout

    # Open loop over the real webhook, in safe mode: signed, encrypted, every answer passive.
    wechat = await yimen(
        env,
        "bench",
        "--channel",
        "wechat",
        "--mode",
        "safe",
        "--rate",
        "20",
        "--conversations",
        "3",
        "--scenarios",
        "complaint",
    )
    assert wechat.returncode == 0, wechat.stderr
    assert "offered at 20 messages/s" in wechat.stdout
    [line] = [line for line in wechat.stdout.splitlines() if line.strip().startswith("safe")]
    assert measured.search(line) and line.endswith("0 answered late (custom/send)"), line
    # What each message cost the server, counted in the server process.
    cost = re.search(
        r"per message: ([\d.]+) SQL statements .* ([\d.]+) Redis round trips", wechat.stdout
    )
    assert cost and float(cost.group(1)) > 0, wechat.stdout


async def test_bench_drives_a_running_server_by_url_and_writes_json(
    env: Env, tmp_path: Path
) -> None:
    """`--url`: the server runs on its own (its own settings); the bench signs and
    encrypts with the same account settings, and every answer is a passive reply."""
    port = free_port()
    env.vars |= {
        "YIMEN_WECHAT_TOKEN": "urlbench",
        "YIMEN_WECHAT_APP_ID": "wx1234567890abcdef",
        "YIMEN_WECHAT_APP_SECRET": "secret",
        "YIMEN_WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "YIMEN_WECHAT_API_BASE": "http://127.0.0.1:9/cgi-bin/",
        "YIMEN_RATE_LIMIT": "1000",
    }
    report = tmp_path / "bench.json"
    async with spawned(env, "run", "--port", str(port)) as server:
        await Lines(server).until(r"\bhealth\b")
        bench = await yimen(
            env,
            "bench",
            "--channel",
            "wechat",
            "--url",
            f"http://127.0.0.1:{port}/wechat",
            "--conversations",
            "2",
            "--concurrency",
            "2",
            "--json",
            str(report),
            "--scenarios",
            "complaint",
        )
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            await server.wait()
    assert bench.returncode == 0, bench.stderr
    [line] = [line for line in bench.stdout.splitlines() if line.strip().startswith("safe")]
    assert line.endswith("0 answered late (custom/send)"), line
    [run] = json.loads(report.read_text(encoding="utf-8"))["runs"]
    assert (run["mode"], run["messages"], run["late"]) == ("safe", 14, 0)
    assert run["server"] is None  # a server outside is not counted from here
    assert run["messages_by_scenario"] == {"complaint": 14} and run["errors"] == 0
    assert report.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"

    # Without the account's token the bench cannot sign: a clear refusal, nothing sent.
    del env.vars["YIMEN_WECHAT_TOKEN"]
    refused = await yimen(env, "bench", "--channel", "wechat", "--url", "http://127.0.0.1:9/")
    assert refused.returncode == 2
    assert "YIMEN_WECHAT_TOKEN" in refused.stderr


async def test_bench_plays_mixed_conversations_and_reports_rows_redis_bytes_and_a_png(
    env: Env, tmp_path: Path, postgres: str, keys: KeyBuilder
) -> None:
    """The default mix on PostgreSQL and Redis: every conversation a new resident, what
    each left behind counted, and latency over time drawn beside the JSON."""
    env.vars |= {
        "YIMEN_DATABASE_URL": postgres,
        "YIMEN_REDIS_URL": REDIS_URL,
        "YIMEN_REDIS_PREFIX": keys.prefix,
    }
    report = tmp_path / "mixed.json"
    bench = await yimen(
        env, "bench", "--conversations", "6", "--concurrency", "2", "--json", str(report)
    )
    assert bench.returncode == 0, bench.stderr
    assert "scenarios mixed: complaint 4, streetlight 2, booking 2, guide 2" in bench.stdout
    [run] = json.loads(report.read_text(encoding="utf-8"))["runs"]
    assert run["mode"] == "pipeline" and run["conversations"] == 6 and run["errors"] == 0
    assert set(run["messages_by_scenario"]) <= {
        "complaint",
        "streetlight",
        "booking",
        "guide",
        "greeting",
    }
    assert sum(run["messages_by_scenario"].values()) == run["messages"] >= 6 * 3
    assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"] <= run["max_ms"]
    assert run["per_message"]["statements"] > 0 and run["per_message"]["redis_round_trips"] > 0
    footprint = run["footprint"]
    # Every message is kept in the transcript: at least one row per message.
    assert footprint["rows_per_conversation_by_table"]["messages"] >= 3
    assert (
        footprint["rows_per_conversation"]
        >= footprint["rows_per_conversation_by_table"]["messages"]
    )
    redis = footprint["redis"]
    # Finished conversations are idle; the probes left mid-flow are active.
    assert redis["active_conversations"] > 0 and redis["idle_conversations"] > 0, redis
    assert redis["bytes_per_active_conversation"] > 0 and redis["bytes_per_idle_conversation"] > 0
    png = report.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # An unknown scenario file is refused plainly, before anything runs.
    missing = await yimen(env, "bench", "--scenarios", "nosuch")
    assert missing.returncode == 2
    assert "no scenario file nosuch (shipped: complaint, mixed)" in missing.stderr


def model_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("embedded-*.joblib"))


def test_a_scenario_file_by_path_is_picked_by_weight_and_a_broken_one_refused(
    tmp_path: Path,
) -> None:
    from bots.bench import Scenarios

    mine = tmp_path / "mine.yml"
    mine.write_text(
        "conversations:\n"
        "  - {name: hello, weight: 3, turns: [你好, 再见]}\n"
        "  - {name: lamp, weight: 1, turns: ['幸福路{house}号路灯坏了', 跳过, 提交]}\n",
        encoding="utf-8",
    )
    scenarios = Scenarios.load(mine)
    assert scenarios.name == "mine" and scenarios.mean_turns == (3 * 2 + 3) / 4
    plan = scenarios.plan(400, seed=1)
    assert {kind.name for kind in plan} == {"hello", "lamp"}
    assert 200 < sum(kind.name == "hello" for kind in plan) < 400  # about three in four

    broken = tmp_path / "broken.yml"
    broken.write_text("conversations:\n  - {name: empty, weight: 1, turns: []}\n", "utf-8")
    with pytest.raises(ValueError, match="'empty' needs turns"):
        Scenarios.load(broken)
