"""Follow-up questions after a service's card, and which of its lines they ask about.

``FollowUp`` tells whether a message after a card is a question for the guide (about
papers, one aspect such as the fee, or a service asked about right after its name).

Which lines of a service's card a follow-up asks about (新生儿 after 医保参保, 照片要几张,
白底还是蓝底): answered with those lines alone rather than the whole card again.

The resident's words are cut at the question words around them (要几张, 还是, 吗), a few
everyday words are put the catalogue's way (外地 → 非本地, 户口本 → 户口簿), and each
piece is looked for in the card's materials and notes: the lines sharing the longest
stretch of two characters or more answer. The service's own name says nothing here
(老年证要带什么 asks for the whole card).
"""

from __future__ import annotations

import re

from handlers.flows.guide_match import (
    ELIGIBLE,
    STRONG,
    ServiceMatcher,
    asks,
    aspect_asked,
    names_a_thing,
)
from handlers.words import clean
from integration.services import Service

# Question and filler words between the things asked about: the text is cut there.
_ASKING = re.compile(
    "需不需要|要不要|需要|是不是|还是|或者|什么|啥|怎么办|怎么|哪些|哪个|多少|几|可以|能不能|"
    "能|行不行|一定|必须|得|要|带|用|交|给|拿|有|没有|吗|呢|么|吧|啊|呀|的|了|我|你|他|她|们|"
    "这|那|个|(?<!身)份|张|一下"
)
# Residents' words for what the catalogue words another way.
_THE_CATALOGUES_WAY = (
    (re.compile("外地|外省|外市|不是本地"), "非本地"),
    (re.compile("户口本"), "户口簿"),
    (re.compile("刚出生的?(孩子|小孩|宝宝)|婴儿|新生的?(孩子|宝宝)"), "新生儿"),
    (re.compile("相片|证件照|寸照"), "照片"),
    (re.compile("租的房子?|租房子|租的"), "租房"),
    (re.compile("孩子|小孩|儿童|未成年|小朋友"), "周岁以下"),
)
# Whether something is needed (残疾证要吗, 用不用带户口本): the card's lines answer it even
# when it names another service (the 残疾证 line of 低保申请, not 残疾证's own card).
NEEDED = re.compile("要吗|需要吗|要不要|需不需要|用不用|带不带|要带|得带|必须带|还要|也要|要原件")
_LEAST = 2  # characters a piece must share with a line
_NOTE_BREAK = re.compile("[。；;]")
_ASKED_WITHIN = 6  # characters after a service's name where its question must begin
# Where one request ends and another begins in a message.
_CLAUSE = re.compile("[，,。.！!？?；;\\s]+|还有|另外|顺便|再问|对了")
_JOINTS_AT_END = re.compile(f"(?:{_CLAUSE.pattern})+$")
_JOINTS_AT_START = re.compile(f"^(?:{_CLAUSE.pattern})+")
_ASPECT_ALONE = 7  # characters of a follow-up that asks one aspect (多少钱) and no more
_SHORT = 8  # characters of a follow-up read as a question without a question word
# 身份证丢了: not a question about its line, but where to replace the paper.
LOST = re.compile("丢|遗失|找不到|被偷|弄坏|弄没|不见了|掉了")


def _longest_shared(piece: str, line: str) -> int:
    """The length of the longest stretch of ``piece`` found in ``line``."""
    best = 0
    for start in range(len(piece)):
        size = best + 1
        while start + size <= len(piece) and piece[start : start + size] in line:
            best, size = size, size + 1
    return best


def lines_asked(service: Service, text: str) -> list[str]:
    """The card lines (materials, then the notes' sentences) that ``text`` asks about,
    or [] when it names nothing in them (or only the service itself), or says one of
    their papers is lost."""
    return [] if LOST.search(clean(text)) else lines_naming(service, text)


def lines_naming(service: Service, text: str) -> list[str]:
    """The card lines that share the longest stretch with what ``text`` names."""
    cleaned = clean(text)
    for word in sorted(service.words, key=len, reverse=True):
        cleaned = cleaned.replace(word, "，")
    for pattern, said in _THE_CATALOGUES_WAY:
        cleaned = pattern.sub(said, cleaned)
    pieces = [p for p in re.split(f"{_ASKING.pattern}|，", cleaned) if len(p) >= _LEAST]
    if not pieces:
        return []
    notes = [s.strip() for s in _NOTE_BREAK.split(service.notes) if s.strip()]
    lines = [*service.materials, *notes]
    shared = [max(_longest_shared(p, line) for p in pieces) for line in lines]
    most = max(shared, default=0)
    if most < _LEAST:
        return []
    return [line for line, size in zip(lines, shared, strict=True) if size == most]


class AsksALine:
    """Matches a follow-up about the lines of ``service``'s card: a question naming
    something in them (身份证要原件吗), or a few words that do (白底还是蓝底, 新生儿,
    户口本找不到了)."""

    def __init__(self, service: Service, short: int = _SHORT) -> None:
        self._service = service
        self._short = short

    def search(self, text: str) -> bool:
        if not (asks(text) or len(clean(text)) <= self._short):
            return False
        return bool(lines_naming(self._service, text))  # 户口本找不到了 too


class FollowUp:
    """A follow-up question in the guide: a question naming a service, or about papers."""

    def __init__(self, matcher: ServiceMatcher) -> None:
        self._matcher = matcher

    def search(self, text: str) -> bool:
        cleaned = clean(text)
        if ELIGIBLE.search(cleaned):  # 他残疾，我没工作: whether they may apply
            return True
        if len(cleaned) <= _ASPECT_ALONE and aspect_asked(cleaned):  # 多少钱, 在哪办
            return True
        if not asks(text):
            return False
        if names_a_thing(text) or about_papers(text):
            return True
        found = self._matcher.best(text)  # 社保卡怎么补办, not 社保局门口的路灯坏了怎么办
        return found is not None and found.score >= STRONG and asked_after(text, found.word)


def asked_after(text: str, word: str) -> bool:
    """Whether a clause of ``text`` asks about ``word`` right after naming it (老年证
    怎么办, 还有…), rather than naming it in passing (社保局门口的路灯坏了怎么办)."""
    return any(asks_about(clause, word) for clause in _CLAUSE.split(text))


def asks_about(clause: str, word: str) -> bool:
    """Whether one clause (split before the punctuation is cleaned away) names ``word``
    with its question right after it."""
    cleaned = clean(clause)
    at = cleaned.find(word)
    return at >= 0 and asks(cleaned[at + len(word) : at + len(word) + _ASKED_WITHIN])


def without_question(text: str, word: str) -> str:
    """``text`` without its clause that asks about ``word`` and the words joining it
    (楼道灯坏了，顺便问下老年证怎么办 → 楼道灯坏了); ``text`` itself when nothing else is left."""
    parts = re.split(f"({_CLAUSE.pattern})", text)  # clauses at even places, joints between
    for at in range(0, len(parts), 2):
        if asks_about(parts[at], word):
            before = _JOINTS_AT_END.sub("", "".join(parts[:at])).strip()
            after = _JOINTS_AT_START.sub("", "".join(parts[at + 1 :])).strip()
            return "，".join(p for p in (before, after) if p) or text
    return text


def about_papers(text: str) -> bool:
    return any(w in clean(text) for w in ("材料", "手续", "窗口", "大厅", "办理", "申请", "多久"))
