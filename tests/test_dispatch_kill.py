"""A real `yimen worker`, killed with SIGKILL between the platform's POST and our commit.

The emulated platform receives (and stores) the case, then holds its answer until the
test has killed the worker, so the commit never happens. A restarted worker must find
the case on the platform (Open311: a lookup; webhook: the same idempotency key) rather
than create it a second time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bots.runtime import open_services
from bots.settings import Settings
from integration.cases import CaseDraft
from integration.db import create_engine
from integration.models import Case, OutboxJob
from tests.conftest import DISPATCH_SECRET
from tests.emulators.dispatch import DispatchEmulator
from tests.emulators.open311 import Open311Emulator

pytestmark = pytest.mark.slow

TIMEOUT = 60.0


def environment(data_dir: Path, platform: str, url: str) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("YIMEN_")}
    variables |= {
        "YIMEN_DATA_DIR": str(data_dir),
        "YIMEN_DISPATCH": platform,
        "YIMEN_DISPATCH_TIMEOUT": "1",
        "YIMEN_DISPATCH_LEASE": "2",
        "YIMEN_DISPATCH_POLL_INTERVAL": "0.1",
        "YIMEN_DISPATCH_BACKOFF": "0.1",
        "YIMEN_DISPATCH_STATUS_INTERVAL": "0",
        "PYTHONIOENCODING": "utf-8",
    }
    if platform == "open311":
        variables |= {"YIMEN_OPEN311_URL": url, "YIMEN_OPEN311_API_KEY": "test-key"}
    else:
        variables |= {"YIMEN_DISPATCH_URL": url, "YIMEN_DISPATCH_SECRET": DISPATCH_SECRET}
    return variables


async def spawn_worker(variables: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    script = shutil.which("yimen", path=str(Path(sys.executable).parent))
    assert script
    process = await asyncio.create_subprocess_exec(
        script,
        "worker",
        env=variables,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    async with asyncio.timeout(TIMEOUT):
        assert b"dispatch worker" in await process.stdout.readline()
    return process


@pytest.mark.parametrize("platform", ["webhook", "open311"])
async def test_a_worker_killed_after_the_post_does_not_create_a_second_case(
    tmp_path: Path,
    platform: str,
    open311: Open311Emulator,
    dispatch_platform: DispatchEmulator,
) -> None:
    emulator: Open311Emulator | DispatchEmulator = (
        open311 if platform == "open311" else dispatch_platform
    )
    url = open311.base if platform == "open311" else dispatch_platform.url
    variables = environment(tmp_path / "data", platform, url)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", dispatch=platform)  # type: ignore[call-arg]
    settings = settings.model_copy(update={"dispatch_url": url, "open311_url": url})
    async with open_services(settings, with_nlu=False) as services:
        numbers = [
            (
                await services.cases.create_case(
                    CaseDraft("webchat", f"r{i}", f"r{i}", "noise", "夜里施工扰民", "金辉小区3号楼")
                )
            ).number
            for i in range(2)
        ]
    emulator.faults.hold = True

    first = await spawn_worker(variables, tmp_path)
    try:
        async with asyncio.timeout(TIMEOUT):
            await emulator.faults.received.wait()
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    emulator.faults.hold = False
    emulator.faults.release.set()
    assert first.returncode == -signal.SIGKILL
    assert any(emulator.created_for(n) for n in numbers)  # the platform has it...
    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            kept = list(await connection.scalars(select(Case.platform_id)))
            states = set(await connection.scalars(select(OutboxJob.state)))
        assert states == {"pending"} and None in kept  # ...and we never committed
        ids = await until_forwarded(engine, variables, tmp_path)
    finally:
        await engine.dispose()

    for number in numbers:
        [created] = emulator.created_for(number)  # exactly once
        assert ids[number] == created.get("id", created.get("service_request_id"))


async def until_forwarded(
    engine: AsyncEngine, variables: dict[str, str], cwd: Path
) -> dict[str, str | None]:
    """Run a fresh worker until every case has its platform id; case number -> id."""
    second = await spawn_worker(variables, cwd)
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                async with engine.connect() as connection:
                    rows = await connection.execute(select(Case.number, Case.platform_id))
                    ids = {number: pid for number, pid in rows}
                if None not in ids.values():
                    return ids
                await asyncio.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            await second.wait()
