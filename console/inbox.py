"""The inbox: conversations waiting for a person, live; claim, read, reply, hand back.

The waiting list is pushed over a WebSocket (``/console/inbox/live``, authenticated by
the session cookie like every console URL) once a second from the database, so it is
right whichever worker took the message: each row with how long it has waited and the
flag when it is over the service level. With ``?handoff=ID`` the socket also carries
that conversation's transcript, with the model's intent and confidence of every line.

Staff actions go through ``bots.handoff_desk.StaffDesk`` and are audited, one entry
each. Only admin and staff accounts see the inbox: a handoff belongs to no community.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import select

from bots.handoff_desk import OutsideWindow, StaffDesk
from console.accounts import StaffRole
from console.web import (
    Console,
    audit,
    intent_name,
    member,
    render,
    require_role,
    see_other,
    services,
)
from handlers.catalog import Catalog
from handlers.handoff_alarms import reason_label
from integration.handoff import HandoffError, HandoffView, Line, conversation_lines
from integration.models import Resident
from integration.privacy import mask
from integration.services import ServiceCatalogue, load_catalogue

DESK = (StaffRole.admin, StaffRole.staff)
LIVE_INTERVAL = 1.0  # seconds between two pushes of the list
CANNED = ("greeting", "materials", "case", "closing")
_VARIABLE = re.compile(r"\{(name|case|materials)\}")
CATALOGUE: web.AppKey[ServiceCatalogue] = web.AppKey("inbox.catalogue", ServiceCatalogue)


def install(console: Console) -> None:
    """The inbox's routes and nav slot."""
    console.app[CATALOGUE] = load_catalogue(console.settings.service_catalogue)
    console.add_routes(
        [
            web.get("/inbox", inbox_page, name="inbox"),
            web.get("/inbox/live", live),
            web.post("/inbox/take", take_over),
            web.post("/inbox/duty", duty),
            web.post("/inbox/link", link),
            web.get(r"/inbox/{id:\d+}", conversation_page),
            web.post(r"/inbox/{id:\d+}/claim", claim),
            web.post(r"/inbox/{id:\d+}/reply", reply),
            web.post(r"/inbox/{id:\d+}/release", hand_back),
            web.post(r"/inbox/{id:\d+}/close", close),
        ]
    )
    console.add_page("inbox", "待接入", "/console/inbox", roles=set(DESK))


def desk(request: web.Request) -> StaffDesk:
    """The staff actions over the running Yimen's stores."""
    found = services(request)
    if found.pipeline is None:
        raise web.HTTPServiceUnavailable(text="no conversation pipeline in this process")
    return StaffDesk(found.handoffs, found.pipeline, found.sessions, found.catalog)


def row(request: web.Request, handoff: HandoffView, now: datetime) -> dict[str, Any]:
    """One handoff as the list shows it (JSON-ready)."""
    t = services(request).catalog
    return {
        "id": handoff.id,
        "channel": t.get(f"handoff.channel.{handoff.channel}", handoff.channel),
        "chat": mask(handoff.chat_id),
        "status": handoff.status.value,
        "claimed_by": handoff.claimed_by,
        "reason": reason_label(t, handoff.reason, handoff.detail),
        "waited": int(handoff.waited(now).total_seconds()),
        "overdue": handoff.overdue(now),
        "alarmed": handoff.alarmed,
        "promised": handoff.promised_at.isoformat() if handoff.promised_at else "",
    }


def line_json(line: Line, t: Catalog) -> dict[str, Any]:
    """One transcript line (JSON-ready), its intent also as staff read it."""
    return {
        "who": line.who,
        "text": line.text,
        "at": line.at.isoformat(),
        "intent": line.intent or "",
        "intent_name": intent_name(t, line.intent) if line.intent else "",
        "confidence": round(line.confidence, 2) if line.confidence is not None else None,
        "media": list(line.media),
        "location": line.location,
        "state": line.state,
    }


