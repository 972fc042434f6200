"""Settings from the environment: defaults, parsing, and errors that name the variable."""

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gql_blog.config import (
    DEFAULT_DATABASE_URL,
    ConfigError,
    Settings,
    refuse_unknown_variables,
    setting_variables,
)


def test_empty_environment_gives_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_defaults_use_sqlite_and_the_contracts_page_sizes() -> None:
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.dialect == "sqlite"
    assert (settings.default_page_size, settings.max_page_size) == (20, 100)
    assert settings.max_filter_depth == 10
    assert (settings.debug, settings.echo_sql) == (False, False)


def test_unrelated_variables_are_ignored() -> None:
    assert Settings.from_env({"HOME": "/root", "GQL_BLOG": "x", "DEBUG": "maybe"}) == Settings()


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "value"),
    [
        ("GQL_BLOG_POOL_SIZE", "3", "pool_size", 3),
        ("GQL_BLOG_MAX_OVERFLOW", "0", "max_overflow", 0),
        ("GQL_BLOG_POOL_RECYCLE_SECONDS", "60", "pool_recycle_seconds", 60),
        ("GQL_BLOG_POOL_TIMEOUT_SECONDS", "0.25", "pool_timeout_seconds", 0.25),
        ("GQL_BLOG_READ_POOL_SIZE", "0", "read_pool_size", 0),
        ("GQL_BLOG_READ_POOL_SIZE", "32", "read_pool_size", 32),
        ("GQL_BLOG_ECHO_SQL", "true", "echo_sql", True),
        ("GQL_BLOG_DEBUG", "Yes", "debug", True),
        ("GQL_BLOG_DEBUG", "0", "debug", False),
        ("GQL_BLOG_DEBUG", " off ", "debug", False),
        ("GQL_BLOG_TOKEN_LIFETIME_SECONDS", "3600", "token_lifetime_seconds", 3600),
        ("GQL_BLOG_DEFAULT_PAGE_SIZE", "5", "default_page_size", 5),
        ("GQL_BLOG_MAX_PAGE_SIZE", "500", "max_page_size", 500),
        ("GQL_BLOG_MAX_FILTER_DEPTH", "3", "max_filter_depth", 3),
        ("GQL_BLOG_MAX_QUERY_DEPTH", "20", "max_query_depth", 20),
        ("GQL_BLOG_MAX_ALIASES", "0", "max_aliases", 0),
        ("GQL_BLOG_MAX_FIELDS", "500", "max_fields", 500),
        ("GQL_BLOG_MAX_RELATION_FILTER_DEPTH", "0", "max_relation_filter_depth", 0),
        ("GQL_BLOG_ROW_COUNTS_REFRESH_SECONDS", "2.5", "row_counts_refresh_seconds", 2.5),
        ("GQL_BLOG_MAX_TOKENS", "900", "max_tokens", 900),
        ("GQL_BLOG_MAX_COST", "10", "max_cost", 10),
        ("GQL_BLOG_MAX_BATCH_OPERATIONS", "0", "max_batch_operations", 0),
        ("GQL_BLOG_MAX_BODY_BYTES", "2048", "max_body_bytes", 2048),
        ("GQL_BLOG_MAX_NODE_IDS", "5", "max_node_ids", 5),
        ("GQL_BLOG_MAX_IMPORT_POSTS", "5", "max_import_posts", 5),
        ("GQL_BLOG_MAX_FILTER_ITEMS", "5", "max_filter_items", 5),
        ("GQL_BLOG_DOCUMENT_CACHE_BYTES", "0", "document_cache_bytes", 0),
        ("GQL_BLOG_INTROSPECTION", "off", "introspection", False),
        (
            "GQL_BLOG_CORS_ORIGINS",
            "https://blog.example.com, http://localhost:5173/",
            "cors_origins",
            ("https://blog.example.com", "http://localhost:5173"),
        ),
        (
            "GQL_BLOG_DATABASE_URL",
            "sqlite+aiosqlite:///blog.sqlite",
            "database_url",
            "sqlite+aiosqlite:///blog.sqlite",
        ),
        ("GQL_BLOG_PERSISTED_QUERY_CACHE_BYTES", "0", "persisted_query_cache_bytes", 0),
        ("GQL_BLOG_TRUSTED_DOCUMENTS", "docs.json", "trusted_documents", "docs.json"),
        ("GQL_BLOG_CACHE_MAX_AGE_SECONDS", "0", "cache_max_age_seconds", 0),
        ("GQL_BLOG_DRAIN_SECONDS", "2.5", "drain_seconds", 2.5),
        ("GQL_BLOG_DRAIN_SECONDS", "0", "drain_seconds", 0.0),
    ],
    ids=[
        "pool-size",
        "max-overflow",
        "pool-recycle",
        "pool-timeout-fraction",
        "read-pool-off",
        "read-pool-size",
        "echo-sql",
        "debug-yes",
        "debug-0",
        "debug-off-padded",
        "token-lifetime",
        "default-page-size",
        "max-page-size",
        "max-filter-depth",
        "max-query-depth",
        "max-aliases",
        "max-fields",
        "max-relation-filter-depth",
        "row-counts-refresh",
        "max-tokens",
        "max-cost",
        "max-batch-operations",
        "max-body-bytes",
        "max-node-ids",
        "max-import-posts",
        "max-filter-items",
        "document-cache-bytes",
        "introspection",
        "cors-origins",
        "database-url",
        "persisted-query-cache-bytes",
        "trusted-documents",
        "cache-max-age",
        "drain-seconds",
        "drain-off",
    ],
)
def test_variable_is_parsed(variable: str, raw: str, attribute: str, value: object) -> None:
    settings = Settings.from_env({variable: raw})
    assert getattr(settings, attribute) == value
    untouched = {field.name for field in dataclasses.fields(Settings)} - {attribute}
    defaults = Settings()
    assert all(getattr(settings, name) == getattr(defaults, name) for name in untouched)


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("GQL_BLOG_POOL_SIZE", "ten", "a whole number >= 1"),
        ("GQL_BLOG_POOL_SIZE", "0", "a whole number >= 1"),
        ("GQL_BLOG_MAX_OVERFLOW", "-1", "a whole number >= 0"),
        ("GQL_BLOG_POOL_RECYCLE_SECONDS", "1.5", "a whole number >= 1"),
        ("GQL_BLOG_POOL_TIMEOUT_SECONDS", "0", "a number of seconds > 0"),
        ("GQL_BLOG_POOL_TIMEOUT_SECONDS", "soon", "a number of seconds > 0"),
        ("GQL_BLOG_READ_POOL_SIZE", "-1", "a whole number >= 0"),
        ("GQL_BLOG_TOKEN_LIFETIME_SECONDS", "59", "a whole number >= 60"),
        ("GQL_BLOG_DEFAULT_PAGE_SIZE", "0", "a whole number >= 1"),
        ("GQL_BLOG_MAX_PAGE_SIZE", "many", "a whole number >= 1"),
        ("GQL_BLOG_MAX_FILTER_DEPTH", "-3", "a whole number >= 1"),
        ("GQL_BLOG_DEBUG", "maybe", "one of true/false"),
        ("GQL_BLOG_ECHO_SQL", "2", "one of true/false"),
        ("GQL_BLOG_DATABASE_URL", "not a url", "a database URL"),
        ("GQL_BLOG_MAX_COST", "0", "a whole number >= 1"),
        ("GQL_BLOG_MAX_FIELDS", "0", "a whole number >= 1"),
        ("GQL_BLOG_MAX_RELATION_FILTER_DEPTH", "-1", "a whole number >= 0"),
        ("GQL_BLOG_ROW_COUNTS_REFRESH_SECONDS", "0", "a number of seconds > 0"),
        ("GQL_BLOG_DRAIN_SECONDS", "-1", "a number of seconds >= 0"),
        ("GQL_BLOG_CORS_ORIGINS", "blog.example.com", "comma-separated origins"),
        ("GQL_BLOG_CORS_ORIGINS", "https://blog.example.com/app", "comma-separated origins"),
    ],
    ids=[
        "pool-size-word",
        "pool-size-zero",
        "max-overflow-negative",
        "pool-recycle-fraction",
        "pool-timeout-zero",
        "pool-timeout-word",
        "read-pool-negative",
        "token-lifetime-too-short",
        "default-page-size-zero",
        "max-page-size-word",
        "filter-depth-negative",
        "debug-maybe",
        "echo-sql-2",
        "database-url-garbage",
        "max-cost-zero",
        "max-fields-zero",
        "relation-filter-depth-negative",
        "row-counts-refresh-zero",
        "drain-negative",
        "cors-origin-without-scheme",
        "cors-origin-with-path",
    ],
)
def test_bad_value_is_refused_naming_variable_and_expectation(
    variable: str, raw: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw})
    message = str(caught.value)
    assert variable in message
    assert expected in message
    assert repr(raw) in message


