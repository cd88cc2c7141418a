"""Multi-turn resident scenarios, as data, through the real pipeline and NLU model.

Every ``tests/dialogues/*.yml`` file is one scenario, played through the Pipeline the
channels use (built by bots.runtime.build_pipeline, with the session's trained
embedded model) on SQLite with in-process state and on PostgreSQL with Redis. The
format is described in tests/dialogues/README.md. Nothing here sets an intent: what
the resident types is what the model reads.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.runtime import build_pipeline
from bots.settings import Settings
from console.accounts import AccountBook
from handlers.catalog import Catalog
from handlers.messages import Button, Inbound, Location, Media, Outbound
from handlers.pipeline import Pipeline
from integration.cases import CaseBook, CaseDraft
from integration.db import create_engine, session_factory, upgrade
from integration.dispatch.ratings import RatingBook
from integration.items import ItemBook, ItemPost, Window
from integration.models import (
    Case,
    CaseFollower,
    CaseStatus,
    CaseUrge,
    Direction,
    Message,
    Rating,
    StaffChat,
    StaffRole,
)
from integration.transcript import Transcript
from integration.volunteers import VolunteerBook
from nlu.embedded import EmbeddedInterpreter

DIALOGUES = Path(__file__).parent / "dialogues"
CHANNEL, RESIDENT = "webchat", "resident-1"
_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_ids = itertools.count()


def load(path: Path) -> dict[str, Any]:
    """One scenario script."""
    script: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return script


def scenarios() -> list[Any]:
    """Every scenario; one that names a ``model_issue`` is expected to fail until the
    NLU model gets that message right (listed as XPASS by -ra once it does)."""
    params = []
    for path in sorted(DIALOGUES.glob("*.yml")):
        issue = load(path).get("model_issue")
        marks = [pytest.mark.xfail(reason=f"NLU: {issue}", strict=False)] if issue else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


@dataclass
class World:
    """One scenario's pipeline, stores and clock."""

    pipeline: Pipeline
    sessions: async_sessionmaker[AsyncSession]
    catalog: Catalog
    cases: dict[str, str] = field(default_factory=dict)  # setup name -> case number
    clock: datetime = field(default_factory=lambda: datetime.now(UTC))
    buttons: tuple[Button, ...] = ()


