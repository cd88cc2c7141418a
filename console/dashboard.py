"""The dashboard: how the service is doing, as ECharts charts fed by one JSON endpoint.

- cases per category per day (by the day they were opened, Asia/Shanghai);
- the median hours from opening to accepted, and to resolved or closed, per day;
- overdue cases (open longer than ``cases.OVERDUE_AFTER``) per category;
- satisfaction: 满意 + 基本满意 over rated cases, with the unrated count beside it;
- the rate of messages nobody understood per day (recorded as ``nlu_fallback``; those
  the model could not place but a rule or the active step answered are recorded as
  ``nlu_fallback:taken`` and not counted), and the most frequent such messages (admin
  and staff only: they are residents' words from every community);
- handoff waiting times against the service level: handoffs claimed per day within
  and past their due time, the median wait beside the configured ``handoff_sla``, and
  how many still wait past it (admin and staff only: handoffs name no community).

Community and grid accounts see their own community's cases only.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from console.accounts import StaffMember
from console.cases import CATEGORIES, OVERDUE_AFTER, community_of
from console.web import Console, member, render, services
from handlers.pipeline import TAKEN_FALLBACK
from integration.cases import LOCAL_TZ
from integration.dispatch.ratings import RatingSummary, Score
from integration.lifecycle import OPEN
from integration.models import (
    Case,
    CaseEvent,
    CaseStatus,
    Direction,
    Handoff,
    HandoffStatus,
    Message,
    Rating,
    utcnow,
)
from nlu.types import FALLBACK_INTENT

DAYS = (7, 30, 90)
TOP_UNRECOGNISED = 10


def _day(moment: datetime) -> date:
    return moment.astimezone(LOCAL_TZ).date()


def _mine(who: StaffMember, address: str) -> bool:
    return who.sees_community(community_of(address))


async def dashboard_data(request: web.Request) -> web.Response:
    """Every chart's data for the last ``days`` days."""
    who = member(request)
    asked = request.query.get("days", "30")
    days = int(asked) if asked.isdigit() and int(asked) in DAYS else 30
    now = utcnow()
    today = _day(now)
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), LOCAL_TZ)
    labels = [(first + timedelta(days=i)) for i in range(days)]
    sessions = services(request).sessions
    async with sessions() as session:
        cases = [
            row
            for row in (
                await session.execute(
                    select(Case.id, Case.category, Case.address, Case.created_at).where(
                        Case.created_at >= since
                    )
                )
            ).all()
            if _mine(who, row.address)
        ]
        reached = (
            await session.execute(
                select(CaseEvent.case_id, CaseEvent.status, func.min(CaseEvent.created_at))
                .join(Case, Case.id == CaseEvent.case_id)
                .where(Case.created_at >= since)
                .where(
                    CaseEvent.status.in_(
                        [
                            CaseStatus.accepted.value,
                            CaseStatus.resolved.value,
                            CaseStatus.closed.value,
                        ]
                    )
                )
                .group_by(CaseEvent.case_id, CaseEvent.status)
            )
        ).all()
        overdue_rows = (
            await session.execute(
                select(Case.category, Case.address).where(
                    Case.status.in_([s.value for s in OPEN]),
                    Case.created_at < now - OVERDUE_AFTER,
                )
            )
        ).all()
        rating_rows = (
            await session.execute(
                select(Rating.score, Case.address)
                .join(Case, Case.id == Rating.case_id)
                .where(Rating.asked_at >= since)
            )
        ).all()
        nlu: dict[str, Any] | None = None
        handoffs: dict[str, Any] | None = None
        if not who.scoped:
            nlu = await _nlu(session, since, labels)
            sla = services(request).settings.handoff_sla
            handoffs = await _handoffs(session, since, labels, now, sla)

    per_day: dict[str, list[int]] = {c: [0] * days for c in CATEGORIES}
    created: dict[int, datetime] = {}
    for row in cases:
        index = (_day(row.created_at) - first).days
        per_day.setdefault(row.category, [0] * days)[index] += 1
        created[row.id] = row.created_at
    accepted: dict[date, list[float]] = defaultdict(list)
    finished: dict[int, datetime] = {}
    for case_id, status, at in reached:
        if case_id not in created:
            continue
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if status == CaseStatus.accepted.value:
            accepted[_day(created[case_id])].append(_hours(created[case_id], at))
        else:
            finished[case_id] = min(at, finished.get(case_id, at))
    closed: dict[date, list[float]] = defaultdict(list)
    for case_id, at in finished.items():
        closed[_day(created[case_id])].append(_hours(created[case_id], at))
    overdue = Counter(row.category for row in overdue_rows if _mine(who, row.address))
    scores = Counter(row.score for row in rating_rows if _mine(who, row.address))
    answered = sum(n for score, n in scores.items() if score is not None)
    ratings = RatingSummary(
        asked=sum(scores.values()),
        answered=answered,
        satisfied=scores.get(Score.satisfied.value, 0),
        basically=scores.get(Score.basically.value, 0),
        dissatisfied=scores.get(Score.dissatisfied.value, 0),
    )
    catalog = services(request).catalog
    return web.json_response(
        {
            "days": [d.isoformat() for d in labels],
            "categories": [
                {"key": c, "name": catalog.get(f"category.{c}", c), "counts": counts}
                for c, counts in per_day.items()
                if any(counts)
            ],
            "median_hours": {
                "accept": [_median(accepted.get(d)) for d in labels],
                "close": [_median(closed.get(d)) for d in labels],
            },
            "overdue": [
                {"name": catalog.get(f"category.{c}", c), "count": n}
                for c, n in overdue.most_common()
            ],
            "overdue_total": sum(overdue.values()),
            "satisfaction": {
                "satisfied": ratings.satisfied,
                "basically": ratings.basically,
                "dissatisfied": ratings.dissatisfied,
                "rated": ratings.answered,
                "unrated": ratings.asked - ratings.answered,
                "rate": ratings.satisfaction,
            },
            "nlu": nlu,
            "handoffs": handoffs,
        }
    )


