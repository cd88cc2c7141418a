"""jieba words and pypinyin syllables for one message at a time: the same output, faster.

Both libraries redo the same work for every message: jieba builds a word graph (DAG)
and its best route for each run of Chinese text, once for the classifier's words and
again for the address tagger's clauses, and pypinyin converts every word to pinyin
from scratch, though residents use the same few thousand words again and again.

- ``Segmenter`` is a ``jieba.Tokenizer`` whose accurate-mode ``cut`` gives exactly
  jieba's words. It finds a run's DAG and route in one pass with the words' log
  frequencies looked up once, and remembers the route of each run (shared by the HMM
  and dictionary-only cuts), the words of each run and the HMM's cut of unknown stretches.
  Anything that changes the dictionary (``add_word``, ``del_word``, ``initialize``)
  forgets them.
- ``syllables`` gives exactly ``pypinyin.lazy_pinyin(text, errors="ignore")``, with the
  pinyin of each word, and of each run of text, remembered.

tests/test_nlu_fast_paths.py holds both to the libraries' own functions.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from math import log
from typing import Any

import jieba
import jieba.finalseg
from pypinyin import Style
from pypinyin.constants import PHRASES_DICT, RE_HANS
from pypinyin.converter import UltimateConverter
from pypinyin.seg import mmseg

CACHE_SIZE = 1 << 16  # runs of text and words remembered, per kind
_PREFIX = 1.0  # in Segmenter._scan: the start of a word, not one (log probabilities are ≤ 0)

# jieba's own block patterns (accurate mode), so blocks split exactly as it splits them.
_RE_HAN = jieba.re_han_default
_RE_SKIP = jieba.re_skip_default
_RE_ENG = jieba.re_eng


class Segmenter(jieba.Tokenizer):
    """A jieba tokenizer with the same words from ``cut`` and ``lcut``, faster.

    Only the accurate mode (``cut_all=False``, no paddle) takes the fast path; other
    modes are jieba's. ``register`` adds domain words once per tokenizer: jieba's
    ``add_word`` without a frequency derives one from the dictionary as it stands, so
    adding the same words twice would change later cuts.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._registered: set[str] = set()
        self._forget_lock = threading.Lock()
        self._forget()

    def _forget(self) -> None:
        """Drop everything remembered from the dictionary (it changed)."""
        # Counts the changes: whoever remembers words of this tokenizer checks it.
        self.generation = getattr(self, "generation", -1) + 1
        self._logp: dict[str, float] = {}
        self._scan: dict[str, float] = {}
        self._logtotal: float | None = None
        self._route = lru_cache(maxsize=CACHE_SIZE)(self._route_of)
        self._hmm_block = lru_cache(maxsize=CACHE_SIZE)(self._cut_hmm)
        self._plain_block = lru_cache(maxsize=CACHE_SIZE)(self._cut_plain)
        self._unknown = lru_cache(maxsize=CACHE_SIZE)(_finalseg)
        self._force_split = len(jieba.finalseg.Force_Split_Words)

    # -- what changes the dictionary -----------------------------------------------------
    def initialize(self, dictionary: str | None = None) -> None:
        super().initialize(dictionary)
        with self._forget_lock:
            self._forget()

    def add_word(self, word: str, freq: int | None = None, tag: str | None = None) -> None:
        super().add_word(word, freq, tag)
        with self._forget_lock:
            self._forget()

    def register(self, words: tuple[str, ...] | list[str]) -> None:
        """Add each of ``words`` to the dictionary, in order, unless it was registered
        here before (the domain vocabulary is set up once per process)."""
        for word in words:
            if word not in self._registered:
                super().add_word(word)
                self._registered.add(word)
        with self._forget_lock:
            self._forget()

    # -- cutting -------------------------------------------------------------------------
    def cut(
        self, sentence: Any, cut_all: bool = False, HMM: bool = True, use_paddle: bool = False
    ) -> Iterator[str]:
        """jieba's ``Tokenizer.cut``; accurate mode from cached routes."""
        if cut_all or use_paddle or not isinstance(sentence, str):
            yield from super().cut(sentence, cut_all=cut_all, HMM=HMM, use_paddle=use_paddle)
            return
        yield from self.words(sentence, HMM)

    def lcut(
        self, sentence: Any, cut_all: bool = False, HMM: bool = True, use_paddle: bool = False
    ) -> list[str]:
        """jieba's ``Tokenizer.lcut``; accurate mode from cached routes."""
        if cut_all or use_paddle or not isinstance(sentence, str):
            return list(super().cut(sentence, cut_all=cut_all, HMM=HMM, use_paddle=use_paddle))
        return self.words(sentence, HMM)

    def words(self, sentence: str, hmm: bool = True) -> list[str]:
        """The words of ``sentence`` (jieba's accurate mode, with or without the HMM)."""
        self.check_initialized()
        if len(jieba.finalseg.Force_Split_Words) != self._force_split:
            with self._forget_lock:
                self._forget()
        block_words = self._hmm_block if hmm else self._plain_block
        out: list[str] = []
        for block in _RE_HAN.split(sentence):
            if not block:
                continue
            if _RE_HAN.match(block):
                out += block_words(block)
            else:
                for piece in _RE_SKIP.split(block):
                    if _RE_SKIP.match(piece):
                        out.append(piece)
                    else:
                        out += piece
        return out

    def _look_up(self, fragment: str) -> float | None:
        """``fragment`` in the dictionary: its log probability as a word, ``_PREFIX``
        when it only starts longer words (jieba keeps those with frequency 0), None when
        it is neither. Remembered in ``_scan``, which only ever holds dictionary keys."""
        freq = self.FREQ.get(fragment)
        if freq is None:
            return None
        value = self._scan[fragment] = self._log_probability(fragment) if freq else _PREFIX
        return value

    def _log_probability(self, word: str) -> float:
        """``log(FREQ.get(word) or 1) - log(total)``, as jieba's ``calc`` computes it."""
        if self._logtotal is None:
            self._logtotal = log(self.total)
        value = self._logp[word] = log(self.FREQ.get(word) or 1) - self._logtotal
        return value

    def _route_of(self, sentence: str) -> tuple[int, ...]:
        """Where the best route's word starting at each character ends (exclusive).

        jieba's ``get_DAG`` and ``calc`` in one pass: the same scores, added in the same
        order, and the same tie-break (of equal scores, the longest word). Each fragment
        met is looked up once in the dictionary and remembered in ``_scan``: a word's
        log probability, or ``_PREFIX`` for the start of a longer word only.
        """
        scan = self._scan
        n = len(sentence)
        scores = [0.0] * (n + 1)
        ends = [0] * (n + 1)
        for k in range(n - 1, -1, -1):
            best = 0.0
            best_end = -1
            i = k
            fragment = sentence[k]
            while True:
                logp = scan.get(fragment)
                if logp is None:
                    logp = self._look_up(fragment)
                    if logp is None:  # no word starts with this fragment
                        break
                if logp != _PREFIX:
                    score = logp + scores[i + 1]
                    if best_end < 0 or score >= best:
                        best, best_end = score, i
                i += 1
                if i == n:
                    break
                fragment = sentence[k : i + 1]
            if best_end < 0:  # no word starts here: the character alone
                logp = self._logp.get(sentence[k])
                if logp is None:
                    logp = self._log_probability(sentence[k])
                best, best_end = logp + scores[k + 1], k
            scores[k] = best
            ends[k] = best_end + 1
        return tuple(ends[:n])

    def _cut_plain(self, sentence: str) -> tuple[str, ...]:
        """jieba's ``__cut_DAG_NO_HMM`` of one block."""
        route = self._route(sentence)
        out: list[str] = []
        x = 0
        n = len(sentence)
        buf = ""
        while x < n:
            y = route[x]
            word = sentence[x:y]
            if y - x == 1 and _RE_ENG.match(word):
                buf += word
            else:
                if buf:
                    out.append(buf)
                    buf = ""
                out.append(word)
            x = y
        if buf:
            out.append(buf)
        return tuple(out)

    def _cut_hmm(self, sentence: str) -> tuple[str, ...]:
        """jieba's ``__cut_DAG`` of one block: unknown stretches go to its HMM."""
        route = self._route(sentence)
        out: list[str] = []
        x = 0
        n = len(sentence)
        buf = ""
        while x < n:
            y = route[x]
            word = sentence[x:y]
            if y - x == 1:
                buf += word
            else:
                if buf:
                    self._flush(buf, out)
                    buf = ""
                out.append(word)
            x = y
        if buf:
            self._flush(buf, out)
        return tuple(out)

    def _flush(self, buf: str, out: list[str]) -> None:
        if len(buf) == 1:
            out.append(buf)
        elif not self.FREQ.get(buf):
            out += self._unknown(buf)
        else:
            out += buf


