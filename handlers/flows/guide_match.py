"""Which service a resident's words name: the NLU entity first, then names and synonyms.

Residents write 老年正 for 老年证 and 社宝卡 for 社保卡 (pinyin input and voice typing
give homophones), so each catalogue word is looked for three ways, strongest first:
as it is written, as its toneless pinyin, and as a near copy (one character in four
replaced). The longest, strongest word wins; a service beats a topic the office
does not handle (out of remit) only on a tie. Nothing below ``GOOD`` is a match:
the guide then says so instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pypinyin import lazy_pinyin

from handlers.catalog import Catalog
from handlers.flows.chat import MENU_HUMAN
from handlers.messages import Button, Outbound
from handlers.words import FILLERS, AnyOf, Words, clean
from integration.services import ServiceCatalogue

if TYPE_CHECKING:
    from handlers.flows.base import Turn

GUIDE_FLOW = "guide"  # the guide's flow name (others hand a service's card over to it)
GUIDE = f"{GUIDE_FLOW}:"  # every button payload of the guide starts with this
BOOK, PROXY, MATERIALS, PICK = (
    f"{GUIDE}{verb}:" for verb in ("book", "proxy", "materials", "pick")
)

GOOD = 0.6  # the least score that counts as a match
STRONG = 0.9  # as written or as pinyin: enough to take a message the model missed
_NEAR_WEIGHT = 0.8
# What may stand beside a service's name in a message that only names it (就是开个居住证明).
_AROUND_A_NAME = re.compile("[是开办个一份张要给]")
_NEAR_MIN_CHARS = 4  # shorter words differ too much with one wrong character
# A word split by a few words of the resident's (领养老金需要认证 for 养老金认证, 家里困难
# 能申请补助 for 困难补助): both halves of two characters or more, in order, at most
# ``_GAP_CHARS`` apart. Weaker than a near copy, so it only counts for a service question.
_GAP_CHARS = 3
_GAPPED_SCORE = 0.7

# Nouns of the things people come to a service centre for: a message with one of these
# that matches nothing names a service the catalogue does not know.
_THING = re.compile(
    "证|卡|补贴|津贴|补助|保险|登记|证明|手续|救助|奖励|保障|执照|许可|资格|待遇|年审|认证"
)
# Whether the community has something (社区有没有老年大学, 附近哪里有老年食堂).
_NEARBY = re.compile(
    "(社区|小区|街道|附近|我们这|咱们这)(里|边|儿)?.{0,2}(有没有|有吗|哪里有|哪儿有|在哪有)|"
    "(有没有|哪里有|哪儿有).{0,8}(社区|小区|街道)"
)
# Whether one may apply (我60岁了符合条件吗, 我这种情况能申请吗), or the household's
# circumstances told after a card (他残疾，我没工作; 我在这儿租房子住): only staff
# can judge, so the answer is the card's conditions and a person or a window to ask.
_ELIGIBLE_ASKED = (
    "符合|够条件|够不够|有没有资格|有资格|资格吗|什么条件|啥条件|哪些条件|条件是|申请条件|"
    "办理条件|(能|可以|能不能|可不可以)(申请|办|领|享受|评上)(吗|么|不|啊|呢)|我这(种|样的?)?情况"
)
_CIRCUMSTANCES = (
    "没(有)?工作|失业|下岗|没(有)?(收入|退休金|养老金|生活来源)|收入(很|太|特别)?(低|少)|"
    "(家里|家庭|生活)(很|特别|比较|挺)?困难|单亲|孤寡|低保户|外地户口|户口不在(这|本地)|"
    "租(的)?房子?住|(在这|在这儿|在这里|在本地)租房|(智力|肢体|视力|听力|言语|精神|多重)残疾|"
    # income and household (一个月退休金1800, 家里就我和老伴)
    "(一个月|每个月|每月|月)(的)?(退休金|收入|工资|养老金)?(就|只有|才|只|有)?\\d+|"
    "(家里|家中|我家)(就|只有|只剩)(我|我们|俩|两)|就我一个人|老两口|"
    # an age said alone (他18岁, 我妈今年75岁了), not one inside a report (80岁老人门口的灯坏了)
    "^(他|她|我|我爸|我妈|孩子|老人|儿子|女儿|老伴)?(今年|已经)?\\d{1,3}(周)?岁(了)?$"
)
# An errand asked beside the circumstances (他85岁了，能代办吗): the errand, not eligibility.
ERRAND_WORDS = re.compile("代办|代为|帮(我|忙|着)?办|替(我|他|她)|预约|约个")
ELIGIBLE = re.compile(f"{_ELIGIBLE_ASKED}|{_CIRCUMSTANCES}")
# The one part of a service's card a follow-up asks about (要钱吗, 多久能拿到, 在哪办):
# answered alone, the whole card a button away.
ASPECTS = (
    ("fee", re.compile("钱|收费|费用|免费|工本费")),
    (
        "time_limit",
        re.compile("多久|几天|多长时间|多少天|时限|什么时候能拿|啥时候能拿|当场|加急|急用|能快点"),
    ),
    ("place", re.compile("在哪|哪里办|哪儿办|哪个窗口|几号窗口|什么地方办|去哪")),
    ("eligible", ELIGIBLE),
    # whether the resident must come in person (需要本人去吗, 非得本人来吗)
    (
        "in_person",
        re.compile("本人(去|来|到场|亲自|过去|到窗口)|亲自(去|来|到|跑)|(必须|一定|非得|得)本人"),
    ),
)


def aspect_asked(text: str) -> str | None:
    """The one aspect (``ASPECTS``) ``text`` asks about; None for none or several."""
    cleaned = clean(text)
    found = [name for name, pattern in ASPECTS if pattern.search(cleaned)]
    return found[0] if len(found) == 1 else None


# Questions about the centre's hours rather than a service.
HOURS_QUESTION = re.compile(
    "几点|上班|下班|开门|关门|营业|办公时间|工作时间|周末|周六|周日|节假日|午休|中午"
)
# Questions about where the centre is (社区在哪, 政务大厅怎么走, 你们地址在哪): with no
# service named, the centre's address, hours and phone answer them, as they answer the
# hours questions. 在哪办 after a service's card asks about that service.
WHERE_QUESTION = re.compile(
    "(政务|服务|便民|大厅|中心|街道|社区|居委会|办事处|你们).{0,4}"
    "(在哪|哪里|哪儿|什么地方|啥地方|地址|怎么走|位置|地点)"
)
# The centre's phone number (你们电话多少, 社区电话是多少): answered like the hours; a
# complaint about calling (给社区打电话没人接) is not a question for it.
PHONE_QUESTION = re.compile(
    "(你们|街道|社区|中心|大厅|办事处|居委会|政务).{0,3}(电话|联系方式)(号码)?(是)?"
    "(多少|几号|是什么|有没有|给一个|给个|吗|呢)|(咨询|办事)电话"
)
# When the centre opens or where it is, asked in words the model reads as small talk
# (明天是周二吧，几点开门, 你们街道办在哪): narrower than HOURS_QUESTION, since 周末
# alone says nothing of it. A rule trigger of the guide (which declines reports).
OPENING = AnyOf(
    "opening",
    (
        Words("opening_hours", re.compile("上班|下班|开门|关门|营业时间|办公时间|工作时间|午休")),
        Words("centre_where", WHERE_QUESTION),
        Words("centre_phone", PHONE_QUESTION),
    ),
)
# A question (as opposed to a report or an answer).
ASKS = re.compile(
    "咋办|怎么|怎样|如何|需要|要带|带什么|带啥|要啥|什么材料|哪里|哪儿|在哪|去哪|多久|几天|多少钱|什么时候|啥时候|"
    "收费|能不能|可不可以|可以吗|行不行|能办|能否|找谁|找哪|归谁管|吗$|呢$|么$|啥$"
)

# Asking for the guide itself, with no service named (the menu's 办事指南, typed).
GUIDE_WORDS = Words(
    "guide",
    re.compile(
        "(我|俺)?(想|要|得)?(看看?|查查?|问问?|咨询)?(一下)?(办事指南|办(个|点)?(事|证)|办业务)(指南)?"
    ),
    whole=True,
)
# Any question: the guide's rule trigger (the flow declines what it cannot answer).
QUESTION = Words("question", ASKS)


@dataclass(frozen=True, slots=True)
class Match:
    """What the words name: a service (``kind`` "service", ``key`` its id) or a topic
    out of remit (``kind`` "remit", ``key`` its position in the catalogue's list)."""

    kind: str
    key: str
    word: str
    score: float


@dataclass(frozen=True, slots=True)
class _Word:
    kind: str
    key: str
    text: str
    pinyin: str


def _pinyin(text: str) -> str:
    """Toneless pinyin, each syllable between spaces (so a word's is a substring)."""
    return f" {' '.join(lazy_pinyin(text))} "


# Where a message's clauses part: a word's sound is not heard across them (不是我自己去，
# 是帮我妈办 says no 去世).
_CLAUSE_BREAK = re.compile(r"[，,。；;！!？?、\s]+")


def _spoken(text: str) -> str:
    """``_pinyin`` of each clause of ``text``, cleaned, with a bar between clauses."""
    return "|".join(_pinyin(c) for c in map(clean, _CLAUSE_BREAK.split(text)) if c)


class ServiceMatcher:
    """Finds the service (or out-of-remit topic) a message names, if it names one well."""

    def __init__(self, catalogue: ServiceCatalogue) -> None:
        words: list[_Word] = []
        for service in catalogue.services.values():
            for word in service.words:
                words.append(_Word("service", service.id, clean(word), _pinyin(clean(word))))
        for position, topic in enumerate(catalogue.out_of_remit.topics):
            for word in topic.words:
                words.append(_Word("remit", str(position), clean(word), _pinyin(clean(word))))
        self._words = tuple(words)

    def match(self, text: str, entities: Iterable[str] = ()) -> Match | None:
        """The best match for ``text``: a named entity value first, then the words."""
        cleaned = clean(text)
        for value in entities:
            named = clean(value)
            if f"{named}号" in cleaned:  # 我的身份证号是…: the number given, not the card asked
                continue
            found = [w for w in self._words if w.text == named]
            if found:
                # A longer catalogue word around it, as written, wins (医保卡 over 医保).
                around = [w for w in self._words if named in w.text and w.text in cleaned]
                word = max(around, key=lambda w: len(w.text), default=found[0])
                return Match(word.kind, word.key, word.text, 1.0)
        return self.best(text)

    def in_turn(self, turn: Turn) -> Match | None:
        """The match for a resident's message: the services it names, then its words."""
        if not turn.text:
            return None
        return self.match(
            turn.text, [str(e.value) for e in turn.parse.entities if e.entity == "service"]
        )

    def alone(self, text: str) -> Match | None:
        """The service ``text`` names when it says nothing more (居住证明, 就是开居住证明)."""
        cleaned = clean(text)
        found = self.best(cleaned)
        if found is None or found.kind != "service" or found.word not in cleaned:
            return None
        rest = _AROUND_A_NAME.sub("", FILLERS.sub("", cleaned.replace(found.word, "")))
        return None if rest else found

    def best(self, text: str) -> Match | None:
        """The catalogue word ``text`` names best, when it scores at least ``GOOD``."""
        cleaned = clean(text)
        if not cleaned:
            return None
        spoken = _spoken(text)
        best: _Word | None = None
        best_rank = (0.0, 0, False)
        for word in self._words:
            score = _score(word, cleaned, spoken)
            rank = (score, len(word.text), word.kind == "service")
            if score >= GOOD and rank > best_rank:
                best, best_rank = word, rank
        if best is None:
            return None
        return Match(best.kind, best.key, best.text, best_rank[0])

    def search(self, text: str) -> bool:
        """Whether ``text`` names a service or topic strongly (a rule matcher)."""
        found = self.best(text)
        return found is not None and found.score >= STRONG


@dataclass(frozen=True, slots=True)
class NamedAlone:
    """A rule matcher (handlers.words.Matcher): the message is a service's name alone."""

    matcher: ServiceMatcher
    name: str = "service_alone"

    def search(self, text: str) -> bool:
        """Whether ``text`` names a service and says nothing else."""
        return self.matcher.alone(text) is not None


def names_a_thing(text: str) -> bool:
    """Whether ``text`` mentions something one applies for (证, 补贴, 证明 …), or asks
    whether the community has something (社区有没有老年大学): the catalogue not knowing
    it is said plainly, with a person to ask, rather than a list of services."""
    cleaned = clean(text)
    return bool(_THING.search(cleaned) or _NEARBY.search(cleaned))


def things(text: str) -> list[str]:
    """Each thing ``text`` mentions, with the two characters before it (宠物证, 身份证)."""
    cleaned = clean(text)
    return [cleaned[max(0, m.start() - 2) : m.end()] for m in _THING.finditer(cleaned)]


def asks(text: str) -> bool:
    """Whether ``text`` is a question."""
    return bool(ASKS.search(clean(text)))


def _score(word: _Word, text: str, spoken: str) -> float:
    if word.text in text:
        return 1.0
    if word.pinyin in spoken:
        return STRONG
    size = len(word.text)
    if size < _NEAR_MIN_CHARS or len(text) < size:
        return 0.0
    if len(set(word.text) & set(text)) < size - size // _NEAR_MIN_CHARS:
        return 0.0  # too few of the word's characters to be a near copy (most words)
    allowed = size // _NEAR_MIN_CHARS  # one wrong character in four
    for i in range(len(text) - size + 1):
        wrong = sum(a != b for a, b in zip(word.text, text[i : i + size], strict=True))
        if wrong <= allowed:
            return (1 - wrong / size) * _NEAR_WEIGHT
    return _GAPPED_SCORE if _gapped(word.text, text) else 0.0


def _gapped(word: str, text: str) -> bool:
    """Whether ``word`` stands in ``text`` split in two by at most ``_GAP_CHARS``."""
    for cut in range(2, len(word) - 1):
        head, tail = word[:cut], word[cut:]
        at = text.find(head)
        while at >= 0:
            after = at + cut
            if 0 < text.find(tail, after, after + _GAP_CHARS + len(tail)) - after:
                return True
            at = text.find(head, at + 1)
    return False


def out_of_remit(t: Catalog, services: ServiceCatalogue, position: int) -> Outbound:
    """Who handles a topic the street office does not (the ``position``-th of the
    catalogue's out-of-remit topics), the hotline, and 转人工."""
    remit = services.out_of_remit
    topic = remit.topics[position]
    text = t("guide.out_of_remit", topic=topic.name, where=topic.where, hotline=remit.hotline)
    if topic.note:
        text = f"{text}\n{topic.note}"
    return Outbound(text, (Button(t("button.menu_human"), MENU_HUMAN),))
