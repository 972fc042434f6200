"""A database out of reach: a full pool is "server busy", a refused connection "database
unavailable"; either answers 503 with one GraphQL error, soon, and the server recovers by itself."""

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import db
from gql_blog.app import create_app
from gql_blog.config import Settings
from tests.graphql_client import GraphQLClient, serve_app

POSTS = "query Feed { posts(first: 2) { totalCount nodes { title } } }"
# Signed out, a mutation that reads: createPost would answer AuthenticationError without SQL.
LOGIN = 'mutation { login(input: {username: "nobody", password: "secret12"}) { __typename } }'
BUSY = {
    "errors": [
        {
            "message": "The server is busy: no database connection came free in time. "
            "Try again shortly.",
            "extensions": {"code": "SERVER_BUSY"},
        }
    ]
}
UNAVAILABLE = {
    "errors": [
        {
            "message": "The database is unavailable. Try again shortly.",
            "extensions": {"code": "DATABASE_UNAVAILABLE"},
        }
    ]
}


@dataclasses.dataclass(frozen=True, slots=True)
class SmallPool:
    api: GraphQLClient
    engine: AsyncEngine


@pytest.fixture
async def small_pool(settings: Settings) -> AsyncIterator[SmallPool]:
    """The app on an engine of one connection, which waits a fifth of a second for it."""
    tight = dataclasses.replace(
        settings, pool_size=1, max_overflow=0, pool_timeout_seconds=0.2, planner=True
    )
    engine = db.create_engine(tight)
    app = create_app(tight, sessions=db.create_sessionmaker(engine))
    try:
        async with AsyncSession(engine) as unused, serve_app(app, unused) as api:
            yield SmallPool(api, engine)
    finally:
        await engine.dispose()


async def _post(api: GraphQLClient, query: str) -> tuple[int, object, str | None]:
    response = await api.http.post("/graphql", json={"query": query})
    return response.status_code, response.json(), response.headers.get("retry-after")


@pytest.mark.parametrize(
    ("query", "learned"),
    [(POSTS, False), (POSTS, True), (LOGIN, False)],
    ids=["query", "planned-query", "mutation"],
)
async def test_a_request_finding_every_connection_busy_answers_503_then_recovers(
    small_pool: SmallPool, query: str, learned: bool
) -> None:
    if learned:  # the planner knows the document: the second request takes the planned path
        assert (await _post(small_pool.api, query))[0] == 200
    async with small_pool.engine.connect() as holder:
        await holder.execute(text("SELECT 1"))  # the pool's one connection is taken
        started = time.monotonic()
        status, body, retry_after = await _post(small_pool.api, query)
        waited = time.monotonic() - started

    assert (status, body, retry_after) == (503, BUSY, "1")
    assert waited < 5  # the pool waits 0.2 s; the rest is a loaded machine's slack
    recovered = await _post(small_pool.api, POSTS)
    assert recovered[0] == 200
    assert recovered[1] == {
        "data": {"posts": {"totalCount": 0, "nodes": []}},
        "extensions": {"cost": 2},
    }


async def test_a_busy_batch_answers_one_503(small_pool: SmallPool) -> None:
    async with small_pool.engine.connect() as holder:
        await holder.execute(text("SELECT 1"))
        response = await small_pool.api.http.post(
            "/graphql", json=[{"query": POSTS}, {"query": "{ tags { totalCount } }"}]
        )

    assert response.status_code == 503
    assert response.json() == BUSY


def _unreachable_url(dialect: str, tmp_path: Path) -> str:
    """A database of `dialect` that refuses connections (nothing listens on port 1)."""
    if dialect == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'blog.sqlite'}"
    driver = {"postgresql": "postgresql+asyncpg", "mariadb": "mysql+asyncmy"}[dialect]
    return f"{driver}://gql@127.0.0.1:1/blog"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
async def unreachable(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[GraphQLClient]:
    """The app on a database that refuses every connection."""
    settings = Settings(database_url=_unreachable_url(request.param, tmp_path))
    engine = db.create_engine(settings)
    app = create_app(settings, sessions=db.create_sessionmaker(engine))
    try:
        async with AsyncSession(engine) as unused, serve_app(app, unused) as api:
            yield api
    finally:
        await engine.dispose()


@pytest.mark.parametrize("query", [POSTS, LOGIN], ids=["query", "mutation"])
async def test_an_unreachable_database_answers_503_at_once(
    unreachable: GraphQLClient, query: str
) -> None:
    started = time.monotonic()
    status, body, retry_after = await _post(unreachable, query)
    waited = time.monotonic() - started

    assert (status, body, retry_after) == (503, UNAVAILABLE, "1")
    assert waited < 5  # refused at once; the rest is a loaded machine's slack


async def test_a_signed_in_request_to_an_unreachable_database_answers_503(
    unreachable: GraphQLClient,
) -> None:
    response = await unreachable.http.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers={"Authorization": "Bearer some-token"},
    )

    assert response.status_code == 503
    assert response.json() == UNAVAILABLE
