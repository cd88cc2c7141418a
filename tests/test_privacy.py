"""Personal numbers at rest: an ID number sent in chat is never stored in clear.

Through the real pipeline on SQLite with memory state and on PostgreSQL with Redis:
after residents send ID numbers (18- and 15-digit, in a question and in a report
that becomes a case), every text column of every table, and every saved conversation
state (Redis) is searched for them. (Log lines: tests/test_logs.py.)
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import String, Text, select

from bots.runtime import build_pipeline
from bots.settings import Settings
from handlers.catalog import Catalog
from handlers.messages import Inbound
from integration.cases import CaseBook
from integration.db import create_engine, session_factory, upgrade
from integration.dispatch.ratings import RatingBook
from integration.models import Base, Case
from integration.privacy import (
    has_id_number,
    mask,
    mask_id_numbers,
    mask_phones,
    only_id_numbers,
)
from integration.transcript import Transcript
from nlu.embedded import EmbeddedInterpreter

_ids = itertools.count()
IDS = ("150602199001011234", "15060219900101123X", "150602900101123")
CLEAR = ("199001011234", "19900101123X", "900101123")


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("身份证150602199001011234", "身份证150602********1234"),
        ("身份证号:15060219900101123x。", "身份证号:150602********123x。"),
        ("老身份证150602900101123", "老身份证150602******123"),
        ("工单YM2611250001", "工单YM2611250001"),
        ("预约号YM2611250001123", "预约号YM2611250001123"),
        ("订单20261125000112345678", "订单20261125000112345678"),
        ("2026年11月25日 9点", "2026年11月25日 9点"),
    ],
)
def test_id_numbers_are_masked_and_nothing_else(raw: str, masked: str) -> None:
    assert mask_id_numbers(raw) == masked
    assert has_id_number(raw) is (raw != masked)


@pytest.mark.parametrize(
    ("text", "only"),
    [
        ("150602199001011234", True),
        ("身份证号：15060219900101123x。", True),
        ("我的身份证号码是150602199001011234", True),
        ("她的证件号 150602900101123", True),
        ("我身份证号是150602199001011234 想问下低保怎么申请", False),
        ("电话13912345678 身份证150602199001011234", False),
        ("工单YM2611250001", False),  # no ID number at all
    ],
)
def test_an_id_number_alone_leaves_nothing_to_understand(text: str, only: bool) -> None:
    assert only_id_numbers(text) is only


def test_phones_are_masked_for_views_and_logs_only() -> None:
    text = "电话139 1234 5678，座机0477-8581234，身份证150602199001011234"
    assert mask_phones(text) == "电话139****5678，座机0477-****1234，身份证150602199001011234"
    assert mask(text) == "电话139****5678，座机0477-****1234，身份证150602********1234"


async def test_an_id_number_sent_in_chat_is_never_stored_in_clear(
    backend: dict[str, Any],
    tmp_path: Path,
    interpreter: EmbeddedInterpreter,
    catalog: Catalog,
) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None, **backend)  # type: ignore[call-arg]
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    engine = create_engine(settings.resolved_database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    pipeline = build_pipeline(
        settings,
        redis,
        interpreter,
        CaseBook(sessions),
        Transcript(sessions),
        catalog,
        RatingBook(sessions),
    )
    messages = [
        f"我身份证号是{IDS[0]} 想问下低保怎么申请",
        f"楼道里堆满了杂物 身份证{IDS[1]} 电话13912345678",
        f"金辉小区3号楼 老身份证{IDS[2]}",
        "跳过",
        "提交",
    ]
    try:
        replies, state = [], ""
        for text in messages:
            inbound = Inbound("webchat", "r1", "r1", f"p{next(_ids)}", text)
            replies += await pipeline.handle(inbound) or []
            if redis is not None:  # the saved conversation after each message
                async for key in redis.scan_iter(f"{settings.redis_prefix}:state:*"):
                    state += (await redis.get(key) or b"").decode()
        texts = [r.text for r in replies]
        async with sessions() as session:
            stored: list[str] = []
            description = await session.scalar(select(Case.description))
            for table in Base.metadata.sorted_tables:
                columns = [c for c in table.columns if isinstance(c.type, String | Text)]
                for row in (await session.execute(select(*columns))).all() if columns else []:
                    stored += [str(v) for v in row if v]
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
    assert "150602********123X" in state or redis is None
    assert description is not None and "150602********123X" in description  # masked in the case
    assert any("13912345678" in t for t in stored)  # in the case, for staff to call back
    for clear in CLEAR:
        assert not [t for t in stored if clear in t], clear
        assert clear not in state
        assert not [t for t in texts if clear in t]
    assert texts.count(catalog("chat.id_masked")) == 3
