"""The `yimen` command groups, one module each; bots.cli assembles them.

What every command shares lives here: settings read once (with logging configured),
a coroutine run to completion (Ctrl-C exits 130), a database fit to print, and the
services of staff commands, which say which database they use and never create one.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import typer

from bots import loop
from bots.logs import configure
from bots.settings import Settings
from integration.db import shown
from integration.errors import DatabaseMissing

if TYPE_CHECKING:
    from bots.runtime import Services


def load_settings(**overrides: Any) -> Settings:
    """The settings, with command-line values (those given) over the environment."""
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure(settings.log_level, settings.log_format)
    return settings


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to completion; Ctrl-C exits with 130 instead of a traceback."""
    try:
        return loop.run(coroutine)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def describe_db(url: str) -> str:
    """A database as staff read it: a SQLite file's absolute path, or the URL without password."""
    return shown(url)


@asynccontextmanager
async def staff_services(settings: Settings) -> AsyncIterator[Services]:
    """The services of a command that reads the database, without NLU.

    Says on stderr which database it uses. A database that does not exist is not
    created (the command ends with status 1 and says how to create one): a staff
    command run from the wrong directory must not report an empty, new database.
    """
    from bots.runtime import open_services  # staff commands start without the NLU stack

    url = settings.resolved_database_url
    print(f"database: {describe_db(url)}", file=sys.stderr, flush=True)
    try:
        async with open_services(settings, with_nlu=False, create=False) as services:
            yield services
    except DatabaseMissing as exc:
        print(
            f"error: {exc}.\n"
            "  Run this command where Yimen runs, or point YIMEN_DATA_DIR or "
            "YIMEN_DATABASE_URL at its database;\n"
            "  `yimen db upgrade` creates a new database there if one is wanted.",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None
