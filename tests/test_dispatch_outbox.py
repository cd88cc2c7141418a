"""The outbox and its worker against emulated platforms, on SQLite and PostgreSQL.

Whatever the platform does (down, 500s, 30-second answers, malformed JSON, someone
else's id), every case ends up on it exactly once and nothing is lost.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.runtime import place_for
from integration.cases import CaseBook, CaseDraft, format_number
from integration.changes import outbox_key
from integration.dispatch.open311 import Open311Platform, ServiceMap
from integration.dispatch.outbox import Outbox
from integration.dispatch.ratings import RatingBook, Score
from integration.dispatch.sync import StatusSync
from integration.dispatch.types import DispatchPlatform
from integration.dispatch.webhook import WebhookPlatform
from integration.dispatch.worker import DispatchWorker, WorkerTiming
from integration.errors import CaseNotFound
from integration.models import (
    Case,
    CaseStatus,
    CaseUrge,
    Notification,
    OutboxJob,
    OutboxKind,
    OutboxState,
    utcnow,
)
from integration.urges import URGE_GAP, Urged
from nlu.gazetteer import Gazetteer
from tests.conftest import DISPATCH_SECRET
from tests.emulators.dispatch import DispatchEmulator
from tests.emulators.open311 import Open311Emulator

Sessions = async_sessionmaker[AsyncSession]
FAST = WorkerTiming(
    batch=10, concurrency=8, lease=5.0, backoff=0.01, backoff_max=0.02, max_attempts=6
)


def draft(user: str = "u1", **changes: Any) -> CaseDraft:
    values: dict[str, Any] = {
        "channel": "webchat",
        "user_id": user,
        "chat_id": user,
        "category": "noise",
        "description": "楼下烧烤店每天半夜还很吵",
        "address": "金辉小区3号楼",
        "latitude": 39.6091,
        "longitude": 109.7712,
    }
    values.update(changes)
    return CaseDraft(**values)


@dataclass
class Rig:
    """A case book queueing for one platform, its worker, and the emulated platform."""

    book: CaseBook
    outbox: Outbox
    worker: DispatchWorker
    emulator: Open311Emulator | DispatchEmulator
    sessions: Sessions

    async def open(self, count: int) -> list[str]:
        return [(await self.book.create_case(draft(f"u{i}"))).number for i in range(count)]

    async def drain(self, rounds: int = 40) -> None:
        """Run the worker until nothing is pending (or give up after ``rounds``)."""
        for _ in range(rounds):
            await self.worker.forward_due()
            if not (await self.outbox.counts()).get(OutboxState.pending.value):
                return
            await asyncio.sleep(0.03)

    async def platform_ids(self) -> dict[str, str | None]:
        async with self.sessions() as session:
            rows = await session.execute(select(Case.number, Case.platform_id))
            return {number: pid for number, pid in rows}

    def assert_each_once(self, numbers: list[str]) -> None:
        for number in numbers:
            assert len(self.emulator.created_for(number)) == 1, number


def build(
    sessions: Sessions, platform: DispatchPlatform, emulator: Any, timing: WorkerTiming = FAST
) -> Rig:
    outbox = Outbox(sessions, platform.name)
    worker = DispatchWorker(
        outbox,
        platform,
        StatusSync(sessions, platform.name),
        RatingBook(sessions, platform=platform.name, can_reopen=platform.can_reopen),
        timing,
    )
    book = CaseBook(sessions, platform=platform.name, can_urge=platform.can_urge)
    return Rig(book, outbox, worker, emulator, sessions)


@pytest.fixture(params=["webhook", "open311"])
def rig(
    request: pytest.FixtureRequest,
    sessions: Sessions,
    http: aiohttp.ClientSession,
    open311: Open311Emulator,
    dispatch_platform: DispatchEmulator,
) -> Rig:
    """Both platforms, each on both databases."""
    if request.param == "webhook":
        webhook = WebhookPlatform(http, dispatch_platform.url, secret=DISPATCH_SECRET)
        return build(sessions, webhook, dispatch_platform)
    return build(sessions, Open311Platform(http, open311.base, api_key="test-key"), open311)


async def jobs(sessions: Sessions) -> list[OutboxJob]:
    async with sessions() as session:
        return list(await session.scalars(select(OutboxJob).order_by(OutboxJob.id)))


async def pushes(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


# --- the transactional outbox -------------------------------------------------------------


async def test_creating_a_case_queues_its_forwarding_in_the_same_transaction(
    sessions: Sessions,
) -> None:
    case = await CaseBook(sessions, platform="webhook").create_case(draft())
    await CaseBook(sessions).create_case(draft("u2"))  # the local desk needs no forwarding

    [job] = await jobs(sessions)
    assert job.key == outbox_key(case.number, OutboxKind.create)
    assert (job.kind, job.state, job.attempts) == ("create", "pending", 0)
    assert job.first_attempt_at is None


async def test_no_case_without_its_forwarding_job(sessions: Sessions) -> None:
    book = CaseBook(sessions, platform="webhook")
    first = await book.create_case(draft())
    # The next case's job cannot be written (its key is taken): the case must not exist.
    number = format_number(utcnow().astimezone(book_tz()).date(), int(first.number[-4:]) + 1)
    async with sessions.begin() as session:
        case_id = await session.scalar(select(Case.id))
        await session.execute(
            insert(OutboxJob).values(
                case_id=case_id,
                kind="create",
                key=outbox_key(number, OutboxKind.create),
                note="",
                state="done",
                attempts=1,
                next_attempt_at=utcnow(),
                last_error="",
                created_at=utcnow(),
            )
        )

    with pytest.raises(IntegrityError):
        await book.create_case(draft("u2"))

    assert list(await rig_numbers(sessions)) == [first.number]


def book_tz() -> Any:
    from integration.cases import LOCAL_TZ

    return LOCAL_TZ


async def rig_numbers(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        return list(await session.scalars(select(Case.number).order_by(Case.id)))


# --- forwarding ---------------------------------------------------------------------------


async def test_worker_forwards_each_case_once_and_keeps_the_platform_id(rig: Rig) -> None:
    numbers = await rig.open(3)

    assert await rig.worker.forward_due() == 3
    assert await rig.worker.forward_due() == 0

    rig.assert_each_once(numbers)
    ids = await rig.platform_ids()
    for number in numbers:
        [remote] = rig.emulator.created_for(number)
        remote_id = remote.get("id") or remote.get("service_request_id")
        assert ids[number] == remote_id
    assert all(case.status is CaseStatus.accepted for case in await rig.book.list_cases())
    assert await pushes(rig.sessions) == 3  # one 已受理 push per case
    assert [job.state for job in await jobs(rig.sessions)] == ["done"] * 3


async def test_platform_down_for_a_whole_run_then_back(rig: Rig) -> None:
    numbers = await rig.open(2)
    await rig.emulator.stop()
    for _ in range(3):
        await rig.worker.forward_due()
        await asyncio.sleep(0.03)
    assert {job.state for job in await jobs(rig.sessions)} == {"pending"}
    assert all(job.attempts >= 2 for job in await jobs(rig.sessions))

    await rig.emulator.start()
    await rig.drain()

    rig.assert_each_once(numbers)
    assert None not in (await rig.platform_ids()).values()


async def test_an_unplaced_case_reaches_a_georeport_server_that_needs_a_place(
    sessions: Sessions, http: aiohttp.ClientSession, open311: Open311Emulator
) -> None:
    """Issue 16 item 8: 幸福路88号 (in no gazetteer), no pin, the platform down when the
    case is opened, and a server that 500s without coordinates or ``address``."""
    open311.quirks.needs_latlong = True
    platform = Open311Platform(
        http, open311.base, api_key="test-key", locate=partial(place_for, Gazetteer.load())
    )
    rig = build(sessions, platform, open311)
    await open311.stop()
    case = await rig.book.create_case(draft(address="幸福路88号", latitude=None, longitude=None))
    await rig.worker.forward_due()
    assert [job.state for job in await jobs(sessions)] == ["pending"]

    await open311.start()
    await rig.drain()

    rig.assert_each_once([case.number])
    [posted] = open311.posts
    assert posted["address"] == posted["address_string"] == "幸福路88号"
    assert posted["lat"] and "大致位置" in posted["description"]
    assert [job.state for job in await jobs(sessions)] == ["done"]


def dispatch_errors(rig: Rig) -> float:
    """The yimen_dispatch_errors_total samples of the rig's platform, summed."""
    name = rig.worker._platform.name
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "yimen_dispatch_errors"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("platform") == name
    )