@pytest.fixture
async def world(
    backend: dict[str, Any],
    tmp_path: Path,
    interpreter: EmbeddedInterpreter,
    catalog: Catalog,
) -> AsyncIterator[World]:
    """SQLite with in-process state, or PostgreSQL with Redis (conftest's ``backend``)."""
    settings = Settings(data_dir=tmp_path, _env_file=None, **backend)  # type: ignore[call-arg]
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    engine = create_engine(settings.resolved_database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    pipeline = build_pipeline(
        settings,
        redis,
        interpreter,
        CaseBook(sessions),
        Transcript(sessions),
        catalog,
        RatingBook(sessions),
    )
    try:
        yield World(pipeline, sessions, catalog)
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


# --- setup ------------------------------------------------------------------------------------


async def set_up(world: World, setup: dict[str, Any]) -> None:
    """Open the cases a scenario starts with (the resident's, or someone else's), post
    the service items and issue the invitation codes it names."""
    book = CaseBook(world.sessions)
    for name, spec in (setup.get("cases") or {}).items():
        owner = spec.get("owner", RESIDENT)
        draft = CaseDraft(
            channel=CHANNEL,
            user_id=owner,
            chat_id=owner,
            category=spec["category"],
            description=spec["description"],
            address=spec["address"],
            latitude=spec.get("latitude"),
            longitude=spec.get("longitude"),
            grid=spec.get("grid", ""),
        )
        number = (await book.create_case(draft)).number
        for status in spec.get("statuses", []):
            await book.change_status(number, CaseStatus(status), spec.get("note", ""))
        world.cases[name] = number
    items = ItemBook(world.sessions)
    for name, spec in (setup.get("items") or {}).items():  # staff-posted service items
        start = datetime.fromisoformat(str(spec["start"]))
        post = ItemPost(
            spec.get("community", "金辉小区"),
            spec["title"],
            spec.get("description", ""),
            tuple(as_list(spec.get("skills", []))),
            Window(start, start + timedelta(hours=float(spec.get("hours", 2)))),
            spec.get("place", "金辉小区活动室"),
            int(spec.get("capacity", 1)),
        )
        world.cases[name] = str((await items.post(post)).id)
    volunteers = VolunteerBook(world.sessions)
    for name, community in (setup.get("invites") or {}).items():  # invitation codes
        world.cases[name] = (await volunteers.invite(community, "staff", world.clock))[0]
    if setup.get("grid_worker"):  # the scenario's chat is a linked grid worker's (网格员)
        grid = str(setup["grid_worker"])
        await AccountBook(world.sessions).create(
            "grid-worker", "grid-worker-password", StaffRole.grid, "金辉小区", grid
        )
        async with world.sessions.begin() as session:
            session.add(StaffChat(staff="grid-worker", channel=CHANNEL, chat_id=RESIDENT))


# --- one turn ---------------------------------------------------------------------------------


def inbound(world: World, step: dict[str, Any]) -> Inbound:
    """The message a scenario step sends."""
    world.clock += timedelta(seconds=float(step.get("after", 1)))
    text, payload = fill(world, str(step.get("say", ""))), ""
    if "press" in step:
        label = str(step["press"])
        found = [b for b in world.buttons if b.label == label]
        assert found, f"no button {label!r} among {[b.label for b in world.buttons]}"
        text, payload = label, found[0].payload
    location = None
    if "pin" in step:
        pin = step["pin"]
        location = Location(float(pin["latitude"]), float(pin["longitude"]), pin.get("label", ""))
    media = ()
    if step.get("photo"):
        name = f"/media/{next(_ids):08x}.jpg"
        media = (Media("image", name, name),)
    return Inbound(
        CHANNEL,
        RESIDENT,
        RESIDENT,
        f"dialogue-{next(_ids)}",
        text,
        location=location,
        media=media,
        payload=payload,
        time=world.clock,
    )


def fill(world: World, text: str) -> str:
    """``{name}`` in a scenario's text is the number of the setup case of that name."""
    return re.sub(r"\{(\w+)\}", lambda m: world.cases[m.group(1)], text)


def fragments(catalog: Catalog, key: str) -> list[str]:
    """The fixed parts of a catalogue text (what stays the same whatever fills it)."""
    return [part.strip() for part in _PLACEHOLDER.split(catalog(key)) if len(part.strip()) >= 2]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_replies(
    world: World, replies: list[Outbound], expect: dict[str, Any], where: str
) -> None:
    """The replies against a step's expectations."""
    text = "\n".join(r.text for r in replies)
    shown = f"{where}: replies were {text!r}"
    if expect.get("silent"):
        assert replies == [], shown
        return
    assert replies, f"{where}: no reply"
    for key in as_list(expect.get("keys", [])):
        for part in fragments(world.catalog, key):
            assert part in text, f"{shown}; missing {key} ({part!r})"
    for key in as_list(expect.get("not_keys", [])):
        parts = fragments(world.catalog, key)
        assert not all(p in text for p in parts), f"{shown}; unexpected {key}"
    for part in as_list(expect.get("reply", [])):
        assert fill(world, str(part)) in text, f"{shown}; missing {part!r}"
    for part in as_list(expect.get("not", [])):
        assert fill(world, str(part)) not in text, f"{shown}; unexpected {part!r}"
    labels = [b.label for b in replies[-1].buttons]
    for label in as_list(expect.get("buttons", [])):
        assert label in labels, f"{shown}; buttons {labels} lack {label!r}"
    for label in as_list(expect.get("not_buttons", [])):
        assert label not in labels, f"{shown}; buttons {labels} include {label!r}"


# --- the database after a step ----------------------------------------------------------------


async def check_store(world: World, expect: dict[str, Any], where: str) -> None:
    """Cases, ratings and the transcript against a step's (or the end's) expectations."""
    async with world.sessions() as session:
        mine = list(
            await session.scalars(
                select(Case).where(Case.chat_id == RESIDENT).order_by(Case.id.desc())
            )
        )
        if "cases" in expect:
            assert len(mine) == expect["cases"], f"{where}: {len(mine)} cases"
        if "case" in expect:
            assert mine, f"{where}: no case"
            check_case(mine[0], expect["case"], where)
        if "urges" in expect:
            urged = [
                await session.scalar(
                    select(func.count()).select_from(CaseUrge).where(CaseUrge.case_id == c.id)
                )
                for c in mine
            ]
            assert urged == expect["urges"], f"{where}: urges {urged}"
        for name, spec in (expect.get("setup_cases") or {}).items():
            row = await session.scalar(select(Case).where(Case.number == world.cases[name]))
            assert row is not None
            check_case(row, spec, f"{where} ({name})")
        for name, spec in (expect.get("rating") or {}).items():
            rating = await session.scalar(
                select(Rating)
                .join(Case, Case.id == Rating.case_id)
                .where(Case.number == world.cases[name])
                .order_by(Rating.id.desc())
            )
            assert rating is not None, f"{where}: no rating question for {name}"
            assert rating.score == spec.get("score"), f"{where}: score {rating.score}"
            for part in as_list(spec.get("comment_contains", [])):
                assert part in rating.comment, f"{where}: comment {rating.comment!r}"
        for name in as_list(expect.get("follows", [])):
            follower = await session.scalar(
                select(CaseFollower.id)
                .join(Case, Case.id == CaseFollower.case_id)
                .where(Case.number == world.cases[name], CaseFollower.chat_id == RESIDENT)
            )
            assert follower is not None, f"{where}: not following {name}"
        if "transcript_inbound" in expect or "transcript_lacks" in expect:
            texts = list(await session.scalars(select(Message.text).order_by(Message.id)))
            inbound = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.direction == Direction.inbound.value)
            )
            if "transcript_inbound" in expect:
                assert inbound == expect["transcript_inbound"], f"{where}: {inbound} stored"
            for part in as_list(expect.get("transcript_lacks", [])):
                assert all(part not in t for t in texts), f"{where}: {part!r} stored in clear"