async def _nlu(session: Any, since: datetime, labels: list[date]) -> dict[str, Any]:
    """The fallback rate per day, and the messages most often not understood."""
    rows = (
        await session.execute(
            select(Message.created_at, Message.intent).where(
                Message.direction == Direction.inbound.value,
                Message.intent.is_not(None),
                Message.created_at >= since,
            )
        )
    ).all()
    total: Counter[date] = Counter()
    fallback: Counter[date] = Counter()
    taken = 0
    for at, intent in rows:
        day = _day(at)
        total[day] += 1
        fallback[day] += intent == FALLBACK_INTENT  # nothing answered it
        taken += intent == TAKEN_FALLBACK  # a rule or the active step answered it
    top = (
        await session.execute(
            select(Message.text, func.count().label("n"))
            .where(
                Message.direction == Direction.inbound.value,
                Message.intent == FALLBACK_INTENT,
                Message.created_at >= since,
            )
            .group_by(Message.text)
            .order_by(func.count().desc(), Message.text)
            .limit(TOP_UNRECOGNISED)
        )
    ).all()
    understood = sum(total.values())
    return {
        "rate": [round(fallback[d] / total[d], 4) if total[d] else None for d in labels],
        "overall": round(sum(fallback.values()) / understood, 4) if understood else None,
        "messages": understood,
        "unrecognised": sum(fallback.values()),
        "taken": taken,
        "top": [{"text": text[:60], "count": int(n)} for text, n in top],
    }


async def _handoffs(
    session: Any, since: datetime, labels: list[date], now: datetime, sla: float
) -> dict[str, Any]:
    """Handoffs claimed per day within and past their service level, the median wait
    (minutes) per day, and those still waiting past it.

    Each handoff's own due time is its service level: ``sla`` seconds after it opened in
    office hours, the promised answer time off hours.
    """
    rows = (
        await session.execute(
            select(Handoff.opened_at, Handoff.claimed_at, Handoff.sla_due).where(
                Handoff.claimed_at.is_not(None), Handoff.opened_at >= since
            )
        )
    ).all()
    index = {day: i for i, day in enumerate(labels)}
    within = [0] * len(labels)
    late = [0] * len(labels)
    waits: dict[date, list[float]] = defaultdict(list)
    for opened, claimed, due in rows:
        day = _day(opened)
        if day not in index:
            continue
        (within if claimed <= due else late)[index[day]] += 1
        waits[day].append(_hours(opened, claimed) * 60)
    waiting_late = await session.scalar(
        select(func.count())
        .select_from(Handoff)
        .where(Handoff.status == HandoffStatus.waiting.value, Handoff.sla_due < now)
    )
    return {
        "within": within,
        "late": late,
        "median_wait": [_median(waits.get(d)) for d in labels],
        "sla_minutes": round(sla / 60, 2),
        "claimed": sum(within) + sum(late),
        "on_time": sum(within),
        "waiting_late": int(waiting_late or 0),
    }


def _hours(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 3600)


def _median(values: list[float] | None) -> float | None:
    return round(statistics.median(values), 2) if values else None


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    return render(request, "dashboard.html", {"choices": DAYS})


def install(console: Console) -> None:
    """The dashboard page and its data."""
    console.add_routes(
        [
            web.get("/dashboard", dashboard_page),
            web.get("/dashboard/data", dashboard_data),
        ]
    )
    console.add_page("dashboard", "数据看板", "/console/dashboard")