async def test_server_errors_are_retried_with_backoff(rig: Rig) -> None:
    rig.emulator.faults.fail = [500, 502, 503]
    numbers = await rig.open(1)
    errors = dispatch_errors(rig)

    await rig.worker.forward_due()
    assert rig.worker.last_error is not None and "500" in rig.worker.last_error
    await rig.drain()

    assert dispatch_errors(rig) == errors + 3  # counted for /metrics
    assert rig.worker.last_error is None  # /readyz: the platform answers again

    rig.assert_each_once(numbers)
    [job] = await jobs(rig.sessions)
    assert (job.state, job.attempts) == ("done", 4)


async def test_a_30_second_answer_times_out_and_the_case_still_lands_once(rig: Rig) -> None:
    rig.emulator.faults.delay = 30.0  # created on the platform, but the answer is late
    numbers = await rig.open(1)

    await rig.drain()

    rig.assert_each_once(numbers)
    assert (await rig.platform_ids())[numbers[0]] is not None


async def test_malformed_json_is_retried_without_a_second_case(rig: Rig) -> None:
    rig.emulator.faults.malformed = 1
    numbers = await rig.open(2)

    await rig.drain()

    rig.assert_each_once(numbers)
    assert sorted(job.attempts for job in await jobs(rig.sessions)) == [1, 2]


