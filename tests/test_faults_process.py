"""A real `yimen run` process stopped by a signal (issue 16, items 4 and 5).

SIGTERM: the process stops listening, answers the message in flight, finishes the push
in flight, closes idle web chat pages with 1001 (going away) and exits 0 within
YIMEN_SHUTDOWN_TIMEOUT. SIGKILL while it pushes status changes to Telegram: after a
restart no push is lost, and only a push Telegram had already taken but the process had
not yet marked sent is sent a second time (at-least-once; docs/operations.md).

The processes run on the embedded defaults (SQLite in a data directory of the test's
own); Telegram is the loopback emulator, which can hold its answers to sendMessage.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import WSCloseCode, WSMsgType
from sqlalchemy import select
from yarl import URL

from bots.runtime import open_services
from bots.settings import Settings
from integration.cases import CaseDraft
from integration.models import CaseStatus, Notification, NotificationState
from tests.emulators.dispatch_base import free_port
from tests.emulators.rasa import HeldRasa
from tests.emulators.telegram import TelegramEmulator
from tests.test_webchat import receive
from tests.webchat_client import Visitor

pytestmark = pytest.mark.fault

TOKEN = "123456:faults-test-token"
SENT = NotificationState.sent.value
START = 90.0  # seconds for a process to load its model and serve


class Remote:
    """What a Visitor needs of a test client, for a server in another process."""

    def __init__(self, port: int) -> None:
        self.server = self
        self.host, self.port = "127.0.0.1", port

    def make_url(self, path: str) -> URL:
        return URL(f"http://{self.host}:{self.port}{path}")


def environment(data_dir: Path, port: int, **settings: str) -> dict[str, str]:
    """The process's environment: ours without YIMEN_*, then the given settings."""
    variables = {k: v for k, v in os.environ.items() if not k.startswith("YIMEN_")}
    variables |= {
        "YIMEN_DATA_DIR": str(data_dir),
        "YIMEN_HOST": "127.0.0.1",
        "YIMEN_PORT": str(port),
        "YIMEN_PUSH_POLL_INTERVAL": "0.1",
        "PYTHONIOENCODING": "utf-8",
    }
    return variables | {f"YIMEN_{name.upper()}": value for name, value in settings.items()}


