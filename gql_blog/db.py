"""Engines and sessions per dialect, the request's serialized session, the statement counter."""

import asyncio
import contextvars
import enum
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy.exc
from sqlalchemy import Executable, Result, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection, StaticPool
from sqlalchemy.sql import Select

from gql_blog import metrics
from gql_blog.config import Settings

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 5000
# Execution option: on SQLite, begin the transaction with BEGIN IMMEDIATE.
SQLITE_IMMEDIATE = "gql_blog_sqlite_immediate"
# Execution option: the server's own housekeeping (the event outbox's polls), never traced.
BACKGROUND = "gql_blog_background"
# BEGIN too: SQLite gets an explicit BEGIN (see _configure_sqlite), the other dialects none.
_TRANSACTION_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")


@dataclass(slots=True)
class StatementCount:
    """How many SQL statements ran while this count was current (transaction control excluded)."""

    total: int = 0
    statements: list[str] = field(default_factory=list)


# Every count open in this context (counts nest: a test counts around a request that counts too).
_open_counts: contextvars.ContextVar[tuple[StatementCount, ...]] = contextvars.ContextVar(
    "gql_blog_statement_counts", default=()
)


@contextmanager
def count_statements() -> Iterator[StatementCount]:
    """Count the statements the current task (and tasks it starts) send to any engine."""
    counted = StatementCount()
    token = _open_counts.set((*_open_counts.get(), counted))
    try:
        yield counted
    finally:
        _open_counts.reset(token)


def is_transaction_control(statement: str) -> bool:
    """BEGIN, SAVEPOINT, RELEASE or ROLLBACK: not a statement that counts."""
    return statement.lstrip().upper().startswith(_TRANSACTION_CONTROL)


