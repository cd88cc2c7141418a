"""`yimen admin create`: the first console account, from the command line."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from sqlalchemy import select

from console.accounts import AccountBook
from integration.db import create_engine, session_factory
from integration.models import AuditEntry, StaffAccount
from tests.test_staff_cli import yimen


async def test_admin_create_prompts_for_the_password_and_the_account_signs_in(
    tmp_path: Path,
) -> None:
    env = {"YIMEN_DATA_DIR": str(tmp_path / "var")}
    assert (await yimen(tmp_path, "db", "upgrade", **env))[0] == 0
    script = shutil.which("yimen", path=str(Path(sys.executable).parent))
    assert script
    process = await asyncio.create_subprocess_exec(
        script,
        "admin",
        "create",
        "wang",
        env={"PATH": str(Path(sys.executable).parent), "PYTHONIOENCODING": "utf-8", **env},
        cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(b"a long secret 1\na long secret 1\n")
    assert process.returncode == 0, err.decode()
    assert "created admin account 'wang'" in out.decode()
    assert "a long secret 1" not in out.decode()
    # A taken name, a short password and a community account without its community fail.
    for args in (
        ("wang", "--password", "another secret"),
        ("li", "--password", "short"),
        ("zhao", "--role", "community", "--password", "another secret"),
    ):
        code, _, err_text = await yimen(tmp_path, "admin", "create", *args, **env)
        assert code == 1 and err_text.startswith("database:") and "error:" in err_text, args
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'yimen.db'}")
    try:
        sessions = session_factory(engine)
        book = AccountBook(sessions)
        assert await book.verify("wang", "a long secret 1") is not None
        assert await book.verify("wang", "wrong") is None
        async with sessions() as session:
            accounts = (await session.scalars(select(StaffAccount.username))).all()
            stored = await session.scalar(select(StaffAccount.password_hash))
            audited = (await session.scalars(select(AuditEntry.action))).all()
        assert accounts == ["wang"] and stored and stored.startswith("$argon2id$")
        assert audited == ["account.create"]
    finally:
        await engine.dispose()