@pytest.mark.parametrize(
    ("raw", "normalized", "dialect"),
    [
        (
            "postgresql://blog:pw@db:5432/blog",
            "postgresql+asyncpg://blog:pw@db:5432/blog",
            "postgresql",
        ),
        ("postgres://blog@db/blog", "postgresql+asyncpg://blog@db/blog", "postgresql"),
        ("mysql://root@db:3306/blog", "mysql+asyncmy://root@db:3306/blog", "mysql"),
        ("mariadb://root@db/blog", "mariadb+asyncmy://root@db/blog", "mariadb"),
        ("sqlite:///blog.sqlite", "sqlite+aiosqlite:///blog.sqlite", "sqlite"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://", "sqlite"),
        ("mysql+asyncmy://root@db/blog", "mysql+asyncmy://root@db/blog", "mysql"),
    ],
    ids=[
        "postgresql",
        "postgres-alias",
        "mysql",
        "mariadb",
        "sqlite",
        "sqlite-memory",
        "already-async",
    ],
)
def test_database_url_gets_its_async_driver(raw: str, normalized: str, dialect: str) -> None:
    settings = Settings.from_env({"GQL_BLOG_DATABASE_URL": raw})
    assert settings.database_url == normalized
    assert settings.dialect == dialect


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [
        ("postgresql+psycopg2://blog@db/blog", "postgresql+asyncpg://"),
        ("postgresql+psycopg://blog@db/blog", "postgresql+asyncpg://"),
        ("mysql+pymysql://root@db/blog", "mysql+asyncmy://"),
        ("sqlite+pysqlite:///blog.sqlite", "sqlite+aiosqlite://"),
    ],
    ids=["psycopg2", "psycopg3", "pymysql", "pysqlite"],
)
def test_sync_driver_is_refused_naming_the_async_one(raw: str, wanted: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"GQL_BLOG_DATABASE_URL": raw})
    assert "GQL_BLOG_DATABASE_URL" in str(caught.value)
    assert wanted in str(caught.value)


