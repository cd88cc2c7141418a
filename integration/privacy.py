"""Masking personal numbers: in logs, and wherever a reader does not need them.

Resident ID numbers (18 digits, the last may be X), mainland mobiles and landlines
keep their first and last digits and lose the middle: 139****5678.
"""

from __future__ import annotations

import re

_ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?)\d{3,4}(\d{4})(?!\d)")


def mask_personal(text: str) -> str:
    """Hide the middle digits of ID, mobile and landline numbers."""
    text = _ID_NUMBER.sub(r"\1********\2", text)
    text = _MOBILE.sub(r"\1****\2", text)
    return _LANDLINE.sub(r"\1****\2", text)
