"""SQLite under asyncio with one thread hand-off a statement.

SQLAlchemy's aiosqlite adapter runs each DB-API call on aiosqlite's thread by itself:
opening a cursor, the statement, fetching its rows and closing the cursor are four
hand-offs to the thread and back, and every connection's return to the pool is one more
(a rollback, even with nothing to roll back), as is every change of isolation level (two
for each use of an autocommit engine). A hand-off costs about 30 µs of CPU (a queue put,
the thread's wake-up, the loop's wake-up), more than most of our statements take in
SQLite itself, and with one connection shared by every turn the hand-offs are also what
turns queue behind.

This adapter keeps SQLAlchemy's dialect and aiosqlite's thread and changes only how
calls reach the thread. A statement runs, fetches and closes its cursor in one hand-off.
Commit and rollback with no transaction open are skipped (sqlite3 does nothing for
them). A change of isolation level, with the ``PRAGMA read_uncommitted`` SQLAlchemy's
SQLite dialect sends beside it, is applied by the next call that goes to the thread,
before its own work. So a read on an autocommit engine is one hand-off, not eight.

The hottest paths go further: ``Connection.run`` takes a function of the sqlite3
connection to the thread, so that a whole transaction of plain statements is one
hand-off (the transcript's batch, ``integration.db.fetch_rows``).

``integration.db.create_engine`` passes the adapter as the engine's DB-API module. Like
SQLAlchemy's own adapter, it reaches into aiosqlite's connection for its queue
(``_execute``) and its sqlite3 connection (``_conn``); ``pyproject.toml`` pins the
aiosqlite versions it was tested with.
"""

from __future__ import annotations

import re
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util.concurrency import await_

_UNSET: Any = object()  # no isolation level waiting to be applied

# Sent by SQLAlchemy's SQLite dialect with every change of isolation level other than
# to autocommit, so each time an autocommit connection goes back to the pool. It
# returns nothing and only matters to the next statement: it waits for that one.
_READ_UNCOMMITTED = re.compile(r"PRAGMA read_uncommitted = [01]")

# What one statement leaves: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]


def _statement(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """Run on aiosqlite's thread: the whole of a statement, cursor to close."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class Cursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement is one hand-off; fetching is local."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no thread-side cursor
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._rows = deque()
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        adapt = self._adapt_connection
        assert isinstance(adapt, Connection)
        if parameters is None and _READ_UNCOMMITTED.fullmatch(operation):
            adapt._pending_pragma = operation
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = deque()
            return
        self._run(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._run(operation, seq_of_parameters, many=True)

    def _run(self, operation: str, parameters: Any, *, many: bool) -> None:
        adapt = self._adapt_connection
        assert isinstance(adapt, Connection)
        try:
            outcome = adapt.call(_statement, operation, parameters, many)
        except Exception as error:
            adapt._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)

    async def _async_soft_close(self) -> None:
        return None  # nothing is open on the thread

    def close(self) -> None:
        self._rows.clear()


class Connection(AsyncAdapt_aiosqlite_connection):
    """aiosqlite's connection, reached in one hand-off a call."""

    __slots__ = ("_pending_isolation", "_pending_pragma")

    _cursor_cls = Cursor

    def __init__(self, dbapi: Any, connection: Any) -> None:  # an aiosqlite.Connection
        super().__init__(dbapi, connection)
        self._pending_isolation: Any = _UNSET
        self._pending_pragma: str | None = None

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(sqlite3_connection, *args)`` on the thread, awaited from asyncio
        code: a hot path's statements, all in one hand-off. sqlite3's errors come back
        as SQLAlchemy's (a constraint is ``IntegrityError``).

        The function owns the transaction it opens: it commits, or rolls back and
        raises (``committed`` does both)."""
        isolation, self._pending_isolation = self._pending_isolation, _UNSET
        pragma, self._pending_pragma = self._pending_pragma, None
        driver = self._connection
        try:
            return await driver._execute(_apply, driver._conn, isolation, pragma, function, *args)
        except sqlite3.Error as error:
            raise DBAPIError.instance(None, None, error, sqlite3.Error) from error

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(sqlite3_connection, *args)`` on the thread, after any pending
        change of isolation level."""
        isolation, self._pending_isolation = self._pending_isolation, _UNSET
        pragma, self._pending_pragma = self._pending_pragma, None
        driver = self._connection
        return await_(driver._execute(_apply, driver._conn, isolation, pragma, function, *args))

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and (self._pending_isolation is not _UNSET or self._pending_pragma):
            # A server-side cursor goes to the thread through aiosqlite's own calls, not
            # ``call``: what is pending is applied first.
            self.call(_nothing)
        return super().cursor(server_side)

    @property
    def isolation_level(self) -> str | None:
        if self._pending_isolation is not _UNSET:
            return self._pending_isolation
        return self._connection._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._pending_isolation = value

    def in_transaction(self) -> bool:
        """Whether sqlite3 has a transaction open on this connection."""
        # Read on the loop's thread: the pool hands the connection to one user at a time,
        # whose calls are awaited one by one (only a cancelled ``run`` can still be
        # working on the thread, and what comes next queues behind it).
        return bool(self._connection._conn.in_transaction)

    # sqlite3 does nothing for a commit or a rollback with no transaction open, and a
    # pending change of isolation level cannot open one: such calls stay here.
    def commit(self) -> None:
        if self.in_transaction():
            try:
                self.call(_commit)
            except Exception as error:
                self._handle_exception(error)

    def rollback(self) -> None:
        if self._connection._connection is None:
            return  # closed: as SQLAlchemy's adapter does
        if self.in_transaction():
            try:
                self.call(_rollback)
            except Exception as error:
                self._handle_exception(error)


def _apply(
    connection: sqlite3.Connection,
    isolation: Any,
    pragma: str | None,
    function: Callable[..., Any],
    *args: Any,
) -> Any:
    if isolation is not _UNSET:
        connection.isolation_level = isolation
    if pragma is not None:
        connection.execute(pragma).close()
    return function(connection, *args)


def committed(connection: sqlite3.Connection, function: Callable[..., Any], *args: Any) -> Any:
    """``function(connection, *args)`` committed, or rolled back if it raises: for
    ``Connection.run`` (on the thread)."""
    try:
        result = function(connection, *args)
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
    return result


def fetch(connection: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    """One statement's rows: for ``Connection.run`` (on the thread)."""
    cursor = connection.execute(sql, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def first(connection: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    """One statement's first row, or None (on the thread)."""
    cursor = connection.execute(sql, args)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def _nothing(connection: sqlite3.Connection) -> None:
    return None


def _commit(connection: sqlite3.Connection) -> None:
    connection.commit()


def _rollback(connection: sqlite3.Connection) -> None:
    connection.rollback()


class DBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API module, handing out ``Connection``."""

    def connect(self, *arg: Any, **kw: Any) -> Connection:
        adapted = super().connect(*arg, **kw)
        return Connection(self, adapted._connection)


def module() -> DBAPI:
    """The DB-API module to pass as ``create_async_engine(..., module=...)``."""
    return DBAPI(aiosqlite, sqlite3)
