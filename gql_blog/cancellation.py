"""Stopping a statement on the database once its request has ended (time limit, client gone).

Each driver stops a running statement its own way:

- PostgreSQL (asyncpg): cancelling the task that awaits the statement makes asyncpg send the
  server a cancel request on a connection of its own; the statement ends at once.
- SQLite (aiosqlite): the statement runs in aiosqlite's thread, which a cancelled task does not
  stop; `sqlite3.Connection.interrupt()` (safe from any thread) makes it fail with "interrupted".
- MariaDB (asyncmy): a cancelled task leaves the server running the statement (and a closed
  socket is noticed only when it answers); `KILL QUERY <connection id>`, sent on a short-lived
  connection of its own, stops it.

The statement then fails, its awaiting task ends, and the session's rollback leaves the
connection clean for its pool (SQLAlchemy discards a connection whose statement was cancelled
mid-read, and the pool connects a new one).
"""

import asyncio
import contextlib
import logging
from typing import Any

import asyncmy
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

# How long a KILL QUERY may take to connect and run before the statement is left to the
# server's own statement time limit.
KILL_TIMEOUT_SECONDS = 5.0
_ATTEMPTS = 10
_ATTEMPT_SECONDS = 0.2


async def stop_statement(engine: Engine, running: "asyncio.Task[Any]", driver: Any) -> None:
    """Stop the statement that `running` awaits on `driver` (the driver's own connection, or
    None when it is not known yet: the session is still connecting).

    SQLite's interrupt and MariaDB's KILL QUERY miss a statement that has not quite started
    (it was on its way to the driver's thread or the server): they are sent again until the
    statement ends, a few times at most.
    """
    backend = engine.dialect.name
    if driver is None or backend == "postgresql":
        running.cancel()
        logger.info("db.statement_stopped", extra={"dialect": backend})
        return
    for _ in range(_ATTEMPTS):
        if backend == "sqlite":
            await (
                driver.interrupt()
            )  # aiosqlite calls sqlite3's interrupt() here, not in its thread
        else:
            await kill_query(engine, driver.thread_id())
        finished, _ = await asyncio.wait({running}, timeout=_ATTEMPT_SECONDS)
        if finished:
            break
    logger.info("db.statement_stopped", extra={"dialect": backend})


async def kill_query(engine: Engine, connection_id: int) -> None:
    """MariaDB: `KILL QUERY` the statement running on connection `connection_id` (a no-op
    when it has finished meanwhile), from a connection of its own: the pool's may all be busy."""
    arguments, options = engine.dialect.create_connect_args(engine.url)
    try:
        async with asyncio.timeout(KILL_TIMEOUT_SECONDS):
            connection = await asyncmy.connect(*arguments, **options)
            try:
                async with connection.cursor() as cursor:
                    await cursor.execute("KILL QUERY %s", (connection_id,))
            finally:
                with contextlib.suppress(Exception):  # the kill is done; closing is courtesy
                    await connection.ensure_closed()
    except (OSError, TimeoutError, asyncmy.errors.Error) as error:
        # The server's max_statement_time still ends it (see engines._statement_timeout).
        logger.warning("db.kill_query_failed", extra={"reason": str(error)})
