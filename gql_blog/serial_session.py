"""The request's one session, its statements run one at a time (`SerialSession`)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy.exc
from sqlalchemy import Executable, Result
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.sql import Select

from gql_blog import cancellation
from gql_blog.outages import ConnectionLostError, Outage, error_reason, outage_of
from gql_blog.statement_counts import record_statement

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
