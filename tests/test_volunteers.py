"""Volunteers and their claims on service items, on SQLite and real PostgreSQL.

Twenty volunteers claiming an item of two places at the same moment: exactly two get
it. Every refusal (full, cancelled, expired, already held, no such item, not held,
registering twice, a used or expired code) changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.catalog import Catalog
from handlers.flows.base import Turn
from handlers.flows.volunteer import RegisterFlow
from handlers.flows.volunteer_steps import (
    VolunteerDesk,
    ranked,
    skill_note,
    skills_of,
    slots_of,
    what,
)
from handlers.messages import Inbound
from handlers.state import ConversationState
from integration.claims import ClaimBook, ClaimRefused
from integration.db import session_factory
from integration.items import (
    ItemBook,
    ItemDraft,
    ItemNotDone,
    ItemNotFound,
    ItemPost,
    ItemView,
    Window,
)
from integration.models import (
    ItemClaim,
    ItemStatus,
    Notification,
    ServiceItem,
    Volunteer,
    VolunteerAccount,
    VolunteerCode,
    VolunteerStatus,
)
from integration.services.calendar import LOCAL_TZ
from integration.volunteer_report import Record, VolunteerRecords
from integration.volunteers import (
    AlreadyRegistered,
    CodeRefused,
    NotPending,
    PhoneTaken,
    VolunteerBook,
    VolunteerDraft,
    VolunteerView,
)
from nlu.gazetteer import Gazetteer
from nlu.types import Parse
from tests import test_appointments

engine = (
    test_appointments.engine
)  # the fixture: PostgreSQL with a pool as large as the crowd, so all twenty really race

NOW = datetime(2026, 11, 9, 10, 0, tzinfo=LOCAL_TZ)
START = datetime(2026, 11, 10, 9, 0, tzinfo=LOCAL_TZ)


def volunteer(
    n: int, community: str = "金辉社区", skills: tuple[str, ...] = ("elder",)
) -> VolunteerDraft:
    return VolunteerDraft(
        "webchat",
        f"v{n}",
        f"v{n}",
        f"王{n}",
        f"1390000{n:04d}",
        "市自来水公司",
        "第一党支部",
        community,
        skills,
        ((5, "morning"),),
    )


def post(capacity: int = 2, start: datetime = START) -> ItemPost:
    return ItemPost(
        "金辉社区",
        "陪老人买菜",
        "帮独居老人买一周的菜",
        ("elder",),
        Window(start, start + timedelta(hours=2)),
        "金辉小区3号楼",
        capacity,
    )


async def counts(engine: AsyncEngine) -> tuple[int, int, int, int]:
    async with engine.connect() as connection:
        return (
            int(await connection.scalar(select(func.count()).select_from(Volunteer)) or 0),
            int(await connection.scalar(select(func.count()).select_from(ItemClaim)) or 0),
            int(await connection.scalar(select(func.count()).select_from(Notification)) or 0),
            int(await connection.scalar(select(func.sum(ServiceItem.taken))) or 0),
        )


async def test_twenty_claims_at_once_on_two_places_give_exactly_two(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    people = VolunteerBook(sessions)
    ids = [(await people.register(volunteer(n))).id for n in range(20)]
    item = await ItemBook(sessions).post(post(capacity=2))
    claims = ClaimBook(sessions)

    async def claim(volunteer_id: int) -> str:
        try:
            await claims.claim(item.id, volunteer_id, "webchat", f"v{volunteer_id}", NOW)
        except ClaimRefused as refused:
            return refused.reason
        return "ok"

    results = await asyncio.gather(*(claim(i) for i in ids))
    assert sorted(results).count("ok") == 2 and results.count("full") == 18
    after = await ItemBook(sessions).get(item.id)
    assert (after.status, after.taken, after.left) == (ItemStatus.claimed, 2, 0)
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(ItemClaim)) == 2


async def test_every_bad_claim_is_refused_and_changes_nothing(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    people, items, claims = VolunteerBook(sessions), ItemBook(sessions), ClaimBook(sessions)
    a = await people.register(volunteer(1))
    b = await people.register(volunteer(2))
    one = await items.post(post(capacity=1))
    cancelled = await items.post(post())
    await items.cancel(cancelled.id)
    past = await items.post(post(start=NOW - timedelta(hours=5)))
    await claims.advance(NOW)  # nobody claimed it, and its window is over
    assert (await items.get(past.id)).status is ItemStatus.expired
    await claims.claim(one.id, a.id, "webchat", "v1", NOW)
    before = await counts(engine)

    cases = [
        (one.id, a.id, "already"),
        (one.id, b.id, "full"),
        (cancelled.id, a.id, "closed"),
        (past.id, a.id, "closed"),
    ]
    for item_id, volunteer_id, reason in cases:
        with pytest.raises(ClaimRefused) as refused:
            await claims.claim(item_id, volunteer_id, "webchat", "x", NOW)
        assert refused.value.reason == reason
    with pytest.raises(ItemNotFound):
        await claims.claim(9999, a.id, "webchat", "v1", NOW)
    with pytest.raises(ClaimRefused) as refused:
        await claims.complete(one.id, b.id, NOW)  # not theirs
    assert refused.value.reason == "not_held"
    with pytest.raises(ClaimRefused):
        await claims.withdraw(one.id, b.id, NOW)
    assert await counts(engine) == before
    assert (await items.get(one.id)).status is ItemStatus.claimed


async def test_a_withdrawal_before_the_start_frees_the_place(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    people, items, claims = VolunteerBook(sessions), ItemBook(sessions), ClaimBook(sessions)
    a = await people.register(volunteer(1))
    b = await people.register(volunteer(2))
    item = await items.post(post(capacity=1))
    await claims.claim(item.id, a.id, "webchat", "v1", NOW)
    freed = await claims.withdraw(item.id, a.id, NOW)
    assert (freed.status, freed.taken) == (ItemStatus.open, 0)
    await claims.claim(item.id, b.id, "webchat", "v2", NOW)
    with pytest.raises(ClaimRefused) as begun:  # too late to withdraw once it began
        await claims.withdraw(item.id, b.id, START + timedelta(minutes=1))
    assert begun.value.reason == "begun"
    moves = [(f, t, who) for f, t, who, _ in await items.history(item.id)]
    assert moves == [
        ("", "open", "staff"),
        ("open", "claimed", f"volunteer:{a.id}"),
        ("claimed", "open", f"volunteer:{a.id}"),
        ("open", "claimed", f"volunteer:{b.id}"),
    ]


async def test_registration_codes_are_single_use_and_expire(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    people = VolunteerBook(sessions)
    code, expires = await people.invite("金辉社区", "李书记", NOW)
    assert expires > NOW
    first = await people.register(volunteer(1), code, NOW)
    assert first.status is VolunteerStatus.approved

    stale, _ = await people.invite("金辉社区", "李书记", NOW - timedelta(days=30))
    before = await counts(engine)
    for bad, reason in ((code, "used"), (stale, "expired"), ("NOPE1234", "unknown")):
        with pytest.raises(CodeRefused) as refused:
            await people.register(volunteer(2), bad, NOW)
        assert refused.value.reason == reason
    with pytest.raises(AlreadyRegistered):  # this account again
        await people.register(volunteer(1), "", NOW)
    again = volunteer(3)
    with pytest.raises(PhoneTaken):  # another account, the same phone
        await people.register(
            VolunteerDraft("telegram", "t1", "t1", "王1", first.phone, "x", "y", "金辉社区", (), ())
        )
    assert await counts(engine) == before
    async with engine.connect() as connection:
        used = await connection.scalar(
            select(func.count())
            .select_from(VolunteerCode)
            .where(VolunteerCode.used_at.is_not(None))
        )
    assert used == 1

    pending = await people.register(again)
    assert pending.status is VolunteerStatus.pending
    assert (
        await people.decide(pending.id, approve=False, actor="李书记")
    ).status is VolunteerStatus.rejected
    with pytest.raises(NotPending):
        await people.decide(pending.id, approve=True)


async def test_a_second_channel_joins_by_a_code_sent_to_the_first(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    people = VolunteerBook(sessions)
    first = await people.register(volunteer(1))
    code = await people.offer_link(first.id, "telegram", "t1", "验证码 {code}", NOW)
    async with engine.connect() as connection:
        sent = (await connection.execute(select(Notification.chat_id, Notification.text))).all()
    assert sent == [("v1", f"验证码 {code}")]
    with pytest.raises(CodeRefused):  # another account cannot use it
        await people.link("telegram", "t2", "t2", code, NOW)
    linked = await people.link("telegram", "t1", "t1", code, NOW)
    assert linked.id == first.id
    assert (await people.of_account("telegram", "t1")) == (await people.of_account("webchat", "v1"))
    with pytest.raises(CodeRefused):
        await people.link("telegram", "t1", "t1", code, NOW)
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(VolunteerAccount)) == 2


async def test_done_confirmed_and_counted_in_the_month(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    people, items, claims = VolunteerBook(sessions), ItemBook(sessions), ClaimBook(sessions)
    records = VolunteerRecords(sessions)
    a = await people.register(volunteer(1))
    request = await items.create(
        ItemDraft(
            "webchat",
            "r1",
            "r1",
            "shopping",
            "明天上午",
            "金辉小区3号楼",
            "家中老人",
            "13912345678",
        )
    )
    await items.approve(
        request.id, "李书记", window=Window(START, START + timedelta(hours=3)), community="金辉社区"
    )
    await claims.claim(request.id, a.id, "webchat", "v1", NOW, tell="王师傅（党员志愿者）会来")
    with pytest.raises(ItemNotDone):
        await claims.confirm(request.id, "staff", NOW)
    done = await claims.complete(
        request.id, a.id, START + timedelta(hours=3), "买好了", tell="请确认"
    )
    assert done.status is ItemStatus.done
    with pytest.raises(ClaimRefused) as own:
        await claims.confirm(request.id, "volunteer", NOW, volunteer_id=a.id)
    assert own.value.reason == "own"
    assert [i.id for i in await items.unconfirmed(START + timedelta(hours=80))] == [request.id]
    assert await records.record(a.id) == Record()  # not confirmed yet
    confirmed = await claims.confirm(request.id, "resident", NOW, 5, resident=("webchat", "r1"))
    assert (confirmed.status, confirmed.rating) == (ItemStatus.confirmed, 5)
    record = await records.record(a.id)
    assert (record.items, record.hours, record.residents) == (1, 3.0, 1)
    report = await records.month("2026-11")
    assert [(r.name, r.record.items) for r in report.rows] == [("王1", 1)]
    assert report.communities == (("金辉社区", record),) and report.branches == (
        ("第一党支部", record),
    )
    assert (await records.month("2026-12")).rows == ()
    moves = [t for _, t, _, _ in await items.history(request.id)]
    assert moves == ["pending", "open", "claimed", "done", "confirmed"]


def item_at(
    n: int, community: str, start: datetime, skills: tuple[str, ...] = ("elder",)
) -> ItemView:
    return ItemView(
        id=n,
        kind="other",
        when="",
        address="",
        whom="",
        phone="",
        note="",
        status=ItemStatus.open,
        channel="",
        chat_id="",
        created_at=NOW,
        community=community,
        title=f"t{n}",
        starts_at=start,
        skills=skills,
    )


def test_own_community_first_then_the_nearest_fitting_skills_and_free_time() -> None:
    gazetteer = Gazetteer.load()
    tuesday_morning = datetime(2026, 11, 10, 9, 0, tzinfo=LOCAL_TZ)
    saturday_morning = datetime(2026, 11, 14, 9, 0, tzinfo=LOCAL_TZ)
    me = VolunteerView(
        1,
        "王1",
        "",
        "",
        "",
        "金辉小区",
        VolunteerStatus.approved,
        NOW,
        skills=("elder",),
        slots=slots_of("周末上午"),
    )
    assert set(me.slots) == {(5, "morning"), (6, "morning")}
    items = [
        item_at(1, "天骄路社区", saturday_morning),  # far
        item_at(2, "鸿泰家园", saturday_morning),  # near
        item_at(3, "金辉小区", saturday_morning + timedelta(hours=1)),  # own, later
        item_at(4, "金辉小区", tuesday_morning),  # own, but not when free
        item_at(5, "金辉小区", saturday_morning, ("legal",)),  # own, not their skill
        item_at(6, "金辉小区", saturday_morning, ("other",)),  # anyone
    ]
    assert [i.id for i in ranked(items, me, gazetteer)] == [6, 3, 2, 1]
    assert len(ranked(items, None, gazetteer)) == 6  # someone not registered sees all
    assert skills_of("助老和维修，也懂点法律") == ("elder", "repair", "legal")
    assert slots_of("工作日晚上") == tuple((d, "evening") for d in range(5))
    assert slots_of("随便") == ()


@pytest.mark.parametrize(
    ("said", "skills", "note"),
    [
        ("我会开车，还会拍照", ("culture", "other"), "开车"),
        ("我擅长做PPT和剪视频", (), "做PPT和剪视频"),
        ("我退休前是会计，会算账", (), "算账"),
        ("会修水电，周末有空", ("repair",), ""),  # a listed skill and free time
        ("没什么特长", ("other",), ""),  # nothing in particular
        ("都可以", ("other",), ""),
        ("可以", (), ""),  # a yes, not a skill
    ],
)
def test_skills_the_list_has_no_name_for_are_kept_in_the_volunteers_words(
    said: str, skills: tuple[str, ...], note: str
) -> None:
    assert skills_of(said) == skills
    assert skill_note(said) == note


async def test_a_volunteers_own_words_for_skills_are_stored_with_numbers_masked(
    engine: AsyncEngine,
) -> None:
    book = VolunteerBook(session_factory(engine))
    draft = volunteer(1, skills=("other",))
    said = "会开车，车牌和电话13912345678都可以给社区" + "很长的话" * 40
    made = await book.register(dataclasses.replace(draft, skill_note=said))
    stored = (await book.get(made.id)).skill_note
    assert stored.startswith("会开车，车牌和电话139****5678")
    assert "13912345678" not in stored and len(stored) == 100
    assert (await book.register(volunteer(2))).skill_note == ""  # none said: none kept


@pytest.mark.parametrize(
    ("step", "text"),
    [("code", "4Y82D8B7"), ("code", "请用 k9l7gxye"), ("link", "886886")],
    ids=["invite-code-read-as-goodbye", "invite-code-in-words", "link-code"],
)
def test_a_code_answers_its_step_whatever_the_model_reads_in_it(step: str, text: str) -> None:
    # The model reads 再见 in 4Y82D8B7 and 886886 (88: bye-bye); a registration asking for
    # its code must take it as the code, not as the resident leaving.
    flow = RegisterFlow(cast(VolunteerDesk, None), Catalog.load())
    state = ConversationState()
    state.begin(flow.name, step, {})
    inbound = Inbound("wechat", "u1", "u1", "m1", text)
    parse = Parse(text, "goodbye", 0.9, (), (("goodbye", 0.9),))

    expect = flow.expect(state)

    assert expect.answered_by(Turn(inbound, parse))
    assert expect.interruption("goodbye") is not None  # a real 再见 still leaves


LONG_WISH = "我爸瘫痪在床好几年了，想请人每个月上门理发一次，最好是周末"


@pytest.mark.parametrize(
    ("kind", "note", "title", "shown"),
    [
        ("meal", "", "", "助餐"),
        ("meal", "我家老人需要上门助餐", "", "助餐"),
        ("shopping", "家里老人不会交电费", "", "代购代缴（家里老人不会交电费）"),
        ("other", "想请人上门理发，电话13912345678", "", "想请人上门理发，电话139****5678"),
        ("other", LONG_WISH, "", LONG_WISH[:24] + "…"),
        ("other", "", "义务理发", "义务理发"),
    ],
    ids=["kind", "kind-named-in-words", "kind-and-words", "other-masked", "other-cut", "title"],
)
def test_an_item_is_named_by_its_title_or_the_residents_words(
    kind: str, note: str, title: str, shown: str
) -> None:
    # Volunteers saw 其他 for 想请人上门理发, and 代购代缴 without what to pay.
    item = ItemView(
        1,
        kind,
        "明天上午",
        "金辉小区",
        "本人",
        "",
        note,
        ItemStatus.open,
        "wechat",
        "u1",
        datetime(2026, 12, 7, tzinfo=LOCAL_TZ),
        title=title,
    )

    assert what(Catalog.load(), item) == shown