def _before_cursor_execute(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
    counts = _open_counts.get()
    if not counts or is_transaction_control(statement):
        return
    for counted in counts:
        counted.total += 1
        counted.statements.append(statement)


def record_statement(statement: str) -> None:
    """Count a statement sent past SQLAlchemy (on the driver's own connection)."""
    for counted in _open_counts.get():
        counted.total += 1
        counted.statements.append(statement)


class Outage(enum.Enum):
    """Why a request could not reach the database: retrying later may well work."""

    BUSY = "busy"  # every connection is in use (or, on SQLite, the write lock stayed taken)
    UNAVAILABLE = "unavailable"  # the database refuses or drops connections


# PostgreSQL SQLSTATEs: too_many_connections; admin_shutdown, crash_shutdown, cannot_connect_now.
_BUSY_SQLSTATES = {"53300"}
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03"}
# MySQL/MariaDB client errors: cannot connect, server gone away, connection lost; too many.
_UNAVAILABLE_ERRNOS = {2002, 2003, 2006, 2013}
_BUSY_ERRNOS = {1040}


def outage_of(error: BaseException) -> Outage | None:
    """The outage an exception (or one it was raised from) stands for; None for anything else."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        found = _outage_itself(cause)
        if found is not None:
            return found
        cause = cause.__cause__ or cause.__context__
    return None


def _outage_itself(error: BaseException) -> Outage | None:
    if isinstance(error, sqlalchemy.exc.TimeoutError):  # the pool had no connection to give
        return Outage.BUSY
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return Outage.UNAVAILABLE
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return Outage.UNAVAILABLE  # refused, reset, an unknown host, or the connect timed out
    sqlstate = getattr(error, "sqlstate", None)
    code = error.args[0] if error.args and isinstance(error.args[0], int) else None
    if sqlstate in _BUSY_SQLSTATES or code in _BUSY_ERRNOS:
        return Outage.BUSY
    if sqlstate in _UNAVAILABLE_SQLSTATES or code in _UNAVAILABLE_ERRNOS:
        return Outage.UNAVAILABLE
    if isinstance(error, sqlite3.OperationalError):
        return _SQLITE_OUTAGES.get(str(error))
    return None


_SQLITE_OUTAGES = {
    "database is locked": Outage.BUSY,
    "unable to open database file": Outage.UNAVAILABLE,
}


def error_reason(error: BaseException) -> str:
    """The driver's own message about a failure, on one line."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    args = cause.args
    # (errno, message) from OSError; (code, message) from asyncmy.
    text = str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(cause)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(cause).__name__


class _TimedQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool, recording how long each checkout waits (`metrics`).

    SQLAlchemy's pool events fire once a connection is handed out, none when a checkout starts
    waiting: so the wait is timed around `connect`, which the engine calls for every checkout.
    """

    def connect(self) -> PoolProxiedConnection:
        started = time.perf_counter()
        try:
            return super().connect()
        except sqlalchemy.exc.TimeoutError:
            metrics.count_pool_timeout()
            raise
        finally:
            metrics.observe_pool_checkout(time.perf_counter() - started)


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """The process's engine for `url` (default: the settings' database), tuned for its dialect."""
    target = make_url(url or settings.database_url)
    # No pre-ping round trip per checkout: the pool recycles old connections, and a connection
    # found broken invalidates the pool, so the next checkout connects anew.
    options: dict[str, Any] = {"echo": settings.echo_sql}
    backend = target.get_backend_name()
    if backend == "sqlite" and target.database in (None, "", ":memory:"):
        # One in-memory database, shared by every session of this engine.
        options |= {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        # A request waits at most pool_timeout for a connection: then it is "server busy".
        options |= {
            "poolclass": _TimedQueuePool,
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "pool_recycle": settings.pool_recycle_seconds,
            "pool_timeout": settings.pool_timeout_seconds,
        }
    options["connect_args"] = (
        options.get("connect_args", {})
        | _connect_timeout(backend, settings.pool_timeout_seconds)
        | _statement_timeout(backend, settings.request_timeout_seconds)
    )
    if backend in ("mysql", "mariadb") and "charset" not in target.query:
        target = target.update_query_dict({"charset": "utf8mb4"})
    engine = create_async_engine(target, **options)
    event.listen(engine.sync_engine, "before_cursor_execute", _before_cursor_execute)
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _statement_timeout(backend: str, request_seconds: float) -> dict[str, Any]:
    """The server stops any statement running past the request's limit (its work stops too).

    A second later than the request's own limit, so that one answers first (REQUEST_TIMEOUT)
    and the server's only stops what the cancelled request left running.
    """
    seconds = request_seconds + 1
    if backend == "sqlite":
        return {}  # SQLite has no such limit
    if backend == "postgresql":
        return {"server_settings": {"statement_timeout": str(max(1, round(seconds * 1000)))}}
    # MariaDB's max_statement_time is in seconds and applies to SELECTs.
    return {"init_command": f"SET SESSION max_statement_time = {seconds:.3f}"}


def _connect_timeout(backend: str, pool_timeout: float) -> dict[str, Any]:
    """Each driver's own connect timeout: an unreachable server fails a request as fast as a
    full pool does (SQLite: how long a statement waits for another writer's lock)."""
    if backend == "sqlite":
        return {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if backend == "postgresql":
        return {"timeout": pool_timeout}
    return {"connect_timeout": pool_timeout}


def _lower_text(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Foreign keys on, WAL, busy timeout, and SQLAlchemy-managed BEGIN so savepoints work."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # The sqlite3 module's own transaction handling breaks SAVEPOINT; SQLAlchemy emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Filters are case-sensitive on every dialect; INSENSITIVE mode lowers both sides with
        # a lower() that folds non-ASCII letters too, as PostgreSQL and MariaDB do.
        dbapi_connection.create_function("lower", 1, _lower_text, deterministic=True)
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writing transaction takes the write lock up front (see `begin_writing`).
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: rows returned by a mutation stay readable after its commit.
    return async_sessionmaker(engine, expire_on_commit=False)


async def begin_writing(session: AsyncSession) -> None:
    """SQLite: start the mutation's transaction holding the database's write lock.

    A transaction that has read may not start writing while another writer holds the lock, nor
    after another writer committed (SQLITE_BUSY at once: busy_timeout does not wait that out). So
    the request's read-only transaction (the viewer lookup) ends here, and the next one begins
    with BEGIN IMMEDIATE, waiting its turn as writers do. The other dialects lock rows.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    await session.commit()  # nothing to commit: the request has only read so far
    await session.connection(execution_options={SQLITE_IMMEDIATE: True})


class SerialSession:
    """The request's one session; its statements run one at a time, each to its end.

    Dataloaders of one request dispatch in the same event-loop tick, and an AsyncSession refuses
    concurrent operations, so every statement of the request goes through this lock. A statement
    runs in a task of its own, shielded: a resolver cancelled meanwhile (graphql-core aborts the
    siblings of a field whose null reaches `data`; a client hangs up) must not leave the session's
    connection in the middle of a statement. `drain` waits for the last of them.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[Any]] = set()

    async def _serially(self, work: Callable[[], Awaitable[T]]) -> T:
        task = asyncio.ensure_future(self._locked(work))
        self._pending.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    async def _locked(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            return await work()

    def _forget(self, task: "asyncio.Task[Any]") -> None:
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its awaiter has it, or was cancelled and needs none

    async def drain(self) -> None:
        """Wait until no statement of this request is running (before the session closes)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def locked(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` on the session while no other statement of the request runs."""
        return await self._serially(lambda: work(self.session))

    async def scalars(self, stmt: Select[T]) -> Sequence[T]:
        async def work() -> Sequence[T]:
            return (await self.session.scalars(stmt)).all()

        return await self._serially(work)

    async def scalar(self, stmt: Executable) -> Any:
        return await self._serially(lambda: self.session.scalar(stmt))

    async def rows(self, stmt: Executable) -> Sequence[Any]:
        async def work() -> Sequence[Any]:
            result: Result[Any] = await self.session.execute(stmt)
            return result.all()

        return await self._serially(work)

    async def core_rows(
        self, stmt: Executable, parameters: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        """Rows of a Core statement as mappings, on the session's connection (no ORM objects)."""

        async def work() -> Sequence[Mapping[str, Any]]:
            connection = await self.session.connection()
            result: Result[Any] = await connection.execute(stmt, dict(parameters))
            # RowMapping is a Mapping[str, Any] at run time; its stub says Mapping[Any, Any].
            return result.mappings().all()  # type: ignore[return-value]

        return await self._serially(work)

    async def driver_connection(self) -> Any:
        """The driver's own connection under the session's (asyncpg's, on PostgreSQL).

        Valid until the session's transaction ends: a caller that keeps it must not commit.
        """

        async def work() -> Any:
            connection = await self.session.connection()
            raw = await connection.get_raw_connection()
            return raw.driver_connection

        return await self._serially(work)

    async def driver_rows(self, driver: Any, sql: str, arguments: Sequence[Any]) -> Sequence[Any]:
        """Rows of compiled PostgreSQL text, run on `driver_connection()` itself.

        For statements SQLAlchemy compiled once, with their parameters converted as SQLAlchemy
        would: it skips the async adaption, result processing and greenlet hops of an execute.
        """

        # No task of its own (unlike SQLAlchemy's statements): asyncpg cancels a statement
        # cleanly itself, so a cancelled request leaves its connection fit for the rollback.
        async with self._lock:
            record_statement(sql)
            rows: Sequence[Any] = await driver.fetch(sql, *arguments)
            return rows

    async def flush(self) -> None:
        await self._serially(self.session.flush)