def check_case(case: Case, spec: dict[str, Any], where: str) -> None:
    for name in ("category", "description", "address", "status", "grid"):
        if name in spec:
            assert getattr(case, name) == spec[name], f"{where}: {name} {getattr(case, name)!r}"
    for part in as_list(spec.get("description_contains", [])):
        assert part in case.description, f"{where}: description {case.description!r}"
    for name in ("latitude", "longitude"):
        if name in spec:
            wanted, actual = spec[name], getattr(case, name)
            if wanted == "none":
                assert actual is None, f"{where}: {name} {actual}"
            elif wanted == "any":
                assert actual is not None, f"{where}: no {name}"
            else:
                assert actual == pytest.approx(float(wanted)), f"{where}: {name} {actual}"


# --- the scenarios ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", scenarios())
async def test_dialogue(path: Path, world: World) -> None:
    script = load(path)
    if "clock" in script:  # a fixed start, for scenarios whose dates matter
        world.clock = datetime.fromisoformat(str(script["clock"])).astimezone(UTC)
    await set_up(world, script.get("setup") or {})
    for number, step in enumerate(script["turns"], 1):
        where = f"{path.stem} turn {number} ({step.get('say') or step.get('press') or 'pin/photo'})"
        if step.get("staff") == "release":  # staff hand the conversation back (the console)
            replies = await world.pipeline.release(CHANNEL, RESIDENT)
            check_replies(world, replies, step.get("expect") or {}, where)
            world.buttons = replies[-1].buttons if replies else ()
            continue
        for _ in range(int(step.get("repeat", 1))):
            replies = await world.pipeline.handle(inbound(world, step))
            assert replies is not None, f"{where}: treated as a duplicate"
            if replies:
                world.buttons = replies[-1].buttons
            if "last" not in step:
                check_replies(world, replies, step.get("expect") or {}, where)
        if "last" in step:  # a repeated message: only the last time is checked
            check_replies(world, replies, step["last"], where)
        await check_store(world, step.get("expect") or {}, where)
    await check_store(world, script.get("end") or {}, f"{path.stem} at the end")


# What a scenario may say: a misspelt expectation would otherwise check nothing.
_SCRIPT_KEYS = {"name", "clock", "setup", "turns", "end"}
_TURN_KEYS = {"say", "press", "photo", "pin", "after", "repeat", "staff", "expect", "last"}
_REPLY_KEYS = {"silent", "keys", "not_keys", "reply", "not", "buttons", "not_buttons"}
_STORE_KEYS = {"cases", "case", "urges", "setup_cases", "rating", "follows"}
_STORE_KEYS |= {"transcript_inbound", "transcript_lacks"}


@pytest.mark.parametrize("path", scenarios())
def test_scenario_names_only_known_checks(path: Path) -> None:
    script = load(path)
    assert set(script) <= _SCRIPT_KEYS, set(script) - _SCRIPT_KEYS
    assert set(script.get("end") or {}) <= _STORE_KEYS, script["end"]
    for step in script["turns"]:
        assert set(step) <= _TURN_KEYS, set(step) - _TURN_KEYS
        for expect in (step.get("expect") or {}, step.get("last") or {}):
            unknown = set(expect) - _REPLY_KEYS - _STORE_KEYS
            assert not unknown, f"{step.get('say')!r}: unknown checks {unknown}"


def test_there_are_at_least_twenty_scenarios() -> None:
    assert len(scenarios()) >= 20
