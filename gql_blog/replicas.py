"""PostgreSQL read replicas: which database server each request reads from.

`Databases` holds the primary and each replica of GQL_BLOG_DATABASE_REPLICA_URLS, each with both
of its pools (the engine's session pool and the planned read pool, `read_pool.ReadPool`). A request
reads from a usable replica, taken in turn, unless:

- it writes: a request with a mutation runs wholly on the primary (`SerialSession.use_primary`),
  so every read after its write in the same request sees it;
- it asks to read its own earlier writes: a mutation's answer carries the primary's WAL
  position after its commit in the `GQL-Blog-Commit-LSN` header; a request that sends that
  header back reads only from a replica known to have replayed that far, else from the primary.

A background task asks each replica every `CHECK_SECONDS` how far it has replayed and how far
behind it is; one that does not answer, is not in recovery, or lags more than
GQL_BLOG_REPLICA_MAX_LAG_SECONDS is skipped (its reads go to the others, or the primary) until
a check finds it fit again. `/readyz` and `/metrics` show each replica's state.
"""

import asyncio
import contextvars
import itertools
import logging
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gql_blog import engines, metrics, outages, read_pool, serial_session
from gql_blog.config import Settings

logger = logging.getLogger(__name__)

# The header a mutation's answer carries, and a later request sends back to read its writes.
COMMIT_LSN_HEADER = "GQL-Blog-Commit-LSN"
CHECK_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 2.0
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")

# How far the replica has replayed, and how many seconds its replay is behind (0 when it has
# replayed all it received: an idle primary sends nothing, which is no lag).
_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery() AS in_recovery, "
    "pg_last_wal_replay_lsn()::text AS replayed, "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END "
    "AS lag_seconds"
)
_PRIMARY_POSITION = text("SELECT pg_current_wal_lsn()::text")


class BadLsnError(ValueError):
    """A `GQL-Blog-Commit-LSN` header that is not a WAL position."""


def parse_lsn(value: str) -> int:
    """PostgreSQL's `X/Y` text form of a WAL position (as `pg_lsn` prints it), as a number."""
    found = _LSN.fullmatch(value.strip())
    if found is None:
        raise BadLsnError(
            f"The {COMMIT_LSN_HEADER} header must be a WAL position such as 0/16B3748, as a "
            f"mutation's answer gives it; got {value[:40]!r}."
        )
    return (int(found.group(1), 16) << 32) + int(found.group(2), 16)


@dataclass(slots=True)
class Server:
    """One database server the process reads from: its engine, sessions and planned reads."""

    name: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    reads: read_pool.ReadPool | None


@dataclass(slots=True)
class Replica(Server):
    """A replica and what its last check found."""

    usable: bool = False
    replayed: int = 0
    lag_seconds: float | None = None
    problem: str | None = "not checked yet"

    def report(self) -> dict[str, object]:
        """Its state for /readyz."""
        state: dict[str, object] = {"replica": self.name, "usable": self.usable}
        if self.lag_seconds is not None:
            state["lag_seconds"] = round(self.lag_seconds, 3)
        if self.problem is not None:
            state["reason"] = self.problem
        return state


@dataclass(slots=True)
class Databases:
    """The primary and the replicas; `for_reads` picks where a request reads."""

    primary: Server
    replicas: Sequence[Replica] = ()
    max_lag_seconds: float = 5.0
    _turns: "itertools.cycle[int]" = field(init=False)
    _checking: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(range(max(1, len(self.replicas))))

    def for_reads(self, min_lsn: int | None = None) -> Server:
        """A usable replica (in turn) that has replayed `min_lsn`, else the primary."""
        for _ in range(len(self.replicas)):
            replica = self.replicas[next(self._turns)]
            if replica.usable and (min_lsn is None or replica.replayed >= min_lsn):
                return replica
        return self.primary

    async def primary_position(self, serial: serial_session.SerialSession) -> str:
        """The primary's WAL position now, on the request's own (primary) session."""
        return str(await serial.scalar(_PRIMARY_POSITION))

    def start(self) -> None:
        if self.replicas:
            checking = self._check_forever()
            self._checking = asyncio.create_task(checking, context=contextvars.Context())

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with suppress(asyncio.CancelledError):
                await self._checking
        for server in (*self.replicas, self.primary):
            if server.reads is not None:
                await server.reads.close()
            await server.engine.dispose()

    async def _check_forever(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(CHECK_SECONDS)

    async def check(self) -> None:
        """Ask every replica how far it is; skip those that do not answer or lag too much."""
        await asyncio.gather(*(self._check(replica) for replica in self.replicas))

    async def _check(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), replica.engine.connect() as conn:
                statement = _REPLICA_STATE.execution_options(**{engines.BACKGROUND: True})
                row = (await conn.execute(statement)).one()
        except TimeoutError:
            self._mark(replica, None, f"did not answer within {CHECK_TIMEOUT_SECONDS:g} seconds")
            return
        except (OSError, DBAPIError, SQLAlchemyError) as error:
            self._mark(replica, None, f"unreachable: {outages.error_reason(error)}")
            return
        lag = float(row.lag_seconds)
        if not row.in_recovery:
            self._mark(replica, lag, "not a replica (not in recovery)")
        elif lag > self.max_lag_seconds:
            self._mark(replica, lag, f"lags {lag:.1f} s, more than {self.max_lag_seconds:g} s")
        else:
            replica.replayed = parse_lsn(row.replayed) if row.replayed else 0
            self._mark(replica, lag, None)

    def _mark(self, replica: Replica, lag: float | None, problem: str | None) -> None:
        usable = problem is None
        if usable != replica.usable:
            event = "replica.usable" if usable else "replica.skipped"
            logger.warning(event, extra={"replica": replica.name, "reason": problem})
        replica.usable, replica.lag_seconds, replica.problem = usable, lag, problem
        metrics.observe_replica(replica.name, usable=usable, lag_seconds=lag)

    def readiness(self) -> list[dict[str, object]]:
        return [replica.report() for replica in self.replicas]


def server_name(url: str) -> str:
    """A replica's name in /readyz, /metrics and logs: host:port/database, no credentials."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


async def open_replica(settings: Settings, url: str) -> Replica:
    """A replica with both of its pools (none connects before it is used or checked)."""
    engine = engines.create_engine(settings, url=url)
    reads = await read_pool.ReadPool.open(settings, engine) if settings.planner else None
    return Replica(server_name(url), engine, engines.create_sessionmaker(engine), reads)
