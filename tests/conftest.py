"""Shared fixtures: real SQLite and PostgreSQL, real Redis, and a trained NLU model.

PostgreSQL and Redis are required: a test that needs them fails, never skips, when
they are unreachable. Set YIMEN_TEST_POSTGRES_URL / YIMEN_TEST_REDIS_URL to use
servers other than the local defaults.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.media import MediaStore
from handlers.catalog import Catalog
from handlers.state import ConversationStore
from integration.db import create_engine, session_factory, upgrade
from integration.models import Base
from integration.state import (
    KeyBuilder,
    MemoryConversationStore,
    RedisClient,
    RedisConversationStore,
    Timing,
    open_redis,
)
from integration.uploads import UploadBook
from nlu.embedded import EmbeddedInterpreter, EmbeddedModel, fingerprint, load_or_train
from nlu.entities import EntityExtractor
from nlu.training_data import DATA_DIR
from nlu.training_data import load as load_training_data
from tests.emulators.dispatch import DispatchEmulator
from tests.emulators.open311 import Open311Emulator
from tests.emulators.wechat import WeChatAPIEmulator
from tests.rasa_shared import SHARED as SHARED_RASA

POSTGRES_URL = os.environ.get(
    "YIMEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("YIMEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DISPATCH_SECRET = "test-dispatch-secret"


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (SQLAlchemy URL)."""
    name = f"yimen_test_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _asyncpg_url(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}")
    asyncio.run(_migrate(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres(postgres_database: str) -> Iterator[str]:
    """The session's PostgreSQL database for one test; emptied after it.

    Every test that writes to PostgreSQL takes this fixture rather than
    ``postgres_database``, so no test sees another's cases or pushes.
    """
    yield postgres_database
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    plain_url = postgres_database.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def truncate() -> None:
        connection = await asyncpg.connect(plain_url)
        try:
            await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()

    # A loop of its own, in a thread: the test's loop may still be running (module scope).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, truncate()).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "yimen.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres")
    return url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on an empty database."""
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def media_store(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[MediaStore]:
    """A media store under tmp_path/media, recording uploads in a SQLite database."""
    shutil.copy(sqlite_template, tmp_path / "media.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'media.db'}")
    try:
        yield MediaStore(tmp_path / "media", UploadBook(session_factory(engine)))
    finally:
        await engine.dispose()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client of the real Redis server."""
    client = Redis.from_url(REDIS_URL)
    await client.ping()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def keys(redis: Redis) -> AsyncIterator[KeyBuilder]:
    """A key builder with a prefix of this test's own; its keys are deleted afterwards."""
    builder = KeyBuilder(f"yimen-test-{uuid.uuid4().hex[:8]}")
    yield builder
    async for key in redis.scan_iter(f"{builder.prefix}:*"):
        await redis.delete(key)


StoreMaker = Callable[[Timing | None], ConversationStore]


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-node Redis Cluster of the session's own (no replicas, nothing on disk).

    Started here, not by .ci/run, so the tests need nothing but redis-server and
    redis-cli; stopped when the session ends.
    """
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    assert server and cli, "redis-server and redis-cli are needed (.ci/run installs them)"
    home = tmp_path_factory.mktemp("redis-cluster")
    ports = _cluster_ports(3)
    nodes = [
        subprocess.Popen(
            [
                *(server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"),
                *(
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ),
            ],
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait_for_port(port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for _ in range(200):
            info = subprocess.run(
                [cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True
            ).stdout
            if "cluster_state:ok" in info:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the Redis Cluster did not come up:\n{info}")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for node in nodes:
            node.kill()
            node.wait(10)


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20_000, 29_999)
        if port not in ports and all(_port_free(p) for p in (port, port + 10_000)):
            ports.append(port)
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_for_port(port: int) -> None:
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


@pytest.fixture
async def redis_cluster(redis_cluster_url: str) -> AsyncIterator[RedisClient]:
    """A client of the session's Redis Cluster."""
    client = open_redis(redis_cluster_url, cluster=True)
    await client.ping()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def make_store(request: pytest.FixtureRequest) -> StoreMaker:
    """Builds conversation stores with a given Timing, in process memory or in Redis.

    Redis stores share the server (or the cluster), as several workers do; each memory
    store is a separate process's memory.
    """
    if request.param == "memory":
        return MemoryConversationStore
    fixture = "redis" if request.param == "redis" else "redis_cluster"
    client: RedisClient = request.getfixturevalue(fixture)
    return lambda timing=None: RedisConversationStore(client, timing)


@pytest.fixture(params=["sqlite", "postgresql+redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for each way Yimen is deployed.

    ``sqlite``: the embedded defaults (SQLite in the data directory, memory state);
    ``postgresql+redis``: the session's PostgreSQL database (emptied after the test)
    and Redis under this test's own key prefix.
    """
    if request.param == "sqlite":
        return {}
    keys: KeyBuilder = request.getfixturevalue("keys")  # its Redis keys go with the test
    return {
        "database_url": request.getfixturevalue("postgres"),
        "redis_url": REDIS_URL,
        "redis_prefix": keys.prefix,
    }


@pytest.fixture
def store(make_store: StoreMaker) -> ConversationStore:
    """A conversation store with default timing, in memory and in Redis."""
    return make_store(None)


def peer_of(store: ConversationStore, make_store: StoreMaker) -> ConversationStore:
    """The store another worker would use: Redis is shared, memory is the process's own."""
    return make_store(None) if isinstance(store, RedisConversationStore) else store


# The NLU model cache the tests share, across sessions and working trees: models are
# keyed by a fingerprint of the training data and the feature code, so a cache that
# outlives the session only saves retraining an identical model. YIMEN_TEST_MODEL_CACHE
# overrides where it is. Settings built in this process use it as YIMEN_MODEL_CACHE, so
# no test writes to the user's real model cache (~/.cache/yimen/models).
TEST_MODEL_CACHE = Path(
    os.environ.get("YIMEN_TEST_MODEL_CACHE") or Path.home() / ".cache" / "yimen" / "test-models"
)
os.environ["YIMEN_MODEL_CACHE"] = str(TEST_MODEL_CACHE)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The NLU model cache the tests share (``TEST_MODEL_CACHE``)."""
    return TEST_MODEL_CACHE


@pytest.fixture(scope="session")
def nlu_model(model_dir: Path) -> EmbeddedModel:
    """The embedded model trained on nlu/data (once per session)."""
    return load_or_train(model_dir)


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A part of nlu/data that trains in seconds: the chat lines, the annotated places
    and the lookups (about 760 examples of 24 intents)."""
    directory = tmp_path_factory.mktemp("nlu-data")
    for name in ("conversation.yml", "places.yml", "lookups.yml"):
        shutil.copy(DATA_DIR / name, directory / name)
    return directory


@pytest.fixture(scope="session")
def interpreter(nlu_model: EmbeddedModel) -> EmbeddedInterpreter:
    """The embedded interpreter over the session's model."""
    return EmbeddedInterpreter(nlu_model, EntityExtractor.from_training_data(load_training_data()))


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The Simplified Chinese message catalogue."""
    return Catalog.load()


def data_dir_with_model(directory: Path, model_dir: Path) -> Path:
    """Make ``directory`` a Yimen data directory holding the session's trained model.

    The model file is linked, not copied: every app in the process then shares the one
    loaded model (load_or_train keys its in-process cache by the resolved file).
    """
    (directory / "models").mkdir(parents=True)
    name = f"embedded-{fingerprint()}.joblib"
    (directory / "models" / name).symlink_to(model_dir / name)
    return directory


@pytest.fixture
def data_dir(tmp_path: Path, model_dir: Path, nlu_model: EmbeddedModel) -> Path:
    """A data directory holding a copy of the session's trained NLU model."""
    return data_dir_with_model(tmp_path / "data", model_dir)


@pytest.fixture(scope="module")
def module_data_dir(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, nlu_model: EmbeddedModel
) -> Path:
    """``data_dir`` for a module whose app lives as long as the module."""
    return data_dir_with_model(tmp_path_factory.mktemp("module") / "data", model_dir)


# --- dispatch platforms (integration/dispatch): emulators on loopback ------------------


@pytest.fixture
async def open311() -> AsyncIterator[Open311Emulator]:
    """A GeoReport v2 server on loopback, serving until the test ends."""
    emulator = Open311Emulator()
    await emulator.start()
    yield emulator
    emulator.faults.release.set()
    await emulator.stop()


@pytest.fixture
async def dispatch_platform() -> AsyncIterator[DispatchEmulator]:
    """The generic REST dispatch platform on loopback, with a signing secret."""
    emulator = DispatchEmulator(secret=DISPATCH_SECRET)
    await emulator.start()
    yield emulator
    emulator.faults.release.set()
    await emulator.stop()


@pytest.fixture
async def wechat_api() -> AsyncIterator[WeChatAPIEmulator]:
    """The WeChat API (token, custom/send, template/send, menu) on loopback."""
    async with WeChatAPIEmulator() as emulator:
        yield emulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_wechat_api() -> AsyncIterator[WeChatAPIEmulator]:
    """``wechat_api`` for a module whose app lives as long as the module."""
    async with WeChatAPIEmulator() as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with a short timeout, as the dispatch worker shares one."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.5)) as session:
        yield session


# The files that build Rasa's venv and train its model (cached under ~/.cache/yimen).
# They are marked as one xdist group, but the mark is added here, at collection, and
# xdist did not keep them on one worker (seen 2026-12-05); tests/rasa_shared.py
# therefore shares its server between workers itself.
RASA_FILES = {"test_rasa_server.py", "test_faults_rasa.py"}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the shared Rasa server now if a collected test will use it: it loads for
    about 40 s (minutes on a new machine), while other tests run (tests/rasa_shared.py)."""
    if any("rasa_server" in getattr(item, "fixturenames", ()) for item in session.items):
        SHARED_RASA.begin()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Leave the shared Rasa server: the last session to leave stops it."""
    SHARED_RASA.release()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Rasa tests may build Rasa's venv and train a model first: give them longer."""
    for item in items:
        if item.get_closest_marker("rasa") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(2400))
        if item.path.name in RASA_FILES:
            item.add_marker(pytest.mark.xdist_group("rasa"))
