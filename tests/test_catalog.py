"""The message catalogue against the code that uses it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.catalog import Catalog
from integration.models import CaseStatus
from nlu.contract import REPORT_CATEGORIES

ROOT = Path(__file__).parent.parent
KEY_USE = re.compile(
    r"""(?:_t|_msg|_reprompt|catalog)\(\s*(?:state,\s*)?["']([a-z_]+\.[a-z_]+)["']"""
)


def test_every_key_used_in_code_exists(catalog: Catalog) -> None:
    used = set()
    for path in [*ROOT.glob("handlers/**/*.py"), *ROOT.glob("bots/*.py")]:
        used |= set(KEY_USE.findall(path.read_text(encoding="utf-8")))
    assert used, "the pattern found no catalogue keys at all"
    assert used - set(catalog.keys()) == set()


def test_every_category_and_status_has_words(catalog: Catalog) -> None:
    for category in (*REPORT_CATEGORIES, "other"):
        assert catalog(f"category.{category}")
    for status in CaseStatus:
        assert catalog(f"status.{status.value}")


def test_missing_key_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(KeyError):
        catalog("no.such_key")


def test_texts_are_simplified_chinese(catalog: Catalog) -> None:
    traditional = set("這個們來時會說對還發問題處據轉繫號碼區樓")
    for key in catalog.keys():
        assert not traditional & set(catalog.get(key, "")), key
