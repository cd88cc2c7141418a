"""Phone and ID numbers never reach the logs in full."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from bots.commands import load_settings
from bots.logs import JsonFormatter, MaskingFilter, mask


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("电话13912345678", "电话139****5678"),
        ("座机0477-8581234", "座机0477-****1234"),
        ("身份证150602199001011234", "身份证150602********1234"),
        ("身份证15060219900101123X", "身份证150602********123X"),
        ("工单YM2611250001", "工单YM2611250001"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert mask(raw) == masked


def test_filter_masks_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("yimen.test.masking")
    logger.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO, logger="yimen.test.masking"):
        logger.info("resident %s called from %s", "张三", "13912345678")
    assert "13912345678" not in caplog.text
    assert "139****5678" in caplog.text


def test_json_lines_are_masked_traceback_included() -> None:
    record = logging.LogRecord(
        "yimen.test", logging.ERROR, __file__, 1, "resident %s failed", ("13912345678",), None
    )
    try:
        raise ValueError("身份证150602199001011234 rejected")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR" and entry["logger"] == "yimen.test"
    assert entry["message"] == "resident 139****5678 failed"
    assert "ValueError: 身份证150602********1234 rejected" in entry["exc"]
    assert "150602199001011234" not in json.dumps(entry, ensure_ascii=False)


def test_the_log_format_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIMEN_LOG_FORMAT", "json")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        load_settings()
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
