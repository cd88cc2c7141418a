"""The flow framework: the state's stack, routing order, interruptions, new flows.

Plain code over fakes: the router and flows get hand-built parses here, so each test
pins one rule of the routing order (the dialogue scenarios in tests/dialogues/ play
the same rules through the real model).
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from handlers.catalog import Catalog
from handlers.flows import ROUTES, standard_flows
from handlers.flows.base import (
    OFFER_INTERRUPTS,
    Expect,
    Flow,
    Turn,
)
from handlers.flows.complaint import SKIP, SUBMIT
from handlers.messages import Inbound, Location, Outbound
from handlers.patience import Patience
from handlers.router import Router
from handlers.state import MAX_PAUSED, ConversationState, Frame
from handlers.words import ABUSE, CANCEL, GOODBYE, NO, WITHDRAW_CASE, YES, ordinal, words
from nlu.entities import EntityExtractor
from nlu.gazetteer import Gazetteer
from nlu.types import Parse
from tests.fakes import FakeDesk, FakeRatings

_ids = itertools.count()
extractor = EntityExtractor(communities=["金辉小区"])
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def turn(
    text: str = "",
    intent: str = "nlu_fallback",
    *,
    payload: str = "",
    ranking: tuple[tuple[str, float], ...] = (),
    location: Location | None = None,
    at: datetime = T0,
) -> Turn:
    inbound = Inbound(
        "webchat", "u1", "u1", f"m{next(_ids)}", text, payload=payload, location=location, time=at
    )
    parse = Parse(text, intent, 0.9, extractor.extract(text), ranking or ((intent, 0.9),))
    return Turn(inbound, parse, payload)


async def say(router: Router, state: ConversationState, t: Turn) -> list[Outbound]:
    replies = await router.route(t, state)
    state.offer(replies[-1].buttons if replies else ())
    return replies


@pytest.fixture
def desk() -> FakeDesk:
    return FakeDesk()


@pytest.fixture
def router(desk: FakeDesk, catalog: Catalog) -> Router:
    return Router(standard_flows(desk, catalog, Gazetteer.load(), FakeRatings()), catalog)


async def to_confirm(router: Router, state: ConversationState) -> None:
    await say(router, state, turn("楼上装修太吵", "report_noise"))
    await say(router, state, turn("金辉小区3号楼"))
    await say(router, state, turn(payload=SKIP))
    assert state.step == "confirm"


# --- the state -----------------------------------------------------------------------------


def test_an_idle_state_saves_nothing_and_an_active_one_saves_only_what_it_holds() -> None:
    assert ConversationState().to_dict() == {}
    state = ConversationState()
    state.begin("complaint", "where", {"category": "noise"})
    assert state.to_dict() == {"flow": "complaint", "step": "where", "slots": {"category": "noise"}}


def test_the_stack_round_trips_through_json() -> None:
    state = ConversationState()
    state.begin("complaint", "confirm", {"address": "金辉小区3号楼", "photos": []})
    state.pause()
    state.begin("status", "pick", {"cases": [["YM2611260001", "金辉小区", "吵"]]})
    state.strikes, state.quiet_until = 1, 1_700_000_000.5
    saved = json.loads(json.dumps(state.to_dict(), ensure_ascii=False))
    again = ConversationState.from_dict(saved)
    assert again == state
    assert again.paused == [
        Frame("complaint", "confirm", {"address": "金辉小区3号楼", "photos": []})
    ]


def test_a_state_saved_by_the_previous_version_still_loads() -> None:
    old = {
        "flow": "complaint",
        "step": "photo",
        "slots": {"category": "noise", "address": "金辉小区3号楼", "photos": []},
        "reprompts": 1,
        "buttons": [["跳过", "complaint:skip"], ["取消", "cancel"]],
        "misunderstood": 0,
    }
    state = ConversationState.from_dict(old)
    assert (state.flow, state.step, state.reprompts, state.paused) == ("complaint", "photo", 1, [])
    assert state.choice("跳过") == "complaint:skip"


def test_the_stack_is_bounded() -> None:
    state = ConversationState()
    for i in range(MAX_PAUSED + 2):
        state.begin("complaint", f"s{i}")
        state.pause()
    assert [f.step for f in state.paused] == [f"s{i}" for i in range(2, MAX_PAUSED + 2)]
    assert state.unpause() and state.step == f"s{MAX_PAUSED + 1}"


# --- rule words ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "yes", "no"),
    [
        ("好的", True, False),
        ("嗯 就这样吧", True, False),
        ("不好", False, False),
        ("不对", False, True),
        ("不用了", False, True),
        ("行", True, False),
        ("不行", False, True),
    ],
)
def test_yes_and_no_respect_negation(text: str, yes: bool, no: bool) -> None:
    assert (YES.search(text), NO.search(text)) == (yes, no)


@pytest.mark.parametrize(
    ("text", "abuse"),
    [
        ("你们就是SB", True),
        ("sb", True),
        ("TMD什么破服务", True),
        ("傻B客服", True),
        ("MHSBRXSN", False),  # an invitation code
        ("K7SB2QTW", False),
        ("USB充电口坏了", False),
        ("ATMD座旁边路灯不亮", False),
    ],
)
def test_latin_insults_count_only_on_their_own(text: str, abuse: bool) -> None:
    assert ABUSE.search(text) is abuse


def test_latin_yes_and_goodbye_count_only_on_their_own() -> None:
    assert YES.search("ok") and YES.search("好的OK") and YES.search("okay")
    assert GOODBYE.search("bye") and GOODBYE.search("好的bye")
    for code in ("QBYEK7MN", "YES4KQTR", "T2OKAYWX"):  # invitation codes
        assert not YES.search(code) and not GOODBYE.search(code)


@pytest.mark.parametrize(
    ("text", "cancel"),
    [
        ("取消", True),
        ("等等…算了先别提交了", True),
        ("算了吧", True),
        ("取消我明天的预约", False),
        ("楼下垃圾没人清 算了不说了 还是要反映一下", False),
    ],
)
def test_withdrawal_must_be_the_whole_message(text: str, cancel: bool) -> None:
    assert CANCEL.search(text) is cancel


def test_can_do_is_no_yes() -> None:
    for text in ("可以", "可以的", "好的可以", "可以提交了"):
        assert YES.search(text), text
    for text in ("有啥活可以干", "可以帮我买菜吗", "志愿者可以认领吗"):
        assert not YES.search(text), text


@pytest.mark.parametrize(
    ("text", "withdraws"),
    [
        ("我刚才报的那个不要了", True),
        ("我报的工单取消吧", True),
        ("撤销投诉", True),
        ("投诉的事不用管了。", True),
        ("反映一下，物业取消了供暖", False),  # the withdrawing word must end the message
        ("我要反映的是预约被取消了", False),
        ("楼下的路灯坏了", False),
    ],
)
def test_withdrawing_a_submitted_report_is_said_at_the_end(text: str, withdraws: bool) -> None:
    assert WITHDRAW_CASE.search(text) is withdraws


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("第二个", 1),
        ("第2个怎么样了", 1),
        ("2", 1),
        ("最后一个", 2),
        ("第五个", None),
        ("好的", None),
    ],
)
def test_ordinals_pick_from_a_list_of_three(text: str, position: int | None) -> None:
    assert ordinal(text, 3) == position


# --- routing order ------------------------------------------------------------------------------


async def test_a_slot_answer_is_taken_from_entities_whatever_the_intent(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("楼上天天半夜蹦迪", "report_noise"))
    # The model calls this a new noise report; the address still answers "where".
    [photo] = await say(router, state, turn("就我家楼上那户 金辉小区3号楼", "report_noise"))
    assert state.step == "photo" and state.slots["address"] == "金辉小区3号楼"
    assert "金辉小区3号楼" in photo.text


async def test_the_ranking_restricted_to_the_step_beats_an_unexpected_top_intent(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await to_confirm(router, state)
    ranking = (("goodbye", 0.55), ("affirm", 0.4))
    [done] = await say(router, state, turn("那就这么着", "goodbye", ranking=ranking))
    assert "工单号" in done.text and len(desk.drafts) == 1


async def test_an_interruption_keeps_the_report_and_asks_its_question_again(
    router: Router, catalog: Catalog, desk: FakeDesk
) -> None:
    state = ConversationState()
    await to_confirm(router, state)
    status, again = await say(router, state, turn("我的进度", "check_status"))
    assert status.text == catalog("status_query.none")
    assert again.text.startswith(catalog("complaint.resume")) and "请确认" in again.text
    assert again.buttons[0].payload == SUBMIT
    assert state.step == "confirm" and desk.drafts == []
    await say(router, state, turn("提交"))
    assert len(desk.drafts) == 1


async def test_goodbye_drops_the_report_with_a_word(
    router: Router, catalog: Catalog, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("井盖丢了", "report_facility"))
    dropped, bye = await say(router, state, turn("拜拜", "goodbye"))
    assert dropped.text == catalog("complaint.cancelled") and bye.text == catalog("chat.goodbye")
    assert state.idle and state.paused == [] and desk.drafts == []


async def test_deny_or_withdrawal_at_the_confirmation_submits_nothing(
    router: Router, catalog: Catalog, desk: FakeDesk
) -> None:
    for words_ in ("不对", "等等…算了先别提交了", "不要了"):
        state = ConversationState()
        await to_confirm(router, state)
        [reply] = await say(router, state, turn(words_, "deny"))
        assert reply.text == catalog("complaint.cancelled"), words_
        assert state.idle
    assert desk.drafts == []


async def test_a_correction_at_the_confirmation_updates_the_slot(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await to_confirm(router, state)
    [confirm] = await say(router, state, turn("地址写错了 是金辉小区5号楼", "deny"))
    assert state.step == "confirm" and "金辉小区5号楼" in confirm.text
    await say(router, state, turn(payload=SUBMIT))
    assert desk.drafts[0].address == "金辉小区5号楼"


async def test_a_new_report_of_another_kind_pauses_the_first_until_it_is_done(
    router: Router, catalog: Catalog, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("楼下垃圾三天没人清", "report_sanitation"))
    [where] = await say(router, state, turn("对了 路灯也不亮", "report_facility"))
    assert "公共设施" in where.text and [f.flow for f in state.paused] == ["complaint"]
    await say(router, state, turn("伊煤路与天骄路交叉口"))
    await say(router, state, turn(payload=SKIP))
    done, back = await say(router, state, turn(payload=SUBMIT))
    assert "工单号" in done.text
    assert back.text.startswith(catalog("complaint.resume")) and "环境卫生" in back.text
    assert (state.step, state.paused) == ("where", [])
    assert [d.category for d in desk.drafts] == ["facility"]


async def test_a_pin_adds_coordinates_and_never_replaces_a_typed_address(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("路灯不亮", "report_facility"))
    [photo] = await say(router, state, turn("鄂托克西街"))
    assert "定位" in photo.text  # only a street: a pin is offered
    await say(router, state, turn(location=Location(39.61, 109.78, "某某大厦"), intent="report"))
    assert state.step == "photo" and state.slots["address"] == "鄂托克西街"
    await say(router, state, turn(payload=SKIP))
    await say(router, state, turn(payload=SUBMIT))
    [draft] = desk.drafts
    assert (draft.address, draft.latitude, draft.longitude) == ("鄂托克西街", 39.61, 109.78)


# --- a flow written against the API, registered without touching the router ---------------------

_QUESTION = words("question", "咋办|怎么办|怎么弄|如何|需要什么|要带|哪里办|在哪办|多久")


class GuideFlow:
    """A service guide with a follow-up step, as another engineer would write one."""

    name = "guide"

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        state.begin(self.name, "follow_up", {"asked": [turn.text]})
        return [Outbound(f"guide:{turn.text}")]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        state.slots["asked"].append(turn.text)
        return [Outbound(f"guide again:{turn.text}")]

    def expect(self, state: ConversationState) -> Expect:
        return Expect(
            words=(_QUESTION,),
            intents=frozenset({"ask_service_info"}),
            interrupts=OFFER_INTERRUPTS,
            optional=True,
        )

    def ask(self, state: ConversationState) -> list[Outbound]:
        return [Outbound("guide: anything else?")]


class HoldingFlow:
    """A person holds the conversation: the bot only passes messages on."""

    name = "handoff"

    def __init__(self) -> None:
        self.passed: list[str] = []

    async def start(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        state.begin(self.name, "held")
        return [Outbound("已为您转接工作人员")]

    async def resume(self, turn: Turn, state: ConversationState) -> list[Outbound]:
        self.passed.append(turn.text)
        return []

    def expect(self, state: ConversationState) -> Expect:
        return Expect(text=True, intents=frozenset({"human_handoff"}), holds=True)

    def ask(self, state: ConversationState) -> list[Outbound]:
        return []


def custom_router(desk: FakeDesk, catalog: Catalog, **extra: Flow) -> Router:
    flows: dict[str, Flow] = {**standard_flows(desk, catalog, Gazetteer.load()), **extra}
    return Router(flows, catalog, routes={**ROUTES, "ask_service_info": "guide"})


async def test_a_follow_up_question_in_a_guide_conversation_is_not_a_new_report(
    desk: FakeDesk, catalog: Catalog
) -> None:
    router = custom_router(desk, catalog, guide=GuideFlow())
    state = ConversationState()
    [first] = await say(router, state, turn("办房产证需要什么材料", "ask_service_info"))
    assert first.text.startswith("guide:")
    ranking = (("report_construction", 0.64), ("check_status", 0.12), ("ask_service_info", 0.11))
    follow = turn("我是租的房子 没有房产证咋办", "report_construction", ranking=ranking)
    [reply] = await say(router, state, follow)
    assert reply.text.startswith("guide again:") and state.flow == "guide"
    [report] = await say(router, state, turn("小区门口路灯坏了", "report_facility"))
    assert state.flow == "complaint" and "公共设施" in report.text  # the offer gave way


async def test_the_handoff_flow_is_one_registry_entry_and_silences_the_bot(
    desk: FakeDesk, catalog: Catalog
) -> None:
    holding = HoldingFlow()
    router = custom_router(desk, catalog, handoff=holding)
    state = ConversationState()
    await say(router, state, turn("楼道飞线充电", "report_safety"))
    [held] = await say(router, state, turn("你们这个问来问去的 烦死了 转人工", "human_handoff"))
    assert held.text == "已为您转接工作人员" and [f.flow for f in state.paused] == ["complaint"]
    for text, intent in (
        ("人呢", "nlu_fallback"),
        ("我的进度", "check_status"),
        ("傻逼", "out_of_scope"),
    ):
        assert await say(router, state, turn(text, intent)) == []
    assert holding.passed == ["人呢", "我的进度", "傻逼"]
    state.finish()  # staff hand the conversation back
    [back] = await router.resume_paused(state)
    assert back.text.startswith(catalog("complaint.resume")) and "位置" in back.text
    assert (state.flow, state.step) == ("complaint", "where")


async def test_handoff_interrupts_even_where_the_step_takes_any_text(
    router: Router, catalog: Catalog
) -> None:
    state = ConversationState()
    await say(router, state, turn("我要反映", "report"))
    assert state.step == "what"
    human, again = await say(router, state, turn("算了 转人工", "nlu_fallback"))
    assert human.text == catalog("chat.human")
    assert again.text.startswith(catalog("complaint.resume")) and state.step == "what"


# --- patience -----------------------------------------------------------------------------------


async def test_insults_get_one_calm_answer_then_a_person_then_quiet(
    router: Router, catalog: Catalog
) -> None:
    state = ConversationState()
    [calm] = await say(router, state, turn("你们这帮废物", "nlu_fallback"))
    [offer] = await say(router, state, turn("傻逼", "out_of_scope"))
    silent = [await say(router, state, turn("滚", "out_of_scope")) for _ in range(5)]
    assert calm.text == catalog("chat.calm")
    assert offer.text == catalog("chat.calm_human")
    assert [b.payload for b in offer.buttons] == ["intent:human_handoff"]
    assert silent == [[]] * 5
    later = T0 + timedelta(seconds=Patience().quiet_for + 1)
    [again] = await say(router, state, turn("废物", "out_of_scope", at=later))
    assert again.text == catalog("chat.calm")  # the quiet lapsed: the count starts again


async def test_a_real_request_is_heard_at_once_even_while_quiet(
    router: Router, catalog: Catalog
) -> None:
    state = ConversationState()
    for text in ("草泥马", "傻逼", "sb"):
        await say(router, state, turn(text, "out_of_scope"))
    assert state.quiet_until > T0.timestamp()
    [reply] = await say(router, state, turn("你们这帮废物 路灯坏了三天了", "report_facility"))
    assert "公共设施" in reply.text and state.quiet_until == 0.0


async def test_an_insult_mid_report_is_answered_calmly_and_the_question_asked_again(
    router: Router, catalog: Catalog
) -> None:
    state = ConversationState()
    await say(router, state, turn("垃圾桶满了", "report_sanitation"))
    calm, again = await say(router, state, turn("你们就是一群废物", "nlu_fallback"))
    assert calm.text == catalog("chat.calm") and "位置" in again.text
    assert state.step == "where"


async def test_a_rude_request_for_a_person_is_still_a_request(
    router: Router, catalog: Catalog
) -> None:
    state = ConversationState()
    await say(router, state, turn("傻逼", "out_of_scope"))
    [human] = await say(router, state, turn("你们这帮废物 给我转人工", "nlu_fallback"))
    assert human.text == catalog("chat.human")


async def test_a_message_a_rule_takes_is_no_strike_whatever_the_model_read(
    router: Router, catalog: Catalog
) -> None:
    state = ConversationState()
    await say(router, state, turn("呃呃呃", "out_of_scope"))
    [offer] = await say(router, state, turn("哈哈哈哈", "out_of_scope"))
    assert offer.text == catalog("chat.fallback_human")
    # A typed case number is taken by its rule: answered, though the model placed it nowhere
    # and a third strike would have been met with silence.
    replies = await say(router, state, turn("YM202611260001", "nlu_fallback"))
    assert replies and state.strikes == 0 and state.quiet_until == 0.0
