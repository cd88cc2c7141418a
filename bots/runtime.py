"""The composition root: builds every long-lived object from Settings, and closes them.

Everything else receives what it needs as constructor arguments; only this module
knows which implementation (SQLite or PostgreSQL, memory or Redis) is in use.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bots.media import MediaLimits, MediaStore
from bots.settings import Settings
from handlers.catalog import Catalog
from handlers.flows import standard_flows
from handlers.flows.volunteer_steps import VolunteerDesk
from handlers.nlu_guard import BoundedInterpreter
from handlers.patience import Patience
from handlers.pipeline import Limits, Pipeline
from handlers.router import Router
from handlers.state import ConversationStore
from integration.appointments import AppointmentBook
from integration.cases import CaseBook
from integration.claims import ClaimBook
from integration.contacts import ContactBook
from integration.db import check_exists, create_engine, session_factory, upgrade
from integration.dispatch import Dispatch, DispatchConfig, WorkerTiming, open_dispatch
from integration.dispatch.open311 import Locate, Place
from integration.dispatch.ratings import RatingBook
from integration.grid import GridBook
from integration.handoff import HandoffBook
from integration.handoff_hours import StaffHours
from integration.items import ItemBook
from integration.notifications import NotificationQueue
from integration.services import load_catalogue
from integration.state import (
    KeyBuilder,
    MemoryConversationStore,
    RedisClient,
    RedisConversationStore,
    Timing,
    open_redis,
)
from integration.state.throttle import MemoryThrottle, RedisThrottle, Throttle
from integration.transcript import Transcript
from integration.under_way import UnderWayBook
from integration.uploads import UploadBook
from integration.volunteer_report import VolunteerRecords
from integration.volunteers import VolunteerBook
from nlu.gazetteer import Gazetteer
from nlu.types import Interpreter

log = logging.getLogger(__name__)
# What the centre of all the gazetteer's communities is called, for a platform's staff
# (see ``place_for``): the district the street offices serve.
DISTRICT = "本辖区"


@dataclass(slots=True)
class Services:
    """The objects one Yimen process shares between its channels and workers."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: RedisClient | None
    catalog: Catalog
    cases: CaseBook
    transcript: Transcript
    notifications: NotificationQueue
    pipeline: Pipeline | None  # None when opened without NLU (staff commands)
    dispatch: Dispatch  # the platform, its outbox worker, status sync and ratings
    media: MediaStore  # residents' photos: kept, checked, served and swept
    throttle: Throttle  # the channels' own counters (per connection, per address)
    keys: KeyBuilder
    handoffs: HandoffBook  # conversations handed to a person (the console's inbox)
    # The NLU backend itself, not the BoundedInterpreter around it that the pipeline
    # calls: /readyz asks it whether Rasa answers (None when opened without NLU).
    nlu: Interpreter | None = None

    async def health(self) -> dict[str, str]:
        """Reachability of the database and, when configured, Redis."""
        report: dict[str, str] = {}
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            report["database"] = "ok"
        except Exception as exc:
            report["database"] = f"error: {type(exc).__name__}"
        if self.redis is not None:
            try:
                await self.redis.ping()
                report["redis"] = "ok"
            except Exception as exc:
                report["redis"] = f"error: {type(exc).__name__}"
        return report


def load_embedded(settings: Settings) -> Interpreter:
    """The embedded NLU backend, with its model loaded (or trained) once.

    Imported here, not at the top: scikit-learn and jieba take seconds to import, and
    staff commands such as `yimen cases list` never need them.
    """
    from bots.progress import TrainingReport
    from nlu.embedded import EmbeddedInterpreter, load_or_train
    from nlu.entities import EntityExtractor
    from nlu.training_data import load as load_training_data

    with TrainingReport() as report:
        model = load_or_train(
            settings.model_dir,
            search=(settings.data_dir / "models",),
            progress=report.step,
            found=report.found,
        )
    extractor = EntityExtractor.from_training_data(load_training_data())
    return EmbeddedInterpreter(
        model, extractor, threshold=settings.nlu_threshold, margin=settings.nlu_margin
    )


async def open_interpreter(settings: Settings, stack: AsyncExitStack) -> Interpreter:
    """The configured NLU backend; Rasa always has the embedded model behind it."""
    # Training or unpickling takes a while: keep it off the event loop.
    embedded = await asyncio.to_thread(load_embedded, settings)
    if settings.nlu_backend == "embedded":
        return embedded
    from nlu.rasa_client import FallbackInterpreter, RasaInterpreter

    rasa = RasaInterpreter(
        settings.rasa_url,
        token=settings.rasa_token or None,
        timeout=settings.rasa_timeout,
        threshold=settings.nlu_threshold,
        margin=settings.nlu_margin,
    )
    stack.push_async_callback(rasa.close)
    return FallbackInterpreter(rasa, embedded)