@require_role(*DESK)
async def inbox_page(request: web.Request) -> web.StreamResponse:
    """The list (filled and kept live by console/static/inbox.js)."""
    return await _inbox(request)


async def _inbox(request: web.Request, code: str = "") -> web.StreamResponse:
    now = datetime.now(UTC)
    book = services(request).handoffs
    rows = [row(request, h, now) for h in await book.open_list()]
    duty = await book.on_duty()
    return render(
        request,
        "inbox.html",
        {
            "rows": rows,
            "duty": duty,
            "code": code,
            "error": request.query.get("error", ""),
            "sla_minutes": int(book.sla.total_seconds() // 60),
        },
    )


@require_role(*DESK)
async def live(request: web.Request) -> web.StreamResponse:
    """The list, and one conversation's lines with ``?handoff=ID``, pushed each second."""
    socket = web.WebSocketResponse(heartbeat=30.0)
    await socket.prepare(request)
    book = services(request).handoffs
    watched = request.query.get("handoff", "")
    reader = asyncio.create_task(_drain(socket))
    sent: Any = None
    try:
        while not socket.closed and not reader.done():
            now = datetime.now(UTC)
            payload: dict[str, Any] = {
                "rows": [row(request, h, now) for h in await book.open_list()]
            }
            if watched.isdigit():
                with contextlib.suppress(HandoffError):
                    handoff = await book.get(int(watched))
                    lines = await conversation_lines(
                        services(request).sessions, handoff.channel, handoff.chat_id, 100
                    )
                    t = services(request).catalog
                    payload["lines"] = [line_json(line, t) for line in lines]
                    payload["status"] = handoff.status.value
            if payload != sent:
                await socket.send_json(payload)
                sent = payload
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVE_INTERVAL):
                    await asyncio.shield(reader)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        reader.cancel()
        await socket.close()
    return socket


async def _drain(socket: web.WebSocketResponse) -> None:
    """Read (and ignore) what the page sends, until it goes away."""
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _handoff(request: web.Request) -> HandoffView:
    try:
        return await services(request).handoffs.get(int(request.match_info["id"]))
    except HandoffError:
        raise web.HTTPNotFound(text="no such conversation") from None


@require_role(*DESK)
async def conversation_page(request: web.Request) -> web.StreamResponse:
    """One handed-over conversation: transcript, reply with canned texts, hand back."""
    handoff = await _handoff(request)
    found = services(request)
    lines = await conversation_lines(found.sessions, handoff.channel, handoff.chat_id, 100)
    window = await desk(request).window_open(handoff)
    t = found.catalog
    return render(
        request,
        "inbox_conversation.html",
        {
            "h": row(request, handoff, datetime.now(UTC)),
            "handoff": handoff,
            "lines": lines,
            "mine": handoff.claimed_by == member(request).username,
            "window": window,
            "canned": [(key, t(f"handoff.canned.{key}")) for key in CANNED],
            "services": sorted((s.id, s.name) for s in request.app[CATALOGUE].services.values()),
            "error": request.query.get("error", ""),
        },
    )


async def _fill(request: web.Request, handoff: HandoffView, text: str, service: str) -> str:
    """Fill {name}, {case} and {materials} in a reply (canned or typed)."""
    if not _VARIABLE.search(text):
        return text
    found = services(request)
    t = found.catalog
    async with found.sessions() as session:
        name = await session.scalar(
            select(Resident.display_name).where(
                Resident.channel == handoff.channel, Resident.external_id == handoff.user_id
            )
        )
    cases = await found.cases.open_cases(handoff.channel, handoff.user_id)
    chosen = request.app[CATALOGUE].services.get(service)
    values = {
        "name": name or t("handoff.canned_no_name"),
        "case": cases[0].number if cases else t("handoff.canned_no_case"),
        "materials": "、".join(chosen.materials) if chosen else t("handoff.canned_no_service"),
    }
    return _VARIABLE.sub(lambda m: values[m.group(1)], text)


