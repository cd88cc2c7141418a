"""Corrections: staff fix a message's intent or address in the console, and
`yimen nlu export-corrections` writes them as Rasa YAML that the NLU loader reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.app import SERVICES
from integration.models import AuditEntry, Direction, Message, NluCorrection
from nlu.training_data import load_file
from tests.console_client import console_client, page_csrf, report, sign_in
from tests.test_staff_cli import yimen

pytestmark = pytest.mark.slow


async def test_a_correction_is_stored_audited_and_exported_as_rasa_yaml(
    data_dir: Path, tmp_path: Path
) -> None:
    async with console_client(data_dir) as client:
        number = await report(
            client, "r1", "楼下烧烤店每天半夜还很吵", "金辉小区3号楼", "跳过", "提交"
        )
        async with client.server.app[SERVICES].sessions() as session:
            where = await session.scalar(
                select(Message.id).where(
                    Message.text == "金辉小区3号楼", Message.direction == Direction.inbound.value
                )
            )
            first = await session.scalar(
                select(Message.id).where(Message.text == "楼下烧烤店每天半夜还很吵")
            )
        assert (await sign_in(client, "jinhui")).status == 303
        token = await page_csrf(client, f"/console/cases/{number}")
        refused = await client.post(
            f"/console/messages/{where}/correct", data={"csrf": token, "intent": "inform"}
        )
        assert refused.status == 403
        client.session.cookie_jar.clear()
        assert (await sign_in(client, "desk")).status == 303
        page = await (await client.get(f"/console/cases/{number}")).text()
        assert "纠正识别" in page
        token = await page_csrf(client, f"/console/cases/{number}")
        back = f"/console/cases/{number}"
        # The address must be words of the message; the intent one the model knows.
        for data in ({"address": "别处"}, {"intent": "no_such_intent"}, {}):
            bad = await client.post(
                f"/console/messages/{where}/correct", data={"csrf": token, **data}
            )
            assert bad.status == 400, data
        saved = await client.post(
            f"/console/messages/{where}/correct",
            data={
                "csrf": token,
                "intent": "report_noise",
                "address": "金辉小区3号楼",
                "back": back,
            },
            allow_redirects=False,
        )
        assert saved.status == 303 and saved.headers["Location"].startswith(back)
        script = await client.post(
            f"/console/messages/{first}/correct",
            data={"csrf": token, "address": "<script>x</script>"},
        )
        assert script.status == 400
        async with client.server.app[SERVICES].sessions() as session:
            rows = (await session.scalars(select(NluCorrection))).all()
            audited = (
                await session.scalars(select(AuditEntry).where(AuditEntry.action == "nlu.correct"))
            ).all()
        assert [(r.intent, r.address, r.actor) for r in rows] == [
            ("report_noise", "金辉小区3号楼", "desk")
        ]
        # The audit keeps what the model had read (whatever it was) and the correction.
        async with client.server.app[SERVICES].sessions() as session:
            read = await session.scalar(select(Message.intent).where(Message.id == where))
        assert read and len(audited) == 1 and read in audited[0].before
        assert "report_noise" in audited[0].after
    out = tmp_path / "corrections.yml"
    code, _, err = await yimen(
        tmp_path, "nlu", "export-corrections", "--out", str(out), YIMEN_DATA_DIR=str(data_dir)
    )
    assert code == 0, err
    assert "1 correction(s) exported" in err
    document = out.read_text(encoding="utf-8")
    assert "[金辉小区3号楼](address)" in document
    examples = load_file(out).examples
    assert [(e.intent, e.text) for e in examples] == [("report_noise", "金辉小区3号楼")]
    assert re.search(r"intent: report_noise", document)
