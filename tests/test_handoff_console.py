"""The console's inbox over HTTP: live list by WebSocket, actions audited, window refusal.

The whole app (tests.console_client), on SQLite with memory state and on PostgreSQL
with Redis; residents write through the real pipeline and NLU.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bots.app import SERVICES
from handlers.catalog import Catalog
from handlers.messages import Inbound
from integration.models import AuditEntry, Handoff, Notification
from integration.services import load_catalogue
from tests.console_client import console_client, page_csrf, sign_in


@pytest.fixture
async def client(data_dir: Path, backend: dict[str, Any]) -> Any:
    async with console_client(data_dir, **backend) as client:
        yield client


async def ask_for_person(client: Any, chat: str, channel: str = "webchat", **at: Any) -> int:
    services = client.server.app[SERVICES]
    inbound = Inbound(channel, chat, chat, f"{chat}-h", "我要找工作人员", **at)
    assert await services.pipeline.handle(inbound)
    [handoff] = [h for h in await services.handoffs.open_list() if h.chat_id == chat]
    return handoff.id


async def rows(client: Any, model: Any) -> list[Any]:
    async with client.server.app[SERVICES].sessions() as session:
        return list(await session.scalars(select(model).order_by(model.id)))


async def test_claim_reply_with_variables_and_hand_back_are_audited(
    client: Any, catalog: Catalog
) -> None:
    handoff = await ask_for_person(client, "r1")
    assert (await sign_in(client, "desk")).status == 303
    page = await (await client.get("/console/inbox")).text()
    assert f'href="/console/inbox/{handoff}"' in page and "居民要求转人工" in page
    token = await page_csrf(client, "/console/inbox")
    headers = {"X-CSRF-Token": token}
    base = f"/console/inbox/{handoff}"
    assert (
        await client.post(f"{base}/claim", headers=headers, allow_redirects=False)
    ).status == 303
    reply = {"text": "{name}您好，{case}，请带：{materials}", "service": "residence_permit"}
    sent = await client.post(f"{base}/reply", data=reply, headers=headers, allow_redirects=False)
    assert sent.headers["Location"] == base
    back = await client.post(f"{base}/release", headers=headers, allow_redirects=False)
    assert back.headers["Location"] == "/console/inbox"

    materials = "、".join(load_catalogue().services["residence_permit"].materials)
    texts = [n.text for n in await rows(client, Notification)]
    assert texts[0] == (
        f"{catalog('handoff.canned_no_name')}您好，{catalog('handoff.canned_no_case')}，"
        f"请带：{materials}"
    )
    assert texts[1] == catalog("handoff.returned")
    [row] = await rows(client, Handoff)
    assert (row.status, row.claimed_by, row.closed_how) == ("closed", "desk", "released")
    audited = [(a.actor, a.action, a.target) for a in await rows(client, AuditEntry)]
    target = f"handoff:{handoff}"
    assert [a for a in audited if a[1].startswith("handoff.")] == [
        ("desk", "handoff.claim", target),
        ("desk", "handoff.reply", target),
        ("desk", "handoff.release", target),
    ]


async def test_another_members_conversation_cannot_be_answered(client: Any) -> None:
    handoff = await ask_for_person(client, "r2")
    await sign_in(client, "boss")
    headers = {"X-CSRF-Token": await page_csrf(client, "/console/inbox")}
    await client.post(f"/console/inbox/{handoff}/claim", headers=headers)
    client.session.cookie_jar.clear()
    await sign_in(client, "desk")
    headers = {"X-CSRF-Token": await page_csrf(client, "/console/inbox")}
    taken = await client.post(
        f"/console/inbox/{handoff}/claim", headers=headers, allow_redirects=False
    )
    assert taken.headers["Location"].endswith("?error=taken")
    refused = await client.post(
        f"/console/inbox/{handoff}/reply",
        data={"text": "hi"},
        headers=headers,
        allow_redirects=False,
    )
    assert refused.headers["Location"].endswith("?error=not_yours")
    assert await rows(client, Notification) == []


async def test_a_wechat_reply_outside_48_hours_is_refused_and_the_console_says_so(
    client: Any,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=49)
    handoff = await ask_for_person(client, "o-wx", channel="wechat", time=long_ago)
    await sign_in(client, "desk")
    page = await (await client.get(f"/console/inbox/{handoff}")).text()
    assert "已超过 48 小时" in page
    headers = {"X-CSRF-Token": await page_csrf(client, "/console/inbox")}
    await client.post(f"/console/inbox/{handoff}/claim", headers=headers)
    refused = await client.post(
        f"/console/inbox/{handoff}/reply", data={"text": "您好"}, headers=headers
    )
    assert "未发送：已超过微信 48 小时客服消息时限" in await refused.text()
    assert await rows(client, Notification) == []
    assert [a.action for a in await rows(client, AuditEntry)][-1] == "handoff.reply_refused"


async def test_the_live_list_needs_a_session_and_pushes_waiting_conversations(
    client: Any,
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/console/inbox/live")  # no session: sent to sign-in
    await sign_in(client, "desk")
    socket = await client.ws_connect("/console/inbox/live")
    first = await socket.receive_json(timeout=10)
    assert first["rows"] == []
    handoff = await ask_for_person(client, "r3")
    pushed = await socket.receive_json(timeout=10)
    [row] = pushed["rows"]
    assert (row["id"], row["status"], row["overdue"]) == (handoff, "waiting", False)
    assert row["reason"] == "居民要求转人工" and row["waited"] >= 0
    await socket.close()
    metrics = await (await client.get("/metrics")).text()
    assert "yimen_handoff_waiting 1.0" in metrics  # the queue, read from the database


async def test_community_accounts_have_no_inbox(client: Any) -> None:
    handoff = await ask_for_person(client, "r4")
    await sign_in(client, "jinhui")
    for path in ("/console/inbox", f"/console/inbox/{handoff}"):
        assert (await client.get(path)).status == 403
    cases = await client.get("/console/cases")
    assert cases.status == 200 and "/console/inbox" not in await cases.text()  # no nav entry