@asynccontextmanager
async def yimen_run(
    variables: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`yimen run`, serving; killed at the end if the test has not ended it."""
    script = shutil.which("yimen", path=str(Path(sys.executable).parent))
    assert script
    with log.open("ab") as errors:
        process = await asyncio.create_subprocess_exec(
            script, "run", env=variables, stdout=asyncio.subprocess.PIPE, stderr=errors
        )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(START):
            while b"Yimen is serving" not in (line := await process.stdout.readline()):
                assert line, f"yimen run exited: {tail(log)}"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def queue_pushes(settings: Settings, chats: int, each: int) -> list[str]:
    """Cases of Telegram residents, each with a status change queued; their numbers."""
    numbers = []
    async with open_services(settings, with_nlu=False) as services:
        for n in range(chats * each):
            chat = str(1000 + n % chats)
            case = await services.cases.create_case(
                CaseDraft("telegram", chat, chat, "noise", "夜里施工扰民", f"金辉小区{n}号楼")
            )
            await services.cases.change_status(case.number, CaseStatus.accepted, "已受理")
            numbers.append(case.number)
    return numbers


async def push_states(settings: Settings) -> dict[int, str]:
    """Notification id -> state."""
    async with open_services(settings, with_nlu=False) as services, services.sessions() as s:
        rows = await s.execute(select(Notification.id, Notification.state))
        return {id_: state for id_, state in rows}


def received(telegram: TelegramEmulator, numbers: list[str]) -> Counter[str]:
    """How many times each case's push reached Telegram."""
    return Counter(n for message in telegram.sent for n in numbers if n in message.text)


async def test_sigterm_finishes_what_is_in_flight_closes_idle_pages_and_exits_0(
    data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    [number] = await queue_pushes(settings, chats=1, each=1)
    async with TelegramEmulator(TOKEN) as telegram, HeldRasa() as rasa:
        telegram.hold_from = 1  # the push is on Telegram's side when SIGTERM comes
        variables = environment(
            data_dir,
            port,
            telegram_token=TOKEN,
            telegram_api_base=telegram.base_url,
            nlu_backend="rasa",
            rasa_url=rasa.url,
            rasa_timeout="30",
            shutdown_timeout="20",
        )
        async with (
            yimen_run(variables, tmp_path / "yimen.log") as process,
            Visitor(Remote(port)) as idle,  # type: ignore[arg-type]
            Visitor(Remote(port)) as busy,  # type: ignore[arg-type]
        ):
            idle_ws, _ = await idle.connect()
            busy_ws, _ = await busy.connect()
            async with idle.session.get(idle.url("/readyz")) as response:
                report = await response.json()
            # Each part named; the NLU is the Rasa backend, seen through the pipeline's
            # BoundedInterpreter, and in-process state has no Redis to reach.
            assert (report["database"], report["redis"], report["nlu"]) == ("ok", "none", "rasa")
            assert report["platform"]["state"] == "ok"
            await telegram.wait_until(lambda: telegram.held)
            rasa.hold = True
            await busy_ws.send_json({"type": "message", "id": "in-flight", "text": "你好"})
            async with asyncio.timeout(10):
                await rasa.arrived.wait()  # the message is being understood

            process.send_signal(signal.SIGTERM)
            closing = await idle_ws.receive(timeout=10)
            assert (closing.type, closing.data) == (WSMsgType.CLOSE, WSCloseCode.GOING_AWAY)
            assert process.returncode is None  # still finishing the rest

            rasa.release.set()
            telegram.release.set()
            answer = await receive(busy_ws)
            assert (answer["type"], answer["in_reply_to"]) == ("reply", "in-flight")
            closing = await busy_ws.receive(timeout=10)
            assert (closing.type, closing.data) == (WSMsgType.CLOSE, WSCloseCode.GOING_AWAY)
            async with asyncio.timeout(30):
                assert await process.wait() == 0
    assert received(telegram, [number]) == {number: 1}
    assert set((await push_states(settings)).values()) == {SENT}


async def test_sigkill_while_pushing_loses_no_push_and_resends_only_those_in_flight(
    data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    numbers = await queue_pushes(settings, chats=4, each=3)
    async with TelegramEmulator(TOKEN) as telegram:
        telegram.hold_from = 6  # five answered; from the sixth on the process waits
        variables = environment(
            data_dir,
            port,
            telegram_token=TOKEN,
            telegram_api_base=telegram.base_url,
            telegram_chat_interval="0",
            push_timeout="1",
            push_lease="3",
        )
        async with yimen_run(variables, tmp_path / "yimen.log") as process:
            await telegram.wait_until(lambda: telegram.held)
            process.kill()
            await process.wait()
        taken = {m.text for m in telegram.sent}  # Telegram has these: residents see them
        states = await push_states(settings)
        # Taken by Telegram but not marked sent: the sends that may go again.
        unmarked = sum(1 for state in states.values() if state != SENT)
        in_flight = len(taken) - (len(states) - unmarked)
        assert 1 <= in_flight <= unmarked
        telegram.hold_from = None
        telegram.release.set()

        async with yimen_run(variables, tmp_path / "yimen.log"):
            async with asyncio.timeout(60):
                while True:  # until the restarted process has sent every push
                    if set((await push_states(settings)).values()) == {SENT}:
                        break
                    await asyncio.sleep(0.2)

    counts = received(telegram, numbers)
    assert set(counts) == set(numbers)  # nothing lost
    doubled = [n for n, count in counts.items() if count > 1]
    assert all(counts[n] == 2 for n in doubled)
    assert len(doubled) <= in_flight  # only what Telegram had taken before the kill
