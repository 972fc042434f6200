"""PostgreSQL: the planned read path's own asyncpg pool (`ReadPool`)."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
)

from gql_blog import metrics
from gql_blog.config import Settings
from gql_blog.engines import connect_args

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
        # Connections `connection()` has taken and not given back (asyncpg's own idle and size
        # counts walk every slot of the pool).
        self._busy = 0

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
        connect = connect_args("postgresql", settings)
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
        full = self._busy >= self._pool.get_max_size()
        started = time.perf_counter()
        self._busy += 1
        try:
            connection = await self._pool.acquire(timeout=self._timeout if full else None)
        except BaseException as error:
            self._busy -= 1
            if full and isinstance(error, TimeoutError):
                metrics.count_pool_timeout()
                raise sqlalchemy.exc.TimeoutError("no read connection came free in time") from error
            raise  # connecting timed out (the database is out of reach), or cancelled
        finally:
            metrics.observe_pool_checkout(time.perf_counter() - started)
        try:
            if self._in_transaction:
                async with connection.transaction(readonly=True):
                    yield connection
            else:
                yield connection
        finally:
            self._busy -= 1
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
