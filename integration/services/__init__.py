"""The service catalogue: what the centre does, where, with which papers, and when it is open.

Data, not code: ``catalogue.yml`` (services, windows, hours, what the office does not
handle) and ``calendar.yml`` (holidays and 调休 working days) beside this module, or
files of the same format named by YIMEN_SERVICE_CATALOGUE. ``load_catalogue`` reads
and validates both, raising ``CatalogueError`` with file:line: field for each problem;
the server refuses to start with one, and `yimen services check` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from integration.services.calendar import OfficeCalendar
from integration.services.loading import (
    CatalogueError,
    Document,
    Loc,
    Problem,
    parse,
    validate,
)
from integration.services.models import (
    CalendarFile,
    CatalogueFile,
    Centre,
    Hours,
    OutOfRemit,
    Service,
    Topic,
    Window,
)

__all__ = [
    "DEFAULT_CATALOGUE",
    "CatalogueError",
    "Centre",
    "OfficeCalendar",
    "Problem",
    "Service",
    "ServiceCatalogue",
    "Topic",
    "Window",
    "load_catalogue",
]

DEFAULT_CATALOGUE = Path(__file__).parent / "catalogue.yml"


@dataclass(frozen=True, slots=True)
class ServiceCatalogue:
    """The validated catalogue and calendar, with the lookups the flows need."""

    path: Path
    centre: Centre
    hours: Hours
    windows: dict[str, Window]
    services: dict[str, Service]
    out_of_remit: OutOfRemit
    common: tuple[str, ...]
    calendar: OfficeCalendar

    def service(self, service_id: str) -> Service:
        """One service by id (KeyError when there is none)."""
        return self.services[service_id]

    def window_for(self, service_id: str) -> Window:
        """The window that handles a service."""
        return self.windows[self.services[service_id].window]

    def is_open(self, moment: datetime) -> bool:
        """Whether the windows are open at ``moment`` (see ``OfficeCalendar.is_open``)."""
        return self.calendar.is_open(moment)

    def next_working_days(self, after: date, count: int = 1) -> list[date]:
        """The next ``count`` working days after ``after``."""
        return self.calendar.next_working_days(after, count)


def load_catalogue(path: Path | None = None) -> ServiceCatalogue:
    """Read and validate a catalogue (the shipped one by default) and its calendar."""
    path = path or DEFAULT_CATALOGUE
    document = parse(path)
    data = validate(document, CatalogueFile)
    _check_references(document, data)
    calendar_path = path.parent / data.centre.calendar
    calendar = validate(parse(calendar_path), CalendarFile)
    return ServiceCatalogue(
        path=path,
        centre=data.centre,
        hours=data.hours,
        windows={w.id: w for w in data.windows},
        services={s.id: s for s in data.services},
        out_of_remit=data.out_of_remit,
        common=tuple(data.common),
        calendar=OfficeCalendar.build(data.hours, calendar),
    )


def _check_references(document: Document, data: CatalogueFile) -> None:
    """Checks across entries: unique ids and words, windows and common ids that exist.

    A word names one service; a topic out of remit may not use a service's word.
    """
    problems: list[Problem] = []
    problems += _duplicates(document, "windows", [w.id for w in data.windows], "id")
    problems += _duplicates(document, "services", [s.id for s in data.services], "id")
    windows = {w.id for w in data.windows}
    for i, service in enumerate(data.services):
        if service.window not in windows:
            message = f"no window {service.window!r} (windows: {', '.join(sorted(windows))})"
            problems.append(document.problem(("services", i, "window"), message))
    services = {s.id for s in data.services}
    for i, common in enumerate(data.common):
        if common not in services:
            problems.append(document.problem(("common", i), f"no service {common!r}"))
    seen: dict[str, str] = {}
    for i, service in enumerate(data.services):
        for j, word in enumerate(service.words):
            owner = seen.setdefault(word, service.id)
            if owner != service.id:
                loc: Loc = ("services", i, "name") if j == 0 else ("services", i, "synonyms", j - 1)
                problems.append(document.problem(loc, f"{word!r} already names {owner!r}"))
    for i, topic in enumerate(data.out_of_remit.topics):
        for j, word in enumerate(topic.words):
            if word in seen:
                where: Loc = ("out_of_remit", "topics", i, "words", j)
                problems.append(document.problem(where, f"{word!r} already names {seen[word]!r}"))
    if problems:
        raise document.fail(problems)


def _duplicates(document: Document, section: str, ids: Sequence[str], key: str) -> list[Problem]:
    problems, seen = [], set()
    for i, ident in enumerate(ids):
        if ident in seen:
            problems.append(document.problem((section, i, key), f"duplicate id {ident!r}"))
        seen.add(ident)
    return problems
