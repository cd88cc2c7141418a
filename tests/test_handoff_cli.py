"""`yimen handoff link|duty|list`, and a staff member linking their chat with the code.

The installed console script in a subprocess (as tests/test_staff_cli.py runs it),
on a SQLite database made beforehand; the code is redeemed by the chat flow.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bots.runtime import open_services
from bots.settings import Settings
from handlers.catalog import Catalog
from handlers.flows import TRIGGERS
from handlers.flows.base import Turn
from handlers.flows.staff_link import StaffLinkFlow
from handlers.messages import Inbound
from handlers.state import ConversationState
from nlu.types import FALLBACK_INTENT, Parse
from tests.test_staff_cli import yimen

pytestmark = pytest.mark.slow


def linking(text: str) -> Turn:
    return Turn(Inbound("telegram", "u1", "c1", text, text), Parse(text, FALLBACK_INTENT, 0.0))


async def test_link_a_chat_with_the_code_and_go_on_duty(tmp_path: Path, catalog: Catalog) -> None:
    settings = Settings(data_dir=tmp_path / "var", _env_file=None)  # type: ignore[call-arg]
    async with open_services(settings, with_nlu=False):
        pass  # the database exists
    env = {"YIMEN_DATA_DIR": str(tmp_path / "var")}
    code, out, _ = await yimen(tmp_path, "handoff", "link", "zhang", **env)
    assert code == 0
    found = re.search(r"绑定(\d{6})", out)
    assert found, out
    code, out, _ = await yimen(tmp_path, "handoff", "duty", "zhang", **env)
    assert (code, out.strip()) == (0, "zhang is on duty (no linked chat yet: `yimen handoff link`)")

    async with open_services(settings, with_nlu=False) as services:
        flow = StaffLinkFlow(services.handoffs, catalog)
        assert any(t.flow == "staff_link" and t.fires(linking(found.group())) for t in TRIGGERS)
        other = "绑定000000" if found.group(1) != "000000" else "绑定111111"
        [wrong] = await flow.start(linking(other), ConversationState())
        assert wrong.text == catalog("handoff.link_invalid")
        [linked] = await flow.start(linking(found.group()), ConversationState())
        assert linked.text == catalog("handoff.linked", staff="zhang")
        assert await services.handoffs.on_duty() == ("zhang", "telegram", "c1")

    code, out, _ = await yimen(tmp_path, "handoff", "list", **env)
    assert (code, out.strip()) == (0, "no conversation waits for a person")
