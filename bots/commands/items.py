"""`yimen items list|add|approve|confirm|cancel|unconfirmed`: staff's service items.

Until the console exists, staff review help-at-home requests, post items for
volunteers, confirm items the resident did not, and see those unconfirmed after 72
hours. Phones are shown masked (integration.privacy); staff who call open the item itself.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.commands import load_settings, run_async, staff_services
from handlers.catalog import Catalog
from handlers.flows.volunteer_steps import what
from integration.cases import local_minute
from integration.claims import ClaimBook
from integration.errors import IntegrationError
from integration.items import SKILLS, ItemBook, ItemPost, ItemView, Window
from integration.models import ItemStatus, utcnow
from integration.privacy import mask
from integration.services.calendar import LOCAL_TZ
from nlu.gazetteer import Gazetteer
from nlu.timeparse import find_times

DEFAULT_LENGTH = timedelta(hours=2)
Sessions = async_sessionmaker[AsyncSession]
T = TypeVar("T")

items_app = typer.Typer(help="Help-at-home service items.", no_args_is_help=True)


def line(item: ItemView) -> str:
    """One item as staff lists show it, the phone masked."""
    note = f"  ({mask(item.note)})" if item.note else ""
    what = item.title or item.kind
    when = item.when or (local_minute(item.starts_at) if item.starts_at else "")
    places = f"  {item.taken}/{item.capacity}" if item.status is not ItemStatus.pending else ""
    return (
        f"{item.id:>5}  {item.status.value:<11} {what:<9} {when}  {item.address}  "
        f"{item.whom}  {mask(item.phone)}  {local_minute(item.created_at)}{places}{note}"
    )


def parse_local(value: str, option: str) -> datetime:
    """``YYYY-MM-DD HH:MM`` in local time (Asia/Shanghai); exits 2 when it is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        print(f"error: {option} {value!r} is not YYYY-MM-DD HH:MM", file=sys.stderr)
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)


def window_of(start: str | None, end: str | None, words: str, since: datetime) -> Window | None:
    """The window staff gave, else the one the resident's words name (明天上午), if any."""
    if start:
        begin = parse_local(start, "--start")
        return Window(begin, parse_local(end, "--end") if end else begin + DEFAULT_LENGTH)
    return words_window(words, since)


def words_window(words: str, since: datetime) -> Window | None:
    """The window a resident's words name (明天上午, from ``since``), if any."""
    found = find_times(words, since) if words else []
    if not found:
        return None
    value = found[0].value
    return Window(value.start, value.end or value.start + DEFAULT_LENGTH)


def community_of(name: str) -> str:
    """The gazetteer's canonical name of a community; exits 2 when it has none."""
    community = Gazetteer.load().get(name)
    if community is None:
        print(f"error: no community {name!r} in the gazetteer", file=sys.stderr)
        raise typer.Exit(2)
    return community.name


def staff_call(work: Callable[[Sessions], Awaitable[T]]) -> T:
    """Run ``work`` on the staff services' database; a refusal exits 1 with its words."""

    async def go() -> T:
        async with staff_services(load_settings()) as services:
            return await work(services.sessions)

    try:
        result: T = run_async(go())
    except IntegrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    return result


def moved(view: ItemView) -> None:
    """Say where an item went: ``12 -> confirmed``."""
    print(f"{view.id} -> {view.status.value}")


