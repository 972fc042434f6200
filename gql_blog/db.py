"""Engines and sessions per dialect, the request's serialized session, the statement counter."""

import asyncio
import contextvars
import enum
import logging
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import sqlalchemy.exc
from sqlalchemy import Executable, Result, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection, StaticPool
from sqlalchemy.sql import Select

from gql_blog import cancellation, metrics
from gql_blog.config import Settings

logger = logging.getLogger(__name__)

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


@contextmanager
def not_counted() -> Iterator[None]:
    """Statements of the server's own (not of any request): no open count includes them."""
    token = _open_counts.set(())
    try:
        yield
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


class ConnectionLostError(ConnectionError):
    """The database connection broke under a statement sent on the driver's own connection."""


class Outage(enum.Enum):
    """Why a request could not reach the database: retrying later may well work."""

    BUSY = "busy"  # every connection is in use (or, on SQLite, the write lock stayed taken)
    UNAVAILABLE = "unavailable"  # the database refuses or drops connections


# PostgreSQL SQLSTATEs: too_many_connections; admin_shutdown, crash_shutdown, cannot_connect_now.
_BUSY_SQLSTATES = {"53300"}
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03"}
# Class 08, connection exceptions: asyncpg raises them itself (08003 for a connection that
# closed mid-statement) on the planned read path, which runs on its own pool (`ReadPool`).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08",)
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
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
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

    # Log as SQLAlchemy's own pool does (its namespace, kept at WARNING by logs.py), not as
    # gql_blog.db: its INFO lines ("Pool disposed") are no news in a server's log.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

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
    # found broken invalidates the pool, so the next checkout connects anew. On PostgreSQL, a
    # connection the server closed is replaced at checkout (see _replace_closed_connection).
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
    options["connect_args"] = options.get("connect_args", {}) | _connect_args(backend, settings)
    if backend in ("mysql", "mariadb") and "charset" not in target.query:
        target = target.update_query_dict({"charset": "utf8mb4"})
    engine = create_async_engine(target, **options)
    event.listen(engine.sync_engine, "before_cursor_execute", _before_cursor_execute)
    if backend == "postgresql":
        event.listen(engine.sync_engine.pool, "checkout", _replace_closed_connection)
    if backend in ("mysql", "mariadb"):
        event.listen(engine.sync_engine, "do_connect", _connect_asyncmy)
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _connect_args(backend: str, settings: Settings) -> dict[str, Any]:
    if backend == "postgresql" and settings.pgbouncer:
        return _connect_timeout(backend, settings.pool_timeout_seconds) | _PGBOUNCER_ARGS
    return _connect_timeout(backend, settings.pool_timeout_seconds) | _statement_timeout(
        backend, settings.request_timeout_seconds
    )


def _unique_statement_name() -> str:
    return f"__gql_blog_{uuid.uuid4().hex}__"


# PgBouncer in transaction pooling mode (1.18: no prepared statements of its own) hands each
# transaction whichever server connection is free: a statement prepared under a name in one
# transaction is unknown in the next, and two clients' `__asyncpg_stmt_1__` meet on one server
# connection. So asyncpg caches none (its own introspection included), SQLAlchemy's statements
# are prepared under names no other client uses and never reused, and no startup parameter
# PgBouncer would refuse (statement_timeout) is sent: set it for the role instead (README).
# `server_settings` stays, empty: the read pool adds its application_name, which PgBouncer keeps.
_PGBOUNCER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unique_statement_name,
    "server_settings": {},
}


def _replace_closed_connection(
    dbapi_connection: Any, record: Any, proxy: PoolProxiedConnection
) -> None:
    """A pooled connection that the server closed (restarted, stopped, killed its process) is
    replaced before it is used. asyncpg sees a closed socket by itself: no round trip."""
    driver = proxy.driver_connection
    if driver is not None and driver.is_closed():
        raise sqlalchemy.exc.DisconnectionError("the database server closed this connection")


# asyncmy's RuntimeError when the server closed the socket while it was being opened.
_ASYNCMY_SOCKET_GONE = "Transport does not expose socket instance"
_LOST_CONNECTION_ERRNO = 2013  # CR_SERVER_LOST


