"""`yimen admin`: console accounts (the first admin, and others)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bots.commands import load_settings, run_async, staff_services
from console.accounts import AccountBook, AccountError
from console.audit import Actor, AuditLog
from integration.models import StaffRole

admin_app = typer.Typer(help="Staff console accounts.", no_args_is_help=True)


@admin_app.command("create")
def admin_create(
    username: Annotated[str, typer.Argument(help="The sign-in name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Asked for when not given (never put it on a shared command line).",
        ),
    ],
    role: Annotated[StaffRole, typer.Option(help="What the account may do.")] = StaffRole.admin,
    community: Annotated[
        str, typer.Option(help="Community and grid accounts: the community they see.")
    ] = "",
    grid: Annotated[
        str, typer.Option(help="Grid accounts: the grid id (网格号), e.g. G-3-07.")
    ] = "",
) -> None:
    """Create a console account; prompts for its password twice."""

    async def go() -> None:
        async with staff_services(load_settings()) as services:
            await AccountBook(services.sessions).create(username, password, role, community, grid)
            await AuditLog(services.sessions).write(
                Actor("yimen admin create", "cli"),
                "account.create",
                username,
                after={
                    "username": username,
                    "role": role.value,
                    "community": community,
                    "grid": grid,
                },
            )

    try:
        run_async(go())
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    where = (f" for {community}" if community else "") + (f", grid {grid}" if grid else "")
    print(f"created {role.value} account {username!r}{where}; sign in at /console")
