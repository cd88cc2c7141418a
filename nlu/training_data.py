"""Read Rasa 3.x NLU YAML: intents with annotated examples, synonyms, regexes, lookups."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nlu.types import Entity, TrainingDataError

DATA_DIR = Path(__file__).parent / "data"

# [text](entity) or [text]{"entity": "x", "value": "y"}
_ANNOTATION = re.compile(r"\[(?P<text>[^\[\]]+)\](?:\((?P<entity>[^()]+)\)|(?P<json>\{[^{}]+\}))")


@dataclass(frozen=True, slots=True)
class Example:
    """One training sentence: its plain text, intent and annotated entity spans."""

    text: str
    intent: str
    entities: tuple[Entity, ...] = ()


@dataclass(slots=True)
class TrainingData:
    """Everything a Rasa NLU file set declares, merged."""

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # variant -> canonical value
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        """The intents present, sorted."""
        return sorted({e.intent for e in self.examples})

    def merge(self, other: TrainingData) -> None:
        """Add another file's declarations to this one."""
        self.examples.extend(other.examples)
        self.synonyms.update(other.synonyms)
        for name, patterns in other.regexes.items():
            self.regexes.setdefault(name, []).extend(patterns)
        for name, values in other.lookups.items():
            self.lookups.setdefault(name, []).extend(values)


def parse_example(raw: str, intent: str) -> Example:
    """Strip Rasa entity annotations from one example, keeping their spans."""
    plain: list[str] = []
    entities: list[Entity] = []
    cursor = 0
    length = 0
    for match in _ANNOTATION.finditer(raw):
        before = raw[cursor : match.start()]
        plain.append(before)
        length += len(before)
        text = match["text"]
        if match["json"]:
            try:
                spec = json.loads(match["json"])
            except json.JSONDecodeError as exc:
                raise TrainingDataError(raw, f"bad entity annotation: {exc}") from exc
            name, value = spec.get("entity"), spec.get("value", text)
        else:
            name, value = match["entity"], text
        if not name:
            raise TrainingDataError(raw, "entity annotation without a name")
        entities.append(Entity(name, length, length + len(text), str(value), "annotation"))
        plain.append(text)
        length += len(text)
        cursor = match.end()
    plain.append(raw[cursor:])
    return Example("".join(plain).strip(), intent, tuple(entities))


def _items(block: str) -> Iterable[str]:
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("- "):
            item = line[2:].strip()
            if item:
                yield item


def load_file(path: Path) -> TrainingData:
    """Read one Rasa 3.x NLU YAML file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingDataError(str(path), str(exc)) from exc
    data = TrainingData()
    for entry in document.get("nlu") or []:
        examples = entry.get("examples", "")
        if not isinstance(examples, str):
            raise TrainingDataError(str(path), f"examples of {entry} must be a block string")
        if "intent" in entry:
            data.examples.extend(parse_example(x, entry["intent"]) for x in _items(examples))
        elif "synonym" in entry:
            data.synonyms.update({x: str(entry["synonym"]) for x in _items(examples)})
        elif "regex" in entry:
            data.regexes.setdefault(entry["regex"], []).extend(_items(examples))
        elif "lookup" in entry:
            data.lookups.setdefault(entry["lookup"], []).extend(_items(examples))
    # Annotated {"value": ...} pairs are synonyms too, as in Rasa.
    for example in data.examples:
        for ent in example.entities:
            surface = example.text[ent.start : ent.end]
            if surface != ent.value:
                data.synonyms.setdefault(surface, ent.value)
    return data


def load(paths: Iterable[Path] | None = None) -> TrainingData:
    """Read and merge NLU files; by default every *.yml under nlu/data/."""
    files = sorted(DATA_DIR.glob("*.yml")) if paths is None else list(paths)
    if not files:
        raise TrainingDataError(str(DATA_DIR), "no training data files")
    data = TrainingData()
    for path in files:
        data.merge(load_file(path))
    return data
