"""Settings from the environment: every `GQL_BLOG_*` variable, read once into one frozen object."""

import difflib
import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Self, TypeVar

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from gql_blog.errors import ConfigError as ConfigError  # re-exported: callers name it here

T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./blog.db"
PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

# A plain URL names no async driver; these are the ones gql_blog runs on.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
}
_SUPPORTED = {
    "sqlite+aiosqlite",
    "postgresql+asyncpg",
    "mysql+asyncmy",
    "mariadb+asyncmy",
}

PREFIX = "GQL_BLOG_"
# Not settings: the variables of the tests and benchmarks (GQL_BLOG_TEST_POSTGRES_URL, ...).
TOOL_PREFIXES = ("GQL_BLOG_TEST_", "GQL_BLOG_BENCH_")
# Settings read from a variable of another name (prometheus-client's own).
_NOT_FROM_PREFIX = frozenset({"prometheus_multiproc_dir"})

# An origin is a scheme, a host and an optional port: no path, no query.
_ORIGIN = re.compile(r"\*|https?://[^/?#\s,]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # PostgreSQL: streaming replicas that take the reads (see replicas.py); none by default.
    database_replica_urls: tuple[str, ...] = ()
    # A replica further behind the primary than this is skipped until it catches up.
    replica_max_lag_seconds: float = 5.0
    # PostgreSQL behind PgBouncer in transaction pooling mode: no named prepared statement is
    # kept, planned reads run in a transaction, and LISTEN goes to database_listen_url.
    pgbouncer: bool = False
    # PostgreSQL: where the event bus LISTENs (a direct connection); default: database_url.
    database_listen_url: str | None = None
    pool_size: int = 10
    max_overflow: int = 10
    pool_recycle_seconds: int = 1800
    # How long a request waits for a database connection (a free one, or a new one to connect).
    pool_timeout_seconds: float = 5.0
    # PostgreSQL: the planned read path's own asyncpg pool (read_pool.ReadPool); 0 turns it off.
    read_pool_size: int = 10
    echo_sql: bool = False
    debug: bool = False
    token_lifetime_seconds: int = 14 * 24 * 3600
    default_page_size: int = 20
    max_page_size: int = 100
    max_filter_depth: int = 10
    # Relation filters (`some`/`none`/`every`, to-one nesting) inside each other, at most.
    max_relation_filter_depth: int = 3
    # Reads the planner covers skip strawberry's executor (see gql_blog/plan/).
    planner: bool = True
    # A request that runs longer is stopped (also each SQL statement, on PostgreSQL and MariaDB).
    request_timeout_seconds: float = 15.0
    sign_in_window_seconds: int = 300
    sign_in_failures_per_username: int = 10
    sign_in_failures_per_address: int = 50
    sign_in_failures_per_username_and_address: int = 5
    # How long an address that signed in to an account stays free of the account's throttle.
    sign_in_known_address_seconds: int = 30 * 24 * 3600
    # Where worker processes share their Prometheus metrics (prometheus-client's own variable).
    prometheus_multiproc_dir: str | None = None
    otel: bool = False
    # Limits a request is checked against before any SQL runs (API.md, "Limits").
    max_query_depth: int = 12
    max_aliases: int = 30
    # Field selections once fragments are expanded (each spread counts its fragment's fields).
    max_fields: int = 2000
    max_tokens: int = 5000
    max_cost: int = 50_000
    # How often each worker reads the tables' row counts again, which the cost model prices by.
    row_counts_refresh_seconds: float = 300.0
    # Requests priced at expensive_cost or more take turns, a few at a time (see admission.py):
    # about 0.2 s of database work in the cost model's units (see pricing.py).
    expensive_cost: int = 20_000
    max_expensive_requests: int = 2
    expensive_queue_size: int = 10
    max_batch_operations: int = 10
    max_body_bytes: int = 1_048_576
    max_node_ids: int = 100
    max_import_posts: int = 100
    max_filter_items: int = 100
    document_cache_bytes: int = 64 * 1024 * 1024
    introspection: bool = True
    cors_origins: tuple[str, ...] = ()
    # Subscriptions (graphql-transport-ws on /graphql).
    max_subscriptions_per_connection: int = 20
    subscriber_queue_size: int = 100
    websocket_keepalive_seconds: int = 15
    # Open websockets a worker accepts, in all and from one client address (4429 beyond).
    max_websockets: int = 1000
    max_websockets_per_address: int = 50
    # SQLite and MariaDB: how often each worker polls the event outbox, how long rows stay.
    event_poll_interval_ms: int = 250
    event_retention_seconds: int = 3600
    # Automatic persisted queries: registered query texts kept per process, in bytes.
    persisted_query_cache_bytes: int = 16 * 1024 * 1024
    # The shared table of registered texts: a hash not registered again for this long is pruned.
    persisted_query_retention_seconds: int = 30 * 24 * 3600
    # A persisted-documents JSON file (hash → text): only its documents run (trusted mode).
    trusted_documents: str | None = None
    # How long shared caches and browsers may keep an anonymous GET answer.
    cache_max_age_seconds: int = 60
    # On SIGTERM, /readyz answers 503 this long while requests are still served (see draining.py).
    drain_seconds: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        """Read and validate the environment; a bad value or an unknown `GQL_BLOG_*` name
        raises `ConfigError` naming it."""
        refuse_unknown_variables(environ)
        reader = _Reader(environ)
        settings = cls(
            database_url=normalize_database_url(
                environ.get("GQL_BLOG_DATABASE_URL", DEFAULT_DATABASE_URL),
                variable="GQL_BLOG_DATABASE_URL",
            ),
            database_replica_urls=reader.replica_urls("DATABASE_REPLICA_URLS"),
            replica_max_lag_seconds=reader.seconds("REPLICA_MAX_LAG_SECONDS", 5.0),
            pgbouncer=reader.boolean("PGBOUNCER", False),
            database_listen_url=_optional_url(environ, "GQL_BLOG_DATABASE_LISTEN_URL"),
            pool_size=reader.integer("POOL_SIZE", 10, minimum=1),
            max_overflow=reader.integer("MAX_OVERFLOW", 10, minimum=0),
            pool_recycle_seconds=reader.integer("POOL_RECYCLE_SECONDS", 1800, minimum=1),
            pool_timeout_seconds=reader.seconds("POOL_TIMEOUT_SECONDS", 5.0),
            read_pool_size=reader.integer("READ_POOL_SIZE", 10, minimum=0),
            echo_sql=reader.boolean("ECHO_SQL", False),
            debug=reader.boolean("DEBUG", False),
            token_lifetime_seconds=reader.integer(
                "TOKEN_LIFETIME_SECONDS", 14 * 24 * 3600, minimum=60
            ),
            default_page_size=reader.integer("DEFAULT_PAGE_SIZE", 20, minimum=1),
            max_page_size=reader.integer("MAX_PAGE_SIZE", 100, minimum=1),
            max_filter_depth=reader.integer("MAX_FILTER_DEPTH", 10, minimum=1),
            max_relation_filter_depth=reader.integer("MAX_RELATION_FILTER_DEPTH", 3, minimum=0),
            planner=reader.boolean("PLANNER", True),
            request_timeout_seconds=reader.seconds("REQUEST_TIMEOUT_SECONDS", 15.0),
            sign_in_window_seconds=reader.integer("SIGN_IN_WINDOW_SECONDS", 300, minimum=1),
            sign_in_failures_per_username=reader.integer(
                "SIGN_IN_FAILURES_PER_USERNAME", 10, minimum=1
            ),
            sign_in_failures_per_address=reader.integer(
                "SIGN_IN_FAILURES_PER_ADDRESS", 50, minimum=1
            ),
            sign_in_failures_per_username_and_address=reader.integer(
                "SIGN_IN_FAILURES_PER_USERNAME_AND_ADDRESS", 5, minimum=1
            ),
            sign_in_known_address_seconds=reader.integer(
                "SIGN_IN_KNOWN_ADDRESS_SECONDS", 30 * 24 * 3600, minimum=1
            ),
            prometheus_multiproc_dir=environ.get(PROMETHEUS_MULTIPROC_DIR) or None,
            otel=reader.boolean("OTEL", False),
            max_query_depth=reader.integer("MAX_QUERY_DEPTH", 12, minimum=1),
            max_aliases=reader.integer("MAX_ALIASES", 30, minimum=0),
            max_fields=reader.integer("MAX_FIELDS", 2000, minimum=1),
            max_tokens=reader.integer("MAX_TOKENS", 5000, minimum=1),
            max_cost=reader.integer("MAX_COST", 50_000, minimum=1),
            row_counts_refresh_seconds=reader.seconds("ROW_COUNTS_REFRESH_SECONDS", 300.0),
            expensive_cost=reader.integer("EXPENSIVE_COST", 20_000, minimum=1),
            max_expensive_requests=reader.integer("MAX_EXPENSIVE_REQUESTS", 2, minimum=1),
            expensive_queue_size=reader.integer("EXPENSIVE_QUEUE_SIZE", 10, minimum=0),
            max_batch_operations=reader.integer("MAX_BATCH_OPERATIONS", 10, minimum=0),
            max_body_bytes=reader.integer("MAX_BODY_BYTES", 1_048_576, minimum=1),
            max_node_ids=reader.integer("MAX_NODE_IDS", 100, minimum=1),
            max_import_posts=reader.integer("MAX_IMPORT_POSTS", 100, minimum=1),
            max_filter_items=reader.integer("MAX_FILTER_ITEMS", 100, minimum=1),
            document_cache_bytes=reader.integer(
                "DOCUMENT_CACHE_BYTES", 64 * 1024 * 1024, minimum=0
            ),
            introspection=reader.boolean("INTROSPECTION", True),
            cors_origins=reader.origins("CORS_ORIGINS"),
            max_subscriptions_per_connection=reader.integer(
                "MAX_SUBSCRIPTIONS_PER_CONNECTION", 20, minimum=1
            ),
            subscriber_queue_size=reader.integer("SUBSCRIBER_QUEUE_SIZE", 100, minimum=1),
            websocket_keepalive_seconds=reader.integer(
                "WEBSOCKET_KEEPALIVE_SECONDS", 15, minimum=1
            ),
            max_websockets=reader.integer("MAX_WEBSOCKETS", 1000, minimum=1),
            max_websockets_per_address=reader.integer("MAX_WEBSOCKETS_PER_ADDRESS", 50, minimum=1),
            event_poll_interval_ms=reader.integer("EVENT_POLL_INTERVAL_MS", 250, minimum=10),
            event_retention_seconds=reader.integer("EVENT_RETENTION_SECONDS", 3600, minimum=60),
            persisted_query_cache_bytes=reader.integer(
                "PERSISTED_QUERY_CACHE_BYTES", 16 * 1024 * 1024, minimum=0
            ),
            persisted_query_retention_seconds=reader.integer(
                "PERSISTED_QUERY_RETENTION_SECONDS", 30 * 24 * 3600, minimum=60
            ),
            trusted_documents=environ.get("GQL_BLOG_TRUSTED_DOCUMENTS") or None,
            cache_max_age_seconds=reader.integer("CACHE_MAX_AGE_SECONDS", 60, minimum=0),
            drain_seconds=reader.seconds("DRAIN_SECONDS", 0.0, inclusive=True),
        )
        if settings.default_page_size > settings.max_page_size:
            raise ConfigError(
                "GQL_BLOG_DEFAULT_PAGE_SIZE must not exceed GQL_BLOG_MAX_PAGE_SIZE "
                f"({settings.default_page_size} > {settings.max_page_size})"
            )
        if settings.database_replica_urls and settings.dialect != "postgresql":
            raise ConfigError(
                "GQL_BLOG_DATABASE_REPLICA_URLS: read replicas need a PostgreSQL database, and "
                f"GQL_BLOG_DATABASE_URL is {settings.dialect}; leave "
                "GQL_BLOG_DATABASE_REPLICA_URLS empty (SQLite and MariaDB have no replicas here)"
            )
        if settings.pgbouncer and settings.dialect != "postgresql":
            raise ConfigError(
                "GQL_BLOG_PGBOUNCER: PgBouncer pools PostgreSQL connections, and "
                f"GQL_BLOG_DATABASE_URL is {settings.dialect}; leave GQL_BLOG_PGBOUNCER unset"
            )
        if settings.pgbouncer and settings.database_listen_url is None:
            raise ConfigError(
                "GQL_BLOG_DATABASE_LISTEN_URL: with GQL_BLOG_PGBOUNCER=true, set it to a direct "
                "PostgreSQL URL (not PgBouncer's): LISTEN does not work through transaction "
                "pooling, and subscriptions need it"
            )
        if settings.otel and not _installed("opentelemetry.sdk"):
            raise ConfigError(
                "GQL_BLOG_OTEL: tracing needs the otel extra: pip install 'gql-blog[otel]'"
            )
        return settings

    @property
    def dialect(self) -> str:
        return make_url(self.database_url).get_backend_name()

    @property
    def listen_url(self) -> str:
        """Where the PostgreSQL event bus LISTENs."""
        return self.database_listen_url or self.database_url


def setting_variables() -> frozenset[str]:
    """Every `GQL_BLOG_*` setting's name: one per `Settings` field, so a new field is known."""
    return frozenset(
        PREFIX + field.name.upper()
        for field in fields(Settings)
        if field.name not in _NOT_FROM_PREFIX
    )


def refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    """A `GQL_BLOG_*` name that is no setting (a typo, say) stops startup with the closest one."""
    known = setting_variables()
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known or name.startswith(TOOL_PREFIXES):
            continue
        # Compared without the shared prefix, which would make every name look close.
        suffixes = sorted(known_name.removeprefix(PREFIX) for known_name in known)
        closest = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1)
        hint = f" (did you mean {PREFIX}{closest[0]}?)" if closest else ""
        raise ConfigError(
            f"{name}: no such setting{hint}. The settings are listed in the README; names "
            f"starting with {' or '.join(TOOL_PREFIXES)} are left to the tests and benchmarks."
        )


