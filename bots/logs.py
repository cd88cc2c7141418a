"""Logging setup: one format, and phone and ID numbers masked in every record."""

from __future__ import annotations

import logging

from integration.privacy import mask

__all__ = ["MaskingFilter", "configure", "mask"]


class MaskingFilter(logging.Filter):
    """Masks personal numbers in the fully formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str = "INFO") -> None:
    """Log to stderr with masking; quiet the chatty libraries."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "alembic", "jieba", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
