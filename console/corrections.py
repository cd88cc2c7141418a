"""Corrections that teach the model: staff fix a transcript message's intent or address.

Each correction is a row of ``nlu_corrections`` (the message's text, the right intent
and/or the address span as it appears in the text, who, when). `yimen nlu
export-corrections` writes them as Rasa NLU YAML, for a person to review and merge
into nlu/data. Admin and staff only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import yaml
from aiohttp import web
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console.audit import record
from console.web import Console, actor, member, require_role, see_other, services, text
from handlers.pipeline import TAKEN_FALLBACK
from integration.models import Conversation, Direction, Message, NluCorrection, StaffRole, utcnow
from nlu.contract import INTENTS
from nlu.types import FALLBACK_INTENT

ROLES = (StaffRole.admin, StaffRole.staff)
RASA_VERSION = "3.1"


@dataclass(frozen=True, slots=True)
class Correction:
    """The latest correction of one message."""

    message_id: int
    text: str
    intent: str | None
    address: str | None
    actor: str
    at: datetime


@require_role(*ROLES)
async def correct(request: web.Request) -> web.StreamResponse:
    """Record a correction of an inbound message; back to the page it came from."""
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    form = await request.post()
    intent = str(form.get("intent", "")).strip()
    address = str(form.get("address", "")).strip()
    back = str(form.get("back", ""))
    back = back if back.startswith("/console/cases/") and "//" not in back else "/console/cases"
    sessions = services(request).sessions
    async with sessions.begin() as session:
        row = (
            await session.execute(
                select(Message.id, Message.text, Message.intent, Conversation.chat_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.id == int(raw), Message.direction == Direction.inbound.value)
            )
        ).first()
        if row is None:
            raise web.HTTPNotFound()
        if intent and intent not in INTENTS:
            raise web.HTTPBadRequest(text=text(request, "corrections.bad_intent"))
        if address and address not in row.text:
            raise web.HTTPBadRequest(text=text(request, "corrections.bad_address"))
        if not intent and not address:
            raise web.HTTPBadRequest(text=text(request, "corrections.empty"))
        who = member(request)
        await session.execute(
            insert(NluCorrection).values(
                message_id=row.id,
                text=row.text,
                intent=intent or None,
                address=address or None,
                actor=who.username,
                created_at=utcnow(),
            )
        )
        await record(
            session,
            actor(request),
            "nlu.correct",
            f"message:{row.id}",
            before={"intent": row.intent},
            after={"intent": intent or None, "address": address or None},
        )
    return see_other(f"{back}?saved=1#m{row.id}")


async def latest(sessions: async_sessionmaker[AsyncSession]) -> list[Correction]:
    """Every corrected message's latest correction (oldest message first)."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(NluCorrection, Message.intent)
                .join(Message, Message.id == NluCorrection.message_id)
                .order_by(NluCorrection.id)
            )
        ).all()
    found: dict[int, Correction] = {}
    for correction, stored in rows:
        before = found.get(correction.message_id)
        found[correction.message_id] = Correction(
            correction.message_id,
            correction.text,
            correction.intent or (before.intent if before else None) or stored,
            correction.address or (before.address if before else None),
            correction.actor,
            correction.created_at,
        )
    return sorted(found.values(), key=lambda c: c.message_id)


def rasa_yaml(corrections: list[Correction]) -> tuple[str, int]:
    """Rasa 3.x NLU YAML of the corrections, by intent; and how many had no usable intent."""
    examples: dict[str, list[str]] = {}
    skipped = 0
    for item in corrections:
        if not item.intent or item.intent in (FALLBACK_INTENT, TAKEN_FALLBACK):
            skipped += 1
            continue
        line = " ".join(item.text.split())
        if item.address and item.address in line:
            line = line.replace(item.address, f"[{item.address}](address)", 1)
        examples.setdefault(item.intent, [])
        if line not in examples[item.intent]:
            examples[item.intent].append(line)
    document = {
        "version": RASA_VERSION,
        "nlu": [
            {"intent": intent, "examples": "".join(f"- {line}\n" for line in lines)}
            for intent, lines in sorted(examples.items())
        ],
    }
    return yaml.dump(document, Dumper=_Literal, allow_unicode=True, sort_keys=False), skipped


class _Literal(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks, as Rasa's own files are."""


def _literal(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Literal.add_representer(str, _literal)


def install(console: Console) -> None:
    """The correction form's target (the forms are on case pages)."""
    console.add_routes([web.post("/messages/{id}/correct", correct)])