async def test_someone_elses_id_is_refused_and_the_right_one_kept(rig: Rig) -> None:
    [first] = await rig.open(1)
    await rig.drain()
    rig.emulator.faults.duplicate_id = 1  # the next answer carries the first case's id
    second_number = (await rig.book.create_case(draft("u9"))).number

    await rig.drain()

    rig.assert_each_once([first, second_number])
    ids = await rig.platform_ids()
    assert ids[first] != ids[second_number] and ids[second_number] is not None
    [_, job] = await jobs(rig.sessions)
    assert job.attempts == 2


async def test_cases_that_keep_failing_go_dead_and_staff_can_retry(rig: Rig) -> None:
    rig.emulator.faults.fail = [500] * FAST.max_attempts
    [number] = await rig.open(1)

    await rig.drain()

    [dead] = await rig.outbox.dead()
    assert (dead.number, dead.kind, dead.attempts) == (number, OutboxKind.create, 6)
    assert "500" in dead.last_error
    if isinstance(rig.emulator, Open311Emulator):  # it answers GET services all along
        assert "500 to this same request" in dead.last_error
    assert rig.emulator.created_for(number) == []

    assert await rig.outbox.requeue(number) == 1
    await rig.drain()

    assert await rig.outbox.dead() == []
    rig.assert_each_once([number])


async def test_a_refused_case_goes_dead_at_once(
    sessions: Sessions, http: aiohttp.ClientSession, open311: Open311Emulator
) -> None:
    nothing_maps = ServiceMap(categories={})
    platform = Open311Platform(http, open311.base, api_key="test-key", services=nothing_maps)
    rig = build(sessions, platform, open311)
    [number] = await rig.open(1)

    await rig.worker.forward_due()

    [dead] = await rig.outbox.dead()
    assert dead.number == number and dead.attempts == 1
    assert "no service for 'noise'" in dead.last_error


