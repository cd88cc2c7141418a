"""The address span rules (README, "Address spans"), through the real trained model.

Each failure class of issue 15 has its cases: a verb or subject before the place, an
estate with its building, unit and gate, landmarks, road crossings, towns, and words
that look like places but are not. None of these sentences is in the training data.
"""

from __future__ import annotations

import pytest

from nlu.address_training import ESTATES, ROADS, STEMS, names_in, renamed
from nlu.addresses import Sample, clauses, spans_of, widen
from nlu.embedded import EmbeddedInterpreter
from nlu.entities import _ADDRESS
from nlu.training_data import load

CASES = {
    "verbs and subjects stay outside": [
        ("我住建设街道，楼下夜市太吵了", ["建设街道"]),
        ("想回富兴街道看看我妈，她说楼道灯坏了", ["富兴街道"]),
        ("表扬交通街道，路灯修得真快", ["交通街道"]),
        ("每天接孩子走伊煤路，那段路灯全黑", ["伊煤路"]),
        ("老爷子住林荫街道，想找人上门理发", ["林荫街道"]),
        ("我家在紫金华府，物业不管电梯", ["紫金华府"]),
    ],
    "estate, building, unit and gate stay whole": [
        ("金地华庭2号楼的电梯又坏了", ["金地华庭2号楼"]),
        ("祥和苑5号楼楼下有人烧垃圾", ["祥和苑5号楼"]),
        ("建设街道恒泰家园7号楼东门堆满了杂物", ["建设街道恒泰家园7号楼东门"]),
        ("丽景苑3号楼2单元的楼道灯不亮", ["丽景苑3号楼2单元"]),
    ],
    "a room without 室, and a corner or side word after the place, stay whole": [
        ("福源小区5号楼2单元301楼上漏水，物业不管", ["福源小区5号楼2单元301"]),
        ("伊煤路与团结路交叉口西北角的红绿灯坏了", ["伊煤路与团结路交叉口西北角"]),
        ("春华小区门前的路灯一直不亮", ["春华小区门前"]),
        ("天骄路两侧的树枝太长了，该修剪了", ["天骄路两侧"]),
    ],
    "landmarks are places": [
        ("二完小门口天天有人摆摊", ["二完小门口"]),
        ("东胜区政务服务中心旁边的公厕没水", ["东胜区政务服务中心旁边"]),
    ],
    "road crossings are one place": [
        ("伊煤路与天骄路交叉口的井盖丢了", ["伊煤路与天骄路交叉口"]),
        ("达拉特路与准格尔路交叉口的红绿灯不亮", ["达拉特路与准格尔路交叉口"]),
    ],
    "towns are places": [
        ("我人在包头，社保卡丢了怎么补办", ["包头"]),
        ("我在呼和浩特上班，想请社区帮我妈代办老年证", ["呼和浩特"]),
        ("刚从康巴什搬过来，居住证怎么办", ["康巴什"]),
    ],
    "a reply that is a numbered place and little else is an address, the estate new": [
        ("幸福小区3栋", ["幸福小区3栋"]),
        ("光明小区5栋", ["光明小区5栋"]),
        ("我家在幸福里小区3栋2单元", ["幸福里小区3栋2单元"]),
        ("在东方花园8号楼门口", ["东方花园8号楼门口"]),
    ],
    "estates, roads and villages the gazetteer does not know are places": [
        ("光明小区3栋门口垃圾没人清", ["光明小区3栋门口"]),
        ("银杏路上老有车乱停", ["银杏路"]),
        ("翠竹苑5栋楼上天天拖椅子", ["翠竹苑5栋"]),
        ("李家村3组的路塌了", ["李家村3组"]),
        ("我和老伴住在幸福小区想办老年证", ["幸福小区"]),
        ("在红星路和建国街路口", ["红星路和建国街路口"]),
    ],
    "a name may begin with 和, 向 or 都": [
        ("和平小区3号楼门口垃圾堆了好几天", ["和平小区3号楼门口"]),
        ("向阳小区2栋楼道灯不亮", ["向阳小区2栋"]),
        ("都市花园门口有人乱摆摊", ["都市花园门口"]),
    ],
    "an unnamed estate or road is no place": [
        ("外来车辆占用小区车位，物业不管", []),
        ("回家路上路灯全黑", []),
        ("老旧小区改造啥时候轮到我们", []),
    ],
    "a building number alone names no place": [
        ("3栋", []),
        ("楼下3栋的狗天天叫", []),
    ],
    "non-places are not addresses": [
        ("想请社区派人来看看楼下的垃圾", []),
        ("树枝挡路，电动车都过不去", []),
        ("物业不管，楼道里全是杂物", []),
    ],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(t, e, id=f"{rule}: {t}") for rule, cases in CASES.items() for t, e in cases],
)
async def test_address_spans(
    interpreter: EmbeddedInterpreter, text: str, expected: list[str]
) -> None:
    parse = await interpreter.parse(text)
    found = [parse.text[e.start : e.end] for e in parse.entities if e.entity == "address"]
    assert found == expected
    assert all(e.extractor == "crf" for e in parse.entities if e.entity == "address")


