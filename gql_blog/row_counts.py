"""How many rows each table holds, as the server last learned it; the cost model prices scans,
counts and relation filters by them (see pricing.py).

Counts are read at startup and then every `GQL_BLOG_ROW_COUNTS_REFRESH_SECONDS`: exactly
(`COUNT(*)`) while a table is small, and from the database's own statistics once it is large,
where counting would cost more than the estimate is worth — PostgreSQL's `pg_class.reltuples`,
MariaDB's `information_schema.TABLES.TABLE_ROWS`. SQLite keeps no statistics unless `ANALYZE`
ran, and counts in its own process, so it always counts. A failed refresh keeps the last counts.
"""

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gql_blog import statement_counts

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)

# The tables the cost model reads counts of, by the entity whose rows they hold.
ENTITY_TABLES = {
    "User": "users",
    "Post": "posts",
    "Comment": "comments",
    "Tag": "tags",
    "AuditLogEntry": "audit_logs",
}
POST_TAGS = "post_tags"
TABLES = (*ENTITY_TABLES.values(), POST_TAGS)
# Above this many rows (by the statistics), a table is not counted: its estimate is used.
EXACT_BELOW = 100_000

_ESTIMATES = {
    "postgresql": "SELECT relname, reltuples FROM pg_class"
    " WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace"
    " AND relname IN ({tables})",
}
_ESTIMATES["mariadb"] = _ESTIMATES["mysql"] = (
    "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES"
    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({tables})"
)


class RowCounts:
    """Rows per table (0 for a table never counted), replaced whole by each refresh."""

    def __init__(self, rows: Mapping[str, int] | None = None) -> None:
        self._rows: dict[str, int] = dict(rows or {})
        # Changes with every refresh: caches of prices key on it.
        self.version = 0

    def table(self, name: str) -> int:
        return self._rows.get(name, 0)

    def of(self, entity: str) -> int:
        """The rows of an entity's table."""
        return self.table(ENTITY_TABLES.get(entity, ""))

    def fanout(self, parent: str, child: str) -> float:
        """How many `child` rows one `parent` row has on average (through post_tags between
        posts and tags); 0 when the parent's table is empty."""
        parents = self.of(parent)
        if parents == 0:
            return 0.0
        linked = self.table(POST_TAGS) if {parent, child} == {"Post", "Tag"} else self.of(child)
        return linked / parents

    def replace(self, rows: Mapping[str, int]) -> None:
        self._rows = dict(rows)
        self.version += 1

    async def refresh(self, engine: AsyncEngine, tracer: "Tracer | None" = None) -> None:
        """Read the counts again; on failure keep the last ones (and log why). With a tracer,
        the refresh is a span of its own (the periodic ones: the first runs before tracing
        starts): background work, no request's."""
        if tracer is None:
            await self._refresh(engine)
        else:
            with tracer.start_as_current_span("row_counts refresh"):
                await self._refresh(engine)

    async def _refresh(self, engine: AsyncEngine) -> None:
        try:
            with statement_counts.not_counted():
                async with engine.connect() as connection:
                    rows = await _read_counts(connection)
        except Exception:  # any database failure: the last counts are still a fair guide
            logger.warning("row_counts.refresh_failed", exc_info=True)
            return
        self.replace(rows)
        logger.debug("row_counts.refreshed", extra={"rows": rows})

    async def keep_fresh(
        self, engine: AsyncEngine, interval_seconds: float, tracer: "Tracer | None" = None
    ) -> None:
        """Refresh every `interval_seconds`, until cancelled."""
        while True:
            await asyncio.sleep(interval_seconds)
            await self.refresh(engine, tracer)


async def _read_counts(connection: AsyncConnection) -> dict[str, int]:
    estimates = await _estimates(connection)
    counts: dict[str, int] = {}
    for table in TABLES:
        estimate = estimates.get(table, -1)
        if estimate >= EXACT_BELOW:
            counts[table] = estimate
        else:
            # Table names come from TABLES above, never from a request.
            counts[table] = int(await connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    return counts


async def _estimates(connection: AsyncConnection) -> dict[str, int]:
    sql = _ESTIMATES.get(connection.dialect.name)
    if sql is None:
        return {}
    tables = ", ".join(f"'{table}'" for table in TABLES)
    result = await connection.execute(text(sql.format(tables=tables)))
    return {str(name): int(rows if rows is not None else -1) for name, rows in result}
