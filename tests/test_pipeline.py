"""The pipeline over real stores: SQLite and PostgreSQL, memory and Redis."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import Protocol

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.flows import standard_flows
from handlers.flows.base import CaseDesk
from handlers.messages import Inbound, Outbound
from handlers.pipeline import TAKEN_FALLBACK, Limits, Pipeline
from handlers.router import Router
from handlers.state import ConversationStore
from integration.cases import CaseBook, CaseDraft, CaseView
from integration.models import Case, Message
from integration.state import KeyBuilder, MemoryConversationStore
from integration.transcript import InboundRecord, StoredInbound, Transcript
from nlu.embedded import EmbeddedInterpreter
from nlu.types import FALLBACK_INTENT, Interpreter, Parse
from tests.conftest import StoreMaker, peer_of

_ids = itertools.count()


def message(
    text: str, *, chat: str = "r1", message_id: str | None = None, payload: str = ""
) -> Inbound:
    return Inbound("webchat", chat, chat, message_id or f"m{next(_ids)}", text, payload=payload)


class Make(Protocol):
    """Builds a pipeline over this test's stores, with any part replaced."""

    def __call__(
        self,
        *,
        store: ConversationStore | None = None,
        interpreter: Interpreter | None = None,
        limits: Limits | None = None,
        desk: CaseDesk | None = None,
        transcript: Transcript | None = None,
    ) -> Pipeline: ...


@pytest.fixture
def make(
    store: ConversationStore,
    sessions: async_sessionmaker[AsyncSession],
    interpreter: EmbeddedInterpreter,
    catalog: Catalog,
    keys: KeyBuilder,
) -> Make:
    def build(
        *,
        store: ConversationStore = store,
        interpreter: Interpreter = interpreter,
        limits: Limits | None = None,
        desk: CaseDesk | None = None,
        transcript: Transcript | None = None,
    ) -> Pipeline:
        return Pipeline(
            store=store,
            transcript=transcript or Transcript(sessions),
            interpreter=interpreter,
            router=Router(standard_flows(desk or CaseBook(sessions), catalog), catalog),
            catalog=catalog,
            keys=keys,
            limits=limits,
        )

    return build


@pytest.fixture
def pipeline(make: Make) -> Pipeline:
    return make()


async def count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def texts(pipeline: Pipeline, inbound: Inbound) -> list[str]:
    replies = await pipeline.handle(inbound)
    assert replies is not None
    return [r.text for r in replies]


async def test_acceptance_dialogue_opens_one_case(
    pipeline: Pipeline, sessions: async_sessionmaker[AsyncSession]
) -> None:
    [where] = await texts(pipeline, message("楼下烧烤店每天半夜还很吵"))
    assert "具体位置" in where
    [photo] = await texts(pipeline, message("金辉小区3号楼"))
    assert "金辉小区3号楼" in photo and "跳过" in photo
    [confirm] = await texts(pipeline, message("1"))  # the first button, typed as its number
    assert "请确认" in confirm and "噪音扰民" in confirm
    [done] = await texts(pipeline, message("提交"))  # a button typed as its label
    [case] = await CaseBook(sessions).list_cases()
    assert case.number in done
    assert (case.category, case.address) == ("noise", "金辉小区3号楼")
    assert case.description == "楼下烧烤店每天半夜还很吵"


async def test_redelivered_message_is_processed_once(
    pipeline: Pipeline, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await texts(pipeline, message("垃圾桶满了没人清"))
    await texts(pipeline, message("金辉小区3号楼"))
    await texts(pipeline, message("跳过"))
    submit = message("提交", message_id="submit-1")
    first, second = await asyncio.gather(pipeline.handle(submit), pipeline.handle(submit))
    assert [first is None, second is None].count(True) == 1
    assert await pipeline.handle(submit) is None  # a later redelivery too
    assert await count(sessions, Case) == 1
    async with sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.external_id == "submit-1")
        )
    assert stored == 1


