"""Text normalisation applied before any NLU backend sees a message.

In order: full-width to half-width (NFKC), Traditional to Simplified (OpenCC t2s),
Chinese numerals to digits where they count something (三号楼 → 3号楼, 十一月二十八日
→ 11月28日, 两天 → 2天, but not 一下, 一起 or 有一点), emoji dropped, whitespace
collapsed. Case is kept; the embedded classifier lower-cases for itself.

Entity offsets refer to the normalised text, which is what ``Parse.text`` holds.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

import cn2an
import opencc

_SPACES = re.compile(r"\s+")
# Pictographs, dingbats, variation selectors and joiners: decoration, not content.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff"
    "\U0000fe00-\U0000fe0f\U0000200d\U000020e3\U0001f3fb-\U0001f3ff]+"
)
_DIGITS = "零〇一二两三四五六七八九"
_MAGNITUDES = "十百千万"
_NUMERAL_CHARS = f"[{_DIGITS}{_MAGNITUDES}]"
# Units after which a numeral is a number.
_UNITS = (
    "号楼|栋|幢|单元|层|楼|室|号院|号|月|日|期|点|时|分钟|分|个|天|年|岁|次|元|块|米|公里|"
    "小时|遍|趟|位|名|户|辆|棵|条|件"
)
# A bare 一 only counts before units that cannot also make a word (一点 may be "a
# little", 一个 is often just "a").
_ONE_UNITS = "号楼|栋|幢|单元|层|室|号院|号|月|日|期"
_COUNTED = re.compile(
    rf"(?<!{_NUMERAL_CHARS})(?:{_NUMERAL_CHARS}{{2,}}|[二两三四五六七八九十])(?={_UNITS})"
    rf"|(?<![{_DIGITS}{_MAGNITUDES}第])一(?={_ONE_UNITS})"
)

_converter_lock = threading.Lock()
_converter: opencc.OpenCC | None = None


def _t2s(text: str) -> str:
    global _converter
    if _converter is None:
        with _converter_lock:
            _converter = _converter or opencc.OpenCC("t2s")
    return _converter.convert(text)


@lru_cache(maxsize=4096)
def _number(numeral: str) -> str:
    if len(numeral) == 2 and not any(m in numeral for m in _MAGNITUDES):
        return numeral  # 三五个人 is "three or five people", not 35
    try:
        return str(cn2an.cn2an(numeral, "smart"))
    except ValueError:
        return numeral  # not a well-formed numeral (e.g. 三五): leave it as written


def _digits(match: re.Match[str]) -> str:
    return _number(match.group())


def normalize(text: str) -> str:
    """The form of ``text`` that every backend and extractor sees."""
    text = unicodedata.normalize("NFKC", text)
    text = _t2s(text)
    text = _COUNTED.sub(_digits, text)
    text = _EMOJI.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def has_emoji(text: str) -> bool:
    """Whether ``text`` holds an emoji (👍), not only punctuation (？？？)."""
    return bool(_EMOJI.search(text))


def has_content(text: str) -> bool:
    """Whether anything but emoji, punctuation and spaces is left in ``text``."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in _EMOJI.sub("", text))
