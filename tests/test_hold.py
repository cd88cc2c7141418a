"""A flow that holds the conversation (the human handoff), through the real pipeline.

The console's handoff flow will be one registry entry; this stand-in holds the
conversation the same way, so the pipeline's side of it is pinned here: while held
the bot says nothing of its own and every message is still stored, and when staff
hand the conversation back the resident's paused report resumes.
"""

from __future__ import annotations

import itertools

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.flows import standard_flows
from handlers.flows.base import Expect, Turn
from handlers.messages import Inbound, Outbound
from handlers.pipeline import Pipeline
from handlers.router import Router
from handlers.state import ConversationState, ConversationStore
from integration.cases import CaseBook
from integration.models import Message
from integration.state import KeyBuilder
from integration.transcript import Transcript
from nlu.embedded import EmbeddedInterpreter
from nlu.gazetteer import Gazetteer

_ids = itertools.count()


class HoldingFlow:
    """Holds the conversation for a person until released."""

    name = "handoff"

    def __init__(self) -> None:
        self.passed: list[str] = []

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        state.begin(self.name, "held")
        return [Outbound("已为您转接工作人员，请稍候")]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        self.passed.append(turn.text)
        return []

    def expect(self, state: ConversationState) -> Expect:
        return Expect(text=True, intents=frozenset({"human_handoff"}), holds=True)

    def ask(self, state: ConversationState) -> list[Outbound]:
        return []


async def test_a_held_conversation_is_silent_and_resumes_when_released(
    store: ConversationStore,
    sessions: async_sessionmaker[AsyncSession],
    interpreter: EmbeddedInterpreter,
    catalog: Catalog,
    keys: KeyBuilder,
) -> None:
    holding = HoldingFlow()
    flows = {**standard_flows(CaseBook(sessions), catalog, Gazetteer.load()), "handoff": holding}
    pipeline = Pipeline(
        store=store,
        transcript=Transcript(sessions),
        interpreter=interpreter,
        router=Router(flows, catalog),
        catalog=catalog,
        keys=keys,
    )

    async def say(text: str) -> list[str]:
        replies = await pipeline.handle(Inbound("webchat", "r1", "r1", f"h{next(_ids)}", text))
        assert replies is not None
        return [r.text for r in replies]

    assert "具体位置" in "".join(await say("楼道里有人飞线充电"))
    assert await say("你们这个问来问去的 烦死了 转人工") == ["已为您转接工作人员，请稍候"]
    for text in ("人呢", "傻逼", "取消", "我的进度"):
        assert await say(text) == []
    assert holding.passed == ["人呢", "傻逼", "取消", "我的进度"]

    [back] = await pipeline.release("webchat", "r1")
    assert back.text.startswith(catalog("complaint.resume")) and "具体位置" in back.text
    assert await pipeline.release("webchat", "r1") == []  # nothing holds it any more
    assert "金辉小区3号楼" in "".join(await say("金辉小区3号楼"))
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert stored == 7  # every message the resident sent, held ones included
