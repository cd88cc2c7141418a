"""`yimen appointments list|no-show|cancel`: staff's view of bookings until the console.

``cancel`` tells the resident through the push queue (a reply-kind push written in
the same transaction as the cancellation), so the message survives a restart and is
sent once, with the channel's usual fallbacks.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Annotated

import typer

from bots.commands import load_settings, run_async, staff_services
from bots.settings import Settings
from handlers.catalog import Catalog
from handlers.flows.booking_slots import slot_label
from integration.appointments import AppointmentBook, AppointmentNotFound, Booking
from integration.services import ServiceCatalogue, load_catalogue
from integration.services.calendar import LOCAL_TZ

appointments_app = typer.Typer(help="Bookings at the service windows.", no_args_is_help=True)


@appointments_app.command("list")
def list_bookings(
    day: Annotated[
        str | None, typer.Option(help="The day, YYYY-MM-DD (default: today, Asia/Shanghai).")
    ] = None,
    window: Annotated[str | None, typer.Option(help="Only this window (its catalogue id).")] = None,
) -> None:
    """Every booking of a day, in time order: number, time, window, service, status."""
    settings = load_settings()
    try:
        wanted = date.fromisoformat(day) if day else datetime.now(LOCAL_TZ).date()
    except ValueError:
        print(f"error: --day {day!r} is not YYYY-MM-DD", file=sys.stderr)
        raise typer.Exit(2) from None
    services = load_catalogue(settings.service_catalogue)
    if window is not None and window not in services.windows:
        known = ", ".join(services.windows)
        print(f"error: no window {window!r} (windows: {known})", file=sys.stderr)
        raise typer.Exit(2)
    bookings = run_async(_list(settings, wanted, window))
    print(f"{wanted.isoformat()}: {len(bookings)} booking(s)")
    for booking in bookings:
        print(_line(booking, services))


@appointments_app.command("no-show")
def no_show(booking: Annotated[str, typer.Argument(help="The booking number (YY…).")]) -> None:
    """Record that the resident did not come."""
    settings = load_settings()
    try:
        marked = run_async(_no_show(settings, booking))
    except AppointmentNotFound:
        print(f"error: no booked appointment {booking}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"{marked.number}: no-show recorded")


@appointments_app.command("cancel")
def cancel(
    booking: Annotated[str, typer.Argument(help="The booking number (YY…).")],
    note: Annotated[str, typer.Option(help="Why, as the resident will read it.")],
) -> None:
    """Cancel a booking, free its place and tell the resident why (through the push queue)."""
    if not note.strip():
        print("error: --note must say why", file=sys.stderr)
        raise typer.Exit(2)
    settings = load_settings()
    try:
        cancelled = run_async(_cancel(settings, booking, note.strip()))
    except AppointmentNotFound:
        print(f"error: no booked appointment {booking}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"{cancelled.number}: cancelled; the resident is told ({cancelled.channel})")


async def _list(settings: Settings, day: date, window: str | None) -> list[Booking]:
    async with staff_services(settings) as services:
        return await AppointmentBook(services.sessions).list_day(day, window)


async def _no_show(settings: Settings, number: str) -> Booking:
    async with staff_services(settings) as services:
        return await AppointmentBook(services.sessions).no_show(number)


async def _cancel(settings: Settings, number: str, note: str) -> Booking:
    catalogue = load_catalogue(settings.service_catalogue)
    async with staff_services(settings) as services:
        book = AppointmentBook(services.sessions)
        return await staff_cancel(book, services.catalog, catalogue, number, note)


async def staff_cancel(
    book: AppointmentBook, catalog: Catalog, catalogue: ServiceCatalogue, number: str, note: str
) -> Booking:
    """Cancel a booking and queue the resident's message saying why (the CLI and the console)."""
    found = await book.get(number)
    message = catalog(
        "rebooking.staff_cancelled",
        number=found.number,
        name=service_name(catalogue, found.service),
        time=slot_label(found.starts_at),
        note=note,
    )
    fields = (
        ("number", found.number),
        ("status", catalog("booking.template_cancelled")),
        ("note", note),
        ("time", slot_label(found.starts_at)),
    )
    return await book.cancel_by_staff(number, note, message, fields)


def _line(booking: Booking, services: ServiceCatalogue) -> str:
    local = booking.starts_at.astimezone(LOCAL_TZ)
    window = services.windows.get(booking.window)
    return "  ".join(
        (
            booking.number,
            f"{local:%H:%M}",
            window.name if window else booking.window,
            service_name(services, booking.service),
            booking.status.value,
            f"{booking.channel}:{booking.user_id}",
            booking.note,
        )
    ).rstrip()


def service_name(services: ServiceCatalogue, service_id: str) -> str:
    service = services.services.get(service_id)
    return service.name if service else service_id
