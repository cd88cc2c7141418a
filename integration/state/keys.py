"""One builder for every shared-state key, like aiogram's DefaultKeyBuilder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyBuilder:
    """Builds keys as ``{prefix}:{part}:{channel}:{id}``."""

    prefix: str = "yimen"

    def build(self, part: str, channel: str, ident: str) -> str:
        """The key of ``part`` (dedupe, lock, rate, state...) for one channel identity."""
        return f"{self.prefix}:{part}:{channel}:{ident}"
