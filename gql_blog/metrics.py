"""Prometheus metrics: GraphQL operations, their latency and SQL, errors, refusals, throttles, pool.

The metric objects are process-wide, as Prometheus' client library means them to be: one set per
worker process. With several workers (`gql-blog serve --workers N`), `PROMETHEUS_MULTIPROC_DIR`
names a folder where each process writes its values, and `/metrics` adds them all up; without
it, `/metrics` shows this process's own. Recording costs a few increments per operation; nothing
here runs per field.

Other modules record through the functions below: `observe_operation` (the `OperationMetrics`
extension, once per operation), `count_limit_refusal` (a query refused by a limit),
`count_sign_in_throttle` (a sign-in refused by `throttle`), `observe_pool_checkout` and
`count_pool_timeout` (`db`'s connection pool), `observe_replica` (`replicas`' checks);
subscriptions move `open_subscriptions`.
"""

import re
import threading
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Label values come from clients (operation names): only these many distinct names are kept
# per process; further ones, and names that are not GraphQL names, count as OTHER.
MAX_OPERATION_NAMES = 200
ANONYMOUS = "(anonymous)"
OTHER = "(other)"
_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")
_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,49}")
UNCODED = "NONE"
# The `path` label of the operations counter: which executor answered the operation.
PLANNED = "planned"
EXECUTOR = "executor"

registry = CollectorRegistry()

operations = Counter(
    "gql_blog_graphql_operations",
    "GraphQL operations by operation name, outcome (success: no errors; error: any) and the path "
    "that answered them (planned: the planner's statements; executor: strawberry's resolvers).",
    ["operation", "outcome", "path"],
    registry=registry,
)
operation_seconds = Histogram(
    "gql_blog_graphql_operation_duration_seconds",
    "Time from parsing a GraphQL operation to its result, by operation name.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=registry,
)
operation_statements = Histogram(
    "gql_blog_graphql_operation_sql_statements",
    "SQL statements one GraphQL operation ran (transaction control not counted).",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500),
    registry=registry,
)
errors = Counter(
    "gql_blog_graphql_errors",
    "Top-level GraphQL errors by extensions.code (NONE: parse and validation errors).",
    ["code"],
    registry=registry,
)
limit_refusals = Counter(
    "gql_blog_limit_refusals",
    "Requests refused by a limit (depth, aliases, tokens, cost, batch, body size, ...).",
    ["limit"],
    registry=registry,
)
sign_in_throttles = Counter(
    "gql_blog_sign_in_throttles",
    "Sign-ins refused because of recent failures, by scope (username or address).",
    ["scope"],
    registry=registry,
)
open_subscriptions = Gauge(
    "gql_blog_open_subscriptions",
    "Subscriptions now open on this server's websockets (all workers added up).",
    multiprocess_mode="livesum",
    registry=registry,
)

pool_checkout_seconds = Histogram(
    "gql_blog_db_pool_checkout_seconds",
    "Time a checkout waited for a database connection from a pool (the engine's, or on "
    "PostgreSQL the planned reads'; connecting a new one included), timed-out checkouts too.",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0),
    registry=registry,
)
pool_timeouts = Counter(
    "gql_blog_db_pool_timeouts",
    "Checkouts that found no connection within GQL_BLOG_POOL_TIMEOUT_SECONDS (SERVER_BUSY).",
    registry=registry,
)
replica_usable = Gauge(
    "gql_blog_db_replica_usable",
    "1 while a read replica takes reads, 0 while it is skipped (down, not a replica, or lagging "
    "more than GQL_BLOG_REPLICA_MAX_LAG_SECONDS); with several workers, the lowest of them.",
    ["replica"],
    multiprocess_mode="min",
    registry=registry,
)
replica_lag_seconds = Gauge(
    "gql_blog_db_replica_lag_seconds",
    "How far a read replica's replay was behind the primary at its last check (seconds).",
    ["replica"],
    multiprocess_mode="max",
    registry=registry,
)


class OperationNames:
    """The operation names this process labels metrics with: the first `limit` seen."""

    def __init__(self, *, limit: int = MAX_OPERATION_NAMES) -> None:
        self._names: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def label(self, name: str | None) -> str:
        if name is None:
            return ANONYMOUS
        if name in self._names:
            return name
        if not _GRAPHQL_NAME.fullmatch(name):
            return OTHER
        with self._lock:
            if len(self._names) >= self._limit:
                return OTHER
            self._names.add(name)
        return name


_operation_names = OperationNames()


def observe_operation(
    *,
    operation: str | None,
    seconds: float,
    statements: int,
    error_codes: Iterable[str | None],
    path: str,
) -> None:
    """Record one GraphQL operation; `error_codes` has one entry per top-level error, `path` is
    PLANNED or EXECUTOR (the operations a request never got to run count as EXECUTOR's, as the
    parse and validation errors strawberry answers do)."""
    label = _operation_names.label(operation)
    has_errors = False
    for code in error_codes:
        has_errors = True
        errors.labels(code if code and _ERROR_CODE.fullmatch(code) else UNCODED).inc()
    operations.labels(label, "error" if has_errors else "success", path).inc()
    operation_seconds.labels(label).observe(seconds)
    operation_statements.observe(statements)


def count_limit_refusal(limit: str) -> None:
    """A request was refused by `limit` (a short constant name such as "depth" or "body")."""
    limit_refusals.labels(limit).inc()


def count_sign_in_throttle(scope: str) -> None:
    sign_in_throttles.labels(scope).inc()


def observe_pool_checkout(seconds: float) -> None:
    """One checkout from the connection pool waited `seconds` (for a connection, or in vain)."""
    pool_checkout_seconds.observe(seconds)


def count_pool_timeout() -> None:
    pool_timeouts.inc()


def observe_replica(replica: str, *, usable: bool, lag_seconds: float | None) -> None:
    """A replica's last check: whether it takes reads, and its lag when it answered."""
    replica_usable.labels(replica).set(1 if usable else 0)
    if lag_seconds is not None:
        replica_lag_seconds.labels(replica).set(lag_seconds)


def clear_directory(multiprocess_dir: str) -> None:
    """Remove an earlier run's values from the workers' folder, as prometheus-client asks."""
    for values in Path(multiprocess_dir).glob("*.db"):
        values.unlink()


def render(multiprocess_dir: str | None) -> tuple[bytes, str]:
    """The exposition text and its content type: every worker's values when they share a folder."""
    if multiprocess_dir is None:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    combined = CollectorRegistry()
    # prometheus-client leaves MultiProcessCollector.__init__ unannotated.
    multiprocess.MultiProcessCollector(combined, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return generate_latest(combined), CONTENT_TYPE_LATEST
