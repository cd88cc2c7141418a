"""Masking personal numbers: one implementation for logs, the transcript and staff views.

- ID numbers (居民身份证): 18 digits (the last may be X) and the old 15-digit form,
  recognised by their birth date, so order numbers, case numbers (YM…), booking
  numbers and dates are left alone. The region (first 6) and the last 4 stay
  visible: ``150602********1234``.
- Phone numbers: mainland mobiles (1[3-9]x, with or without spaces or dashes) and
  landlines with an area code: ``139****5678``, ``0477-****1234``.

Where each applies: ID numbers are masked before a message is stored or understood
(residents never need to send one, and staff never need one from chat); phones are
masked in the transcript, in logs and in staff lists, and kept in clear only where a
person must call: the case a resident opened (a 代办 case's contact phone) and the
phone a resident agreed to have remembered (integration.contacts).
"""

from __future__ import annotations

import re

_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_ID_18 = re.compile(
    rf"(?<![A-Za-z0-9])(\d{{6}})(?:19|20)\d{{2}}{_DATE}(\d{{3}}[\dXx])(?![A-Za-z0-9])"
)
_ID_15 = re.compile(rf"(?<![A-Za-z0-9])(\d{{6}})\d{{2}}{_DATE}(\d{{3}})(?![A-Za-z0-9])")
_MOBILE = re.compile(r"(?<![A-Za-z0-9])(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?![A-Za-z0-9])")
_LANDLINE = re.compile(r"(?<![A-Za-z0-9])(0\d{2,3}-?)\d{3,4}(\d{4})(?![A-Za-z0-9])")


def mask_id_numbers(text: str) -> str:
    """Hide the birth date and sequence of every ID number in ``text``."""
    text = _ID_18.sub(r"\1********\2", text)
    return _ID_15.sub(r"\1******\2", text)


def has_id_number(text: str) -> bool:
    """Whether ``text`` holds an ID number in clear."""
    return bool(_ID_18.search(text) or _ID_15.search(text))


# What a resident writes around an ID number sent on its own (我的身份证号是…, 她的证件号：…).
_ID_LABEL = re.compile(r"(?:我|她|他|老人|本人)?的?(?:身份证|证件)(?:号码|号)?(?:是|为)?")
_NOT_WORDS = re.compile(r"[\W_]+")


def only_id_numbers(text: str) -> bool:
    """Whether ``text`` is ID numbers in clear, with at most their labels, and nothing
    more: once they are masked, nothing is left to understand."""
    if not has_id_number(text):
        return False
    rest = _ID_LABEL.sub("", _ID_15.sub("", _ID_18.sub("", text)))
    return not _NOT_WORDS.sub("", rest)


def mask_phones(text: str) -> str:
    """Hide the middle digits of every mobile and landline number in ``text``."""
    text = _MOBILE.sub(r"\1****\2", text)
    return _LANDLINE.sub(r"\1****\2", text)


def mask(text: str) -> str:
    """Hide ID and phone numbers (for logs and views without a need to know)."""
    return mask_phones(mask_id_numbers(text))