def export_to_workers(variable: str, value: str) -> None:
    """Set a variable for the worker processes `serve` starts: they read the environment anew."""
    os.environ[variable] = value


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _optional_url(environ: Mapping[str, str], variable: str) -> str | None:
    raw = environ.get(variable)
    return normalize_database_url(raw, variable=variable) if raw else None


def normalize_database_url(raw: str, *, variable: str = "GQL_BLOG_DATABASE_URL") -> str:
    """Move a plain database URL to its async driver, or refuse it with the URL to use."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            f"{variable}: expected a database URL such as {DEFAULT_DATABASE_URL}, got {raw!r}"
        ) from None
    if url.drivername in _SUPPORTED:
        return _render(url)
    backend = url.get_backend_name()
    if url.drivername == backend and backend in _ASYNC_DRIVERS:
        return _render(url.set(drivername=_ASYNC_DRIVERS[backend]))
    wanted = _ASYNC_DRIVERS.get(backend)
    if wanted is None:
        raise ConfigError(
            f"{variable}: unsupported database {backend!r}; use sqlite+aiosqlite://, "
            "postgresql+asyncpg:// or mysql+asyncmy://"
        )
    raise ConfigError(
        f"{variable}: driver {url.drivername!r} is not supported; use a {wanted}:// URL"
    )


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class _Reader:
    environ: Mapping[str, str]

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum:
                raise ValueError
            return value

        return self._read(name, default, parse, f"a whole number >= {minimum}")

    def seconds(
        self, name: str, default: float, *, minimum: float = 0.0, inclusive: bool = False
    ) -> float:
        """A duration: more than `minimum` seconds (or exactly it, if `inclusive`), fractions
        allowed."""

        def parse(raw: str) -> float:
            value = float(raw)
            above = value >= minimum if inclusive else value > minimum
            if not above or value == float("inf"):
                raise ValueError
            return value

        bound = ">=" if inclusive else ">"
        return self._read(name, default, parse, f"a number of seconds {bound} {minimum:g}")

    def boolean(self, name: str, default: bool) -> bool:
        words = {"1": True, "true": True, "yes": True, "on": True}
        words |= {"0": False, "false": False, "no": False, "off": False}

        def parse(raw: str) -> bool:
            return words[raw.strip().lower()]

        return self._read(name, default, parse, "one of true/false, 1/0, yes/no, on/off")

    def origins(self, name: str) -> tuple[str, ...]:
        def parse(raw: str) -> tuple[str, ...]:
            origins = tuple(
                origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()
            )
            if not all(_ORIGIN.fullmatch(origin) for origin in origins):
                raise ValueError
            return origins

        expected = "comma-separated origins such as https://blog.example.com, or *"
        return self._read(name, (), parse, expected)

    def replica_urls(self, name: str) -> tuple[str, ...]:
        """Comma-separated PostgreSQL URLs, each moved to its async driver (empty: none)."""
        variable = f"GQL_BLOG_{name}"
        urls = []
        for raw in self.environ.get(variable, "").split(","):
            if not raw.strip():
                continue
            url = normalize_database_url(raw.strip(), variable=variable)
            if make_url(url).get_backend_name() != "postgresql":
                raise ConfigError(
                    f"{variable}: read replicas are PostgreSQL streaming replicas; "
                    f"{make_url(url).get_backend_name()!r} is not one"
                )
            urls.append(url)
        return tuple(urls)

    def _read(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        variable = f"GQL_BLOG_{name}"
        raw = self.environ.get(variable)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except (ValueError, KeyError):
            raise ConfigError(f"{variable}: expected {expected}, got {raw!r}") from None