@items_app.command("list")
def items_list(
    status: Annotated[
        list[ItemStatus] | None, typer.Option(help="Only items in this status (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
) -> None:
    """One line per item: number, status, kind, when, where, for whom, phone (masked)."""

    items = staff_call(lambda sessions: ItemBook(sessions).list_items(status or (), limit))
    if not items:
        print("no service items")
    for item in items:
        print(line(item))


@items_app.command("add")
def items_add(
    community: Annotated[str, typer.Option(help="The community (gazetteer name).")],
    title: Annotated[str, typer.Option(help="A short title volunteers see.")],
    start: Annotated[str, typer.Option(help="When it begins, YYYY-MM-DD HH:MM (local).")],
    place: Annotated[str, typer.Option(help="Where.")],
    description: Annotated[str, typer.Option(help="What is to be done.")] = "",
    end: Annotated[str | None, typer.Option(help="When it ends (default: 2 hours on).")] = None,
    skill: Annotated[
        list[str] | None, typer.Option(help=f"A skill wanted (repeatable): {', '.join(SKILLS)}.")
    ] = None,
    capacity: Annotated[int, typer.Option(min=1, help="Places for volunteers.")] = 1,
    actor: Annotated[str, typer.Option(help="Who posted it.")] = "staff",
) -> None:
    """Post an item for volunteers to claim (open at once)."""
    unknown = [s for s in skill or () if s not in SKILLS]
    if unknown:
        print(f"error: unknown skill {unknown[0]!r} (skills: {', '.join(SKILLS)})", file=sys.stderr)
        raise typer.Exit(2)
    window = window_of(start, end, "", utcnow())
    assert window is not None
    post = ItemPost(
        community_of(community),
        title,
        description,
        tuple(skill or ()),
        window,
        place,
        capacity,
        actor,
    )

    print(line(staff_call(lambda sessions: ItemBook(sessions).post(post))))


async def approve_request(
    sessions: Sessions,
    t: Catalog,
    item: int,
    actor: str,
    window: Window | None = None,
    capacity: int = 1,
) -> ItemView:
    """Approve a pending help-at-home item and tell the resident (the CLI's and the console's).

    ``window`` defaults to the one the resident's words name; the community is the one
    the address names. Raises ``ItemNotFound`` / ``ItemNotPending``.
    """
    book = ItemBook(sessions)
    pending = await book.get(item)
    if window is None:
        window = words_window(pending.when, pending.created_at)
    place = Gazetteer.load().locate(pending.address)
    kind = what(t, pending)
    tell = t("home.approved", number=item, kind=kind, when=pending.when)
    fields = (
        ("number", str(item)),
        ("status", t("home.template_approved")),
        ("note", kind),
        ("time", pending.when),
    )
    return await book.approve(
        item,
        actor,
        tell,
        fields,
        window=window,
        community=place.name if place else "",
        capacity=capacity,
    )


@items_app.command("approve")
def items_approve(
    item: Annotated[int, typer.Argument(help="The item number, from `yimen items list`.")],
    actor: Annotated[str, typer.Option(help="Who approved it.")] = "staff",
    start: Annotated[
        str | None, typer.Option(help="When it begins (default: read from the resident's words).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="When it ends (default: 2 hours on).")] = None,
    capacity: Annotated[int, typer.Option(min=1, help="Places for volunteers.")] = 1,
) -> None:
    """Approve a pending item (volunteers may then claim it); the resident is told."""

    window = window_of(start, end, "", utcnow()) if start else None
    moved(
        staff_call(
            lambda sessions: approve_request(
                sessions, Catalog.load(), item, actor, window, capacity
            )
        )
    )


@items_app.command("confirm")
def items_confirm(
    item: Annotated[int, typer.Argument(help="The item number.")],
    actor: Annotated[str, typer.Option(help="Who confirmed it.")] = "staff",
    rating: Annotated[int | None, typer.Option(min=1, max=5, help="A 1-5 rating.")] = None,
) -> None:
    """Confirm a done item instead of the resident: it then counts for its volunteers."""

    moved(staff_call(lambda sessions: ClaimBook(sessions).confirm(item, actor, utcnow(), rating)))


@items_app.command("cancel")
def items_cancel(
    item: Annotated[int, typer.Argument(help="The item number.")],
    actor: Annotated[str, typer.Option(help="Who cancelled it.")] = "staff",
) -> None:
    """Cancel an item not yet done."""

    moved(staff_call(lambda sessions: ItemBook(sessions).cancel(item, actor)))


@items_app.command("unconfirmed")
def items_unconfirmed(
    hours: Annotated[int, typer.Option(min=1, help="Done at least this long ago.")] = 72,
) -> None:
    """Items reported done that nobody confirmed within ``hours``: staff follow them up."""

    items = staff_call(
        lambda sessions: ItemBook(sessions).unconfirmed(utcnow(), timedelta(hours=hours))
    )
    if not items:
        print("no unconfirmed service items")
    for item in items:
        print(line(item))
