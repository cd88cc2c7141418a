"""Staff commands say which database they use, and never create an empty one.

`yimen cases list` run from another directory used to create a new database there
and report no cases. Each test runs the installed console script in a subprocess,
with nothing but YIMEN_* variables for configuration.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bots.runtime import open_services
from bots.settings import Settings
from integration.cases import CaseDraft
from integration.transcript import InboundRecord

pytestmark = pytest.mark.slow


async def yimen(cwd: Path, *args: str, **env: str) -> tuple[int, str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("YIMEN_")}
    variables |= {"PYTHONIOENCODING": "utf-8", **env}
    script = shutil.which("yimen", path=str(Path(sys.executable).parent))
    assert script
    process = await asyncio.create_subprocess_exec(
        script,
        *args,
        env=variables,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "command",
    [
        ["cases", "list"],
        ["cases", "set-status", "YM2611260001", "accepted"],
        ["dispatch", "dead"],
        ["dispatch", "ratings"],
        ["residents", "forget", "webchat:r1", "--yes"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
async def test_a_staff_command_in_the_wrong_directory_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    code, out, err = await yimen(tmp_path, *command)
    missing = tmp_path / "var" / "yimen.db"
    assert code == 1, (out, err)
    assert f"database: {missing}" in err
    assert f"no Yimen database at {missing}" in err and "yimen db upgrade" in err
    assert not (tmp_path / "var").exists()  # not even the directory
    assert "no cases" not in out


async def test_db_upgrade_creates_it_and_then_staff_commands_read_it(tmp_path: Path) -> None:
    code, out, _ = await yimen(tmp_path, "db", "upgrade")
    database = tmp_path / "var" / "yimen.db"
    assert code == 0 and str(database) in out and database.is_file()
    code, out, err = await yimen(tmp_path, "cases", "list")
    assert (code, out.strip()) == (0, "no cases")
    assert f"database: {database}" in err


async def test_an_empty_file_is_not_taken_for_a_database(tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere.db"
    empty.touch()
    code, _, err = await yimen(
        tmp_path, "cases", "list", YIMEN_DATABASE_URL=f"sqlite+aiosqlite:///{empty}"
    )
    assert code == 1 and "it has no Yimen tables" in err


async def test_residents_forget_from_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    photo = data_dir / "media" / ("c" * 32 + ".jpg")
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"\xff\xd8\xff not really a photo")
    async with open_services(settings, with_nlu=False) as services:
        record = InboundRecord(
            "webchat",
            "r1",
            "r1",
            "m1",
            "楼道灯坏了",
            datetime.now(UTC),
            media_ref=f"/media/{photo.name}",
        )
        await services.transcript.record_inbound(record)
        draft = CaseDraft("webchat", "r1", "r1", "facility", "楼道灯坏了", "金辉小区3号楼")
        number = (await services.cases.create_case(draft)).number

    env = {"YIMEN_DATA_DIR": str(data_dir)}
    code, out, err = await yimen(tmp_path, "residents", "forget", "webchat:r1", "--yes", **env)
    assert code == 0, err
    assert "forgot webchat:r1" in out and "1 messages" in out and "cases: 1 kept" in out
    assert not photo.exists()
    code, _, err = await yimen(tmp_path, "residents", "forget", "r1", "--yes", **env)
    assert code == 1 and "no resident r1" in err
    code, out, _ = await yimen(tmp_path, "cases", "list", **env)
    assert number in out  # the case itself is kept
