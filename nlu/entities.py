"""Rule-based entity extractors: phone, time, service and address spans.

They run in microseconds and need no training, so every backend shares them. The
service and community vocabularies come from the lookup tables and synonyms in the
training data and from the community gazetteer, so they grow without code changes.

Values, as Rasa shapes them: a phone's digits; a service's canonical name (社会保障卡 →
社保卡); a time's ISO 8601 datetime or ``start/end`` interval, resolved in Asia/Shanghai
by nlu.timeparse (its docstring lists the conventions), except a period (a duration,
since-expression, recurrence or stretch of the calendar: 连续一周, 自今年3月以来,
每晚10点至凌晨2点, 今年, 月底), which is a time entity from the ``period`` extractor valued
as written: a description for the
case, never a slot to book (it does not resolve); an address's text as written,
since residents see it echoed back. The matched text of any entity is
``text[entity.start:entity.end]``; ``EntityExtractor.locate`` gives an address's
community and coordinates from the gazetteer.

Addresses: given a trained tagger (``with_tagger``, as the embedded interpreter does),
spans come from nlu.addresses' CRF, which reads the community, place and pattern
matches here as evidence (``hints``); without one, from those rules alone.

Services are the lookups' names as written, the longest first (户口迁移, 居家养老服务补贴,
独生子女父母奖励扶助), except 户籍/户口 naming where someone is registered (户籍在外地,
外地户口) and documents named as papers to bring (带身份证和户口本, 户口簿复印件).

Overlaps are settled by kind, then position: phone numbers are claimed first, then time
expressions (so a phone number is never also a time or a house number); addresses are
found in what is left, and a service and an address that overlap keep the earlier,
longer span, except that an address cutting into a service name without covering it is
dropped.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from nlu.gazetteer import Community, Gazetteer
from nlu.periods import find_periods
from nlu.timeparse import SHANGHAI, find_times
from nlu.training_data import TrainingData
from nlu.types import PERIOD, Entity

if TYPE_CHECKING:
    from nlu.addresses import AddressTagger, Hints

_MOBILE = r"(?<!\d)1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)"
_LANDLINE = r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)"

_CJK = r"\u4e00-\u9fff"
# Characters that end a place name's prefix: particles, pronouns and verbs that
# never belong to a community, road or building name.
_STOP = "的在了是我你他她们家有这那个和与到从把被就也都还很太又说去来要给对跟向往离看让某哪着"
_NAME = rf"[{_CJK}A-Za-z0-9]"
_PREFIX = rf"(?:[^\W{_STOP}]|[A-Za-z0-9])"
# Place kinds that end a name: 金辉小区, 伊煤路, 万达广场 ...
_PLACE = (
    "小区|社区|花园|家园|公寓|新村|大厦|广场|商场|市场|公园|中学|小学|学校|医院|"
    "街道|大街|大道|胡同|路|街|巷|苑|村|里弄|嘉园|佳园|华府|华庭|庄园|港湾|庄"
)
# What may follow a place: buildings, units, gates, corners.
_DETAIL = (
    r"(?:\d+|[一二三四五六七八九十]+)(?:号楼|栋|幢|号院|单元|号|层|楼|室|期|弄|组)"
    r"|[东南西北正后侧]门|门口|路口|交叉口|十字路口|附近|对面|旁边|东侧|西侧|南侧|北侧"
)
# Stop characters that also begin place names (和平小区, 向阳路, 都市花园, 太平街, 家和苑):
# one is a name's first character where no name character stands before it (at the
# start, after punctuation or a verb such as 在/住), and never after a pronoun (我和…).
_OPEN = "和向都太家"
_NAME_START = rf"(?<![^\W{_STOP}])(?<![我你他她们])[{_OPEN}]{_PREFIX}{{1,7}}?"
# A clan name (李家村, 万家小区, 张家庄): 家 after a name character, which 回家 and 老家 are not.
_CLAN = rf"{_PREFIX}{{0,6}}?[^\W{_STOP}回老]家"
# Words that leave the place kind after them unnamed (老旧小区, 某小区, 占用小区车位,
# 哪家医院, 附近的路): a kind right after one of them ends no name.
_UNNAMED = (
    "老旧", "某", "哪家", "哪个", "各个", "整个", "别的", "其他", "其它", "隔壁", "附近",
    "周边", "周围", "新建", "高档", "普通", "封闭", "开放", "本", "该", "此", "这些",
    "那些", "我们", "咱们", "你们", "占用", "进入", "进出", "近期", "最近", "所有", "多个",
    "一些", "两个", "几个", "大型", "小型",
)  # fmt: skip
_KIND = "".join(f"(?<!{word})" for word in _UNNAMED) + f"(?:{_PLACE})"
_ADDRESS = re.compile(
    rf"(?:(?:{_NAME_START}|{_CLAN}|{_PREFIX}{{2,8}}?){_KIND})"
    rf"(?:(?:与|和){_PREFIX}{{1,8}}?{_KIND})?"
    rf"(?:{_DETAIL}|{_PREFIX}{{2,6}}?{_KIND})*"
    rf"(?:{_DETAIL})*"
)
# Requests and modal verbs that a generic place match can swallow at its start
# (恳请社区…, 能不能社区…): they are trimmed off, or the match dropped if nothing is left.
_LEAD = re.compile(
    "^(?:恳请|敬请|请求|申请|麻烦|希望|建议|要求|能不能|可不可以|能否|可否|为什么|怎么|"
    "咋|请|求|帮|找|问|能|让|途经|路过|经过|关注|位于|靠近|临近|周边)+"
)
# A service name followed by one of these is an office, not the service (社保局, 医保中心),
# or a person who has it (低保户).
_OFFICE = "(?!局|所|中心|处|站|科|大厅|户)"
# 户籍/户口 naming where someone is registered (户籍在外地, 外地户口, 户口不在本地, 户口于
# 2019年迁入…) is not the service: the words, what may come before them and after them.
_REGISTRATION = frozenset({"户籍", "户口", "戶籍", "戶口"})
_REGISTERED_BEFORE = re.compile(
    "(?:本地|外地|本市|外市|本省|外省|非本地|非本市|非本区|农村|城镇|城市|城里|异地|外来|当地|本区"
    "|本县|外县|本社区|本街道|同一|常住)的?$"
)
_REGISTERED_AFTER = re.compile(
    r"\s*(?:还|都|也|仍然?|一直|本来|原来)?不?(?:在|所在|地(?!址)|是|属于?|性质|人口|类型)"
    r"|\s*于?\s+(?:迁|落)"  # a time (blanked out) and then 迁入/落户: when, not the service
)
# A document named as a paper to bring (带身份证和户口本, 提供户口簿复印件) is not the
# service asked about: the verbs before it, the words after it, and what ends a document.
_PAPER_BEFORE = re.compile(
    "(?:带|携带|提供|出示|凭|持|拿|准备|附|复印|提交)(?:上|好|着|齐)?(?:本人|老人|孩子|家人)?的?$"
)
_PAPER_AFTER = re.compile("的?(?:原件|复印件|正反面)")
_PAPER_JOIN = re.compile("^[和、及与跟/,，]?$")
_DOCUMENT = ("证", "卡", "本", "簿", "证明")
# Building-only answers such as "3号楼2单元" still say where.
_BUILDING = re.compile(r"(?:(?:\d+|[一二三四五六七八九十]+)(?:号楼|栋|幢|单元|号院|层|室))+")
_TAIL = re.compile(rf"(?:{_DETAIL})*")
# A building or house number (3栋, 5号楼, 2单元, 88号): what makes a bare place precise.
_NUMBERED = re.compile(r"(?:\d+|[一二三四五六七八九十]+)(?:号楼|栋|幢|单元|号院|层|室|号)")
# What may stand around a reply that is only an address (我家在…, …楼下).
_AROUND = re.compile(r"[\W_]|我|家|住|在|是|就|那|个|吧|了|的|这|楼下|楼上|门口|附近")


def _address_reply(masked: str, patterns: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The rules' address when the message is a numbered place and little else.

    The tagger learned addresses inside reports and requests; the answer to "where?"
    (幸福小区3栋, 我家在光明小区5栋) it can miss when the estate's name is new to it. Such
    a reply is taken from the rules when their span names a place before its building or
    house number and at most three other characters stand around it.
    """
    for start, end in patterns:
        rest = masked[:start] + masked[end:]
        named = not _NUMBERED.match(masked, start)  # 3栋 alone names no estate
        if named and _NUMBERED.search(masked, start, end) and len(_AROUND.sub("", rest)) <= 3:
            return [(start, end)]
    return []


