"""The `yimen` command groups, one module each; bots.cli assembles them.

What every command shares lives here: settings read once (with logging configured),
a coroutine run to completion (Ctrl-C exits 130), and a database URL fit to print.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import typer
from sqlalchemy.engine import make_url

from bots.logs import configure
from bots.settings import Settings


def load_settings(**overrides: Any) -> Settings:
    """The settings, with command-line values (those given) over the environment."""
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure(settings.log_level)
    return settings


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to completion; Ctrl-C exits with 130 instead of a traceback."""
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def describe_db(url: str) -> str:
    """A database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)
