"""Reading a YAML data file into a pydantic model, with errors that name file, line and field.

PyYAML composes the document into nodes that remember where they start; a pydantic
error's location (``services``, 3, ``window``) is walked down those nodes to the line
staff must edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from integration.errors import IntegrationError

M = TypeVar("M", bound=BaseModel)
Loc = Sequence[str | int]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a data file: where (line, dotted field) and what."""

    line: int
    field: str
    message: str


class CatalogueError(IntegrationError):
    """A catalogue or calendar file that cannot be used; names the file, line and field."""

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        lines = [f"{path}:{p.line}: {p.field}: {p.message}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed YAML file: its data and its node tree (for line numbers)."""

    path: Path
    data: Any
    root: yaml.Node | None

    def line(self, loc: Loc) -> int:
        """The 1-based line of the value at ``loc``, or of the nearest enclosing one."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node, line = child, child.start_mark.line + 1
        return line

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem at ``loc``."""
        return Problem(self.line(loc), field_name(loc), message)

    def fail(self, problems: Sequence[Problem]) -> CatalogueError:
        """The error to raise for ``problems``."""
        return CatalogueError(self.path, problems)


def parse(path: Path) -> Document:
    """Read and parse ``path``; raises ``CatalogueError`` for a missing file or bad YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(path, [Problem(0, "(file)", exc.strerror or str(exc))]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise CatalogueError(path, [Problem(line, "(yaml)", str(exc.problem))]) from None
    return Document(path, data, root)


def validate(document: Document, model: type[M]) -> M:
    """``document``'s data as ``model``; raises ``CatalogueError`` naming each bad field."""
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        problems = [document.problem(e["loc"], e["msg"]) for e in exc.errors()]
        raise document.fail(problems) from None


def field_name(loc: Loc) -> str:
    """A pydantic location as staff read it: ``services[3].window``."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else part
    return name or "(document)"


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(part):
                return value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        items = node.value
        return items[part] if 0 <= part < len(items) else None
    return None
