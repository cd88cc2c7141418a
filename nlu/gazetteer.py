"""The district's residential communities: names, aliases, street office, coordinates.

Read from nlu/data/communities.yml, a top-level ``communities:`` list of ``{name,
aliases, street, latitude, longitude}`` mappings; a community added there needs no
code. Text is searched for names and aliases longest first, so 碧水苑小区 wins over
碧水苑. Coordinates are approximate (WGS-84): good enough to route a text address to the
right grid on the dispatch platform, not to navigate by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nlu.training_data import DATA_DIR
from nlu.types import TrainingDataError

DEFAULT_PATH = DATA_DIR / "communities.yml"


@dataclass(frozen=True, slots=True)
class Community:
    """A residential community and the street office it belongs to."""

    name: str
    aliases: tuple[str, ...]
    street: str
    latitude: float
    longitude: float

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name, then the aliases."""
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class CommunityMatch:
    """A mention of a community in a text: its character span and the community."""

    start: int
    end: int
    community: Community


class Gazetteer:
    """Looks communities up by name or alias and finds them in text.

    Raises ``ValueError`` when two communities claim the same name or alias, since a
    mention of it could not be placed.
    """

    def __init__(self, communities: Iterable[Community] = ()) -> None:
        self._communities = tuple(communities)
        self._by_name: dict[str, Community] = {}
        for community in self._communities:
            for name in community.names:
                other = self._by_name.setdefault(name, community)
                if other is not community:
                    raise ValueError(f"{name!r} names both {other.name} and {community.name}")
        ordered = sorted(self._by_name, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> Gazetteer:
        """Read a gazetteer file; ``TrainingDataError`` names the file and entry when invalid."""
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TrainingDataError(str(path), str(exc)) from exc
        entries = document.get("communities") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise TrainingDataError(str(path), "expected a top-level `communities:` list")
        try:
            return cls(_community(entry, index) for index, entry in enumerate(entries))
        except ValueError as exc:
            raise TrainingDataError(str(path), str(exc)) from exc

    def __len__(self) -> int:
        return len(self._communities)

    def __iter__(self) -> Iterator[Community]:
        return iter(self._communities)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name and alias, each once."""
        return tuple(self._by_name)

    def get(self, name: str) -> Community | None:
        """The community called exactly ``name`` (canonical name or alias), if any."""
        return self._by_name.get(name.strip())

    def find(self, text: str) -> list[CommunityMatch]:
        """Every community mentioned in ``text``, left to right, longest name first."""
        if self._pattern is None:
            return []
        return [
            CommunityMatch(m.start(), m.end(), self._by_name[m.group()])
            for m in self._pattern.finditer(text)
        ]

    def locate(self, text: str) -> Community | None:
        """The first community mentioned in an address such as 金辉小区3号楼, if any.

        This is how the flows and the dispatch integration get coordinates for an
        address the resident typed rather than pinned.
        """
        if self._pattern is None:
            return None
        match = self._pattern.search(text)
        return self._by_name[match.group()] if match else None


def _community(entry: Any, index: int) -> Community:
    if not isinstance(entry, Mapping):
        raise ValueError(f"community #{index + 1} is not a mapping")
    name = entry.get("name")
    where = f"community #{index + 1} ({name})" if name else f"community #{index + 1}"
    aliases = entry.get("aliases") or []
    street = entry.get("street")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: `name` must be a non-empty string")
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise ValueError(f"{where}: `aliases` must be a list of names")
    if not isinstance(street, str) or not street.strip():
        raise ValueError(f"{where}: `street` must be a non-empty string")
    latitude = _degrees(entry.get("latitude"), 90, f"{where}: `latitude`")
    longitude = _degrees(entry.get("longitude"), 180, f"{where}: `longitude`")
    aliases = [a.strip() for a in aliases if a.strip() != name.strip()]
    return Community(
        name.strip(), tuple(dict.fromkeys(aliases)), street.strip(), latitude, longitude
    )


def _degrees(value: object, limit: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > limit:
        raise ValueError(f"{what} must be a number of degrees within ±{limit:g}")
    return float(value)
