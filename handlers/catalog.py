"""The message catalogue: every resident-facing text, by key, from handlers/locale/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LOCALE_DIR = Path(__file__).parent / "locale"


class Catalog:
    """Looks up texts by dotted key (``complaint.ask_where``) and fills placeholders."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    @classmethod
    def load(cls, locale: str = "zh_CN") -> Catalog:
        """Read ``handlers/locale/<locale>.yml`` and its parts ``<locale>.<part>.yml``.

        Each part (one per channel or feature) owns its own top-level keys; a key
        defined twice is a mistake and raises.
        """
        texts: dict[str, str] = {}
        for path in [LOCALE_DIR / f"{locale}.yml", *sorted(LOCALE_DIR.glob(f"{locale}.*.yml"))]:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for key, text in _flatten(document):
                if key in texts:
                    raise ValueError(f"catalogue key {key!r} is defined twice ({path.name})")
                texts[key] = text
        return cls(texts)

    def __call__(self, key: str, **values: Any) -> str:
        """The text for ``key`` with ``values`` filled in; a missing key is a bug, so it raises."""
        return self._texts[key].format(**values) if values else self._texts[key]

    def get(self, key: str, default: str) -> str:
        """The text for ``key``, or ``default`` when the catalogue has none."""
        return self._texts.get(key, default)

    def keys(self) -> list[str]:
        """Every key, for tests that check the catalogue against the code."""
        return list(self._texts)


def _flatten(node: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            pairs += _flatten(value, f"{name}.")
        else:
            pairs.append((name, str(value)))
    return pairs
