"""Appointments: a day's bookings per window; record a no-show; cancel with a message.

The same book and the same cancellation as `yimen appointments` (the resident's message
goes through the push queue in the cancellation's transaction). Admin and staff only.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from aiohttp import web

from bots.commands.appointments import service_name, staff_cancel
from console.web import Console, audit, render, require_role, see_other, services, text
from integration.appointments import AppointmentBook, AppointmentError
from integration.models import StaffRole
from integration.services import ServiceCatalogue, load_catalogue
from integration.services.calendar import LOCAL_TZ

NOTE_LIMIT = 300
ROLES = (StaffRole.admin, StaffRole.staff)


class AppointmentDesk:
    """The appointments pages, over the service catalogue read once."""

    def __init__(self, catalogue: ServiceCatalogue) -> None:
        self.catalogue = catalogue

    def _day(self, request: web.Request) -> date:
        asked = request.query.get("day", "")
        try:
            return date.fromisoformat(asked) if asked else datetime.now(LOCAL_TZ).date()
        except ValueError:
            return datetime.now(LOCAL_TZ).date()

    @require_role(*ROLES)
    async def page(
        self, request: web.Request, *, error: str = "", status: int = 200
    ) -> web.Response:
        day = self._day(request)
        window = request.query.get("window", "")
        window = window if window in self.catalogue.windows else ""
        bookings = await AppointmentBook(services(request).sessions).list_day(day, window or None)
        by_window: dict[str, list[object]] = {}
        for booking in bookings:
            by_window.setdefault(booking.window, []).append(booking)
        return render(
            request,
            "appointments.html",
            {
                "day": day,
                "previous": day - timedelta(days=1),
                "next": day + timedelta(days=1),
                "window": window,
                "windows": self.catalogue.windows,
                "by_window": by_window,
                "service_name": lambda sid: service_name(self.catalogue, sid),
                "local_time": lambda moment: moment.astimezone(LOCAL_TZ).strftime("%H:%M"),
                "error": error,
                "notice": text(request, "appointments.saved") if request.query.get("saved") else "",
                "note_limit": NOTE_LIMIT,
            },
            status=status,
        )

    @require_role(*ROLES)
    async def no_show(self, request: web.Request) -> web.StreamResponse:
        number = request.match_info["number"][:32]
        try:
            booking = await AppointmentBook(services(request).sessions).no_show(number)
        except AppointmentError:
            return await self.page(
                request, error=text(request, "appointments.not_booked"), status=409
            )
        await audit(
            request,
            "appointment.no_show",
            booking.number,
            before={"status": "booked"},
            after={"status": "no_show"},
        )
        return see_other(self._back(request, booking.starts_at))

    @require_role(*ROLES)
    async def cancel(self, request: web.Request) -> web.StreamResponse:
        number = request.match_info["number"][:32]
        form = await request.post()
        note = str(form.get("note", "")).strip()
        if not note or len(note) > NOTE_LIMIT:
            return await self.page(
                request,
                error=text(request, "appointments.note_needed", limit=NOTE_LIMIT),
                status=400,
            )
        book = AppointmentBook(services(request).sessions)
        try:
            booking = await staff_cancel(
                book, services(request).catalog, self.catalogue, number, note
            )
        except AppointmentError:
            return await self.page(
                request, error=text(request, "appointments.not_booked"), status=409
            )
        await audit(
            request,
            "appointment.cancel",
            booking.number,
            before={"status": "booked"},
            after={"status": "cancelled", "note": note},
        )
        return see_other(self._back(request, booking.starts_at))

    @staticmethod
    def _back(request: web.Request, starts_at: datetime) -> str:
        day = starts_at.astimezone(LOCAL_TZ).date().isoformat()
        return f"/console/appointments?day={day}&saved=1"


def install(console: Console) -> None:
    """The appointments day view and its actions."""
    desk = AppointmentDesk(load_catalogue(console.settings.service_catalogue))
    console.add_routes(
        [
            web.get("/appointments", desk.page),
            web.post("/appointments/{number}/no-show", desk.no_show),
            web.post("/appointments/{number}/cancel", desk.cancel),
        ]
    )
    console.add_page("appointments", "预约", "/console/appointments", roles=set(ROLES))
