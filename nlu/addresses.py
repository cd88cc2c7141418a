"""The address tagger: a character-level CRF over the annotated address spans.

It works the way Rasa's CRFEntityExtractor does, one BIO tag per character, with
features a place's edges show: the character and its neighbours, its class (Han,
digit, Latin, punctuation), where it sits in its jieba word and that word, place-kind
suffixes (小区, 号楼, 单元, 路, 街道, 广场, 门口, 交叉口 …), verbs and particles that
never start a place (住, 在, 回, 关于 …), and hints from the rules: membership of a
community from the gazetteer or the ``community`` lookup, of a town from the
``place`` lookup, and of a span the address patterns match. So the gazetteer and the
patterns are evidence the tagger weighs, and it learns from the annotations where a
place begins and ends (README, "Address spans").

After tagging, a span that cuts into a gazetteer name is widened to the whole name,
so a community the gazetteer knows is never half-taken.

It is trained with the embedded model (``nlu.embedded.train``) and cached in the same
file; ``EntityExtractor`` calls it on the text left once phones and times are masked.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pycrfsuite

from nlu.crf import Decoder
from nlu.normalize import normalize
from nlu.training_data import Example

# The place kinds and details whose end marks a likely end of an address.
SUFFIXES = (
    "小区", "社区", "花园", "家园", "嘉园", "佳园", "华府", "华庭", "公寓", "新村", "大厦",
    "广场", "商场", "市场", "公园", "中学", "小学", "完小", "学校", "医院", "中心", "大厅",
    "街道", "大街", "大道", "胡同", "路", "街", "巷", "苑", "园", "村", "镇", "旗", "区",
    "市", "县", "号楼", "栋", "幢", "单元", "号院", "室", "号", "座", "期", "门口",
    "门前", "东门", "西门", "南门", "北门", "正门", "后门", "侧门", "路口", "交叉口",
    "十字路口", "丁字路口", "交汇处", "旁边", "对面", "附近", "周边", "东侧", "西侧",
    "南侧", "北侧", "体育场", "步行街", "菜市场", "服务中心", "居委会", "湾", "港湾",
    "庄", "庄园", "组",
)  # fmt: skip
# Words before a place that are never part of it: verbs of living and going, subjects,
# requests and the letter's 关于.
LEADS = (
    "住", "在", "回", "去", "到", "接", "从", "往", "来", "想", "我", "们", "家", "咱",
    "关于", "反映", "表扬", "感谢", "本人", "居住于", "位于", "请", "帮", "的", "是",
)  # fmt: skip
SUFFIX_PATTERN = re.compile("|".join(sorted(map(re.escape, SUFFIXES), key=len, reverse=True)))
_LEAD_CHARS = frozenset("".join(LEADS))
_NUMERALS = frozenset("一二三四五六七八九十百零两")

Span = tuple[int, int]
Row = dict[str, str | float]


@dataclass(frozen=True, slots=True)
class Hints:
    """What the rules found in a message, as character spans: the tagger's evidence."""

    communities: Sequence[Span] = ()  # gazetteer names and the community lookup
    places: Sequence[Span] = ()  # towns and districts from the place lookup
    patterns: Sequence[Span] = ()  # the address patterns' matches

    def within(self, start: int, end: int) -> Hints:
        """The hints inside ``text[start:end]``, in that stretch's offsets."""
        return Hints(
            _clip(self.communities, start, end),
            _clip(self.places, start, end),
            _clip(self.patterns, start, end),
        )

    def touch(self, start: int, end: int) -> bool:
        """Whether any hint lies in ``text[start:end]``."""
        return any(
            a < end and b > start for a, b in (*self.communities, *self.places, *self.patterns)
        )


def _clip(spans: Iterable[Span], start: int, end: int) -> list[Span]:
    return [(max(a, start) - start, min(b, end) - start) for a, b in spans if a < end and b > start]


# Sentence punctuation: a place never runs across it, so each clause is tagged alone.
_CLAUSE_END = re.compile(r"[，。！？；：,.!?;:\n]")


def clauses(text: str, keep: Sequence[Span] = ()) -> list[Span]:
    """The stretches of ``text`` between sentence punctuation, never cutting into ``keep``."""
    out: list[Span] = []
    start = 0
    for match in _CLAUSE_END.finditer(text):
        at = match.start()
        if any(a <= at < b for a, b in keep):
            continue
        if text[start:at].strip():
            out.append((start, at))
        start = at + 1
    if text[start:].strip():
        out.append((start, len(text)))
    return out


