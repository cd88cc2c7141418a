"""The Rasa backend against a real Rasa 3.6 server.

The server is the one scripts/rasa-server.sh builds, trains on nlu/data and serves,
with token auth, on a port of the tests' own (5055), so a server a developer runs on
5005 is left alone. The fixture starts it when it is not already serving (and stops what it
started when the tests end): the first run
on a machine installs Rasa into ~/.cache/yimen/rasa-venv (a few minutes) and trains a
YIMEN_TEST_RASA_EPOCHS-epoch model (5 by default, enough for these tests; cached by
data, config and epochs). Point YIMEN_TEST_RASA_URL (and YIMEN_TEST_RASA_TOKEN) at a
server of your own to use it instead. These tests fail, never skip, when no server can
be had.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.flows import standard_flows
from handlers.messages import Inbound
from handlers.pipeline import Pipeline
from handlers.router import Router
from integration.state import KeyBuilder, MemoryConversationStore, Timing
from integration.transcript import Transcript
from nlu.contract import INTENTS
from nlu.embedded import EmbeddedInterpreter
from nlu.gazetteer import Gazetteer
from nlu.rasa_client import FallbackInterpreter, RasaError, RasaInterpreter, RasaRejected
from tests.fakes import FakeDesk

ROOT = Path(__file__).parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yimen"
PORT = 5055
EPOCHS = os.environ.get("YIMEN_TEST_RASA_EPOCHS", "5")

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="session")
def rasa_server() -> Iterator[tuple[str, str]]:
    """(url, token) of a real Rasa server: the given one, or ours, started if need be."""
    given = os.environ.get("YIMEN_TEST_RASA_URL")
    if given:
        yield given, os.environ.get("YIMEN_TEST_RASA_TOKEN", "")
        return
    token = os.environ.get("YIMEN_TEST_RASA_TOKEN", "yimen-test-token")
    env = {
        **os.environ,
        "RASA_VENV": os.environ.get("RASA_VENV", str(CACHE / "rasa-venv")),
        "RASA_HOME": os.environ.get("RASA_HOME", str(CACHE / "rasa")),
        "RASA_TOKEN": token,
        "RASA_PORT": str(PORT),
    }
    log = CACHE / "rasa-tests.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Several pytest-xdist workers may each hold this session fixture: they share the
    # one server, started by the first and stopped by the last (a server that was up
    # before any of them, a developer's, is left running).
    with _users() as users:
        if not users.pids:
            users.ours = not _serving(PORT)
        with log.open("w") as out:
            done = subprocess.run(
                ["bash", str(ROOT / "scripts" / "rasa-server.sh"), "all", "--epochs", EPOCHS],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"scripts/rasa-server.sh all failed ({done.returncode}):\n{tail}")
        users.pids.add(os.getpid())
    try:
        yield f"http://127.0.0.1:{PORT}", token
    finally:
        with _users() as users:
            users.pids.discard(os.getpid())
            if not users.pids and users.ours:  # the tests started it, so the tests stop it
                subprocess.run(
                    ["bash", str(ROOT / "scripts" / "rasa-server.sh"), "stop"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )


@dataclass
class _Users:
    """The test sessions using the shared server, and whether they started it."""

    pids: set[int]
    ours: bool


@contextmanager
def _users() -> Iterator[_Users]:
    """The users file, read and written under an exclusive lock (sessions that died
    without their teardown are dropped)."""
    path = CACHE / f"rasa-tests-{PORT}.users"
    with (CACHE / f"rasa-tests-{PORT}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        words = path.read_text().split() if path.exists() else []
        users = _Users({int(w) for w in words[1:] if _alive(int(w))}, words[:1] == ["ours"])
        yield users
        path.write_text(" ".join(["ours" if users.ours else "theirs", *map(str, users.pids)]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _serving(port: int) -> bool:
    """Whether something already listens on the port (a server a developer left up)."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