async def test_dedupe_survives_losing_shared_state(
    make: Make,
    store: ConversationStore,
    sessions: async_sessionmaker[AsyncSession],
    interpreter: EmbeddedInterpreter,
) -> None:
    pipeline = make()
    inbound = message("你好", message_id="hello-1")
    assert await pipeline.handle(inbound) is not None
    # A restarted single worker (fresh memory) still refuses the redelivery: the
    # transcript's unique (channel, message id) is the last line of defence.
    restarted = make(store=MemoryConversationStore())
    assert await restarted.handle(inbound) is None
    assert await count(sessions, Message) == 2  # the message and its one reply


class SlowInterpreter:
    """Delegates to a real interpreter after a pause, recording who runs when."""

    def __init__(self, inner: Interpreter) -> None:
        self.inner = inner
        self.log: list[str] = []
        self.running = 0
        self.peak = 0

    async def parse(self, text: str) -> Parse:
        self.log.append(f"start {text}")
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        self.log.append(f"end {text}")
        return await self.inner.parse(text)


async def test_messages_of_one_conversation_never_interleave(
    make: Make,
    interpreter: EmbeddedInterpreter,
) -> None:
    slow = SlowInterpreter(interpreter)
    pipeline = make(interpreter=slow)
    await asyncio.gather(*(pipeline.handle(message(f"你好{i}")) for i in range(4)))
    assert len(slow.log) == 8
    for start, end in zip(slow.log[::2], slow.log[1::2], strict=True):
        assert start.replace("start", "end") == end


async def test_other_conversations_are_not_blocked(
    make: Make,
    interpreter: EmbeddedInterpreter,
) -> None:
    slow = SlowInterpreter(interpreter)
    pipeline = make(interpreter=slow)
    await asyncio.gather(*(pipeline.handle(message("你好", chat=f"c{i}")) for i in range(3)))
    assert slow.peak > 1


async def test_rate_limit_refuses_once_per_window_and_stores_nothing(
    make: Make,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
) -> None:
    limits = Limits(rate_limit=3)
    pipeline = make(limits=limits)
    for _ in range(3):
        assert catalog("chat.rate_limited") not in await texts(pipeline, message("你好"))
    assert await texts(pipeline, message("你好")) == [catalog("chat.rate_limited")]
    assert await texts(pipeline, message("你好")) == []  # one notice per window
    assert await texts(pipeline, message("你好", chat="someone-else")) != [
        catalog("chat.rate_limited")
    ]
    async with sessions() as session:
        inbound = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert inbound == 4  # three, and someone else's: refused messages are not stored


@pytest.mark.parametrize(
    ("text", "key", "values"),
    [
        ("", "chat.empty", {}),
        ("   ", "chat.empty", {}),
        ("好" * 10_000, "chat.too_long", {"limit": 2000}),
        ("😀😀👍", "chat.emoji_only", {}),
        ("？？？", "chat.marks_only", {}),
        ("/foo bar", "chat.unknown_command", {"command": "/foo"}),
    ],
)
async def test_bad_input_gets_a_clear_answer_and_is_kept(
    pipeline: Pipeline,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
    text: str,
    key: str,
    values: dict[str, object],
) -> None:
    assert await texts(pipeline, message(text)) == [catalog(key, **values)]
    async with sessions() as session:
        kept = await session.scalar(select(Message.text).where(Message.direction == "in"))
    assert kept == text


async def test_known_commands_map_to_intents(pipeline: Pipeline, catalog: Catalog) -> None:
    assert await texts(pipeline, message("/start")) == [catalog("chat.greet")]
    assert await texts(pipeline, message("/help@yimen_bot")) == [catalog("chat.help")]
    assert await texts(pipeline, message("/status")) == [catalog("status_query.none")]
    assert await texts(pipeline, message("/cancel")) == [catalog("chat.nothing_to_cancel")]


