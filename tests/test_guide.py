"""The service guide: matching residents' words to the catalogue, and the flow's answers.

The matcher is tested on its own; the flow through the router with the real NLU
model's parse (never a hand-set intent), so each answer is the one a resident gets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from handlers.catalog import Catalog
from handlers.flows.base import Turn
from handlers.flows.chat import MENU_HUMAN, ChatFlow
from handlers.flows.guide import BOOK, MATERIALS, PROXY, GuideFlow
from handlers.flows.guide_follow_up import lines_asked
from handlers.flows.guide_match import ServiceMatcher
from handlers.messages import Inbound, Outbound
from handlers.state import ConversationState
from integration.services import DEFAULT_CATALOGUE, ServiceCatalogue, load_catalogue
from nlu.embedded import EmbeddedInterpreter
from nlu.types import Entity, Parse


@pytest.fixture(scope="module")
def services() -> ServiceCatalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def matcher(services: ServiceCatalogue) -> ServiceMatcher:
    return ServiceMatcher(services)


# -- matching ------------------------------------------------------------------------------


def test_the_service_entity_comes_first(matcher: ServiceMatcher) -> None:
    found = matcher.match("我要办那个卡", ["社保卡"])
    assert found is not None and (found.kind, found.key) == ("service", "social_security_card")


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("暂住证怎么办", "residence_permit"),
        ("老人证在哪里办", "senior_card"),
        ("准生证要什么手续", "birth_registration"),
        ("想领八十岁补贴", "longevity_allowance"),
        ("外地户口能办居住证吗", "residence_permit"),  # the longer word wins
        ("社保卡丢了怎么补", "social_security_card"),  # over 社保 (灵活就业)
        ("灵活就业怎么交社保", "flexible_employment_insurance"),
        ("残疾人两项补贴怎么申请", "disability_subsidies"),  # not 残疾人证 nearly copied
        ("养老认证在哪做", "pension_certification"),  # not 老人证, its homophone
    ],
)
def test_names_and_synonyms(matcher: ServiceMatcher, text: str, service: str) -> None:
    found = matcher.match(text)
    assert found is not None and (found.kind, found.key) == ("service", service), found


@pytest.mark.parametrize(
    ("text", "service"),
    [
        ("老年正在哪办", "senior_card"),  # homophone typed by pinyin input
        ("社宝卡补办", "social_security_card"),
        ("高龄补帖怎么领", "longevity_allowance"),
        ("残急证要什么材料", "disability_card"),
        ("独生子女父母讲励怎么领", "one_child_reward"),  # near copy: one character off
    ],
)
def test_typo_ish_wording(matcher: ServiceMatcher, text: str, service: str) -> None:
    found = matcher.match(text)
    assert found is not None and found.key == service, found


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("我想问问公租房怎么申请", "住房保障部门"),
        ("创业贷款怎么申请", "银行"),
        ("个税怎么退", "税务局"),
        ("办房产证要带什么材料", "不动产登记中心"),
        ("公积金怎么提取", "住房公积金管理中心"),
        ("护照在哪办", "出入境"),
        ("驾照到期了去哪换", "车管所"),
        ("我想咨询一下营业执照怎么办", "市场监督管理部门"),
    ],
)
def test_out_of_remit_topics(
    matcher: ServiceMatcher, services: ServiceCatalogue, text: str, where: str
) -> None:
    found = matcher.match(text)
    assert found is not None and found.kind == "remit", found
    assert where in services.out_of_remit.topics[int(found.key)].where


@pytest.mark.parametrize(
    "text",
    [
        "宠物证怎么办",
        "楼道灯坏了",
        "我想办个事",
        "你好",
        "不是我自己去，是帮我妈办",  # 去，是 is no 去世: sounds are not heard across clauses
    ],
)
def test_nothing_matches_well(matcher: ServiceMatcher, text: str) -> None:
    assert matcher.match(text) is None


# -- the flow, with the real model's parse ------------------------------------------------


async def ask(
    flow: GuideFlow,
    interpreter: EmbeddedInterpreter,
    text: str,
    state: ConversationState,
    payload: str = "",
) -> list[Outbound]:
    inbound = Inbound("webchat", "r1", "r1", text, text, payload=payload)
    parse = await interpreter.parse(text) if not payload else Parse(text, "button", 1.0)
    turn = Turn(inbound, parse, payload)
    if state.flow == flow.name:
        return await flow.resume(turn, state)
    return await flow.start(turn, state)


@pytest.fixture
def flow(services: ServiceCatalogue, catalog: Catalog) -> GuideFlow:
    return GuideFlow(services, catalog)


async def test_a_service_gets_materials_window_hours_and_fee(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    state = ConversationState()
    (reply,) = await ask(flow, interpreter, "办居住证要带啥", state)
    for part in (
        "居住证",
        "身份证原件",
        "租房合同",
        "人口与流动人口服务窗口",
        "13:30-17:30",
        "免费",
    ):
        assert part in reply.text
    assert [b.payload for b in reply.buttons] == [
        f"{BOOK}residence_permit",
        f"{PROXY}residence_permit",
        f"{MATERIALS}residence_permit",
    ]
    assert (state.flow, state.step) == ("guide", "answered")


async def test_no_proxy_button_when_a_service_cannot_be_done_by_proxy(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    (reply,) = await ask(flow, interpreter, "失业登记要带什么", ConversationState())
    assert "就业服务窗口" in reply.text
    assert not any(b.payload.startswith(PROXY) for b in reply.buttons)


async def test_the_buttons_answer_honestly(
    flow: GuideFlow, interpreter: EmbeddedInterpreter, catalog: Catalog
) -> None:
    state = ConversationState()
    await ask(flow, interpreter, "老年证怎么办", state)
    (booked,) = await ask(flow, interpreter, "预约办理", state, f"{BOOK}senior_card")
    assert "即将开通" in booked.text and "0477-8581237" in booked.text
    (proxy,) = await ask(flow, interpreter, "申请代办", state, f"{PROXY}senior_card")
    assert "授权委托书" in proxy.text and "代办人居民身份证原件" in proxy.text
    (again,) = await ask(flow, interpreter, "再看材料", state, f"{MATERIALS}senior_card")
    assert "近期一寸白底免冠彩色照片1张" in again.text


async def test_no_match_says_so_and_offers_a_person(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    (reply,) = await ask(flow, interpreter, "办宠物证要带什么材料", ConversationState())
    assert "没有找到" in reply.text
    assert [b.payload for b in reply.buttons] == [MENU_HUMAN]


async def test_out_of_remit_points_to_12345(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    (reply,) = await ask(flow, interpreter, "我想问问公租房怎么申请", ConversationState())
    assert "不在街道政务服务中心的办理范围内" in reply.text and "12345" in reply.text


async def test_no_service_named_asks_which_with_common_services(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    state = ConversationState()
    for text in ("办事指南", "我想办个证", "办证"):
        replies = await ask(flow, interpreter, text, state)
        labels = [b.label for b in replies[-1].buttons]
        assert labels[:3] == ["居住证", "社保卡申领/补换", "城乡居民医保参保"], text
        assert state.step == "pick"
        state.finish()


async def test_hours_name_the_coming_holidays_and_make_up_days(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    text = "你们国庆几点上班"
    when = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    inbound = Inbound("webchat", "r1", "r1", "m", text, time=when)
    turn = Turn(inbound, await interpreter.parse(text))
    replies = await flow.start(turn, ConversationState())
    assert "09:00-12:00、13:30-17:30" in replies[0].text
    assert "近期安排：中秋节9月25日至9月27日休息；国庆节10月1日至10月7日休息" in replies[0].text
    assert "9月20日（周日）调休上班；10月10日（周六）调休上班" in replies[0].text


async def test_a_follow_up_about_papers_stays_with_the_service(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    state = ConversationState()
    await ask(flow, interpreter, "办残疾证需要什么", state)
    (reply,) = await ask(flow, interpreter, "身份证要复印件吗", state)
    assert reply.text.startswith("残疾证的办事指南里写着：")  # that line, not the card
    assert "身份证" in reply.text and "所需材料" not in reply.text
    (reply,) = await ask(flow, interpreter, "户口本也要带吗", state)  # 户口 is out of remit
    assert reply.text.startswith("残疾证的办事指南里写着：")
    assert "户口簿" in reply.text and "所需材料" not in reply.text


async def test_an_entity_the_catalogue_lacks_falls_back_to_the_words(
    flow: GuideFlow, services: ServiceCatalogue
) -> None:
    text = "开居住证明去哪里"
    parse = Parse(text, "ask_service_info", 1.0, (Entity("service", 1, 5, "居住证明", "x"),))
    turn = Turn(Inbound("webchat", "r1", "r1", "m", text), parse)
    (reply,) = await flow.start(turn, ConversationState())
    assert "开具证明" in reply.text


async def test_a_booking_for_a_known_service_gets_the_card_and_the_honest_answer(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    state = ConversationState()
    card, honest = await ask(flow, interpreter, "我想预约明天上午办居住证", state)
    assert "租房合同" in card.text and not card.buttons
    assert "线上预约即将开通" in honest.text and "0477-8581238" in honest.text
    assert (state.step, state.slots) == ("answered", {"service": "residence_permit"})


async def test_proxy_for_a_service_that_needs_the_resident_says_so(
    flow: GuideFlow, interpreter: EmbeddedInterpreter
) -> None:
    state = ConversationState()
    await ask(flow, interpreter, "失业登记要带什么", state)
    (reply,) = await ask(flow, interpreter, "申请代办", state, f"{PROXY}employment_registration")
    assert "需要本人到就业服务窗口办理，不能代办" in reply.text


async def test_a_booking_naming_no_service_is_answered_as_before(
    services: ServiceCatalogue, catalog: Catalog, interpreter: EmbeddedInterpreter
) -> None:
    flow = GuideFlow(services, catalog, fallback=ChatFlow(catalog))
    state = ConversationState()
    (reply,) = await ask(flow, interpreter, "帮我约个号", state)
    assert "暂未开通线上办理" in reply.text
    assert (state.flow, state.step) == ("chat", "service")


# -- the command line ----------------------------------------------------------------------


def yimen_script() -> str:
    found = shutil.which("yimen", path=str(Path(sys.executable).parent))
    assert found, f"no yimen console script next to {sys.executable}"
    return found


def test_services_check_passes_on_the_shipped_catalogue() -> None:
    done = subprocess.run(
        [yimen_script(), "services", "check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "ok:" in done.stdout and "services: 17" in done.stdout


def test_services_check_fails_on_a_broken_catalogue_with_file_and_line(tmp_path: Path) -> None:
    text = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
    broken = tmp_path / "catalogue.yml"
    broken.write_text(text.replace("    bookable: true\n", "    bookable: maybe\n", 1), "utf-8")
    shutil.copy(DEFAULT_CATALOGUE.parent / "calendar.yml", tmp_path / "calendar.yml")
    line = next(
        n for n, row in enumerate(broken.read_text("utf-8").splitlines(), 1) if "maybe" in row
    )
    done = subprocess.run(
        [yimen_script(), "services", "check", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{broken}:{line}: services[0].bookable:" in done.stderr


def test_the_server_refuses_to_start_with_a_broken_catalogue(tmp_path: Path) -> None:
    text = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
    broken = tmp_path / "catalogue.yml"
    broken.write_text(text.replace("    window: population\n", "    window: nowhere\n", 1), "utf-8")
    shutil.copy(DEFAULT_CATALOGUE.parent / "calendar.yml", tmp_path / "calendar.yml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIMEN_")}
    env |= {"YIMEN_SERVICE_CATALOGUE": str(broken), "YIMEN_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [yimen_script(), "run", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert f"{broken}:" in done.stderr and "services[0].window: no window 'nowhere'" in done.stderr


def test_the_lines_a_follow_up_asks_about(services: ServiceCatalogue) -> None:
    elderly = services.service("senior_card")
    assert lines_asked(elderly, "照片要几张") == ["近期一寸白底免冠彩色照片1张"]
    assert lines_asked(elderly, "户口本要带吗") == [
        "户口簿或居住证"
    ]  # 户口本, put the catalogue's way
    assert lines_asked(elderly, "老年证要带什么") == []  # its own name: the whole card
    assert lines_asked(elderly, "要带什么材料") == []
    assert lines_asked(elderly, "我的身份证丢了") == []  # a loss, not a question about the line
