"""Database engines, sessions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Select, TypeDecorator, event, inspect
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util.concurrency import greenlet_spawn

from integration import sqlite_driver
from integration.errors import DatabaseMissing

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


POOL_SIZE = 20  # PostgreSQL connections a process keeps open


def create_engine(url: str, *, echo: bool = False, pool_size: int | None = None) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL, one connection, foreign keys and
    ``integration.sqlite_driver`` (one hand-off to aiosqlite's thread a statement).

    On PostgreSQL the pool keeps ``pool_size`` (by default ``POOL_SIZE``) connections
    open and opens up to half as many again for a burst, closing those as they come
    back. The kept ones should cover a worker's usual concurrency (turns under way, the
    transcript's group commit, the outbox and the push queue): a pool smaller than that
    opens and closes a connection (a TCP and TLS handshake, and a new server process)
    for many turns.
    """
    parsed = make_url(url)
    options: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 30}
        # SQLite has one writer at a time. A single pooled connection makes concurrent
        # transactions queue in the pool instead of busy-waiting on the file lock.
        options.update(pool_size=1, max_overflow=0, pool_timeout=60)
        if parsed.get_driver_name() == "aiosqlite":
            options["module"] = sqlite_driver.module()  # one thread hand-off a statement
    else:
        # No pool_pre_ping: under asyncpg it costs three round trips per checkout
        # (BEGIN, the ping, ROLLBACK), more than most turns' own statements. A connection
        # the server closed (restart, pg_terminate_backend) is known closed to asyncpg as
        # soon as the loop reads the socket's end, and ``_refuse_closed`` replaces it.
        kept = POOL_SIZE if pool_size is None else pool_size
        options.update(pool_size=kept, max_overflow=kept // 2)
    engine = create_async_engine(url, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, without a transaction around each use.

    For the reads in residents' turns and for work done in one statement: a SELECT is
    one round trip, not BEGIN, SELECT and ROLLBACK, and a single statement is atomic
    on its own.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def postgres_driver(connection: AsyncConnection) -> Any:
    """The asyncpg connection under a pooled PostgreSQL connection, for the hottest
    statements: run directly, they skip SQLAlchemy's execution layer (a greenlet
    switch, an execution context and result processing for each).

    Statements run this way are outside SQLAlchemy's transaction, so in autocommit
    unless the caller starts asyncpg's own: they must each be atomic on their own. Wrap
    their use in ``driver_errors``.
    """
    raw = await connection.get_raw_connection()
    return raw.driver_connection


@asynccontextmanager
async def driver_errors(connection: AsyncConnection) -> AsyncIterator[None]:
    """asyncpg's errors as SQLAlchemy's, for callers that handle those: a constraint
    violation is ``IntegrityError``; a lost connection is invalidated (the pool opens
    a new one) and raised as ``DBAPIError``."""
    import asyncpg  # only PostgreSQL comes here

    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raw = await connection.get_raw_connection()
        translated = _asyncpg_error(exc, raw.driver_connection)
        if translated is None:
            raise
        if translated.connection_invalidated:
            await connection.invalidate(exc)
        raise translated from exc


@asynccontextmanager
async def postgres_checkout(engine: AsyncEngine) -> AsyncIterator[Any]:
    """asyncpg's connection from the pool for a hot path's statements, without
    SQLAlchemy's ``Connection`` around it: taken from the pool (one greenlet, for the
    pool's wait) and given straight back. Errors are SQLAlchemy's, as ``driver_errors``
    gives them; a lost connection is invalidated. The statements run in autocommit, or
    in asyncpg's own transaction, which asyncpg ends before this returns the connection:
    the pool's reset on return has nothing to do."""
    import asyncpg  # only PostgreSQL comes here

    fairy = await engine.raw_connection()
    try:
        driver = fairy.driver_connection
        try:
            yield driver
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            translated = _asyncpg_error(exc, driver)
            if translated is None:
                raise
            if translated.connection_invalidated:
                fairy.invalidate(exc)
            raise translated from exc
    finally:
        fairy.close()


def _asyncpg_error(exc: BaseException, driver: Any) -> DBAPIError | None:
    """SQLAlchemy's error for one of asyncpg's: a constraint violation is
    ``IntegrityError``; a lost or closed connection a ``DBAPIError`` marked invalidated,
    for the caller to invalidate. Any other error is raised as it is (None)."""
    import asyncpg

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(None, None, exc)
    lost = not isinstance(exc, asyncpg.PostgresError) or isinstance(
        exc, asyncpg.PostgresConnectionError
    )
    if lost or driver is None or driver.is_closed():
        return DBAPIError(None, None, exc, connection_invalidated=True)
    return None


AnySelect: TypeAlias = "Select[*tuple[Any, ...]]"


@dataclass(frozen=True, slots=True)
class _DriverSQL:
    """A statement compiled once for a driver (asyncpg, or sqlite3 on aiosqlite's thread)."""

    statement: Any  # kept, so that its id stays its own
    compiled: SQLCompiler
    order: tuple[str, ...]  # the parameters' names, in the order of $1, $2, ... (or ?)
    processors: dict[str, Any]  # the parameters' bind processors, where they have one
    row: Callable[[Any], Any]  # a driver's record to a row with attributes

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The statement's positional arguments, each through its type's bind processing."""
        values = self.compiled.construct_params(dict(params)) or {}
        args = []
        for name in self.order:
            process = self.processors.get(name)
            args.append(process(values[name]) if process is not None else values[name])
        return args


_DRIVER_SQL: dict[tuple[int, str], _DriverSQL] = {}


async def fetch_rows(
    connection: AsyncConnection, statement: AnySelect, params: Mapping[str, Any]
) -> Sequence[Any]:
    """The rows of ``statement``, a SELECT built once (at import), each with its columns
    as attributes.

    The statement is compiled once per dialect and run on the driver directly, so a
    read in a resident's turn skips SQLAlchemy's execution layer: on PostgreSQL on
    asyncpg (``postgres_driver``), on SQLite in one hand-off to aiosqlite's thread
    (``sqlite_connection``). Errors come back as SQLAlchemy's. Statements with expanding
    (IN list) parameters are refused: their SQL is only known per call.
    """
    dialect = connection.dialect
    sql = driver_sql(statement, dialect)
    args = sql.args(params)
    if dialect.name == "sqlite":
        driver = await sqlite_connection(connection)
        records = await driver.run(sqlite_driver.fetch, sql.compiled.string, args)
    else:
        pg = await postgres_driver(connection)
        async with driver_errors(connection):
            records = await pg.fetch(sql.compiled.string, *args)
    return [sql.row(record) for record in records]


async def sqlite_connection(connection: AsyncConnection) -> sqlite_driver.Connection:
    """The adapter under a pooled SQLite connection (``integration.sqlite_driver``),
    whose ``run`` takes a hot path's statements to aiosqlite's thread in one hand-off.
    Its work is outside SQLAlchemy's transaction: it commits its own."""
    raw = await connection.get_raw_connection()
    return cast(sqlite_driver.Connection, raw.dbapi_connection)


def driver_sql(statement: Any, dialect: Dialect) -> _DriverSQL:
    """``statement`` (built once, at import) compiled once for ``dialect``'s driver: its
    SQL, and its arguments from a mapping of parameters (``_DriverSQL.args``). An
    INSERT must name every column it fills: the columns' Python-side defaults are
    SQLAlchemy's to apply, and do not run here."""
    key = (id(statement), dialect.name)
    sql = _DRIVER_SQL.get(key)
    if sql is None or sql.statement is not statement:
        sql = _DRIVER_SQL[key] = _compile_for_driver(statement, dialect)
    return sql


@asynccontextmanager
async def sqlite_checkout(engine: AsyncEngine) -> AsyncIterator[sqlite_driver.Connection]:
    """The pool's SQLite connection for a hot path's ``run``, without SQLAlchemy's
    ``Connection`` around it: taken from the pool (one greenlet, for the pool's wait) and
    given straight back. The work sent with ``run`` commits or rolls back its own
    transaction, so the pool's reset on return has nothing to do."""
    fairy = await engine.raw_connection()
    driver = cast(sqlite_driver.Connection, fairy.dbapi_connection)
    try:
        yield driver
    finally:
        if driver.in_transaction():  # only if cancelled while its work ran: roll back
            await greenlet_spawn(fairy.close)  # on the thread, after that work
        else:
            fairy.close()


def _compile_for_driver(statement: Any, dialect: Dialect) -> _DriverSQL:
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    if compiled.post_compile_params:
        raise ValueError("expanding parameters: the SQL is only known per call")
    if compiled.insert_prefetch:
        names = ", ".join(column.key for column in compiled.insert_prefetch)
        raise ValueError(f"columns left to Python-side defaults: {names}")
    make: Callable[[Any], Any] = tuple  # DML: its RETURNING rows as they come
    if isinstance(statement, Select):
        make = _row_maker(statement, dialect)
    return _DriverSQL(
        statement,
        compiled,
        tuple(compiled.positiontup or ()),
        dict(compiled._bind_processors),
        make,
    )


def _row_maker(statement: AnySelect, dialect: Dialect) -> Callable[[Any], Any]:
    """A driver's record of ``statement`` to a row with its columns as attributes."""
    columns = statement.selected_columns
    row = namedtuple("row", columns.keys(), rename=True)  # type: ignore[misc]
    if dialect.name == "sqlite":
        # sqlite3 gives back text for dates and times, integers for booleans: every
        # type's own result processing, as SQLAlchemy would run it.
        results = [column.type._cached_result_processor(dialect, None) for column in columns]
    else:
        # asyncpg's values are those SQLAlchemy's asyncpg dialect passes on for the
        # plain types; our own types (TypeDecorators such as UTCDateTime) still convert
        # theirs.
        results = [
            partial(column.type.process_result_value, dialect=dialect)
            if isinstance(column.type, TypeDecorator)
            else None
            for column in columns
        ]
    if not any(results):
        return cast(Callable[[Any], Any], row._make)
    steps = [process or _same for process in results]

    def make(record: Any) -> Any:
        return row._make([step(value) for step, value in zip(steps, record, strict=True)])

    return make


def _same(value: Any) -> Any:
    return value


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Make the pool replace a connection the driver already knows is closed."""
    driver = getattr(dbapi_connection, "_connection", None)  # asyncpg's, under the adapter
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the database server closed this pooled connection")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` over the engine's connection."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


def sqlite_file(url: str | URL) -> Path | None:
    """The absolute path of a SQLite database file; None for other databases and memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "").resolve()


def shown(url: str) -> str:
    """The database as staff should read it: a SQLite file's absolute path, else the URL.

    A password in the URL is hidden.
    """
    path = sqlite_file(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


async def check_exists(url: str) -> None:
    """Raise ``DatabaseMissing`` unless a migrated Yimen database is at ``url``.

    Nothing is created: a missing SQLite file is not touched, and a database without
    Yimen's tables (an empty file, another application's database) is refused too.
    """
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise DatabaseMissing(shown(url), "the file does not exist")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
    except Exception as exc:  # the server refused: no such database, no access
        raise DatabaseMissing(shown(url), f"cannot connect ({type(exc).__name__}: {exc})") from exc
    finally:
        await engine.dispose()
    if VERSION_TABLE not in tables:
        raise DatabaseMissing(shown(url), "it has no Yimen tables")
