"""`yimen items list|approve`: staff review help-at-home requests until the console exists.

Phones are shown masked (integration.privacy); staff who call open the item itself.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bots.commands import load_settings, run_async, staff_services
from handlers.catalog import Catalog
from integration.cases import local_minute
from integration.errors import IntegrationError
from integration.items import ItemBook, ItemView
from integration.models import ItemStatus
from integration.privacy import mask

items_app = typer.Typer(help="Help-at-home service items.", no_args_is_help=True)


def line(item: ItemView) -> str:
    """One item as staff lists show it, the phone masked."""
    note = f"  ({mask(item.note)})" if item.note else ""
    return (
        f"{item.id:>5}  {item.status.value:<9} {item.kind:<9} {item.when}  {item.address}  "
        f"{item.whom}  {mask(item.phone)}  {local_minute(item.created_at)}{note}"
    )


@items_app.command("list")
def items_list(
    status: Annotated[
        list[ItemStatus] | None, typer.Option(help="Only items in this status (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
) -> None:
    """One line per item: number, status, kind, when, where, for whom, phone (masked)."""

    async def go() -> list[ItemView]:
        async with staff_services(load_settings()) as services:
            return await ItemBook(services.sessions).list_items(status or (), limit)

    items = run_async(go())
    if not items:
        print("no service items")
    for item in items:
        print(line(item))


@items_app.command("approve")
def items_approve(
    item: Annotated[int, typer.Argument(help="The item number, from `yimen items list`.")],
    actor: Annotated[str, typer.Option(help="Who approved it.")] = "staff",
) -> None:
    """Approve a pending item (volunteers may then claim it); the resident is told."""

    async def go() -> ItemView:
        t = Catalog.load()
        async with staff_services(load_settings()) as services:
            book = ItemBook(services.sessions)
            pending = await book.get(item)
            kind = t.get(f"home.kind.{pending.kind}", pending.kind)
            tell = t("home.approved", number=item, kind=kind, when=pending.when)
            fields = (
                ("number", str(item)),
                ("status", t("home.template_approved")),
                ("note", kind),
                ("time", pending.when),
            )
            return await book.approve(item, actor, tell, fields)

    try:
        view = run_async(go())
    except IntegrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"{view.id} -> {view.status.value}")
