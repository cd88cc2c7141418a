"""What a server process spends per message, independent of how busy the machine is.

Wall-clock numbers on a shared machine move with the neighbours' load; the number of
SQL statements, transactions and Redis round trips a message costs, and the CPU time
the server process spends on it, do not. ``Counters.install`` hooks SQLAlchemy's engine
events (every statement any engine runs, and every commit), wraps the asyncpg
connection's ``fetch``/``fetchrow``/``fetchval`` (the statements the hot path runs on the
driver directly, past SQLAlchemy, each in autocommit), and wraps the Redis
client's command and pipeline execution (no MONITOR: the counting happens in the
server process itself), so a benchmark can divide by the messages it sent.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@dataclass(slots=True)
class Snapshot:
    """Totals since ``Counters.install`` (or the last ``reset``)."""

    statements: int = 0  # SQL statements sent to the database (executemany counts once)
    transactions: int = 0  # commits
    redis_round_trips: int = 0  # commands, scripts and pipelines sent to Redis
    redis_commands: int = 0  # commands inside them (a pipeline of 3 counts 3)
    cpu_seconds: float = 0.0  # user + system CPU time of this process
    seconds: float = 0.0  # wall-clock time
    peak_rss_kb: int = 0  # the process's peak resident memory so far
    by_statement: dict[str, int] = field(default_factory=dict)  # first words of each

    def per(self, messages: int) -> dict[str, float]:
        """The costs of one message, over ``messages`` messages."""
        n = max(1, messages)
        return {
            "statements": self.statements / n,
            "transactions": self.transactions / n,
            "redis_round_trips": self.redis_round_trips / n,
            "redis_commands": self.redis_commands / n,
            "cpu_ms": self.cpu_seconds * 1000 / n,
        }

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _statement_kind(statement: str) -> str:
    words = statement.split(None, 3)
    head = " ".join(words[:3]) if words else "?"
    return head[:60]


class Counters:
    """Process-wide counts of SQL statements, commits and Redis round trips."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # aiosqlite runs statements on its own thread
        self._now = Snapshot()
        self._started_cpu = _cpu()
        self._started = time.perf_counter()
        self._undo: list[Callable[[], None]] = []

    def install(self) -> Counters:
        """Start counting (every engine, every Redis client in this process)."""
        event.listen(Engine, "before_cursor_execute", self._on_statement)
        event.listen(Engine, "commit", self._on_commit)
        self._undo.append(lambda: event.remove(Engine, "before_cursor_execute", self._on_statement))
        self._undo.append(lambda: event.remove(Engine, "commit", self._on_commit))
        self._wrap_redis()
        self._wrap_asyncpg()
        self._wrap_sqlite()
        self.reset()
        return self

    def uninstall(self) -> None:
        """Stop counting and restore what ``install`` changed."""
        while self._undo:
            self._undo.pop()()

    def reset(self) -> None:
        """Start the totals again from zero."""
        with self._lock:
            self._now = Snapshot()
            self._started_cpu = _cpu()
            self._started = time.perf_counter()

    def snapshot(self) -> Snapshot:
        """The totals so far."""
        with self._lock:
            now = self._now
            return Snapshot(
                statements=now.statements,
                transactions=now.transactions,
                redis_round_trips=now.redis_round_trips,
                redis_commands=now.redis_commands,
                cpu_seconds=_cpu() - self._started_cpu,
                seconds=time.perf_counter() - self._started,
                peak_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                by_statement=dict(now.by_statement),
            )

    def _on_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        kind = _statement_kind(statement)
        with self._lock:
            self._now.statements += 1
            self._now.by_statement[kind] = self._now.by_statement.get(kind, 0) + 1

    def _on_commit(self, _conn: Any) -> None:
        with self._lock:
            self._now.transactions += 1

    def _redis(self, commands: int) -> None:
        with self._lock:
            self._now.redis_round_trips += 1
            self._now.redis_commands += commands

    def _wrap_redis(self) -> None:
        from redis.asyncio.client import Pipeline, Redis
        from redis.asyncio.cluster import ClusterPipeline, RedisCluster

        counters = self

        def wrap(cls: type, name: str, size: Callable[[Any], int]) -> None:
            original = getattr(cls, name)

            async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
                counters._redis(size(self))
                return await original(self, *args, **kwargs)

            setattr(cls, name, counted)
            self._undo.append(lambda: setattr(cls, name, original))

        def one(_client: Any) -> int:
            return 1

        def queued(pipeline: Any) -> int:
            stack: Any = getattr(pipeline, "command_stack", None)
            if stack is None:
                stack = getattr(pipeline, "_command_stack", ())
            return len(stack)

        # Pipelines define their own execute_command (it only queues), so wrapping
        # Redis.execute_command and the pipelines' execute counts each command once.
        wrap(Redis, "execute_command", one)
        wrap(RedisCluster, "execute_command", one)
        wrap(Pipeline, "execute", queued)
        wrap(ClusterPipeline, "execute", queued)

    def _wrap_asyncpg(self) -> None:
        """Count the statements run on asyncpg directly (``integration.db.postgres_driver``).

        SQLAlchemy's own statements go through prepared statements and ``executemany``,
        never these methods, so nothing is counted twice.
        """
        try:
            from asyncpg.connection import Connection
        except ImportError:  # no PostgreSQL driver installed: nothing runs there
            return
        counters = self

        def wrap(name: str) -> None:
            original = getattr(Connection, name)

            async def counted(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                counters._on_statement(None, None, query)
                return await original(self, query, *args, **kwargs)

            setattr(Connection, name, counted)
            self._undo.append(lambda: setattr(Connection, name, original))

        for name in ("fetch", "fetchrow", "fetchval"):
            wrap(name)

    def _wrap_sqlite(self) -> None:
        """Count the statements and commits run on sqlite3 directly
        (``integration.sqlite_driver.Connection.run``): the function sent to the thread
        gets the sqlite3 connection behind a counting proxy. SQLAlchemy's own statements
        never go through ``run``, so nothing is counted twice."""
        from integration.sqlite_driver import Connection

        counters = self
        original = Connection.run

        async def counted(self: Any, function: Callable[..., Any], *args: Any) -> Any:
            def through_proxy(connection: Any, *inner: Any) -> Any:
                return function(_CountingSqlite(connection, counters), *inner)

            return await original(self, through_proxy, *args)

        Connection.run = counted  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(Connection, "run", original))


class _CountingSqlite:
    """A sqlite3 connection that counts its statements and commits (on the thread)."""

    def __init__(self, connection: Any, counters: Counters) -> None:
        self._connection = connection
        self._counters = counters

    def execute(self, sql: str, *args: Any) -> Any:
        self._counters._on_statement(None, None, sql)
        return self._connection.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._counters._on_statement(None, None, sql)
        return self._connection.executemany(sql, *args)

    def commit(self) -> None:
        self._connection.commit()
        self._counters._on_commit(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)