def _finalseg(text: str) -> tuple[str, ...]:
    return tuple(jieba.finalseg.cut(text))


# -- pinyin ------------------------------------------------------------------------------
# lazy_pinyin's converter with its default options (no v→ü, no tone 5, no tone sandhi).
_CONVERTER = UltimateConverter(v_to_u=False, neutral_tone_with_five=False, tone_sandhi=False)
_HANS = RE_HANS.pattern[len("^(?:[") : -len("])+$")]
# pypinyin's first split: runs of characters with pinyin, and runs of the rest.
_RUNS = re.compile(f"[{_HANS}]+|[^{_HANS}]+")
_HAN_RUN = re.compile(f"[{_HANS}]")


@lru_cache(maxsize=CACHE_SIZE)
def _word_syllables(word: str) -> tuple[str, ...]:
    converted = _CONVERTER.convert(word, Style.NORMAL, False, "ignore", strict=True)
    return tuple(s for item in converted for s in item)


def _phrases(run: str) -> list[str]:
    """pypinyin's segmentation of a run of characters with pinyin (``mmseg.seg.cut``:
    forward maximum matching of its phrases, strict), without its generator."""
    prefixes = mmseg.seg._prefix_set._set
    phrases = PHRASES_DICT
    out: list[str] = []
    i = 0
    n = len(run)
    while i < n:
        last = 0
        j = i + 1
        while j <= n:
            word = run[i:j]
            if word not in prefixes:
                break
            if word in phrases:
                last = j
            j += 1
        else:  # every prefix matched to the end of the run
            if not last:
                out += run[i:]
                break
        if last:
            out.append(run[i:last])
            i = last
        else:
            out.append(run[i])
            i += 1
    return out