@asynccontextmanager
async def open_services(
    settings: Settings, *, with_nlu: bool = True, create: bool = True
) -> AsyncIterator[Services]:
    """Build, migrate and connect everything; close it all on exit.

    With ``create=False`` (staff commands) a database that does not exist yet is not
    created: ``DatabaseMissing`` is raised instead.
    """
    if not create:
        await check_exists(settings.resolved_database_url)
    async with AsyncExitStack() as stack:
        engine = create_engine(
            settings.resolved_database_url, pool_size=settings.database_pool_size
        )
        stack.push_async_callback(engine.dispose)
        redis = (
            open_redis(settings.redis_url, cluster=settings.redis_cluster)
            if settings.redis_url
            else None
        )
        if redis is not None:
            stack.push_async_callback(redis.aclose)
        await upgrade(engine)
        sessions = session_factory(engine)
        catalog = Catalog.load()
        gazetteer = Gazetteer.load()
        dispatch = await open_dispatch(
            dispatch_config(settings), sessions, stack, locate=_locator(gazetteer)
        )
        cases = CaseBook(
            sessions, platform=dispatch.platform.name, can_urge=dispatch.platform.can_urge
        )
        transcript = Transcript(sessions)
        handoffs = handoff_book(settings, sessions)
        throttle: Throttle = RedisThrottle(redis) if redis is not None else MemoryThrottle()
        pipeline = None
        backend: Interpreter | None = None
        if with_nlu:
            backend = await open_interpreter(settings, stack)
            bounded = BoundedInterpreter(
                backend,
                inline_chars=settings.nlu_inline_chars,
                max_chars=settings.nlu_max_chars,
            )
            stack.callback(bounded.close)
            interpreter: Interpreter = bounded
            pipeline = build_pipeline(
                settings,
                redis,
                interpreter,
                cases,
                transcript,
                catalog,
                dispatch.ratings,
                handoffs=handoffs,
                throttle=throttle,
            )
        settle_heap()
        sys.setswitchinterval(SWITCH_INTERVAL)
        yield Services(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            catalog=catalog,
            cases=cases,
            transcript=transcript,
            notifications=NotificationQueue(sessions),
            pipeline=pipeline,
            dispatch=dispatch,
            media=MediaStore(settings.media_dir, UploadBook(sessions), media_limits(settings)),
            throttle=throttle,
            keys=KeyBuilder(settings.redis_prefix),
            handoffs=handoffs,
            nlu=backend,
        )