def evidence(text: str, hints: Hints, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` could hold a place: a hint or a place-kind suffix in it.

    Clauses without any are not tagged: on a long letter that saves most of the work.
    """
    return hints.touch(start, end) or SUFFIX_PATTERN.search(text, start, end) is not None


@lru_cache(maxsize=8192)
def _char_class(ch: str) -> str:
    if ch.isdigit():
        return "d"
    if ch in _NUMERALS:
        return "n"
    if "\u4e00" <= ch <= "\u9fff":
        return "h"
    if ch.isalpha():
        return "a"
    if ch.isspace():
        return "s"
    return "p"


def _bio(length: int, spans: Iterable[Span]) -> list[str]:
    tags = ["O"] * length
    for start, end in spans:
        if start < end <= length:
            tags[start] = "B"
            for i in range(start + 1, end):
                tags[i] = "I"
    return tags


# The names of a character's features, in the order of its feature dict.
FEATURE_NAMES = (
    "c", "c-1", "c-2", "c+1", "c+2", "c-1c", "cc+1", "c-2c-1", "c+1c+2", "c-3", "c+3",
    "sfx+1", "k", "k-1k+1", "wp", "w", "w-1", "w+1", "sfx", "sfx-1", "lead", "gaz", "plc",
    "rule", "rule-1", "rule+1",
)  # fmt: skip
Columns = list[list[str]]  # one list per name of FEATURE_NAMES, one value per character


def features(text: str, words: Sequence[str], hints: Hints) -> list[Row]:
    """The feature dict of every character of ``text`` (``words`` its jieba words)."""
    return [
        dict(zip(FEATURE_NAMES, row, strict=True))
        for row in zip(*columns(text, words, hints), strict=True)
    ]


def columns(text: str, words: Sequence[str], hints: Hints) -> Columns:
    """The features of every character of ``text``, by feature: ``FEATURE_NAMES[k]`` of
    character ``i`` is ``columns(...)[k][i]`` (what ``features`` puts in dicts)."""
    n = len(text)
    if not n:
        return [[] for _ in FEATURE_NAMES]
    position: list[str] = []
    word_of: list[str] = []
    before: list[str] = []
    after: list[str] = []
    last = len(words) - 1
    cursor = 0
    for index, word in enumerate(words):
        size = len(word)
        if cursor + size > n:
            break
        cursor += size
        if not size:
            continue
        previous = words[index - 1] if index else "^"
        following = words[index + 1] if index < last else "$"
        if size == 1:
            position.append("S")
        else:
            position += ["B", *["M"] * (size - 2), "E"]
        word_of += [word if size <= 4 else "LONG"] * size
        before += [previous if len(previous) <= 4 else "LONG"] * size
        after += [following if len(following) <= 4 else "LONG"] * size
    if cursor < n:  # words that do not cover the text: the rest as single characters
        rest = n - cursor
        position += ["S"] * rest
        word_of += [""] * rest
        before += [""] * rest
        after += [""] * rest
    suffix = ["O"] * n
    starts = ["O"] * n
    for match in SUFFIX_PATTERN.finditer(text):
        a, b = match.span()
        for i in range(a, b - 1):
            suffix[i] = "I"
        suffix[b - 1] = "E:" + match.group()
        starts[a] = "S:" + match.group()
    pattern = _bio(n, hints.patterns)
    padded = f"^^^{text}$$$"
    kinds = "ppp" + "".join(map(_char_class, text)) + "ppp"
    left1, char, right1 = padded[2 : n + 2], padded[3 : n + 3], padded[4 : n + 4]
    left2, right2 = padded[1 : n + 1], padded[5 : n + 5]
    return [
        list(char),
        list(left1),
        list(left2),
        list(right1),
        list(right2),
        [a + b for a, b in zip(left1, char, strict=True)],
        [a + b for a, b in zip(char, right1, strict=True)],
        [a + b for a, b in zip(left2, left1, strict=True)],
        [a + b for a, b in zip(right1, right2, strict=True)],
        list(padded[:n]),
        list(padded[6 : n + 6]),
        [*starts[1:], "$"],
        list(kinds[3 : n + 3]),
        [a + b for a, b in zip(kinds[2 : n + 2], kinds[4 : n + 4], strict=True)],
        position,
        word_of,
        [w if p in "BS" else "" for w, p in zip(before, position, strict=True)],
        [w if p in "ES" else "" for w, p in zip(after, position, strict=True)],
        suffix,
        ["^", *suffix[:-1]],
        ["1" if ch in _LEAD_CHARS else "0" for ch in text],
        _bio(n, hints.communities),
        _bio(n, hints.places),
        pattern,
        ["^", *pattern[:-1]],
        [*pattern[1:], "$"],
    ]


def spans_of(tags: Sequence[str]) -> list[Span]:
    """BIO tags to spans; an I without a B starts a span too."""
    spans: list[Span] = []
    start = None
    for i, tag in enumerate([*tags, "O"]):
        if tag == "B" or (tag == "I" and start is None) or tag == "O":
            if start is not None:
                spans.append((start, i))
                start = None
            if tag in ("B", "I"):
                start = i
    return spans


@dataclass(frozen=True, slots=True)
class Sample:
    """One message prepared for the tagger: normalised text and its address spans."""

    text: str
    spans: tuple[Span, ...]


def samples(examples: Iterable[Example]) -> list[Sample]:
    """Training examples as normalised text with their address spans located in it.

    An example whose annotated address cannot be found again after normalisation is
    left out rather than taught as a non-place.
    """
    out: list[Sample] = []
    for example in examples:
        text = normalize(example.text)
        spans: list[Span] = []
        cursor = 0
        lost = False
        for entity in sorted(example.entities, key=lambda e: e.start):
            if entity.entity != "address":
                continue
            surface = normalize(example.text[entity.start : entity.end])
            found = text.find(surface, cursor)
            if not surface or found < 0:
                lost = True
                break
            spans.append((found, found + len(surface)))
            cursor = found + len(surface)
        if not lost:
            out.append(Sample(text, tuple(spans)))
    return out


# Chosen by 3-fold cross-validation on the training data (exact-span F1, never a test
# set): c1 0.01–0.2 and c2 0.01–0.5 all scored 0.92–0.93; this pair was best.
C1 = 0.05
C2 = 0.1
MAX_ITERATIONS = 120


class AddressTagger:
    """A trained address CRF: ``spans`` gives the address spans of a (masked) message.

    ``segment`` cuts text into words that cover it exactly (jieba, with the domain
    vocabulary); it is pickled by reference, the CRF as its bytes.
    """

    def __init__(self, model: bytes, segment: Callable[[str], list[str]]) -> None:
        self._model = model
        self._segment = segment
        self._tagger = _open(model)
        self._decoder = Decoder(model, FEATURE_NAMES)

    def __getstate__(self) -> tuple[bytes, Callable[[str], list[str]]]:
        return self._model, self._segment

    def __setstate__(self, state: tuple[bytes, Callable[[str], list[str]]]) -> None:
        self._model, self._segment = state
        self._tagger = _open(self._model)
        self._decoder = Decoder(self._model, FEATURE_NAMES)

    @classmethod
    def train(
        cls,
        rows: Iterable[tuple[list[Row], list[str]]],
        segment: Callable[[str], list[str]],
        *,
        c1: float = C1,
        c2: float = C2,
        max_iterations: int = MAX_ITERATIONS,
    ) -> AddressTagger:
        """Fit a CRF on (features, BIO tags) sequences."""
        trainer = pycrfsuite.Trainer(verbose=False)
        for xseq, yseq in rows:
            trainer.append(xseq, yseq)
        trainer.set_params(
            {
                "c1": c1,
                "c2": c2,
                "max_iterations": max_iterations,
                "feature.possible_transitions": True,
            }
        )
        handle, path = tempfile.mkstemp(suffix=".crfsuite")
        os.close(handle)
        try:
            trainer.train(path)
            return cls(Path(path).read_bytes(), segment)
        finally:
            os.unlink(path)

    def features(self, text: str, hints: Hints) -> list[Row]:
        """The features of every character of ``text``."""
        return features(text, self._words(text), hints)

    def _words(self, text: str) -> Sequence[str]:
        words = self._segment(text)
        if "".join(words) != text:  # a segmenter that drops characters: fall back to chars
            return list(text)
        return words

    def tag(self, text: str, hints: Hints) -> list[str]:
        """The BIO tags of one clause: CRFsuite's Viterbi path, decoded here."""
        if "\0" in text:  # CRFsuite reads attribute names as C strings: let it decide
            return self.tag_with_crfsuite(text, hints)
        return self._decoder.tag(columns(text, self._words(text), hints))

    def tag_with_crfsuite(self, text: str, hints: Hints) -> list[str]:
        """The BIO tags of one clause from CRFsuite's own tagger (the reference for ``tag``)."""
        tags: list[str] = self._tagger.tag(self.features(text, hints))
        return tags

    def spans(self, text: str, hints: Hints) -> list[Span]:
        """The address spans in ``text``, widened to whole gazetteer names.

        Each clause with evidence of a place is tagged on its own (see ``clauses``).
        """
        found: list[Span] = []
        for start, end in clauses(text):
            if evidence(text, hints, start, end):
                tags = self.tag(text[start:end], hints.within(start, end))
                found += [(a + start, b + start) for a, b in spans_of(tags)]
        return widen(found, hints.communities)


def widen(spans: Iterable[Span], names: Iterable[Span]) -> list[Span]:
    """Each span stretched over any name it cuts into; overlapping spans merged."""
    names = list(names)
    out: list[list[int]] = []
    for start, end in sorted(spans):
        for name_start, name_end in names:
            if name_start < end and name_end > start:
                start, end = min(start, name_start), max(end, name_end)
        if out and start < out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(start, end) for start, end in out]


def _open(model: bytes) -> pycrfsuite.Tagger:
    tagger = pycrfsuite.Tagger()
    tagger.open_inmemory(model)
    return tagger


def tags_for(sample: Sample) -> list[str]:
    """The BIO tags of a sample."""
    return _bio(len(sample.text), sample.spans)
