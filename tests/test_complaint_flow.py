"""The complaint flow as plain code: state + turn in, state + replies out, no I/O."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from handlers.catalog import Catalog
from handlers.flows.base import CANCEL, Turn
from handlers.flows.chat import ChatFlow
from handlers.flows.complaint import (
    EDIT,
    EDIT_ADDRESS,
    EDIT_DESCRIPTION,
    SKIP,
    SUBMIT,
    ComplaintFlow,
)
from handlers.flows.report_slots import take_address, within
from handlers.flows.status import URGE, StatusFlow
from handlers.messages import Inbound, Location, Media, Outbound
from handlers.router import Router
from handlers.state import ConversationState
from integration.models import CaseStatus
from nlu.entities import EntityExtractor
from nlu.gazetteer import Gazetteer
from nlu.types import Parse
from tests.fakes import FakeDesk

_ids = itertools.count()
extractor = EntityExtractor(communities=["金辉小区"])


def turn(
    text: str = "",
    intent: str = "nlu_fallback",
    *,
    payload: str = "",
    location: Location | None = None,
    media: tuple[Media, ...] = (),
    ranking: tuple[tuple[str, float], ...] = (),
) -> Turn:
    inbound = Inbound(
        "webchat",
        "u1",
        "u1",
        f"m{next(_ids)}",
        text,
        location=location,
        media=media,
        payload=payload,
    )
    return Turn(inbound, Parse(text, intent, 0.9, extractor.extract(text), ranking), payload)


@pytest.fixture
def desk() -> FakeDesk:
    return FakeDesk()


@pytest.fixture
def router(desk: FakeDesk, catalog: Catalog) -> Router:
    flows = {
        "complaint": ComplaintFlow(desk, catalog, Gazetteer.load()),
        "status": StatusFlow(desk, catalog),
        "chat": ChatFlow(catalog),
    }
    return Router(flows, catalog)


async def say(router: Router, state: ConversationState, t: Turn) -> list[Outbound]:
    replies = await router.route(t, state)
    state.offer(replies[-1].buttons)
    return replies


async def test_report_asks_where_then_photo_then_confirms_and_opens_a_case(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    [ask] = await say(router, state, turn("楼下烧烤店每天半夜还很吵", "report_noise"))
    assert "噪音扰民" in ask.text and "位置" in ask.text
    assert (state.flow, state.step) == ("complaint", "where")

    [ask_photo] = await say(router, state, turn("金辉小区3号楼"))
    assert state.step == "photo" and "金辉小区3号楼" in ask_photo.text
    assert [b.payload for b in ask_photo.buttons] == [SKIP, CANCEL]

    [confirm] = await say(router, state, turn("跳过", payload=SKIP))
    assert state.step == "confirm"
    assert "楼下烧烤店每天半夜还很吵" in confirm.text and "照片：无" in confirm.text
    assert [b.payload for b in confirm.buttons] == [SUBMIT, EDIT, CANCEL]
    assert desk.drafts == []  # nothing is created before the resident confirms

    [done] = await say(router, state, turn("提交", payload=SUBMIT))
    [draft] = desk.drafts
    assert (draft.category, draft.address, draft.description) == (
        "noise",
        "金辉小区3号楼",
        "楼下烧烤店每天半夜还很吵",
    )
    assert draft.channel == "webchat" and draft.chat_id == "u1"
    number = next(iter(desk.cases))
    assert number in done.text
    assert state.idle and state.slots == {}


async def test_address_in_the_first_message_skips_the_question(router: Router) -> None:
    state = ConversationState()
    [reply] = await say(router, state, turn("金辉小区3号楼路灯不亮了", "report_facility"))
    assert state.step == "photo"
    assert state.slots["address"] == "金辉小区3号楼"
    assert state.slots["category"] == "facility"
    assert "金辉小区3号楼" in reply.text


async def test_location_pin_fills_the_address_with_coordinates(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("垃圾三天没人清运", "report_sanitation"))
    pin = Location(39.6, 109.8, "交通街道金辉小区")
    await say(router, state, turn(location=pin, intent="report"))
    await say(router, state, turn("跳过", payload=SKIP))
    await say(router, state, turn("好的", "affirm"))
    [draft] = desk.drafts
    assert draft.address == "交通街道金辉小区"
    assert (draft.latitude, draft.longitude) == (39.6, 109.8)


async def test_photo_is_kept_and_goes_straight_to_confirmation(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("小区门口占道经营", "report_street_order"))
    await say(router, state, turn("金辉小区北门"))
    [confirm] = await say(router, state, turn(media=(Media("image", "pic-1", "http://x/1.jpg"),)))
    assert state.step == "confirm" and "1张" in confirm.text
    await say(router, state, turn(payload=SUBMIT))
    assert desk.drafts[0].media == (("image", "pic-1", "http://x/1.jpg"),)


async def test_photo_sent_before_the_address_is_kept_and_where_is_asked_again(
    router: Router,
) -> None:
    state = ConversationState()
    await say(router, state, turn("井盖丢了", "report_facility"))
    [reply] = await say(router, state, turn(media=(Media("image", "p"),)))
    assert state.step == "where" and "照片已收到" in reply.text
    [confirm] = await say(router, state, turn("伊煤路与天骄路交叉口"))
    assert state.step == "confirm" and "1张" in confirm.text


async def test_a_question_mid_flow_is_answered_and_the_step_asked_again(
    router: Router, catalog: Catalog
) -> None:
    state = ConversationState()
    await say(router, state, turn("半夜施工扰民", "report_noise"))
    answer, again = await say(router, state, turn("今天天气怎么样", "out_of_scope"))
    assert answer.text == catalog("chat.out_of_scope")
    assert again.text.startswith(catalog("complaint.resume")) and "位置" in again.text
    assert (state.flow, state.step, state.paused) == ("complaint", "where", [])
    assert state.reprompts == 0


async def test_unclear_answers_reprompt_and_then_offer_a_person(router: Router) -> None:
    state = ConversationState()
    await say(router, state, turn("半夜施工扰民", "report_noise"))
    [first] = await say(router, state, turn("嗯嗯那个", "nlu_fallback"))
    assert "位置" in first.text and state.reprompts == 1
    assert "intent:human_handoff" not in [b.payload for b in first.buttons]
    [second] = await say(router, state, turn("啊这", "nlu_fallback"))
    assert state.step == "where" and state.reprompts == 2
    assert "intent:human_handoff" in [b.payload for b in second.buttons]


@pytest.mark.parametrize("words", ["取消", "cancel", "/cancel"])
async def test_cancel_leaves_the_flow_without_a_case(
    router: Router, desk: FakeDesk, words: str
) -> None:
    state = ConversationState()
    await say(router, state, turn("电梯坏了", "report_property"))
    [reply] = await say(router, state, turn(words))
    assert state.idle and "已取消" in reply.text
    assert desk.drafts == []


async def test_cancel_button_at_confirmation(router: Router, desk: FakeDesk) -> None:
    state = ConversationState()
    await say(router, state, turn("电梯坏了", "report_property"))
    await say(router, state, turn("金辉小区3号楼"))
    await say(router, state, turn(payload=SKIP))
    await say(router, state, turn("取消", payload=CANCEL))
    assert state.idle and desk.drafts == []


async def test_buttons_can_be_typed_as_number_or_label(router: Router) -> None:
    state = ConversationState()
    await say(router, state, turn("楼道飞线充电", "report_safety"))
    await say(router, state, turn("金辉小区3号楼"))
    assert state.choice("1") == SKIP and state.choice("跳过") == SKIP
    assert state.choice("4") is None and state.choice("随便") is None


async def test_edit_address_then_description_before_submitting(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("占用消防通道停车", "report_parking"))
    await say(router, state, turn("金辉小区3号楼"))
    await say(router, state, turn(payload=SKIP))
    [choose] = await say(router, state, turn("修改", payload=EDIT))
    assert [b.payload for b in choose.buttons] == [EDIT_ADDRESS, EDIT_DESCRIPTION, CANCEL]
    await say(router, state, turn(payload=EDIT_ADDRESS))
    [confirm] = await say(router, state, turn("天骄花园5栋2单元"))
    assert state.step == "confirm" and "天骄花园5栋2单元" in confirm.text
    await say(router, state, turn(payload=EDIT))
    await say(router, state, turn(payload=EDIT_DESCRIPTION))
    [confirm] = await say(router, state, turn("消防通道被私家车堵死了", "report_parking"))
    assert "消防通道被私家车堵死了" in confirm.text
    await say(router, state, turn(payload=SUBMIT))
    [draft] = desk.drafts
    assert (draft.address, draft.description) == ("天骄花园5栋2单元", "消防通道被私家车堵死了")


async def test_menu_report_asks_what_happened_and_takes_category_from_ranking(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    [ask] = await say(router, state, turn("我要反映", "report"))
    assert state.step == "what" and "描述" in ask.text
    ranking = (("ask_service_info", 0.3), ("report_greenery", 0.25))
    await say(router, state, turn("树枝挡住窗户了", "ask_service_info", ranking=ranking))
    assert state.slots["category"] == "greenery"
    assert state.step == "where"


async def test_stray_yes_outside_a_flow_gets_an_explanation(router: Router) -> None:
    state = ConversationState()
    [reply] = await say(router, state, turn("好的", "affirm"))
    assert state.idle and "没有需要您确认" in reply.text


async def test_status_lists_open_cases_and_reads_a_typed_number(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    [none] = await say(router, state, turn("我的进度", "check_status"))
    assert "没有办理中的工单" in none.text
    for text in ("垃圾桶满了", "路灯不亮"):
        await say(router, state, turn(text, "report_sanitation"))
        await say(router, state, turn("金辉小区3号楼"))
        await say(router, state, turn(payload=SKIP))
        await say(router, state, turn(payload=SUBMIT))
    [listing] = await say(router, state, turn("查一下进度", "check_status"))
    numbers = list(desk.cases)
    assert "2件" in listing.text and all(n in listing.text for n in numbers)
    [one] = await say(router, state, turn(f"{numbers[0].lower()}怎么样了", "check_status"))
    assert numbers[0] in one.text and numbers[1] not in one.text
    [missing] = await say(router, state, turn("YM2001010999", "check_status"))
    assert "没有找到" in missing.text


@pytest.mark.parametrize(
    ("text", "urging"),
    [
        ("能不能快点处理", True),
        ("帮我催一下", True),
        ("还要等多久啊", True),
        ("都半个月了还没人来", True),
        ("路灯到底修不修", True),
        ("我反映的噪音问题怎么没人管", True),
        ("我的进度", False),
        ("路灯修好了吗", False),
        ("查一下我的工单", False),
        ("YM2612070001现在什么情况", False),
    ],
)
def test_urging_words(text: str, urging: bool) -> None:
    assert (URGE.search(text) is not None) is urging


async def test_urging_a_typed_case_records_it_and_a_finished_one_is_not_urged(
    router: Router, desk: FakeDesk, catalog: Catalog
) -> None:
    state = ConversationState()
    for text in ("垃圾桶满了", "路灯不亮"):
        await say(router, state, turn(text, "report_sanitation"))
        await say(router, state, turn("金辉小区3号楼"))
        await say(router, state, turn(payload=SKIP))
        await say(router, state, turn(payload=SUBMIT))
    bins, lamp = list(desk.cases)
    [urged] = await say(router, state, turn(f"{lamp}能不能快点", "check_status"))
    assert lamp in urged.text and catalog("status_query.urged", count=1) in urged.text
    assert [(number, text) for number, _, _, text in desk.urges] == [(lamp, f"{lamp}能不能快点")]
    [plain] = await say(router, state, turn(f"{bins}怎么样了", "check_status"))
    assert "催办" not in plain.text and len(desk.urges) == 1
    desk.cases[bins] = dataclasses.replace(desk.cases[bins], status=CaseStatus.resolved)
    [finished] = await say(router, state, turn(f"{bins}快点啊", "check_status"))
    assert bins in finished.text and "催办" not in finished.text and len(desk.urges) == 1


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        ("金辉小区3号楼门口", "南门", "金辉小区南门"),
        ("金辉小区3号楼门口", "5号楼", "金辉小区5号楼"),
        ("金辉小区", "6栋", "金辉小区6栋"),
        ("金辉小区", "3号楼和4号楼中间", "金辉小区3号楼和4号楼中间"),  # between two
        ("幸福路88号", "90号", "幸福路90号"),
        ("幸福路88号", "南门", "南门"),  # a gate of no estate: taken as said
        ("金辉小区3号楼", "金泰苑北门", "金泰苑北门"),  # a whole place replaces
        ("", "5号楼", "5号楼"),
        ("3号楼", "金辉小区", "金辉小区3号楼"),  # the estate of a part said alone before
        ("南门", "幸福路", "幸福路南门"),
        ("3号楼", "金泰苑5号楼", "金泰苑5号楼"),  # a place with its own part replaces
        ("金辉小区2号楼3单元401", "4单元401", "金辉小区2号楼4单元401"),  # a unit
        ("金辉小区2号楼3单元401", "402", "金辉小区2号楼3单元402"),  # a room
        ("金辉小区5号楼501", "502室", "金辉小区5号楼502室"),
        ("金辉小区5号楼", "3单元401", "金辉小区5号楼3单元401"),  # more of the same place
        ("幸福路88号", "188号", "幸福路188号"),  # a house number, not a room
    ],
)
def test_a_part_of_a_place_corrects_within_the_estate_or_road(
    old: str, new: str, kept: str
) -> None:
    assert within(old, new) == kept


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("等一下，地址说错了，是南门", "金辉小区南门"),
        ("改成6栋吧", "金辉小区6栋"),
        ("不是3号楼，是金泰苑北门", "金泰苑北门"),
        ("南门那边", "金辉小区南门那边"),
        ("门口那个井盖也松了", "金辉小区3号楼门口"),  # no place said: unchanged
    ],
)
def test_a_correction_of_the_place_in_words(text: str, address: str) -> None:
    slots: dict[str, object] = {"address": "金辉小区3号楼门口"}
    parse = Parse(text, "deny", 0.9, extractor.extract(text))
    take_address(parse, slots, None)
    assert slots["address"] == address


async def test_unbuilt_services_say_so_plainly(router: Router) -> None:
    state = ConversationState()
    # A booking that names no service (one that does gets the guide's card).
    [reply] = await say(router, state, turn("我想预约明天上午", "book_appointment"))
    assert "窗口预约" in reply.text and "暂未开通" in reply.text
    assert (state.flow, state.step) == ("chat", "service")  # follow-ups stay in context
    [again] = await say(router, state, turn("那需要带什么证件吗", "report_construction"))
    assert "窗口预约" in again.text
    [report] = await say(router, state, turn("楼道灯坏了", "report_facility"))
    assert state.flow == "complaint" and "公共设施" in report.text


async def test_misunderstood_twice_offers_a_human(router: Router, catalog: Catalog) -> None:
    state = ConversationState()
    [first] = await say(router, state, turn("嗯嗯那个啥", "nlu_fallback"))
    assert first.text == catalog("chat.fallback")
    [second] = await say(router, state, turn("就是那个", "nlu_fallback"))
    assert second.text == catalog("chat.fallback_human")
    assert "intent:human_handoff" in [b.payload for b in second.buttons]
    await say(router, state, turn("你好", "greet"))
    assert state.strikes == 0
    [again] = await say(router, state, turn("啊？", "nlu_fallback"))
    assert again.text == catalog("chat.fallback")  # the count starts afresh


async def test_typed_address_gets_its_communitys_coordinates(
    router: Router, desk: FakeDesk
) -> None:
    state = ConversationState()
    await say(router, state, turn("垃圾桶满了", "report_sanitation"))
    await say(router, state, turn("金辉小区3号楼"))
    assert (state.slots["latitude"], state.slots["longitude"]) == (39.6091, 109.7712)
    await say(router, state, turn(payload=SKIP))
    await say(router, state, turn(payload=EDIT))
    await say(router, state, turn(payload=EDIT_ADDRESS))
    await say(router, state, turn("伊煤路与天骄路交叉口"))  # no community: no coordinates
    await say(router, state, turn(payload=SUBMIT))
    [draft] = desk.drafts
    assert (draft.latitude, draft.longitude) == (None, None)
