"""Text normalisation applied before any backend sees a message."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# Pictographs, dingbats, variation selectors and joiners: decoration, not content.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff"
    "\U0000fe00-\U0000fe0f\U0000200d\U000020e3\U0001f3fb-\U0001f3ff]+"
)


def normalize(text: str) -> str:
    """Full-width to half-width (NFKC), emoji removed, whitespace collapsed, lower case."""
    text = unicodedata.normalize("NFKC", text)
    text = _EMOJI.sub(" ", text)
    return _SPACES.sub(" ", text).strip().lower()


def has_content(text: str) -> bool:
    """Whether anything but emoji, punctuation and spaces is left in ``text``."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in normalize(text))
