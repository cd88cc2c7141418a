"""Phone and ID numbers never reach the logs in full."""

from __future__ import annotations

import logging

import pytest

from bots.logs import MaskingFilter, mask


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