async def test_a_button_of_a_finished_flow_gets_the_menu_not_a_guess(
    pipeline: Pipeline, catalog: Catalog
) -> None:
    # An old inline keyboard pressed after its flow ended: no flow expects the payload.
    [reply] = await pipeline.handle(message("提交", payload="complaint:submit")) or []
    assert reply.text == catalog("chat.stale_button")
    assert "intent:report" in [b.payload for b in reply.buttons]


async def test_conversation_continues_on_another_worker(
    make_store: StoreMaker,
    make: Make,
    store: ConversationStore,
) -> None:
    first = make()
    await texts(first, message("小区门口有流动摊贩"))
    # Another worker (sharing Redis) or the next turn (in memory) picks up the flow.
    second = make(store=peer_of(store, make_store))
    [reply] = await texts(second, message("万达广场东门"))
    assert "万达广场东门" in reply and "跳过" in reply


async def test_a_failing_flow_apologises_and_keeps_the_message(
    make: Make,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
) -> None:
    class BrokenDesk(CaseBook):
        async def create_case(self, draft: CaseDraft) -> CaseView:
            raise ConnectionError("desk unreachable")

    pipeline = make(desk=BrokenDesk(sessions))
    for text in ("电梯又坏了", "金辉小区3号楼", "跳过"):
        await texts(pipeline, message(text))
    assert await texts(pipeline, message("提交")) == [catalog("chat.busy")]
    # The confirmation step is still there, so submitting again works once the desk is back.
    working = make()
    [done] = await texts(working, message("提交"))
    assert "工单号" in done
    async with sessions() as session:
        kept = list(await session.scalars(select(Message.text).where(Message.direction == "in")))
    assert kept.count("提交") == 2


async def test_failure_before_storing_lets_the_redelivery_in(
    make: Make,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
) -> None:
    class FlakyTranscript(Transcript):
        failures = 1

        async def record_inbound(self, record: InboundRecord) -> StoredInbound:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("database went away")
            return await super().record_inbound(record)

    pipeline = make(transcript=FlakyTranscript(sessions))
    inbound = message("你好", message_id="flaky-1")
    with pytest.raises(ConnectionError):
        await pipeline.handle(inbound)
    assert await texts(pipeline, replace(inbound)) == [catalog("chat.greet")]


async def test_pipeline_answers_with_the_embedded_model(
    pipeline: Pipeline, catalog: Catalog, interpreter: EmbeddedInterpreter
) -> None:
    replies = await pipeline.handle(message("你好"))
    assert replies == [Outbound(catalog("chat.greet"), replies[0].buttons)]
    assert [b.payload for b in replies[0].buttons][:2] == ["intent:report", "intent:check_status"]


class DazedInterpreter:
    """A real interpreter, except that it cannot place the messages in ``lost``."""

    def __init__(self, inner: Interpreter, lost: set[str]) -> None:
        self.inner = inner
        self.lost = lost

    async def parse(self, text: str) -> Parse:
        if text in self.lost:
            return Parse(text, FALLBACK_INTENT, 0.2)
        return await self.inner.parse(text)


async def test_a_fallback_the_step_takes_is_recorded_apart_from_one_nobody_took(
    make: Make, interpreter: EmbeddedInterpreter, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The dashboard's 未识别率 counts only nlu_fallback: messages nothing answered.
    pipeline = make(interpreter=DazedInterpreter(interpreter, {"呜哩哇啦", "楼下那块"}))
    for text in ("呜哩哇啦", "路灯坏了好几天了", "楼下那块"):
        await texts(pipeline, message(text))
    async with sessions() as session:
        rows = dict(
            (
                await session.execute(
                    select(Message.text, Message.intent).where(Message.direction == "in")
                )
            ).all()
        )
    assert rows["呜哩哇啦"] == FALLBACK_INTENT  # idle: only the fallback answer
    assert rows["楼下那块"] == TAKEN_FALLBACK  # the report's address step took the words
    assert rows["路灯坏了好几天了"].startswith("report")
