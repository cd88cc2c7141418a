"""How the address tagger is taught: its training rows, and renamed copies of them.

``train_rows`` gives the CRF one row of features and BIO tags per clause of each
annotated example (``nlu.addresses`` has the features). Most annotated addresses name a
community the gazetteer knows, or one of a few roads, so each example whose address names
an estate, road or village is taught a second time under a new name (``renamed``): the
tagger then finds places by their shape, not only the names it was shown (README,
"Address spans": "Places the gazetteer does not know").
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence

from nlu.addresses import (
    SUFFIX_PATTERN,
    Hints,
    Row,
    Sample,
    Span,
    clauses,
    evidence,
    features,
    samples,
    tags_for,
)
from nlu.training_data import Example

# Estate, road and village name stems for ``renamed``: names the gazetteer does not know
# and that no address in the test sets (nlu/data/test/) contains, checked when the list
# was written. Some begin with a character the span rules treat as a stop (和, 向, 都,
# 太, 家) and some are clan names (刘家), as real places are.
STEMS = tuple(
    (
        "嘉禾 福临 银河 紫荆 兰亭 怡和 康乐 泰安 富康 美景 润泽 清泉 松柏 "
        "滨江 湖畔 山水 天悦 晨曦 西城 北岸 南山 中天 时代 未来 春天 冬青 "
        "青年 福星 吉祥 如意 百合 玫瑰 柳岸 名都 惠民 新兴 胜利 工农 前进 "
        "团圆 东兴 华山 珠江 天山 凤凰 麒麟 玉兰 丁香 金鼎 银座 水岸 蓝湾 "
        "和美 向荣 向东 都会 太和 家乐 家福 刘家 赵家 杨家 翡翠城 香山美墅 "
        "紫金苑东 金水湾 丽都 永安 汇丰 鸿运 瑞景 恒通 金秋 银杉 云杉 雪松 "
        "樱花 荷塘 芙蓉 牡丹 秀水 青山 碧云 白云 紫云 彩虹 月亮湾 日升 "
        "晓风 馨园 畅园 尚品 逸景 悦澜 澜庭 鹭岛 燕栖 鹏程 骏马 远洋 宝龙 "
        "恒昌 德胜 源泉 聚龙 腾飞 振兴 复兴 光辉 红星 红岩 井冈 延安 韶山 "
        "昆仑 泰山 衡山 嵩山 黄山 庐山 峨眉 洞庭 鄱阳 太湖 西湖 翠屏 锦屏 "
        "金沙 银沙 和睦 向晖 向前 都城 太康 太白 家宁 家兴 孙家 周家 吴家 "
        "郑家 钱家 三里 五里 十里 八一 二七 五一 东方红 万寿 长乐 永乐 "
        "永兴 永康 安宁 安康 宁安 平和 祥瑞 瑞丰 丰收 丰乐 乐园 欣欣 蓬莱 "
        "桂林 梅林 竹林 松林 杏林 枣园 梨园 桃李 柳林 柏林 槐荫 桑园 菊园"
    ).split()
)


# The details among SUFFIXES: what follows a place (its buildings, gates and sides), not
# the kind of place a name ends in.
DETAILS = frozenset({
    "号楼", "栋", "幢", "单元", "号院", "室", "号", "座", "期", "门口", "门前", "东门",
    "西门", "南门", "北门", "正门", "后门", "侧门", "路口", "交叉口", "十字路口",
    "丁字路口", "交汇处", "旁边", "对面", "附近", "周边", "东侧", "西侧", "南侧", "北侧",
    "组",
})  # fmt: skip
# Kinds of estate and of road that ``renamed`` swaps among, so that every kind is taught.
ESTATES = (
    "小区", "花园", "家园", "嘉园", "佳园", "华府", "华庭", "公寓", "新村", "苑", "园", "湾",
    "港湾", "庄园",
)  # fmt: skip
ROADS = ("路", "街", "大街", "大道", "巷")
# The kinds whose names ``renamed`` swaps: estates, roads, villages and open places, not
# institutions (东胜区政务服务中心 stays, or any office would pass for a place).
RENAMED_KINDS = frozenset(
    (*ESTATES, *ROADS, "社区", "街道", "胡同", "步行街", "村", "庄", "公园", "广场", "大厦")
)


def names_in(text: str, span: Span) -> list[tuple[int, int, int]]:
    """The estates, roads and villages named in an address span: where each name's stem
    starts, where its kind starts and where the kind ends (金辉|小区 in 金辉小区3号楼,
    伊煤|路 and 团结|路 in 伊煤路与团结路交叉口)."""
    start, end = span
    out: list[tuple[int, int, int]] = []
    for kind in SUFFIX_PATTERN.finditer(text, start, end):
        a, b = start, kind.start()
        if kind.group() in RENAMED_KINDS and 0 < b - a <= 5 and all(map(_is_han, text[a:b])):
            out.append((a, b, kind.end()))
        start = kind.end() + (text[kind.end() : kind.end() + 1] in ("与", "和"))
    return out


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def renamed(
    sample: Sample, communities: Sequence[Span], stems: Sequence[str], pick: int
) -> Sample | None:
    """``sample`` with the places in its addresses under new names; ``None`` if none has.

    Most annotated addresses name a community the gazetteer knows or one of a few roads,
    so a tagger taught on them alone learns that an address is one of those names, and
    misses an estate or road new to it (光明小区3栋 and 银杏路 got no address). The copy
    keeps each place's details, swaps its name's stem and swaps its kind for another of
    its sort (金辉小区3号楼 → 嘉禾花园3号楼, 团结路 → 福临大街; an alias with no kind,
    金辉, is swapped whole), so the tagger learns a place by its shape. ``pick`` chooses
    the new names, so the copies are the same on every run.
    """
    text, spans = sample.text, list(sample.spans)
    found = [name for span in spans for name in names_in(text, span)]
    found += [
        (a, b, b)
        for a, b in communities
        if any(s <= a and b <= e for s, e in spans)
        and not any(x < b and z > a for x, _, z in found)
    ]
    if not found:
        return None
    for n, (a, b, c) in enumerate(sorted(found, reverse=True)):  # right to left
        kind = text[b:c]
        for kinds in (ESTATES, ROADS):
            if kind in kinds:
                kind = kinds[(pick + n) % len(kinds)]
        name = stems[(pick + n) % len(stems)] + kind
        text = text[:a] + name + text[c:]
        shift = len(name) - (c - a)
        spans = [
            (s, e + shift) if s <= a < e else (s, e) if e <= a else (s + shift, e + shift)
            for s, e in spans
        ]
    return Sample(text, tuple(spans))


# Renamed copies of each example: more copies, less the tagger depends on which names
# the copies drew (one copy: address F1 moved by 2–4 points as examples were added).
COPIES = 2


def train_rows(
    examples: Iterable[Example],
    prepare: Callable[[str], tuple[str, Hints]],
    segment: Callable[[str], list[str]],
    stems: Sequence[str] = STEMS,
) -> list[tuple[list[Row], list[str]]]:
    """(features, tags) of every example whose address spans survive normalisation, and
    of a ``renamed`` copy of each whose address names an estate, road or village.

    ``prepare`` masks phones and times out of a text and gives the rules' hints, as the
    extractor does when it parses.
    """
    originals = [(sample, *prepare(sample.text)) for sample in samples(examples)]
    copies = []
    for sample, _, hints in originals:
        # The names come from the text itself, so a new example changes no other copy.
        pick = zlib.crc32(sample.text.encode())
        for n in range(COPIES if stems else 0):
            copy = renamed(sample, hints.communities, stems, pick + n * 7919)
            if copy is not None:
                copies.append((copy, *prepare(copy.text)))
    rows = []
    for sample, masked, hints in (*originals, *copies):
        tags = tags_for(sample)
        for start, end in clauses(masked, sample.spans):
            gold = tags[start:end]
            if not evidence(masked, hints, start, end) and set(gold) == {"O"}:
                continue  # never tagged when parsing either
            clause = masked[start:end]
            words = segment(clause)
            if "".join(words) != clause:
                words = list(clause)
            rows.append((features(clause, words, hints.within(start, end)), gold))
    return rows