@require_role(*DESK)
async def claim(request: web.Request) -> web.StreamResponse:
    """Take a waiting conversation."""
    handoff = await _handoff(request)
    try:
        claimed = await desk(request).claim(handoff.id, member(request).username)
    except HandoffError:
        return see_other(f"/console/inbox/{handoff.id}?error=taken")
    await audit(
        request,
        "handoff.claim",
        f"handoff:{handoff.id}",
        {"status": handoff.status.value, "claimed_by": handoff.claimed_by},
        {"status": claimed.status.value, "claimed_by": claimed.claimed_by},
    )
    return see_other(f"/console/inbox/{handoff.id}")


@require_role(*DESK)
async def reply(request: web.Request) -> web.StreamResponse:
    """Send a reply on the resident's channel (refused outside WeChat's window)."""
    handoff = await _handoff(request)
    form = await request.post()
    text = await _fill(request, handoff, str(form.get("text", "")), str(form.get("service", "")))
    try:
        await desk(request).reply(handoff.id, member(request).username, text)
    except OutsideWindow:
        await audit(request, "handoff.reply_refused", f"handoff:{handoff.id}", None, {"text": text})
        return see_other(f"/console/inbox/{handoff.id}?error=window")
    except HandoffError:
        return see_other(f"/console/inbox/{handoff.id}?error=not_yours")
    await audit(request, "handoff.reply", f"handoff:{handoff.id}", None, {"text": text})
    return see_other(f"/console/inbox/{handoff.id}")


async def _end(request: web.Request, how: str) -> web.StreamResponse:
    handoff = await _handoff(request)
    staff = desk(request)
    action = staff.hand_back if how == "release" else staff.close
    try:
        ended = await action(handoff.id, member(request).username)
    except HandoffError:
        return see_other(f"/console/inbox/{handoff.id}?error=not_yours")
    await audit(
        request,
        f"handoff.{how}",
        f"handoff:{handoff.id}",
        {"status": handoff.status.value},
        {"status": ended.status.value},
    )
    return see_other("/console/inbox")


@require_role(*DESK)
async def hand_back(request: web.Request) -> web.StreamResponse:
    """Hand the conversation back to the bot: the paused flow resumes."""
    return await _end(request, "release")


@require_role(*DESK)
async def close(request: web.Request) -> web.StreamResponse:
    """Close the conversation: dealt with."""
    return await _end(request, "close")


@require_role(*DESK)
async def take_over(request: web.Request) -> web.StreamResponse:
    """Take a conversation the bot is having, by channel and chat id."""
    form = await request.post()
    channel, chat_id = str(form.get("channel", "")).strip(), str(form.get("chat_id", "")).strip()
    if not channel or not chat_id:
        return see_other("/console/inbox?error=take")
    taken = await desk(request).take_over(channel, chat_id, chat_id, member(request).username)
    await audit(request, "handoff.take_over", f"handoff:{taken.id}", None, {"channel": channel})
    return see_other(f"/console/inbox/{taken.id}")


@require_role(*DESK)
async def duty(request: web.Request) -> web.StreamResponse:
    """Put the signed-in member on duty: alarms go to their linked chat."""
    book = services(request).handoffs
    before = await book.on_duty()
    await book.set_duty(member(request).username)
    await audit(
        request,
        "handoff.duty",
        member(request).username,
        {"on_duty": before[0] if before else ""},
        {"on_duty": member(request).username},
    )
    return see_other("/console/inbox")


@require_role(*DESK, StaffRole.grid)
async def link(request: web.Request) -> web.StreamResponse:
    """A one-time code to link the member's own chat (sent there as 绑定<code>).

    Grid workers (who have no inbox) get it on a page of its own; their linked chat
    files reports with their grid id and closes their cases (integration.grid).
    """
    who = member(request)
    code = await services(request).handoffs.link_code(who.username)
    await audit(request, "handoff.link_code", who.username)
    if who.role == StaffRole.grid:
        return render(request, "grid_link.html", {"code": code})
    return await _inbox(request, code)
