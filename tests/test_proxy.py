"""代办 (proxy_service) and contact phones: consent stored, dispatched once, phones kept on a yes.

Conversations run through the router with the real NLU model (the session's trained
interpreter); the stores are real, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.catalog import Catalog
from handlers.flows import standard_flows
from handlers.flows.base import Turn
from handlers.messages import Inbound, Outbound
from handlers.router import Router
from handlers.state import ConversationState
from integration.cases import CaseBook
from integration.contacts import ContactBook
from integration.dispatch.open311 import Open311Platform
from integration.dispatch.outbox import Outbox
from integration.dispatch.ratings import RatingBook
from integration.dispatch.sync import StatusSync
from integration.dispatch.worker import DispatchWorker
from integration.models import Case, CaseStatus, Notification, ProxyConsent
from nlu.embedded import EmbeddedInterpreter
from nlu.gazetteer import Gazetteer
from tests.emulators.open311 import Open311Emulator

Sessions = async_sessionmaker[AsyncSession]
_ids = itertools.count()
T0 = datetime(2026, 12, 4, 2, 30, tzinfo=UTC)


class Resident:
    """One resident talking to the router, each message parsed by the real model."""

    def __init__(self, router: Router, interpreter: EmbeddedInterpreter, user: str = "r1") -> None:
        self.router, self.interpreter, self.user = router, interpreter, user
        self.state = ConversationState()
        self.clock = T0

    async def say(self, text: str) -> list[Outbound]:
        self.clock += timedelta(seconds=30)
        payload = self.state.choice(text) or ""
        inbound = Inbound("webchat", self.user, self.user, f"m{next(_ids)}", text, time=self.clock)
        parse = await self.interpreter.parse(text)
        replies = await self.router.route(Turn(inbound, parse, payload), self.state)
        self.state.offer(replies[-1].buttons if replies else ())
        return replies


def router(book: CaseBook, sessions: Sessions, catalog: Catalog) -> Router:
    flows = standard_flows(book, catalog, Gazetteer.load(), contacts=ContactBook(sessions))
    return Router(flows, catalog)


async def errand(resident: Resident) -> str:
    """A 代办 of 老年证 from the first message to the summary; the summary's text."""
    await resident.say("我腿脚不便，能帮我代办老年证吗")
    await resident.say("13912345678")
    await resident.say("不用记")
    [summary] = await resident.say("金辉小区3号楼2单元501")
    return summary.text


async def test_the_consent_words_shown_and_the_time_are_stored_with_the_case(
    sessions: Sessions, interpreter: EmbeddedInterpreter, catalog: Catalog
) -> None:
    book = CaseBook(sessions)
    resident = Resident(router(book, sessions, catalog), interpreter)
    summary = await errand(resident)
    [submitted] = await resident.say("同意并提交")
    assert catalog("proxy.submitted").split("{")[0] in submitted.text

    async with sessions() as session:
        case = await session.scalar(select(Case))
        consent = await session.scalar(select(ProxyConsent))
    assert case is not None and consent is not None
    assert (case.category, consent.case_id) == ("proxy", case.id)
    assert consent.words in summary  # the exact words the resident was shown
    assert consent.words == catalog("proxy.consent", name="老年证", whom="本人")
    assert consent.consented_at == resident.clock  # the moment of 同意
    assert "13912345678" in case.description  # staff call this number


async def test_no_consent_no_case(
    sessions: Sessions, interpreter: EmbeddedInterpreter, catalog: Catalog
) -> None:
    resident = Resident(router(CaseBook(sessions), sessions, catalog), interpreter)
    await errand(resident)
    [reply] = await resident.say("不同意")
    assert reply.text == catalog("proxy.cancelled")
    async with sessions() as session:
        assert await session.scalar(select(ProxyConsent)) is None
        assert await session.scalar(select(Case)) is None


async def test_a_proxy_case_is_forwarded_once_and_its_status_changes_pushed(
    sessions: Sessions,
    interpreter: EmbeddedInterpreter,
    catalog: Catalog,
    http: aiohttp.ClientSession,
    open311: Open311Emulator,
) -> None:
    book = CaseBook(sessions, platform="open311")
    resident = Resident(router(book, sessions, catalog), interpreter)
    await errand(resident)
    await resident.say("同意")
    [case] = await book.list_cases()
    platform = Open311Platform(http, open311.base, api_key="test-key")
    worker = DispatchWorker(
        Outbox(sessions, "open311"), platform, StatusSync(sessions, "open311"), RatingBook(sessions)
    )

    assert await worker.forward_due() == 1
    assert await worker.forward_due() == 0
    [remote] = open311.created_for(case.number)
    assert "老年证" in remote["description"]
    [progress] = await resident.say("我的进度")  # the open 代办 case, as a report would show
    assert case.number in progress.text and catalog("category.proxy") in progress.text
    later = datetime.now(UTC) + timedelta(minutes=1)
    open311.set_status(remote["service_request_id"], "closed", "老年证已办好并送回", at=later)
    assert await worker.poll_statuses() == 1
    assert await worker.poll_statuses() == 0

    assert (await book.get(case.number)).status is CaseStatus.resolved
    async with sessions() as session:
        kinds = list(await session.scalars(select(Notification.kind).order_by(Notification.id)))
    assert kinds == ["status", "rating"]  # 已受理; then 已办结 with the rating question


async def test_a_phone_is_remembered_only_on_a_yes_and_can_be_forgotten(
    sessions: Sessions, interpreter: EmbeddedInterpreter, catalog: Catalog
) -> None:
    contacts = ContactBook(sessions)
    resident = Resident(router(CaseBook(sessions), sessions, catalog), interpreter)
    await resident.say("帮我妈代缴医保，我电话13812345678")
    await resident.say("她住院了")
    assert await contacts.phone("webchat", "r1") == ""  # asked, not yet kept
    await resident.say("记住号码")
    assert await contacts.phone("webchat", "r1") == "13812345678"
    await resident.say("取消")
    await resident.say("我的电话换了13800001111")
    assert await contacts.phone("webchat", "r1") == "13800001111"
    [reply] = await resident.say("忘记我的电话")
    assert reply.text == catalog("contact.forgotten")
    assert await contacts.phone("webchat", "r1") == ""
    assert not await contacts.forget("webchat", "r1")
