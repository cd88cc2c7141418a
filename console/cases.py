"""Cases: the local dispatch desk in the browser.

The list (filters: status, category, community, overdue, dead-letter forwards, urged
by residents; a CSV export of the same), a case's page (transcript with the NLU's
intent and confidence, photos, location, residents' urges (催办), status history),
changing the status with a note the resident is told (``CaseBook.change_status``, as
`yimen cases set-status`), and putting a dead-letter forward back in the outbox
(``Outbox.requeue``, as `yimen dispatch retry`).

Community and grid accounts see only their community's cases: a case belongs to the
community its address names (the gazetteer, nlu/data/communities.yml). Another
community's case is 404 by URL, as if it did not exist.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import selectinload

from bots.media import media_name
from console.accounts import StaffMember
from console.web import (
    Console,
    audit,
    member,
    render,
    require_role,
    see_other,
    services,
    text,
)
from integration.cases import LOCAL_TZ, local_minute
from integration.errors import IntegrationError
from integration.history import TranscriptTail
from integration.lifecycle import OPEN, can_move
from integration.models import (
    Case,
    CaseStatus,
    CaseUrge,
    OutboxJob,
    OutboxState,
    StaffRole,
    utcnow,
)
from integration.privacy import mask
from nlu.contract import INTENTS, REPORT_CATEGORIES
from nlu.gazetteer import Gazetteer

# Roles that may see a case's phone and ID numbers in clear (each time audited);
# community and grid accounts never do.
REVEALERS = (StaffRole.admin, StaffRole.staff)
# An open case not finished this long after it was opened is overdue.
OVERDUE_AFTER = timedelta(hours=72)
LIST_LIMIT = 200
NOTE_LIMIT = 500
TRANSCRIPT_LIMIT = 200
CATEGORIES = (*REPORT_CATEGORIES, "other", "proxy")


@functools.cache
def gazetteer() -> Gazetteer:
    """The district's communities (read once)."""
    return Gazetteer.load()


def community_of(address: str) -> str:
    """The community a case's address names ("" when it names none)."""
    found = gazetteer().locate(address or "")
    return found.name if found else ""


def is_overdue(status: CaseStatus, created_at: datetime, now: datetime) -> bool:
    """Whether an open case has waited longer than ``OVERDUE_AFTER``."""
    return status in OPEN and now - created_at > OVERDUE_AFTER