@lru_cache(maxsize=CACHE_SIZE)
def _run_syllables(run: str) -> tuple[str, ...]:
    if not _HAN_RUN.match(run):
        return _word_syllables(run)
    out: list[str] = []
    for word in _phrases(run):
        out += _word_syllables(word)
    return tuple(out)


def syllables(text: str) -> list[str]:
    """``pypinyin.lazy_pinyin(text, errors="ignore")``: toneless pinyin, the rest dropped."""
    out: list[str] = []
    for run in _RUNS.findall(text):
        out += _run_syllables(run)
    return out


@lru_cache(maxsize=CACHE_SIZE)
def _pinyin_of_word(word: str) -> tuple[str, ...]:
    return tuple(syllables(word))


def word_syllables(words: list[str]) -> list[str]:
    """Toneless pinyin of already-cut ``words``: ``syllables`` of each word, remembered.

    pypinyin reads a polyphonic character by the phrase it is in. Its phrases are looked
    for within each jieba word (长期存在 reads 长期 as one phrase), never across two, and a
    message costs a lookup per word it has seen before. Characters without pinyin are
    dropped, as ``lazy_pinyin(..., errors="ignore")`` drops them.
    """
    out: list[str] = []
    for word in words:
        out += _pinyin_of_word(word)
    return out
