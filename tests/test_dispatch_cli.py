"""`yimen dispatch dead|retry|ratings`: what staff see and do about the outbox."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from bots.runtime import open_services
from bots.settings import Settings
from integration.cases import CaseDraft
from integration.dispatch.ratings import Score
from integration.models import CaseStatus

pytestmark = pytest.mark.slow


async def yimen(data_dir: Path, *args: str) -> tuple[int, str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("YIMEN_")}
    variables |= {
        "YIMEN_DATA_DIR": str(data_dir),
        "YIMEN_DISPATCH": "open311",
        "YIMEN_OPEN311_URL": "http://127.0.0.1:9/",
        "PYTHONIOENCODING": "utf-8",
    }
    script = shutil.which("yimen", path=str(Path(sys.executable).parent))
    assert script
    process = await asyncio.create_subprocess_exec(
        script,
        *args,
        env=variables,
        cwd=data_dir.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_staff_see_dead_letters_retry_them_and_read_ratings(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, dispatch="open311", open311_url="http://127.0.0.1:9/"
    )
    async with open_services(settings, with_nlu=False) as services:
        draft = CaseDraft("webchat", "r1", "r1", "noise", "夜里施工扰民", "金辉小区3号楼")
        number = (await services.cases.create_case(draft)).number
        await services.cases.change_status(number, CaseStatus.resolved, "已办结")
        question = await services.dispatch.ratings.request("webchat", "r1")
        assert question is not None
        # GeoReport v2 cannot reopen: the dissatisfied case is raised to staff.
        await services.dispatch.ratings.rate(question.id, Score.dissatisfied)

    code, dead, _ = await yimen(data_dir, "dispatch", "dead")
    assert code == 0
    [line] = dead.splitlines()
    assert line.startswith(f"{number}  reopen") and "raised to staff" in line

    code, ratings, _ = await yimen(data_dir, "dispatch", "ratings")
    assert code == 0
    assert "asked 1, answered 1 (100%)" in ratings and "不满意 1" in ratings
    assert "0.0% of answers" in ratings

    code, retried, _ = await yimen(data_dir, "dispatch", "retry", number)
    assert (code, retried.strip()) == (0, "1 job(s) queued again")
    code, _, error = await yimen(data_dir, "dispatch", "retry", number)
    assert code == 1 and f"no dead letter for {number}" in error
    code, _, usage = await yimen(data_dir, "dispatch", "retry")
    assert code == 2 and "--all" in usage
