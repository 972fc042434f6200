"""Scratch databases on the test servers: created per run, dropped afterwards."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gql_blog.config import normalize_database_url

DIALECTS = ["sqlite", "postgresql", "mariadb"]
SERVER_VARIABLES = {
    "postgresql": "GQL_BLOG_TEST_POSTGRES_URL",
    "mariadb": "GQL_BLOG_TEST_MYSQL_URL",
}

# Scratch databases default to a linguistic, case-insensitive collation, as many servers do, so the
# tests prove that comparisons and orderings do not depend on how the server was set up.
_CREATE_OPTIONS = {
    "postgresql": "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'",
    "mariadb": "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
}


def server_url(dialect: str) -> str:
    """The configured server URL for a dialect, or skip the test saying which variable is unset."""
    variable = SERVER_VARIABLES[dialect]
    raw = os.environ.get(variable)
    if not raw:
        pytest.skip(f"{variable} is not set: {dialect} tests skipped")
    return normalize_database_url(raw, variable=variable)


def require(problem: str | None) -> None:
    """A test's prerequisite (a program, a package) is missing: skip saying which, or in CI
    (CI=true), where everything is installed, fail."""
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(problem)
    pytest.skip(problem)


@asynccontextmanager
async def empty_database(dialect: str, tmp_dir: Path) -> AsyncIterator[str]:
    """A new, empty database for `dialect`; its URL is yielded and the database dropped after."""
    name = f"gqlb_test_{uuid.uuid4().hex[:12]}"
    if dialect == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_dir / (name + '.sqlite')}"
        return
    admin_url = server_url(dialect)
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    quoted = f'"{name}"' if dialect == "postgresql" else f"`{name}`"
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE {quoted} {_CREATE_OPTIONS[dialect]}"))
    except Exception as error:  # an unreachable server given by the caller is a failure
        await admin.dispose()
        pytest.fail(f"{SERVER_VARIABLES[dialect]}={admin_url} is unreachable: {error}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            if dialect == "postgresql":
                await connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            else:
                await connection.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
        await admin.dispose()