def test_the_cases_are_not_training_examples() -> None:
    texts = {e.text for e in load().examples}
    assert not texts & {t for cases in CASES.values() for t, _ in cases}


def test_bio_tags_become_spans_and_gazetteer_names_stay_whole() -> None:
    assert spans_of(["O", "B", "I", "O", "I", "I", "B"]) == [(1, 3), (4, 6), (6, 7)]
    # 金辉小区 spans 2..6: a span cutting into it is widened, overlaps merge.
    assert widen([(0, 1), (3, 8), (5, 9)], [(2, 6)]) == [(0, 1), (2, 9)]


def test_clauses_split_at_sentence_punctuation_but_never_inside_a_place() -> None:
    text = "您好,我住金辉小区。楼下太吵!"
    assert [text[a:b] for a, b in clauses(text)] == ["您好", "我住金辉小区", "楼下太吵"]
    assert [text[a:b] for a, b in clauses(text, keep=[(5, 9)])] == [
        "您好",
        "我住金辉小区",
        "楼下太吵",
    ]
    assert clauses("金辉小区3.2号", keep=[(0, 8)]) == [(0, 8)]


def test_names_in_an_address_are_its_estates_roads_and_villages() -> None:
    def names(text: str) -> list[tuple[str, str]]:
        return [(text[a:b], text[b:c]) for a, b, c in names_in(text, (0, len(text)))]

    assert names("金辉小区3号楼2单元") == [("金辉", "小区")]
    assert names("伊煤路与团结路交叉口东北角") == [("伊煤", "路"), ("团结", "路")]
    assert names("建设街道恒泰家园7号楼东门") == [("建设", "街道"), ("恒泰", "家园")]
    assert names("李家村3组") == [("李家", "村")]
    # Institutions keep their names: an office renamed would pass for a place.
    assert names("东胜区政务服务中心") == []
    assert names("康巴什") == []


def test_a_renamed_copy_keeps_details_and_offsets_and_swaps_names_and_kinds() -> None:
    text = "我住金辉小区3号楼，门口伊煤路与团结路交叉口的灯坏了"
    spans = ((2, 9), (12, 22))
    assert [text[a:b] for a, b in spans] == ["金辉小区3号楼", "伊煤路与团结路交叉口"]
    copy = renamed(Sample(text, spans), [], STEMS, pick=0)
    assert copy is not None
    places = [copy.text[a:b] for a, b in copy.spans]
    assert copy.text.startswith("我住") and copy.text.endswith("的灯坏了")
    assert places[0].endswith("3号楼") and places[1].endswith("交叉口") and "与" in places[1]
    estate, roads = places[0][: -len("3号楼")], places[1][: -len("交叉口")].split("与")
    assert "金辉" not in estate and estate.endswith(ESTATES)
    assert all(road.endswith(ROADS) and road[:2] not in ("伊煤", "团结") for road in roads)
    assert any(estate.startswith(stem) for stem in STEMS)
    # The same pick gives the same copy; a sample without a named place gives none.
    assert renamed(Sample(text, spans), [], STEMS, pick=0) == copy
    assert renamed(Sample("楼下3栋", ((2, 4),)), [], STEMS, pick=0) is None


def test_an_alias_without_a_kind_is_renamed_whole() -> None:
    copy = renamed(Sample("金辉3号楼漏水", ((0, 5),)), [(0, 2)], ("锦绣",), pick=0)
    assert copy == Sample("锦绣3号楼漏水", ((0, 5),))


@pytest.mark.parametrize(
    ("text", "places"),
    [
        ("和平小区3号楼门口垃圾", ["和平小区3号楼门口"]),
        ("我家在向阳小区5栋", ["向阳小区5栋"]),
        ("我和老伴住在幸福小区", ["幸福小区"]),  # 和 after a pronoun joins, not names
        ("李家村3组的路塌了", ["李家村3组"]),
        ("回家路上", []),
        ("外来车辆占用小区车位", []),
        ("建设街道老旧小区改造", ["建设街道"]),
    ],
)
def test_the_span_rules_read_names_that_begin_with_a_stop_and_skip_unnamed_kinds(
    text: str, places: list[str]
) -> None:
    assert [m.group() for m in _ADDRESS.finditer(text)] == places


def test_the_stems_are_no_test_set_names() -> None:
    import re
    from pathlib import Path

    test_sets = Path(__file__).parents[1] / "nlu" / "data" / "test"
    spans = [
        span
        for path in test_sets.glob("*.yml")
        for span in re.findall(r"\[([^\]]*)\]\(address\)", path.read_text("utf-8"))
    ]
    assert spans
    assert not [stem for stem in STEMS if any(stem in span for span in spans)]
