"""The Rasa backend against a real Rasa 3.6 server: the suite's shared one
(tests/rasa_shared.py), which these tests fail, never skip, without.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from itertools import pairwise

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.flows import standard_flows
from handlers.messages import Inbound
from handlers.pipeline import Pipeline
from handlers.router import Router
from integration.state import KeyBuilder, MemoryConversationStore, Timing
from integration.transcript import Transcript
from nlu.contract import INTENTS
from nlu.embedded import EmbeddedInterpreter
from nlu.gazetteer import Gazetteer
from nlu.rasa_client import FallbackInterpreter, RasaError, RasaInterpreter, RasaRejected
from tests.fakes import FakeDesk
from tests.rasa_shared import SHARED

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="session")
def rasa_server() -> tuple[str, str]:
    """(url, token) of a real Rasa server: YIMEN_TEST_RASA_URL's, or the suite's shared
    one, which conftest.py started when collection ended (released when the session ends)."""
    return SHARED.wait()


@pytest.fixture
async def real_rasa(rasa_server: tuple[str, str]) -> AsyncIterator[RasaInterpreter]:
    """A client of the real server; fails the test (never skips) when it is down."""
    url, token = rasa_server
    async with RasaInterpreter(url, token=token or None, timeout=10, threshold=0) as rasa:
        try:
            await rasa.parse("你好")
        except RasaError as exc:
            pytest.fail(f"the Rasa server at {url} is not usable ({exc})")
        yield rasa


CLEAR_MESSAGES = [
    ("你好", "greet"),
    ("谢谢", "thanks"),
    ("转人工", "human_handoff"),
    ("楼下烧烤店每天半夜还很吵", "report_noise"),
    ("垃圾桶满了没人收", "report_sanitation"),
    ("路灯不亮", "report_facility"),
    ("电梯坏了", "report_property"),
    ("我想预约明天上午办居住证", "book_appointment"),
    ("办居住证要带什么材料", "ask_service_info"),
    ("我想注册志愿者", "volunteer_register"),
]


@pytest.mark.parametrize(("text", "intent"), CLEAR_MESSAGES)
async def test_real_rasa_predicts_contract_intents(
    real_rasa: RasaInterpreter, text: str, intent: str
) -> None:
    parse = await real_rasa.parse(text)
    assert (parse.text, parse.intent) == (text, intent)
    assert 0.0 < parse.confidence <= 1.0
    assert parse.ranking[0] == (intent, parse.confidence)
    assert {name for name, _ in parse.ranking} <= set(INTENTS)


async def test_real_rasa_returns_entity_spans_with_synonyms_mapped(
    real_rasa: RasaInterpreter,
) -> None:
    text = "我要预约明天上午办理社会保障卡，电话13912345678"
    parse = await real_rasa.parse(text)
    service, phone = parse.first("service"), parse.first("phone")
    assert service is not None and phone is not None
    assert (text[service.start : service.end], service.value) == ("社会保障卡", "社保卡")
    assert (text[phone.start : phone.end], phone.value) == ("13912345678", "13912345678")
    spans = [(e.start, e.end) for e in parse.entities]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))


async def test_real_rasa_finds_lookup_communities_as_addresses(
    real_rasa: RasaInterpreter,
) -> None:
    text = "阳光嘉园门口垃圾堆了好几天"
    parse = await real_rasa.parse(text)
    address = parse.first("address")
    assert address is not None
    assert text[address.start : address.end].startswith("阳光嘉园")


async def test_real_rasa_rejects_a_wrong_token(rasa_server: tuple[str, str]) -> None:
    url, token = rasa_server
    if not token:
        pytest.fail("set YIMEN_TEST_RASA_TOKEN: the server must run with token auth")
    async with RasaInterpreter(url, token=token + "-wrong") as rasa:
        with pytest.raises(RasaRejected) as raised:
            await rasa.parse("你好")
    assert raised.value.status == 401


async def test_a_whole_report_through_the_pipeline_on_real_rasa(
    real_rasa: RasaInterpreter,
    interpreter: EmbeddedInterpreter,
    sessions: async_sessionmaker[AsyncSession],
    catalog: Catalog,
) -> None:
    """YIMEN_NLU_BACKEND=rasa: the real server understands, the flow opens a case."""
    fallback = FallbackInterpreter(real_rasa, interpreter)
    desk = FakeDesk()
    pipeline = Pipeline(
        store=MemoryConversationStore(Timing()),
        transcript=Transcript(sessions),
        interpreter=fallback,
        router=Router(standard_flows(desk, catalog, Gazetteer.load()), catalog),
        catalog=catalog,
        keys=KeyBuilder(f"test-{uuid.uuid4().hex[:8]}"),
    )
    said = []
    for number, text in enumerate(["楼下烧烤店每天半夜还很吵", "金辉小区3号楼", "不用了", "提交"]):
        replies = await pipeline.handle(Inbound("test", "u1", "u1", f"m{number}", text))
        assert replies
        said.append(replies[-1].text)
    assert fallback.fallbacks == 0
    assert len(desk.drafts) == 1
    assert (desk.drafts[0].category, desk.drafts[0].address) == ("noise", "金辉小区3号楼")
    assert desk.drafts[0].latitude is not None  # the gazetteer located the community
    assert next(iter(desk.cases)) in said[-1]
