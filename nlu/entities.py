"""Rule-based entity extractors: phone, service, address and time spans.

They run in microseconds and need no training, so every backend shares them. The
service and community vocabularies come from the lookup tables and synonyms in the
training data, so they grow without code changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nlu.training_data import TrainingData
from nlu.types import Entity

_MOBILE = r"(?<!\d)1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)"
_LANDLINE = r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)"

_CJK = r"\u4e00-\u9fff"
# Characters that end a place name's prefix: particles, pronouns and verbs that
# never belong to a community, road or building name.
_STOP = "的在了是我你他她们家有这那个和与到从把被就也都还很太又说去来要给对跟向往离看让"
_NAME = rf"[{_CJK}A-Za-z0-9]"
_PREFIX = rf"(?:[^\W{_STOP}]|[A-Za-z0-9])"
# Place kinds that end a name: 金辉小区, 伊煤路, 万达广场 ...
_PLACE = (
    "小区|社区|花园|家园|公寓|新村|大厦|广场|商场|市场|公园|中学|小学|学校|医院|"
    "街道|大街|大道|胡同|路|街|巷|弄|苑|村|里弄"
)
# What may follow a place: buildings, units, gates, corners.
_DETAIL = (
    r"(?:\d+|[一二三四五六七八九十]+)(?:号楼|栋|幢|号院|单元|号|层|楼|室|期)"
    r"|[东南西北正后侧]门|门口|路口|交叉口|十字路口|附近|对面|旁边|东侧|西侧|南侧|北侧"
)
_ADDRESS = re.compile(
    rf"(?:{_PREFIX}{{2,8}}?(?:{_PLACE}))"
    rf"(?:(?:与|和){_PREFIX}{{1,8}}?(?:{_PLACE}))?"
    rf"(?:{_DETAIL}|{_PREFIX}{{2,6}}?(?:{_PLACE}))*"
    rf"(?:{_DETAIL})*"
)
# Building-only answers such as "3号楼2单元" still say where.
_BUILDING = re.compile(r"(?:(?:\d+|[一二三四五六七八九十]+)(?:号楼|栋|幢|单元|号院|层|室))+")

_TIME = re.compile(
    r"(?:(?:下下?个?|这个?|本|上个?)?(?:周|星期|礼拜)[一二三四五六日天1-7]|"
    r"今天|明天|后天|大后天|昨天|前天|今晚|明晚|这周|下下周|下周|本周|周末|"
    r"\d{1,2}月\d{1,2}[日号]?|\d{1,2}[日号])"
    r"(?:\s*(?:凌晨|早上|上午|中午|下午|傍晚|晚上|夜里|半夜))?"
    r"(?:\s*(?:\d{1,2}|[一二三四五六七八九十]{1,3})[点:：时](?:\d{1,2}|半|[一二三四五]刻)?分?)?"
    r"|(?:凌晨|早上|上午|中午|下午|傍晚|晚上)(?:\s*(?:\d{1,2}|[一二三四五六七八九十]{1,3})[点时](?:\d{1,2}|半)?分?)?"
)


class EntityExtractor:
    """Finds address, time, phone and service spans in a message."""

    def __init__(
        self,
        services: Iterable[str] = (),
        communities: Iterable[str] = (),
        synonyms: dict[str, str] | None = None,
        phone_patterns: Iterable[str] = (),
    ) -> None:
        self._synonyms = dict(synonyms or {})
        service_words = set(services) | {
            variant for variant, canonical in self._synonyms.items() if canonical in services
        }
        self._service = _alternation(service_words)
        self._community = _alternation(communities)
        patterns = [_MOBILE, _LANDLINE, *phone_patterns]
        self._phone = re.compile("|".join(f"(?:{p})" for p in patterns))

    @classmethod
    def from_training_data(cls, data: TrainingData) -> EntityExtractor:
        """Build the extractor from the lookup tables, synonyms and regexes of the data."""
        return cls(
            services=data.lookups.get("service", ()),
            communities=data.lookups.get("community", ()),
            synonyms=data.synonyms,
            phone_patterns=data.regexes.get("phone", ()),
        )

    def extract(self, text: str) -> tuple[Entity, ...]:
        """All entities in ``text``, in order, without overlaps (the earlier, longer span wins)."""
        found: list[Entity] = []
        for match in self._phone.finditer(text):
            digits = re.sub(r"[ ]", "", match.group())
            found.append(Entity("phone", match.start(), match.end(), digits, "regex"))
        if self._service:
            for match in self._service.finditer(text):
                word = match.group()
                value = self._synonyms.get(word, word)
                found.append(Entity("service", match.start(), match.end(), value, "lookup"))
        found.extend(self._addresses(text))
        for match in _TIME.finditer(text):
            found.append(Entity("time", match.start(), match.end(), match.group(), "regex"))
        return _without_overlaps(found)

    def _addresses(self, text: str) -> list[Entity]:
        spans: list[tuple[int, int]] = []
        if self._community:
            spans += [m.span() for m in self._community.finditer(text)]
        spans += [m.span() for m in _ADDRESS.finditer(text)]
        spans += [m.span() for m in _BUILDING.finditer(text)]
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        # A community name followed by building details is one address.
        out = []
        for start, end in merged:
            tail = re.match(rf"(?:{_DETAIL})*", text[end:])
            end += tail.end() if tail else 0
            out.append(Entity("address", start, end, text[start:end], "regex"))
        return out


def _alternation(words: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({w for w in words if w}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def _without_overlaps(entities: list[Entity]) -> tuple[Entity, ...]:
    kept: list[Entity] = []
    for ent in sorted(entities, key=lambda e: (e.start, -(e.end - e.start))):
        if kept and ent.start < kept[-1].end:
            continue
        kept.append(ent)
    return tuple(kept)