async def test_concurrent_workers_never_forward_a_case_twice(rig: Rig) -> None:
    numbers = await rig.open(12)
    other = DispatchWorker(
        rig.outbox,
        rig.worker._platform,
        StatusSync(rig.sessions, rig.outbox.platform),
        RatingBook(rig.sessions),
        FAST,
    )

    counts = await asyncio.gather(rig.worker.forward_due(), other.forward_due())

    assert sum(counts) == 12
    rig.assert_each_once(numbers)


async def test_a_dissatisfied_resident_reopens_the_case_on_the_platform(
    sessions: Sessions, http: aiohttp.ClientSession, dispatch_platform: DispatchEmulator
) -> None:
    webhook = WebhookPlatform(http, dispatch_platform.url, secret=DISPATCH_SECRET)
    rig = build(sessions, webhook, dispatch_platform)
    [number] = await rig.open(1)
    await rig.drain()
    await rig.book.change_status(number, CaseStatus.resolved, "已办结")
    ratings = RatingBook(sessions, platform="webhook", can_reopen=True)
    question = await ratings.request("webchat", "u0")
    assert question is not None

    await ratings.rate(question.id, Score.dissatisfied)
    await rig.drain()
    await rig.drain()

    [(key, body)] = dispatch_platform.reopens
    assert key == outbox_key(number, OutboxKind.reopen)
    assert body["reference"] == number and body["reason"] == "resident_dissatisfied"
    [remote] = dispatch_platform.created_for(number)
    assert remote["status"] == "reopened"
    assert (await rig.book.get(number)).status is CaseStatus.reopened
    assert {job.state for job in await jobs(sessions)} == {"done"}


async def test_an_urge_is_kept_for_staff_and_passed_on_once(rig: Rig) -> None:
    """催办: every urge is recorded (masked) for staff; the same chat again within the
    hour is not counted twice; the webhook platform hears each counted urge once, and
    only once it has the case; GeoReport v2, which cannot take one, is sent nothing."""
    webhook = isinstance(rig.emulator, DispatchEmulator)
    [number] = await rig.open(1)
    first = await rig.book.urge(number, "webchat", "u0", "能不能快点，我电话13800138000")
    assert first == Urged(count=1, counted=True, forwarded=False)  # not on the platform yet
    await rig.drain()

    later = utcnow() + URGE_GAP
    again = await rig.book.urge(number, "webchat", "u0", "还要等多久", now=later)
    assert again == Urged(count=2, counted=True, forwarded=webhook)
    soon = later + timedelta(minutes=5)
    assert await rig.book.urge(number, "webchat", "u0", "快点", now=soon) == Urged(
        count=2, counted=False, forwarded=False
    )
    other = await rig.book.urge(number, "webchat", "u7", "我也催一下", now=soon)
    assert other == Urged(count=3, counted=True, forwarded=webhook)
    await rig.drain()
    await rig.drain()

    async with rig.sessions() as session:
        texts = list(await session.scalars(select(CaseUrge.text).order_by(CaseUrge.id)))
    assert texts[1:] == ["还要等多久", "我也催一下"]
    assert "13800138000" not in texts[0] and texts[0].startswith("能不能快点")
    urge_jobs = [job for job in await jobs(rig.sessions) if job.kind == OutboxKind.urge.value]
    if webhook:
        assert isinstance(rig.emulator, DispatchEmulator)
        sent = rig.emulator.urges
        assert [body["comment"] for _, body in sent] == ["还要等多久", "我也催一下"]
        assert {body["reference"] for _, body in sent} == {number}
        assert [key for key, _ in sent] == [
            outbox_key(number, OutboxKind.urge, 1),
            outbox_key(number, OutboxKind.urge, 2),
        ]
        assert {job.state for job in urge_jobs} == {"done"}
    else:
        assert urge_jobs == []

    await rig.book.change_status(number, CaseStatus.resolved, "已修好")
    with pytest.raises(CaseNotFound):  # nothing left to hurry
        await rig.book.urge(number, "webchat", "u0", "快点", now=later + URGE_GAP)