async def real_rasa(rasa_server: tuple[str, str]) -> AsyncIterator[RasaInterpreter]:
    """A client of the real server; fails the test (never skips) when it is down."""
    url, token = rasa_server
    async with RasaInterpreter(url, token=token or None, timeout=10, threshold=0) as rasa:
        try:
            await rasa.parse("你好")
        except RasaError as exc:
            pytest.fail(f"the Rasa server at {url} is not usable ({exc})")
        yield rasa


CLEAR_MESSAGES = [
    ("你好", "greet"),
    ("谢谢", "thanks"),
    ("转人工", "human_handoff"),
    ("楼下烧烤店每天半夜还很吵", "report_noise"),
    ("垃圾桶满了没人收", "report_sanitation"),
    ("路灯不亮", "report_facility"),
    ("电梯坏了", "report_property"),
    ("我想预约明天上午办居住证", "book_appointment"),
    ("办居住证要带什么材料", "ask_service_info"),
    ("我想注册志愿者", "volunteer_register"),
]


@pytest.mark.parametrize(("text", "intent"), CLEAR_MESSAGES)
async def test_real_rasa_predicts_contract_intents(
    real_rasa: RasaInterpreter, text: str, intent: str
) -> None:
    parse = await real_rasa.parse(text)
    assert (parse.text, parse.intent) == (text, intent)
    assert 0.0 < parse.confidence <= 1.0
    assert parse.ranking[0] == (intent, parse.confidence)
    assert {name for name, _ in parse.ranking} <= set(INTENTS)


async def test_real_rasa_returns_entity_spans_with_synonyms_mapped(
    real_rasa: RasaInterpreter,
) -> None:
    text = "我要预约明天上午办理社会保障卡，电话13912345678"
    parse = await real_rasa.parse(text)
    service, phone = parse.first("service"), parse.first("phone")
    assert service is not None and phone is not None
    assert (text[service.start : service.end], service.value) == ("社会保障卡", "社保卡")
    assert (text[phone.start : phone.end], phone.value) == ("13912345678", "13912345678")
    spans = [(e.start, e.end) for e in parse.entities]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))


async def test_real_rasa_finds_lookup_communities_as_addresses(
    real_rasa: RasaInterpreter,
) -> None:
    text = "阳光嘉园门口垃圾堆了好几天"
    parse = await real_rasa.parse(text)
    address = parse.first("address")
    assert address is not None
    assert text[address.start : address.end].startswith("阳光嘉园")


async def test_real_rasa_rejects_a_wrong_token(rasa_server: tuple[str, str]) -> None:
    url, token = rasa_server
    if not token:
        pytest.fail("set YIMEN_TEST_RASA_TOKEN: the server must run with token auth")
    async with RasaInterpreter(url, token=token + "-wrong") as rasa:
        with pytest.raises(RasaRejected) as raised:
            await rasa.parse("你好")
    assert raised.value.status == 401


async def test_a_whole_report_through_the_pipeline_on_real_rasa(
    real_rasa: RasaInterpreter,
    interpreter: EmbeddedInterpreter,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
) -> None:
    """YIMEN_NLU_BACKEND=rasa: the real server understands, the flow opens a case."""
    fallback = FallbackInterpreter(real_rasa, interpreter)
    desk = FakeDesk()
    pipeline = Pipeline(
        store=MemoryConversationStore(Timing()),
        transcript=Transcript(sessions),
        interpreter=fallback,
        router=Router(standard_flows(desk, catalog, Gazetteer.load()), catalog),
        catalog=catalog,
        keys=KeyBuilder(f"test-{uuid.uuid4().hex[:8]}"),
    )
    said = []
    for number, text in enumerate(["楼下烧烤店每天半夜还很吵", "金辉小区3号楼", "不用了", "提交"]):
        replies = await pipeline.handle(Inbound("test", "u1", "u1", f"m{number}", text))
        assert replies
        said.append(replies[-1].text)
    assert fallback.fallbacks == 0
    assert len(desk.drafts) == 1
    assert (desk.drafts[0].category, desk.drafts[0].address) == ("noise", "金辉小区3号楼")
    assert desk.drafts[0].latitude is not None  # the gazetteer located the community
    assert next(iter(desk.cases)) in said[-1]
