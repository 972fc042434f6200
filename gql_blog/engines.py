"""Engines and session factories per dialect, with their connection and dialect hooks."""

import time
import uuid
from typing import Any

import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection, StaticPool

from gql_blog import metrics
from gql_blog.config import Settings
from gql_blog.statement_counts import count_cursor_execute

SQLITE_BUSY_TIMEOUT_MS = 5000
# Execution option: on SQLite, begin the transaction with BEGIN IMMEDIATE.
SQLITE_IMMEDIATE = "gql_blog_sqlite_immediate"
# Execution option: the server's own housekeeping (the event outbox's polls), never traced.
BACKGROUND = "gql_blog_background"


class _TimedQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool, recording how long each checkout waits (`metrics`).

    SQLAlchemy's pool events fire once a connection is handed out, none when a checkout starts
    waiting: so the wait is timed around `connect`, which the engine calls for every checkout.
    """

    # Log as SQLAlchemy's own pool does (its namespace, kept at WARNING by logs.py), not as
    # gql_blog.engines: its INFO lines ("Pool disposed") are no news in a server's log.
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
    options["connect_args"] = options.get("connect_args", {}) | connect_args(backend, settings)
    if backend in ("mysql", "mariadb") and "charset" not in target.query:
        target = target.update_query_dict({"charset": "utf8mb4"})
    engine = create_async_engine(target, **options)
    event.listen(engine.sync_engine, "before_cursor_execute", count_cursor_execute)
    if backend == "postgresql":
        event.listen(engine.sync_engine.pool, "checkout", _replace_closed_connection)
    if backend in ("mysql", "mariadb"):
        event.listen(engine.sync_engine, "do_connect", _connect_asyncmy)
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def connect_args(backend: str, settings: Settings) -> dict[str, Any]:
    """The driver's connect arguments for the dialect: timeouts, and PgBouncer's needs."""
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