def test_unsupported_database_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"GQL_BLOG_DATABASE_URL": "oracle://scott@db/blog"})
    message = str(caught.value)
    assert "GQL_BLOG_DATABASE_URL" in message
    assert "'oracle'" in message
    assert "postgresql+asyncpg://" in message


def test_default_page_size_above_max_page_size_is_refused() -> None:
    environ = {"GQL_BLOG_DEFAULT_PAGE_SIZE": "50", "GQL_BLOG_MAX_PAGE_SIZE": "40"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)
    assert "GQL_BLOG_DEFAULT_PAGE_SIZE" in str(caught.value)
    assert "GQL_BLOG_MAX_PAGE_SIZE" in str(caught.value)


def test_default_page_size_equal_to_max_page_size_is_accepted() -> None:
    settings = Settings.from_env(
        {"GQL_BLOG_DEFAULT_PAGE_SIZE": "40", "GQL_BLOG_MAX_PAGE_SIZE": "40"}
    )
    assert (settings.default_page_size, settings.max_page_size) == (40, 40)


def test_empty_value_means_the_default() -> None:
    assert Settings.from_env({"GQL_BLOG_POOL_SIZE": "", "GQL_BLOG_DEBUG": ""}) == Settings()


def test_password_in_database_url_is_kept() -> None:
    url = "postgresql://blog:p%40ss@db/blog"
    settings = Settings.from_env({"GQL_BLOG_DATABASE_URL": url})
    assert settings.database_url == "postgresql+asyncpg://blog:p%40ss@db/blog"


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().debug = True  # type: ignore[misc]


# Unknown GQL_BLOG_* names