def _connect_asyncmy(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
    """asyncmy's connection; a server that closes the socket as it opens (starting up or
    shutting down) is the driver's "lost connection" error, an outage like a refused one."""
    try:
        return dialect.connect(*cargs, **cparams)
    except RuntimeError as error:
        if str(error) != _ASYNCMY_SOCKET_GONE:
            raise
        lost = "Lost connection to the server while connecting"
        raise dialect.loaded_dbapi.OperationalError(_LOST_CONNECTION_ERRNO, lost) from error


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


def _is_lost(driver: Any, error: Exception) -> bool:
    """Whether asyncpg's connection is unusable after `error`: closed, or about to close (the
    server's FATAL shutdown errors come before its socket closes), or its protocol broken."""
    return (
        driver.is_closed()
        or isinstance(error, asyncpg.PostgresConnectionError | asyncpg.InternalClientError)
        or outage_of(error) is Outage.UNAVAILABLE
    )


class SerialSession:
    """The request's one session; its statements run one at a time, each to its end.

    Dataloaders of one request dispatch in the same event-loop tick, and an AsyncSession refuses
    concurrent operations, so every statement of the request goes through this lock. A statement
    runs in a task of its own, shielded: a resolver cancelled meanwhile (graphql-core aborts the
    siblings of a field whose null reaches `data`; a client hangs up) must not leave the session's
    connection in the middle of a statement. `drain` waits for the last of them; `stop`, once
    the request has ended, cancels them on the database instead (see `gql_blog.cancellation`).
    """

    def __init__(
        self,
        session: AsyncSession | None = None,
        *,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        """Over `session`, or over one that `sessions` opens when first used (and `close`
        closes): a request the planned read path answers on PostgreSQL never uses its session
        (its statements run on the read pool), so it never builds one."""
        if (session is None) == (sessions is None):
            raise TypeError("SerialSession takes a session or a session factory")
        self._session = session
        self._sessions = sessions
        self._primary: async_sessionmaker[AsyncSession] | None = None  # set by `read_from`
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[Any]] = set()
        self._running: asyncio.Task[Any] | None = None  # the task holding the lock
        self._session_driver: Any = None  # what `driver_connection` handed out

    def read_from(self, replica: async_sessionmaker[AsyncSession]) -> None:
        """Open the session on `replica` (a read replica's sessions) instead, until the request
        writes (`use_primary`). Only before the session opened."""
        if self._sessions is None or self._session is not None:
            raise RuntimeError("only a session not yet opened can read from a replica")
        self._primary = self._primary or self._sessions
        self._sessions = replica

    def use_primary(self) -> None:
        """The request writes: its session opens on the primary (where it would anyway without
        replicas). Called before the request's first statement."""
        if self._primary is None or self._sessions is self._primary:
            return
        if self._session is not None:
            raise RuntimeError("the request's session opened on a replica before it wrote")
        self._sessions = self._primary

    @property
    def on_replica(self) -> bool:
        return self._primary is not None and self._sessions is not self._primary

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            assert self._sessions is not None
            self._session = self._sessions()
        return self._session

    @property
    def dialect(self) -> Dialect:
        """The database's dialect, without opening a session."""
        if self._session is None and self._sessions is not None:
            bind = self._sessions.kw["bind"]
            return bind.dialect  # type: ignore[no-any-return]  # an engine or connection
        return self.session.get_bind().dialect

    async def close(self) -> None:
        """Close the session if one was opened (shielded, as `async with` on it is).

        The request has answered by now. If its connection was lost meanwhile (the database
        went down), the ROLLBACK of what it read fails; the database rolls back a dropped
        connection's transaction itself, so that is logged, not raised: raised, it would make
        the server drop the client's kept-alive connection.
        """
        if self._session is not None and self._sessions is not None:
            try:
                await asyncio.shield(self._session.close())
            except Exception as error:
                outage = outage_of(error)
                if outage is None:
                    raise
                logger.warning("db.session_close_failed", extra={"outage": outage.value})

    async def _serially(self, work: Callable[[], Awaitable[T]]) -> T:
        task = asyncio.ensure_future(self._locked(work))
        self._pending.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    async def _locked(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            self._running = asyncio.current_task()
            try:
                return await work()
            finally:
                self._running = None

    def _forget(self, task: "asyncio.Task[Any]") -> None:
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its awaiter has it, or was cancelled and needs none

    async def drain(self) -> None:
        """Wait until no statement of this request is running (before the session closes)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def stop(self) -> None:
        """The request has ended (answered, past its time limit, its client gone): statements
        still queued never start, the running one is stopped on the database; returns once no
        statement of this request runs, so the session closes on an idle connection."""
        running = self._running
        for task in self._pending:
            if task is not running:
                task.cancel()  # still waiting for the lock: it never touched the connection
        if running is not None and not running.done():
            engine = self.session.get_bind().engine
            await cancellation.stop_statement(engine, running, self._statement_driver())
        await self.drain()

    def _statement_driver(self) -> Any:
        """The driver's connection under the running statement, or None while the session is
        still connecting (only a connection the session already holds is taken: no I/O)."""
        session = self.session.sync_session
        transaction = session.get_transaction()
        if transaction is None or transaction.is_active is False:
            return None
        try:
            connection = session.connection()
        except (sqlalchemy.exc.InvalidRequestError, sqlalchemy.exc.MissingGreenlet):
            return None  # provisioning its connection right now
        return connection.connection.driver_connection

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
            self._session_driver = raw.driver_connection
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
            try:
                rows: Sequence[Any] = await driver.fetch(sql, *arguments)
            except Exception as error:
                if not _is_lost(driver, error):
                    raise
                # No pool saw this failure: it must not hand the connection out again. The
                # request answers "database unavailable".
                if driver is self._session_driver:
                    connection = await self.session.connection()
                    await connection.invalidate(error)
                else:
                    driver.terminate()  # a read pool's: it connects anew at the next checkout
                raise ConnectionLostError(error_reason(error)) from error
            return rows

    async def flush(self) -> None:
        await self._serially(self.session.flush)


# The read pool's connections, as pg_stat_activity lists them.
READ_POOL_APPLICATION_NAME = "gql_blog planned reads"


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """A released read connection needs no RESET ALL: planned reads change no session state."""


class ReadPool:
    """PostgreSQL: asyncpg's own pool, for the planned read path's statements only.

    A planned read sends a few compiled SELECTs and nothing else: no transaction, no session
    state, no ORM. Checking its connection out of SQLAlchemy's pool (a session, a transaction
    object, two greenlet hops) cost a quarter of the post detail's instructions; asyncpg's
    pool hands out a connection for a small part of that. It connects lazily with the engine's
    own arguments (the URL's, the connect timeout, the statement time limit), holds at most
    `read_pool_size` connections beside the engine's, and answers as the engine's pool does:
    a request that waits `pool_timeout_seconds` for one is "server busy"; a connection that
    closed (a database restart) is replaced at its next checkout.
    """

    def __init__(self, pool: asyncpg.Pool, *, timeout: float, pgbouncer: bool = False) -> None:
        self._pool = pool
        self._timeout = timeout
        # Behind PgBouncer's transaction pooling, asyncpg's Parse/Describe then Bind/Execute of
        # one statement may reach two server connections unless a transaction holds one.
        self._in_transaction = pgbouncer

    @classmethod
    async def open(cls, settings: Settings, engine: AsyncEngine) -> "ReadPool | None":
        """The read pool for the engine's PostgreSQL database; None for other databases, or
        when `read_pool_size` is 0 (planned reads then use the request's session)."""
        if engine.dialect.name != "postgresql" or settings.read_pool_size == 0:
            return None
        _, arguments = engine.dialect.create_connect_args(engine.url)
        arguments.pop("prepared_statement_name_func", None)
        if "prepared_statement_cache_size" in arguments:
            arguments["statement_cache_size"] = arguments.pop("prepared_statement_cache_size")
        connect = _connect_args("postgresql", settings)
        for sqlalchemy_only in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            connect.pop(sqlalchemy_only, None)
        connect["server_settings"] = connect["server_settings"] | {
            "application_name": READ_POOL_APPLICATION_NAME
        }
        pool = asyncpg.create_pool(
            **arguments,
            **connect,
            min_size=0,
            max_size=settings.read_pool_size,
            max_inactive_connection_lifetime=settings.pool_recycle_seconds,
            reset=_nothing_to_reset,
        )
        await pool  # min_size 0: opens no connection yet, so a database down at start is fine
        return cls(pool, timeout=settings.pool_timeout_seconds, pgbouncer=settings.pgbouncer)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one planned read, back in the pool at the end (also on error)."""
        # Only a wait for a busy pool needs acquire's own timeout (a task per call): taking an
        # idle connection does not wait, and connecting a new one has the connect timeout.
        full = self.idle == 0 and self.size >= self._pool.get_max_size()
        started = time.perf_counter()
        try:
            connection = await self._pool.acquire(timeout=self._timeout if full else None)
        except TimeoutError as error:
            if full:
                metrics.count_pool_timeout()
                raise sqlalchemy.exc.TimeoutError("no read connection came free in time") from error
            raise  # connecting timed out: the database is out of reach
        finally:
            metrics.observe_pool_checkout(time.perf_counter() - started)
        try:
            if self._in_transaction:
                async with connection.transaction(readonly=True):
                    yield connection
            else:
                yield connection
        finally:
            await self._pool.release(connection)  # asyncpg shields the release

    @property
    def size(self) -> int:
        """How many connections the pool holds now (open, in use or idle)."""
        return int(self._pool.get_size())

    @property
    def idle(self) -> int:
        return int(self._pool.get_idle_size())

    async def close(self) -> None:
        await self._pool.close()