def handoff_book(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> HandoffBook:
    """The handoff records, with staff hours over the service calendar's holidays."""
    calendar = load_catalogue(settings.service_catalogue).calendar
    return HandoffBook(
        sessions,
        StaffHours.parse(settings.handoff_hours, calendar),
        timedelta(seconds=settings.handoff_sla),
    )


def media_limits(settings: Settings) -> MediaLimits:
    """What one photo, and one sender in a day, may take."""
    return MediaLimits(
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        daily_count=settings.upload_daily_count,
        daily_bytes=settings.upload_daily_bytes,
        ttl=settings.upload_ttl,
    )


def dispatch_config(settings: Settings) -> DispatchConfig:
    """The dispatch package's configuration from the YIMEN_* settings."""
    if settings.dispatch_lease <= settings.dispatch_timeout:
        # A lease shorter than a request would let a second worker send the same case.
        raise ValueError("YIMEN_DISPATCH_LEASE must be longer than YIMEN_DISPATCH_TIMEOUT")
    return DispatchConfig(
        platform=settings.dispatch,
        open311_url=settings.open311_url,
        open311_api_key=settings.open311_api_key,
        open311_jurisdiction=settings.open311_jurisdiction,
        open311_format=settings.open311_format,
        open311_map=settings.open311_map,
        url=settings.dispatch_url,
        secret=settings.dispatch_secret,
        callback_url=settings.dispatch_callback_url,
        timeout=settings.dispatch_timeout,
        callback_tolerance=settings.dispatch_callback_tolerance,
        timing=WorkerTiming(
            batch=settings.dispatch_batch,
            concurrency=settings.dispatch_concurrency,
            lease=settings.dispatch_lease,
            backoff=settings.dispatch_backoff,
            backoff_max=settings.dispatch_backoff_max,
            max_attempts=settings.dispatch_max_attempts,
            poll_interval=settings.dispatch_poll_interval,
            status_interval=settings.dispatch_status_interval,
            reminder_after=settings.rating_reminder_after,
        ),
    )


def _locator(gazetteer: Gazetteer) -> Locate:
    """Coordinates for a typed address, for platforms that need them (see ``place_for``)."""
    return functools.partial(place_for, gazetteer)


def place_for(gazetteer: Gazetteer, address: str) -> Place | None:
    """The best coordinates the gazetteer knows for a typed address, never exact.

    The centre of the community it names; else of the street (街道) it names; else of
    the whole district, so that a platform that needs coordinates still takes the
    case, with the address as the truth. ``near`` says which, for the platform's staff.
    """
    if not address.strip():
        return None
    community = gazetteer.locate(address)
    if community is not None:
        return Place(community.latitude, community.longitude, community.name)
    communities = list(gazetteer)
    streets = {c.street for c in communities if c.street in address}
    if streets:
        street = max(streets, key=len)
        communities = [c for c in communities if c.street == street]
        near = street
    else:
        near = DISTRICT
    if not communities:
        return None
    return Place(
        round(statistics.fmean(c.latitude for c in communities), 6),
        round(statistics.fmean(c.longitude for c in communities), 6),
        near,
    )


def build_pipeline(
    settings: Settings,
    redis: RedisClient | None,
    interpreter: Interpreter,
    cases: CaseBook,
    transcript: Transcript,
    catalog: Catalog,
    ratings: RatingBook | None = None,
    *,
    handoffs: HandoffBook | None = None,
    throttle: Throttle | None = None,
) -> Pipeline:
    """Wire the pipeline, its flows and its shared state.

    Reads and validates the service catalogue: a broken one raises ``CatalogueError``
    (file:line: field), so the server does not start with it.
    """
    timing = Timing(rate_window=settings.rate_window, state_ttl=settings.state_ttl)
    store: ConversationStore = (
        RedisConversationStore(redis, timing)
        if redis is not None
        else MemoryConversationStore(timing)
    )
    services = load_catalogue(settings.service_catalogue)
    appointments = AppointmentBook(cases.sessions)
    contacts = ContactBook(cases.sessions)
    items = ItemBook(cases.sessions)
    gazetteer = Gazetteer.load()
    volunteers = VolunteerDesk(
        VolunteerBook(cases.sessions),
        items,
        ClaimBook(cases.sessions),
        VolunteerRecords(cases.sessions),
        gazetteer,
    )
    flows = standard_flows(
        cases,
        catalog,
        gazetteer,
        ratings,
        services,
        appointments,
        contacts,
        items,
        handoffs or handoff_book(settings, cases.sessions),
        volunteers,
        reminder_hour=settings.appointment_reminder_hour,
        grid=GridBook(cases),
        under_way=UnderWayBook(cases.sessions, appointments, items),
    )
    return Pipeline(
        store=store,
        transcript=transcript,
        interpreter=interpreter,
        router=Router(flows, catalog, patience=Patience(quiet_for=settings.quiet_period)),
        catalog=catalog,
        keys=KeyBuilder(settings.redis_prefix),
        limits=Limits(
            max_text=settings.max_text_length,
            rate_limit=settings.rate_limit,
            repeat_limit=settings.repeat_limit,
            repeat_window=settings.rate_window,
        ),
        throttle=throttle,
    )


async def finish(tasks: Sequence[asyncio.Task[Any]], grace: float = 5.0) -> None:
    """Wait for background tasks already told to stop; cancel only those stuck past ``grace``.

    Cancelling a task in the middle of a query strands its pooled connection, so the
    pump and the worker are asked to stop and given time to finish the step in hand.
    """
    await asyncio.wait(tasks, timeout=grace)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task


# How long a thread that wants the GIL may wait for a busy one to give it up (Python's
# default is 5 ms). aiosqlite runs the embedded default's statements on its own thread,
# and every statement's result needs the GIL there: on a busy loop each hand-off could
# wait the whole interval. Measured on the embedded defaults (README, "The embedded
# defaults: SQLite in one hand-off"): p99 33-69 ms with 5 ms, 33-49 ms with 1 ms.
SWITCH_INTERVAL = 0.001


def settle_heap() -> None:
    """Take what is loaded for good out of the garbage collector's sight.

    The NLU model's vocabularies, jieba's dictionary and the rest are some 400,000
    objects that live as long as the process. Every full collection would walk them
    all: about 120 ms on the 2-core machine, a stall that every resident waiting at
    that moment feels. One collection now, then ``gc.freeze``, and later collections
    only look at what the conversations allocate.
    """
    gc.collect()
    gc.freeze()