class EntityExtractor:
    """Finds address, time, phone and service spans in a message.

    ``communities`` are extra community names (the training data's ``community`` lookup)
    on top of the gazetteer's names and aliases. ``clock`` gives "now" for resolving
    times when ``extract`` is not told it.
    """

    def __init__(
        self,
        services: Iterable[str] = (),
        communities: Iterable[str] = (),
        synonyms: dict[str, str] | None = None,
        phone_patterns: Iterable[str] = (),
        *,
        places: Iterable[str] = (),
        gazetteer: Gazetteer | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._synonyms = dict(synonyms or {})
        service_words = set(services) | {
            variant for variant, canonical in self._synonyms.items() if canonical in services
        }
        self._service = _alternation(service_words, after=_OFFICE)
        self._gazetteer = gazetteer if gazetteer is not None else Gazetteer()
        self._community = _alternation({*communities, *self._gazetteer.names})
        self._place = _alternation(places)
        self._tagger: AddressTagger | None = None
        patterns = [_MOBILE, _LANDLINE, *phone_patterns]
        self._phone = re.compile("|".join(f"(?:{p})" for p in patterns))
        self._clock = clock or _shanghai_now

    @classmethod
    def from_training_data(
        cls,
        data: TrainingData,
        *,
        gazetteer: Gazetteer | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> EntityExtractor:
        """Build the extractor from the data's lookups, synonyms and regexes.

        Without a ``gazetteer`` the default one (nlu/data/communities.yml) is read here,
        once per extractor, never per message.
        """
        return cls(
            services=data.lookups.get("service", ()),
            communities=data.lookups.get("community", ()),
            synonyms=data.synonyms,
            phone_patterns=data.regexes.get("phone", ()),
            places=data.lookups.get("place", ()),
            gazetteer=Gazetteer.load() if gazetteer is None else gazetteer,
            clock=clock,
        )

    def with_tagger(self, tagger: AddressTagger | None) -> EntityExtractor:
        """This extractor with addresses found by a trained tagger (None: by the rules).

        The rules' matches, the gazetteer and the place lookup become the tagger's
        evidence; see nlu.addresses.
        """
        other = copy.copy(self)
        other._tagger = tagger
        return other

    @property
    def tagger(self) -> AddressTagger | None:
        """The address tagger in use, if any."""
        return self._tagger

    @property
    def gazetteer(self) -> Gazetteer:
        """The communities this extractor knows, with their street and coordinates."""
        return self._gazetteer

    def locate(self, address: str | Entity) -> Community | None:
        """The community an address (text or address entity) names, with its coordinates."""
        if isinstance(address, Entity):
            address = address.value
        return self._gazetteer.locate(address)

    def mask(self, text: str, *, now: datetime | None = None) -> str:
        """``text`` with its phone numbers and time expressions blanked to spaces.

        Addresses are looked for in what is left, so a phone is never a house number.
        """
        claimed = [m.span() for m in self._phone.finditer(text)]
        masked = _mask(text, claimed)
        when = now if now is not None else self._clock()
        periods = find_periods(masked)
        times = [(t.start, t.end) for t in find_times(masked, when, periods=periods)]
        return _mask(text, [*claimed, *((p.start, p.end) for p in periods), *times])

    def hints(self, masked: str) -> Hints:
        """What the rules see in ``masked``: communities, towns and address patterns."""
        from nlu.addresses import Hints

        return Hints(
            communities=[m.span() for m in self._community.finditer(masked)]
            if self._community
            else [],
            places=[m.span() for m in self._place.finditer(masked)] if self._place else [],
            patterns=self._rule_spans(masked),
        )

    def extract(self, text: str, *, now: datetime | None = None) -> tuple[Entity, ...]:
        """All entities in ``text``, in order, without overlaps.

        Times are resolved relative to ``now`` (by default the extractor's clock).
        """
        found: list[Entity] = []
        claimed: list[tuple[int, int]] = []
        for match in self._phone.finditer(text):
            digits = match.group().replace(" ", "")
            if digits.startswith("1"):  # a mobile's dashes are layout; a landline's are not
                digits = digits.replace("-", "")
            found.append(Entity("phone", match.start(), match.end(), digits, "regex"))
            claimed.append(match.span())
        masked = _mask(text, claimed)
        periods = find_periods(masked)
        for period in periods:
            found.append(Entity("time", period.start, period.end, period.text, PERIOD))
            claimed.append((period.start, period.end))
        when = now if now is not None else self._clock()
        for time in find_times(masked, when, periods=periods):
            found.append(Entity("time", time.start, time.end, time.value.iso, "regex"))
            claimed.append((time.start, time.end))
        masked = _mask(text, claimed)
        if self._service:
            found.extend(self._services(text, masked))
        found.extend(self._addresses(text, masked))
        return _without_overlaps(found)

    def _services(self, text: str, masked: str) -> list[Entity]:
        """Service spans, without 户籍/户口 as a place of registration or papers to bring."""
        assert self._service is not None
        services = []
        paper_end = -1  # where the last paper to bring ended, for 身份证和户口本
        for match in self._service.finditer(text):
            word, start, end = match.group(), match.start(), match.end()
            if word in _REGISTRATION and (
                _REGISTERED_BEFORE.search(text, max(0, start - 6), start)
                or _REGISTERED_AFTER.match(masked, end)
            ):
                continue
            if word.endswith(_DOCUMENT) and (
                _PAPER_BEFORE.search(text, max(0, start - 8), start)
                or _PAPER_AFTER.match(text, end)
                or (paper_end >= 0 and _PAPER_JOIN.match(text[paper_end:start]))
            ):
                paper_end = end
                continue
            value = self._synonyms.get(word, word)
            services.append(Entity("service", start, end, value, "lookup"))
        return services

    def _addresses(self, text: str, masked: str) -> list[Entity]:
        """Address spans in ``masked`` (phones and times blanked out), valued as written."""
        if self._tagger is not None:
            hints = self.hints(masked)
            spans = self._tagger.spans(masked, hints) or _address_reply(masked, hints.patterns)
            name = "crf"
        else:
            spans = self._rule_spans(masked)
            name = "regex"
        return [Entity("address", start, end, text[start:end], name) for start, end in spans]

    def _rule_spans(self, masked: str) -> list[tuple[int, int]]:
        """The address patterns' spans: names, place kinds and building details."""
        spans: list[tuple[int, int]] = []
        if self._community:
            spans += [m.span() for m in self._community.finditer(masked)]
        for found in _ADDRESS.finditer(masked):
            lead = _LEAD.match(found.group())
            # What is left after a leading request must still be a place name of its own.
            place = _ADDRESS.match(masked, found.start() + lead.end()) if lead else found
            if place is not None and place.group():
                spans.append(place.span())
        spans += [m.span() for m in _BUILDING.finditer(masked)]
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        # A community name followed by building details is one address.
        out = []
        for start, end in merged:
            tail = _TAIL.match(masked, end)
            out.append((start, tail.end() if tail else end))
        return out


def _shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with the given spans blanked to spaces, so offsets stay the same."""
    spans = list(spans)
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _alternation(words: Iterable[str], after: str = "") -> re.Pattern[str] | None:
    ordered = sorted({w for w in words if w}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile(f"(?:{'|'.join(map(re.escape, ordered))}){after}")


def _without_overlaps(entities: list[Entity]) -> tuple[Entity, ...]:
    # A service name from the lookups is exact: an address that cuts into one without
    # covering it (办农村… in 办农村部分计划生育家庭奖励扶助) is no address.
    services = [(e.start, e.end) for e in entities if e.entity == "service"]
    if services:
        entities = [
            e
            for e in entities
            if e.entity != "address"
            or not any(
                e.start < end and start < e.end and not (e.start <= start and end <= e.end)
                for start, end in services
            )
        ]
    kept: list[Entity] = []
    for ent in sorted(entities, key=lambda e: (e.start, -(e.end - e.start))):
        if kept and ent.start < kept[-1].end:
            continue
        kept.append(ent)
    return tuple(kept)
