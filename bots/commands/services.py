"""`yimen services check [FILE]`: validate a service catalogue and its holiday calendar.

Staff run it after editing the catalogue; the server runs the same validation at
start. Each problem is printed as ``file:line: field: what`` and the exit status is 1.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from bots.commands import load_settings
from bots.settings import Settings
from integration.services import CatalogueError, ServiceCatalogue, load_catalogue

services_app = typer.Typer(help="The service catalogue (办事指南).", no_args_is_help=True)


@services_app.command("check")
def check(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="The catalogue to check (default: YIMEN_SERVICE_CATALOGUE, else the shipped one)."
        ),
    ] = None,
) -> None:
    """Validate a catalogue and the calendar it names; print each problem with its line."""
    if file is None:
        file = load_settings().service_catalogue
    try:
        catalogue = load_catalogue(file)
    except CatalogueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(_summary(catalogue))


def check_catalogue(settings: Settings) -> None:
    """Refuse to start with a broken catalogue: its problems on stderr, exit status 1.

    The composition root validates it again; checking first fails before the NLU
    model loads, with the problems instead of a traceback.
    """
    try:
        load_catalogue(settings.service_catalogue)
    except CatalogueError as exc:
        print(f"error: the service catalogue is not valid:\n{exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _summary(catalogue: ServiceCatalogue) -> str:
    calendar = catalogue.calendar
    provisional = " (provisional: check it against the State Council notice)"
    years = ", ".join(
        f"{year}{provisional if year in calendar.provisional else ''}"
        for year in sorted(calendar.years)
    )
    lines = [
        f"ok: {catalogue.path}",
        f"  services: {len(catalogue.services)} in {len(catalogue.windows)} windows",
        f"  out of remit: {len(catalogue.out_of_remit.topics)} topics, "
        f"hotline {catalogue.out_of_remit.hotline}",
        f"  calendar years: {years}",
    ]
    if not calendar.covers(date.today()):
        lines.append(f"  warning: the calendar does not cover {date.today().year}")
    return "\n".join(lines)
