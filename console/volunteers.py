"""Volunteers (党员志愿者): registrations, invitation codes, items, completions, the ranking.

The same stores and the same steps as `yimen volunteers` and `yimen items`
(``VolunteerBook.decide``/``invite``, ``approve_request``, ``ItemBook.post``,
``ClaimBook.confirm``, the month report's ``rows``/``report_bytes``); every action
is audited.

Roles: admin and staff see and act on every community. A community account sees and
acts on its own community only: another community's volunteer or item is 404 by URL,
its posts and codes are for its own community, and its ranking and report hold its own
rows. Grid accounts (网格员) have no volunteer page (403): they report cases, they do
not run the volunteer service.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bots.commands.items import approve_request
from bots.commands.volunteers import Format, report_bytes
from console.cases import community_of, gazetteer
from console.web import Console, audit, member, render, require_role, see_other, services, text
from handlers.flows.volunteer_steps import what
from integration.claims import ClaimBook
from integration.errors import IntegrationError
from integration.items import SKILLS, ItemBook, ItemPost, ItemView, Window
from integration.models import ItemStatus, StaffRole, VolunteerCode, VolunteerStatus, utcnow
from integration.services.calendar import LOCAL_TZ
from integration.volunteer_report import (
    MonthReport,
    Record,
    VolunteerRecords,
    _totals,
    month_bounds,
)
from integration.volunteers import INVITE_DAYS, VolunteerBook, VolunteerView

ROLES = (StaffRole.admin, StaffRole.staff, StaffRole.community)
UNCONFIRMED_AFTER = timedelta(hours=72)  # as `yimen items unconfirmed`
TITLE_LIMIT = 40
DESCRIPTION_LIMIT = 500
PLACE_LIMIT = 120
CAPACITY_LIMIT = 50
BASE = "/console/volunteers"


class Refused(Exception):
    """Bad input: the console text key (and values) to show; nothing changed."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def _number(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPNotFound()
    return int(raw)


def _month(request: web.Request) -> str:
    asked = request.query.get("month", "")
    try:
        month_bounds(asked)
    except ValueError:
        return datetime.now(LOCAL_TZ).strftime("%Y-%m")
    return asked


def _local(value: str, key: str) -> datetime:
    """A form's ``datetime-local`` value (``YYYY-MM-DDTHH:MM``) in local time."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Refused(key) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)


def _window(form: Any, required: bool) -> Window | None:
    start = str(form.get("start", "")).strip()
    end = str(form.get("end", "")).strip()
    if not start:
        if required or end:
            raise Refused("volunteers.bad_start")
        return None
    begin = _local(start, "volunteers.bad_start")
    finish = _local(end, "volunteers.bad_end") if end else begin + timedelta(hours=2)
    if finish <= begin:
        raise Refused("volunteers.bad_end")
    return Window(begin, finish)


def _capacity(form: Any) -> int:
    raw = str(form.get("capacity", "1")).strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= CAPACITY_LIMIT:
        raise Refused("volunteers.bad_capacity", limit=CAPACITY_LIMIT)
    return int(raw)


def _scoped_report(report: MonthReport, community: str | None) -> MonthReport:
    """The report with only ``community``'s rows (and totals), or whole for ``None``."""
    if community is None:
        return report
    rows = tuple(row for row in report.rows if row.community == community)
    return MonthReport(
        report.month,
        rows,
        tuple(pair for pair in report.communities if pair[0] == community),
        _totals((row.branch, row.record) for row in rows),  # the report's own summing
    )