@dataclass(frozen=True, slots=True)
class Filters:
    """What the case list shows (from the query string; unknown values are ignored)."""

    status: str = ""
    category: str = ""
    community: str = ""
    overdue: bool = False
    dead: bool = False
    urged: bool = False

    @classmethod
    def of(cls, query: Any, who: StaffMember) -> Filters:
        status = query.get("status", "")
        category = query.get("category", "")
        community = who.community if who.scoped else query.get("community", "").strip()
        known = gazetteer().get(community)
        return cls(
            status=status if status in CaseStatus.__members__ else "",
            category=category if category in CATEGORIES else "",
            community=known.name if known else "",
            overdue=query.get("overdue") == "1",
            dead=query.get("dead") == "1",
            urged=query.get("urged") == "1",
        )


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One line of the case list."""

    number: str
    category: str
    status: CaseStatus
    address: str
    community: str
    created_at: datetime
    updated_at: datetime
    overdue: bool
    dead: bool
    urges: int  # how often residents pressed for it (催办)


_DEAD = exists().where(OutboxJob.case_id == Case.id, OutboxJob.state == OutboxState.dead.value)
_URGES = select(func.count()).where(CaseUrge.case_id == Case.id).correlate(Case).scalar_subquery()


async def find_cases(request: web.Request, filters: Filters) -> list[CaseRow]:
    """The newest cases matching ``filters`` that the member may see."""
    now = utcnow()
    query = (
        select(
            Case.number,
            Case.category,
            Case.status,
            Case.address,
            Case.created_at,
            Case.updated_at,
            _DEAD.label("dead"),
            _URGES.label("urges"),
        )
        .order_by(Case.id.desc())
        .limit(LIST_LIMIT)
    )
    if filters.status:
        query = query.where(Case.status == filters.status)
    if filters.category:
        query = query.where(Case.category == filters.category)
    if filters.dead:
        query = query.where(_DEAD)
    if filters.urged:
        query = query.where(exists().where(CaseUrge.case_id == Case.id))
    if filters.overdue:
        query = query.where(
            Case.status.in_([s.value for s in OPEN]), Case.created_at < now - OVERDUE_AFTER
        )
    community = gazetteer().get(filters.community) if filters.community else None
    if community is not None:  # narrowed in SQL, decided by the gazetteer below
        query = query.where(or_(*(Case.address.contains(name) for name in community.names)))
    async with services(request).sessions() as session:
        rows = (await session.execute(query)).all()
    found = []
    for row in rows:
        where = community_of(row.address)
        if filters.community and where != filters.community:
            continue
        status = CaseStatus(row.status)
        found.append(
            CaseRow(
                row.number,
                row.category,
                status,
                mask(row.address),
                where,
                row.created_at,
                row.updated_at,
                is_overdue(status, row.created_at, now),
                bool(row.dead),
                int(row.urges or 0),
            )
        )
    return found


async def load_case(request: web.Request) -> Case:
    """The case named in the URL, with media and history; 404 when the member may not see it."""
    number = request.match_info["number"].upper()[:32]
    query = (
        select(Case)
        .where(Case.number == number)
        .options(selectinload(Case.media), selectinload(Case.events), selectinload(Case.urges))
    )
    async with services(request).sessions() as session:
        case = await session.scalar(query)
    if case is None or not member(request).sees_community(community_of(case.address)):
        raise web.HTTPNotFound(text="no such case")
    return case


# -- pages --------------------------------------------------------------------------


async def case_list(request: web.Request) -> web.StreamResponse:
    who = member(request)
    filters = Filters.of(request.query, who)
    rows = await find_cases(request, filters)
    return render(
        request,
        "cases.html",
        {
            "rows": rows,
            "filters": filters,
            "statuses": list(CaseStatus),
            "categories": CATEGORIES,
            "communities": [c.name for c in gazetteer()],
            "limit": LIST_LIMIT,
            "request_query": request.query_string,
        },
    )


async def case_export(request: web.Request) -> web.StreamResponse:
    """The filtered list as CSV (UTF-8 with BOM, for spreadsheet programs)."""
    who = member(request)
    filters = Filters.of(request.query, who)
    rows = await find_cases(request, filters)
    catalog = services(request).catalog
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(
        [
            "编号",
            "类别",
            "状态",
            "社区",
            "地址",
            "创建时间",
            "更新时间",
            "超期",
            "转发失败",
            "催办次数",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                row.number,
                catalog.get(f"category.{row.category}", row.category),
                catalog.get(f"status.{row.status.value}", row.status.value),
                row.community,
                _cell(row.address),
                local_minute(row.created_at),
                local_minute(row.updated_at),
                "是" if row.overdue else "",
                "是" if row.dead else "",
                row.urges,
            ]
        )
    await audit(request, "cases.export", after={"filters": _as_dict(filters), "rows": len(rows)})
    stamp = utcnow().astimezone(LOCAL_TZ).strftime("%Y%m%d-%H%M")
    return web.Response(
        body=out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="cases-{stamp}.csv"'},
    )


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _as_dict(filters: Filters) -> dict[str, Any]:
    return {k: getattr(filters, k) for k in Filters.__slots__}


async def case_page(
    request: web.Request, *, error: str = "", status: int = 200, reveal: bool = False
) -> web.Response:
    case = await load_case(request)
    shown = (lambda value: value) if reveal else mask
    current = CaseStatus(case.status)
    transcript = await TranscriptTail(services(request).sessions).recent(
        case.channel, case.chat_id, TRANSCRIPT_LIMIT
    )
    dead = await _dead_jobs(request, case.id)
    return render(
        request,
        "case.html",
        {
            "case": case,
            "status": current,
            "community": community_of(case.address),
            "overdue": is_overdue(current, case.created_at, utcnow()),
            "moves": [s for s in CaseStatus if can_move(current, s)],
            "transcript": transcript,
            "photos": list(enumerate(case.media)),
            "media_name": media_name,
            "dead": dead,
            "error": error,
            "notice": text(request, "cases.saved") if request.query.get("saved") else "",
            "note_limit": NOTE_LIMIT,
            "shown": shown,
            "revealed": reveal,
            "can_reveal": member(request).role in REVEALERS,
            "can_correct": member(request).role in REVEALERS,
            "intents": INTENTS,
            "hidden": has_number(
                case.description,
                case.address,
                *(e.note for e in case.events),
                *(u.text for u in case.urges),
                *(line.text for line in transcript),
            ),
        },
        status=status,
    )


def has_number(*texts: str) -> bool:
    """Whether masking hides anything in ``texts`` (a phone or ID number in clear)."""
    return any(mask(value) != value for value in texts)


@require_role(*REVEALERS)
async def reveal(request: web.Request) -> web.StreamResponse:
    """The case page once with its phone and ID numbers in clear; an audited action."""
    case = await load_case(request)
    await audit(request, "case.reveal", case.number, after={"fields": ["description", "notes"]})
    return await case_page(request, reveal=True)


async def _dead_jobs(request: web.Request, case_id: int) -> Sequence[Any]:
    query = select(OutboxJob).where(
        OutboxJob.case_id == case_id, OutboxJob.state == OutboxState.dead.value
    )
    async with services(request).sessions() as session:
        return list(await session.scalars(query))


async def change_status(request: web.Request) -> web.StreamResponse:
    case = await load_case(request)
    form = await request.post()
    wanted = str(form.get("status", ""))
    note = str(form.get("note", "")).strip()
    if wanted not in CaseStatus.__members__:
        return await case_page(request, error=text(request, "cases.bad_status"), status=400)
    if len(note) > NOTE_LIMIT:
        return await case_page(
            request, error=text(request, "cases.note_too_long", limit=NOTE_LIMIT), status=400
        )
    new = CaseStatus(wanted)
    who = member(request)
    try:
        await services(request).cases.change_status(
            case.number, new, note, actor=f"console:{who.username}"
        )
    except IntegrationError:
        return await case_page(
            request,
            error=text(
                request,
                "cases.cannot_move",
                status=services(request).catalog.get(f"status.{new.value}", new.value),
            ),
            status=409,
        )
    await audit(
        request,
        "case.status",
        case.number,
        before={"status": case.status},
        after={"status": new.value, "note": note},
    )
    return see_other(f"/console/cases/{case.number}?saved=1")


async def retry_forward(request: web.Request) -> web.StreamResponse:
    case = await load_case(request)
    count = await services(request).dispatch.outbox.requeue(case.number)
    if not count:
        return await case_page(request, error=text(request, "cases.no_dead_letter"), status=409)
    await audit(request, "case.retry_forward", case.number, after={"jobs": count})
    return see_other(f"/console/cases/{case.number}?saved=1")


async def photo(request: web.Request) -> web.StreamResponse:
    """A case's photo, for those who may see the case (not the public /media URL)."""
    case = await load_case(request)
    index = request.match_info["index"]
    if not index.isdigit() or int(index) >= len(case.media):
        raise web.HTTPNotFound()
    name = media_name(case.media[int(index)].ref)
    path = services(request).media.path(name) if name else None
    if path is None:
        raise web.HTTPNotFound()
    response = web.FileResponse(path)
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def install(console: Console) -> None:
    """The case list, case pages and their actions."""
    console.add_routes(
        [
            web.get("/cases", case_list),
            web.get("/cases.csv", case_export),
            web.get("/cases/{number}", case_page),
            web.post("/cases/{number}/status", change_status),
            web.post("/cases/{number}/retry", retry_forward),
            web.post("/cases/{number}/reveal", reveal),
            web.get("/cases/{number}/photos/{index}", photo),
        ]
    )
    console.add_page("cases", "工单", "/console/cases")