def test_misspelled_setting_stops_startup_with_the_closest_name() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"GQL_BLOG_POOL_SIZEE": "5"})
    assert str(caught.value).startswith(
        "GQL_BLOG_POOL_SIZEE: no such setting (did you mean GQL_BLOG_POOL_SIZE?). "
    )


def test_unknown_setting_far_from_every_name_is_refused_without_a_guess() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"GQL_BLOG_XYZZY": "1"})
    assert str(caught.value).startswith("GQL_BLOG_XYZZY: no such setting. The settings are")


@pytest.mark.parametrize(
    "variable",
    ["GQL_BLOG_TEST_POSTGRES_URL", "GQL_BLOG_TEST_MYSQL_URL", "GQL_BLOG_BENCH_SECONDS"],
    ids=["test-postgres-url", "test-mysql-url", "bench"],
)
def test_variables_of_the_tests_and_benchmarks_are_not_settings(variable: str) -> None:
    assert Settings.from_env({variable: "postgresql://elsewhere/test"}) == Settings()


def test_every_settings_field_is_a_known_variable() -> None:
    names = {field.name for field in dataclasses.fields(Settings)} - {"prometheus_multiproc_dir"}
    assert setting_variables() == {"GQL_BLOG_" + name.upper() for name in names}
    assert "GQL_BLOG_PROMETHEUS_MULTIPROC_DIR" not in setting_variables()


@pytest.mark.parametrize("variable", sorted(setting_variables()))
def test_every_known_variable_is_read(variable: str) -> None:
    # A nonsense value is either refused, naming the variable, or changes the settings: so
    # the names derived from the fields are the names from_env reads.
    try:
        changed = Settings.from_env({variable: "-nonsense-"}) != Settings()
    except ConfigError as error:
        changed = str(error).startswith(variable + ":")
    assert changed


REPOSITORY = Path(__file__).resolve().parent.parent
# Where the project itself sets or names GQL_BLOG_* variables (not dependencies, not results).
_NAMED_IN = ["Makefile", "README.md", "pyproject.toml", ".ci", "bench", "deploy", "examples"]
_NAMED_IN += ["gql_blog", "tests"]
_SKIPPED_FOLDERS = {"node_modules", "generated", "results", "__pycache__"}
# GQL_BLOG_-named words that are no variable: bench/queries.py's constant, and the names the
# tests here and in test_cli.py must see refused (PROMETHEUS_MULTIPROC_DIR has no prefix).
_NOT_VARIABLES = {
    "GQL_BLOG_TEXTS",
    "GQL_BLOG_POOL_SIZEE",
    "GQL_BLOG_XYZZY",
    "GQL_BLOG_PROMETHEUS_MULTIPROC_DIR",
}


def _files_naming_variables() -> Iterator[Path]:
    for name in _NAMED_IN:
        root = REPOSITORY / name
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            skipped = _SKIPPED_FOLDERS.intersection(path.relative_to(REPOSITORY).parts)
            if path.is_file() and not skipped and not path.name.startswith(".venv"):
                yield path


def _variables_named_in_the_repository() -> dict[str, str]:
    """Every whole GQL_BLOG_* name the repository mentions (prefixes like `GQL_BLOG_TEST_` left
    out), with the first file that names it."""
    found: dict[str, str] = {}
    for path in _files_naming_variables():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for name in re.findall(r"\bGQL_BLOG_[A-Z0-9_]*[A-Z0-9]\b", text):
            found.setdefault(name, str(path.relative_to(REPOSITORY)))
    return found


def test_every_variable_the_repository_sets_is_accepted_at_startup() -> None:
    # The tests, CI, benchmarks, deploy files and examples set these; a name the server refuses
    # would stop every command they run. Tool names (GQL_BLOG_TEST_*, GQL_BLOG_BENCH_*) pass.
    named = _variables_named_in_the_repository()
    assert {"GQL_BLOG_TEST_POSTGRES_URL", "GQL_BLOG_DATABASE_URL"} <= named.keys()
    refused = {}
    for name, where in sorted(named.items()):
        if name in _NOT_VARIABLES or name in setting_variables():
            continue
        try:
            refuse_unknown_variables({name: "1"})
        except ConfigError as error:
            refused[name] = f"{where}: {error}"
    assert refused == {}
    assert named.keys() >= _NOT_VARIABLES  # each exception is still needed