class VolunteerDesk:
    """The volunteers page and its actions."""

    # -- scoping -----------------------------------------------------------------

    @staticmethod
    def _scope(request: web.Request) -> str | None:
        who = member(request)
        return who.community if who.scoped else None

    @staticmethod
    def _item_community(item: ItemView) -> str:
        return item.community or community_of(item.address)

    async def _volunteer(self, request: web.Request) -> VolunteerView:
        try:
            found = await VolunteerBook(services(request).sessions).get(_number(request))
        except IntegrationError:
            raise web.HTTPNotFound() from None
        if not member(request).sees_community(found.community):
            raise web.HTTPNotFound()
        return found

    async def _item(self, request: web.Request) -> ItemView:
        try:
            found = await ItemBook(services(request).sessions).get(_number(request))
        except IntegrationError:
            raise web.HTTPNotFound() from None
        if not member(request).sees_community(self._item_community(found)):
            raise web.HTTPNotFound()
        return found

    # -- the page ----------------------------------------------------------------

    @require_role(*ROLES)
    async def page(
        self,
        request: web.Request,
        *,
        error: str = "",
        status: int = 200,
        code: tuple[str, str, datetime] | None = None,
        form: Any = None,
    ) -> web.Response:
        who = member(request)
        sessions = services(request).sessions
        now = utcnow()
        volunteers = [
            v
            for v in await VolunteerBook(sessions).list_volunteers([VolunteerStatus.pending])
            if who.sees_community(v.community)
        ]
        book = ItemBook(sessions)
        pending = [
            i
            for i in await book.list_items([ItemStatus.pending], limit=200)
            if who.sees_community(self._item_community(i))
        ]
        done = [
            i
            for i in await book.list_items([ItemStatus.done], limit=200)
            if who.sees_community(self._item_community(i))
        ]
        done.sort(key=lambda i: i.done_at or now)
        query = select(VolunteerCode.code, VolunteerCode.community, VolunteerCode.expires_at).where(
            VolunteerCode.kind == "invite",
            VolunteerCode.used_at.is_(None),
            VolunteerCode.expires_at > now,
        )
        if who.scoped:
            query = query.where(VolunteerCode.community == who.community)
        async with sessions() as session:
            codes = (await session.execute(query.order_by(VolunteerCode.expires_at))).all()
        catalog = services(request).catalog
        return render(
            request,
            "volunteers.html",
            {
                "volunteers": volunteers,
                "pending": pending,
                "done": done,
                "late": {i.id for i in done if i.done_at and i.done_at <= now - UNCONFIRMED_AFTER},
                "codes": codes,
                "new_code": code,
                "month": _month(request),
                "skills": [(s, catalog.get(f"volunteer.skill.{s}", s)) for s in SKILLS],
                "skill_name": lambda s: catalog.get(f"volunteer.skill.{s}", s),
                "kind_name": lambda k: catalog.get(f"home.kind.{k}", k),
                "what": lambda item: what(catalog, item),
                "item_community": self._item_community,
                "communities": [] if who.scoped else sorted(c.name for c in gazetteer()),
                "error": error,
                "notice": text(request, "volunteers.saved") if request.query.get("saved") else "",
                "form": form or {},
                "limits": {
                    "title": TITLE_LIMIT,
                    "description": DESCRIPTION_LIMIT,
                    "place": PLACE_LIMIT,
                    "capacity": CAPACITY_LIMIT,
                    "invite_days": INVITE_DAYS,
                },
            },
            status=status,
        )

    async def _refused(self, request: web.Request, refused: Refused, status: int = 400) -> Any:
        form = dict(await request.post())
        return await self.page(
            request, error=text(request, refused.key, **refused.values), status=status, form=form
        )

    # -- registrations -----------------------------------------------------------

    async def _decide(self, request: web.Request, approve: bool) -> web.StreamResponse:
        volunteer = await self._volunteer(request)
        who = member(request)
        try:
            view = await VolunteerBook(services(request).sessions).decide(
                volunteer.id, approve, f"console:{who.username}"
            )
        except IntegrationError:
            return await self._refused(request, Refused("volunteers.not_pending"), 409)
        await audit(
            request,
            "volunteer.approve" if approve else "volunteer.reject",
            str(view.id),
            before={"status": volunteer.status.value},
            after={"status": view.status.value, "name": view.name, "community": view.community},
        )
        return see_other(f"{BASE}?saved=1")

    @require_role(*ROLES)
    async def approve(self, request: web.Request) -> web.StreamResponse:
        return await self._decide(request, True)

    @require_role(*ROLES)
    async def reject(self, request: web.Request) -> web.StreamResponse:
        return await self._decide(request, False)

    @require_role(*ROLES)
    async def invite(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        who = member(request)
        try:
            community = _community(
                str(form.get("community", "")), who.community if who.scoped else None
            )
            raw = str(form.get("days", INVITE_DAYS)).strip()
            if not raw.isdigit() or not 1 <= int(raw) <= 90:
                raise Refused("volunteers.bad_days")
        except Refused as refused:
            return await self._refused(request, refused)
        code, expires = await VolunteerBook(services(request).sessions).invite(
            community, f"console:{who.username}", days=int(raw)
        )
        await audit(
            request,
            "volunteer.invite",
            community,
            after={"code": code, "community": community, "expires": expires.isoformat()},
        )
        return await self.page(request, code=(code, community, expires))

    # -- items -------------------------------------------------------------------

    @require_role(*ROLES)
    async def approve_item(self, request: web.Request) -> web.StreamResponse:
        item = await self._item(request)
        form = await request.post()
        try:
            window = _window(form, required=False)
            capacity = _capacity(form)
        except Refused as refused:
            return await self._refused(request, refused)
        who = member(request)
        try:
            view = await approve_request(
                services(request).sessions,
                services(request).catalog,
                item.id,
                f"console:{who.username}",
                window,
                capacity,
            )
        except IntegrationError:
            return await self._refused(request, Refused("volunteers.item_not_pending"), 409)
        await audit(
            request,
            "item.approve",
            str(view.id),
            before={"status": item.status.value},
            after={
                "status": view.status.value,
                "community": view.community,
                "starts_at": view.starts_at.isoformat() if view.starts_at else None,
                "ends_at": view.ends_at.isoformat() if view.ends_at else None,
                "capacity": view.capacity,
            },
        )
        return see_other(f"{BASE}?saved=1")

    @require_role(*ROLES)
    async def post_item(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        who = member(request)
        try:
            community = _community(
                str(form.get("community", "")), who.community if who.scoped else None
            )
            title = str(form.get("title", "")).strip()
            if not title or len(title) > TITLE_LIMIT:
                raise Refused("volunteers.bad_title", limit=TITLE_LIMIT)
            description = str(form.get("description", "")).strip()
            if len(description) > DESCRIPTION_LIMIT:
                raise Refused("volunteers.bad_description", limit=DESCRIPTION_LIMIT)
            place = str(form.get("place", "")).strip()
            if not place or len(place) > PLACE_LIMIT:
                raise Refused("volunteers.bad_place", limit=PLACE_LIMIT)
            skills = tuple(dict.fromkeys(str(s) for s in form.getall("skill", [])))
            if any(s not in SKILLS for s in skills):
                raise Refused("volunteers.bad_skill")
            window = _window(form, required=True)
            assert window is not None
            capacity = _capacity(form)
        except Refused as refused:
            return await self._refused(request, refused)
        post = ItemPost(
            community,
            title,
            description,
            skills,
            window,
            place,
            capacity,
            f"console:{who.username}",
        )
        view = await ItemBook(services(request).sessions).post(post)
        await audit(
            request,
            "item.post",
            str(view.id),
            after={
                "community": community,
                "title": title,
                "description": description,
                "skills": list(skills),
                "starts_at": window.start.isoformat(),
                "ends_at": window.end.isoformat() if window.end else None,
                "place": place,
                "capacity": capacity,
            },
        )
        return see_other(f"{BASE}?saved=1")

    @require_role(*ROLES)
    async def confirm(self, request: web.Request) -> web.StreamResponse:
        item = await self._item(request)
        who = member(request)
        try:
            view = await ClaimBook(services(request).sessions).confirm(
                item.id, f"console:{who.username}", utcnow()
            )
        except IntegrationError:
            return await self._refused(request, Refused("volunteers.item_not_done"), 409)
        await audit(
            request,
            "item.confirm",
            str(view.id),
            before={"status": item.status.value},
            after={"status": view.status.value},
        )
        return see_other(f"{BASE}?saved=1")

    # -- the ranking -------------------------------------------------------------

    async def _report(self, request: web.Request) -> MonthReport:
        report = await VolunteerRecords(services(request).sessions).month(_month(request))
        return _scoped_report(report, self._scope(request))

    @require_role(*ROLES)
    async def ranking(self, request: web.Request) -> web.Response:
        """The month's ranking as JSON for the charts, most items first."""
        report = await self._report(request)

        def bars(pairs: list[tuple[str, Record]]) -> list[dict[str, Any]]:
            ordered = sorted(pairs, key=lambda p: (-p[1].items, -p[1].hours, p[0]))
            return [
                {"name": name, "items": r.items, "hours": r.hours, "residents": r.residents}
                for name, r in ordered
            ]

        return web.json_response(
            {
                "month": report.month,
                "volunteers": bars([(f"{r.name}（{r.branch}）", r.record) for r in report.rows]),
                "communities": bars(list(report.communities)),
                "branches": bars(list(report.branches)),
            }
        )

    @require_role(*ROLES)
    async def download(self, request: web.Request) -> web.StreamResponse:
        fmt = Format(request.match_info["fmt"])
        report = await self._report(request)
        await audit(
            request,
            "volunteers.export",
            report.month,
            after={"format": fmt.value, "rows": len(report.rows)},
        )
        types = {
            Format.csv: "text/csv; charset=utf-8",
            Format.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
        return web.Response(
            body=report_bytes(report, fmt),
            headers={
                "Content-Type": types[fmt],
                "Content-Disposition": (
                    f'attachment; filename="volunteers-{report.month}.{fmt.value}"'
                ),
            },
        )


def _community(asked: str, own: str | None) -> str:
    """The gazetteer's name of the community asked for; a community account's own."""
    if own is not None:
        return own
    found = gazetteer().get(asked) if asked.strip() else None
    if found is None:
        raise Refused("volunteers.bad_community")
    return str(found.name)


def install(console: Console) -> None:
    """The volunteers page and its actions."""
    desk = VolunteerDesk()
    console.add_routes(
        [
            web.get("/volunteers", desk.page),
            web.post("/volunteers/invite", desk.invite),
            web.post("/volunteers/items", desk.post_item),
            web.post("/volunteers/items/{id}/approve", desk.approve_item),
            web.post("/volunteers/items/{id}/confirm", desk.confirm),
            web.post("/volunteers/{id}/approve", desk.approve),
            web.post("/volunteers/{id}/reject", desk.reject),
            web.get("/volunteers/ranking", desk.ranking),
            web.get("/volunteers/report.{fmt:csv|xlsx}", desk.download),
        ]
    )
    console.add_page("volunteers", "志愿服务", "/console/volunteers", roles=set(ROLES))
