"""Fixtures: database tests run on SQLite, and on PostgreSQL and MariaDB when their URL is set.

Each dialect's database is migrated once per run; each test runs inside an outer transaction that
is rolled back at its end, so every test starts from an empty database.
"""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.applications import Starlette

from gql_blog import migrations
from gql_blog.app import GraphQLApp, create_app
from gql_blog.config import Settings
from gql_blog.engines import create_engine
from gql_blog.plan.planner import Planner
from gql_blog.statement_counts import StatementCount, count_statements
from tests.databases import DIALECTS, empty_database
from tests.graphql_client import GraphQLClient, request_sessions, serve_api, serve_app
from tests.skip_summary import pytest_terminal_summary as pytest_terminal_summary  # the hook

StatementCounter = Callable[[], AbstractContextManager[StatementCount]]


@pytest.fixture(scope="session", params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def database_url(
    dialect: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database of this dialect migrated to head, for the whole run."""
    async with empty_database(dialect, tmp_path_factory.mktemp("db")) as url:
        await asyncio.to_thread(migrations.upgrade, url)
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back when the test ends."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
async def db(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session joined to the test's transaction: its commits are savepoints."""
    session = AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    await session.close()


@pytest.fixture
def count_sql() -> StatementCounter:
    """`with count_sql() as counted:` counts the statements run inside the block."""
    return count_statements


@pytest.fixture
async def api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[GraphQLClient]:
    """Real HTTP through the ASGI app; each request's session joins the test's transaction."""
    async with serve_api(settings, connection, db) as client:
        yield client


@pytest.fixture
async def executor_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[GraphQLClient]:
    """`api` with the planner off: strawberry's executor and its loaders answer everything (with
    the planner on, it answers a planned document from its first request)."""
    executor = dataclasses.replace(settings, planner=False)
    async with serve_api(executor, connection, db) as client:
        yield client


def graphql_endpoint(app: Starlette) -> GraphQLApp:
    """The `/graphql` route's GraphQLApp, which owns the app's planner."""
    endpoint = next(r for r in app.routes if getattr(r, "path", "") == "/graphql").endpoint
    assert isinstance(endpoint, GraphQLApp)
    return endpoint


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedApi:
    client: GraphQLClient
    planner: Planner


@pytest.fixture
async def planned_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[PlannedApi]:
    """The app with the planner inside the test's transaction (as `api`), and its planner."""
    app = create_app(
        dataclasses.replace(settings, planner=True), sessions=request_sessions(connection)
    )
    async with serve_app(app, db) as client:
        yield PlannedApi(client, graphql_endpoint(app).planner)
