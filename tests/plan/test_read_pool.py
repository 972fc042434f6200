"""PostgreSQL's read pool: planned reads run on asyncpg's own pool, never on a session.

The app here is served with its real lifespan (its own engine and read pool) over committed
rows. Each test proves one promise of `read_pool.ReadPool`: planned reads take their connection from
it and give it back; a full pool is "server busy" after the pool timeout, then recovers; a
connection the database closed (a restart) is replaced at the next request.
"""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool
from starlette.types import ASGIApp, Receive, Scope, Send

from gql_blog import engines, read_pool
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.plan.planner import Planner
from tests.committed import empty_tables
from tests.conftest import graphql_endpoint
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, serve_app
from tests.live import CREATE_POST, REGISTER
from tests.test_outages import BUSY, UNAVAILABLE, wait_for_lock

FEED = "query Feed { posts(first: 3) { nodes { title author { username } } } }"


@dataclass(frozen=True, slots=True)
class ReadPoolApi:
    api: GraphQLClient
    planner: Planner
    state: dict[str, Any]  # the lifespan's state, as requests see it

    @property
    def reads(self) -> read_pool.ReadPool:
        reads = self.state["reads"]
        assert isinstance(reads, read_pool.ReadPool), "the lifespan opened no read pool"
        return reads

    async def feed(self) -> tuple[int, Any]:
        response = await self.api.http.post("/graphql", json={"query": FEED})
        return response.status_code, response.json()

    async def planned_feed(self) -> Any:
        """The feed, answered by the planner (from its first request on)."""
        answered = self.planner.answered
        status, body = await self.feed()
        assert (status, self.planner.answered) == (200, answered + 1), body
        return body


def _capturing_state(app: ASGIApp, into: dict[str, Any]) -> ASGIApp:
    async def capture(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            into.update(scope["state"])
        await app(scope, receive, send)

    return capture


@pytest.fixture(params=[1], ids=["one-connection"])
async def read_pool_api(
    request: pytest.FixtureRequest, dialect: str, settings: Settings
) -> AsyncIterator[ReadPoolApi]:
    """The app on its own engine and a read pool of `param` connections, over two committed
    posts."""
    if dialect != "postgresql":
        pytest.skip("the read pool is PostgreSQL's (other databases read through the session)")
    tight = dataclasses.replace(settings, read_pool_size=request.param, pool_timeout_seconds=0.3)
    engine = engines.create_engine(tight)
    app = create_app(tight)
    state: dict[str, Any] = {}
    try:
        async with (
            engines.create_sessionmaker(engine)() as session,
            serve_app(_capturing_state(app, state), session) as api,  # type: ignore[arg-type]
        ):
            author = await make_user(session, username="reader")
            for title in ("First", "Second"):
                await make_post(session, author=author, title=title)
            await session.commit()
            yield ReadPoolApi(api, graphql_endpoint(app).planner, state)
    finally:
        await empty_tables(engine)
        await engine.dispose()


async def test_a_planned_read_borrows_a_read_connection_and_gives_it_back(
    read_pool_api: ReadPoolApi,
) -> None:
    body = await read_pool_api.planned_feed()

    titles = [node["title"] for node in body["data"]["posts"]["nodes"]]
    assert sorted(titles) == ["First", "Second"]
    pool = read_pool_api.reads
    # Opened on demand, and idle again once the request is answered.
    assert (pool.size, pool.idle) == (1, 1)
    # Concurrent planned reads share the one connection in turn: none fails, none is kept.
    answers = await asyncio.gather(*(read_pool_api.feed() for _ in range(6)))
    assert {status for status, _ in answers} == {200}
    assert [answer for _, answer in answers] == [body] * 6
    assert (pool.size, pool.idle) == (1, 1)


async def test_a_full_read_pool_answers_server_busy_then_recovers(
    read_pool_api: ReadPoolApi,
) -> None:
    await read_pool_api.planned_feed()

    async with read_pool_api.reads.connection():  # the pool's one connection is taken
        started = time.monotonic()
        status, body = await read_pool_api.feed()
        waited = time.monotonic() - started
    assert (status, body) == (503, BUSY)
    assert 0.3 <= waited < 2.0  # the pool timeout, not the request's time limit

    assert (await read_pool_api.feed()) == (200, await read_pool_api.planned_feed())


async def test_a_read_connection_the_database_closed_is_replaced(
    read_pool_api: ReadPoolApi, settings: Settings
) -> None:
    before = await read_pool_api.planned_feed()
    url = make_url(settings.database_url).set(drivername="postgresql")
    admin = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        # As a restart does to every connection: the server ends the read pool's backend.
        ended = await admin.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity"
            " where application_name = $1 and datname = current_database()",
            read_pool.READ_POOL_APPLICATION_NAME,
        )
        assert ended == 1
        for _ in range(100):  # until the backend is gone
            left = await admin.fetchval(
                "select count(*) from pg_stat_activity"
                " where application_name = $1 and datname = current_database()",
                read_pool.READ_POOL_APPLICATION_NAME,
            )
            if left == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    # The backend is gone from the server's view; give the client's event loop the moment it
    # needs to read the closed socket, as any later request would find it (CI once raced it).
    await asyncio.sleep(0.2)

    # The next request connects anew: it succeeds, with the same answer.
    assert await read_pool_api.planned_feed() == before
    assert read_pool_api.reads.size == 1


@pytest.mark.parametrize("read_pool_api", [0], ids=["no-read-pool"], indirect=True)
async def test_a_read_pool_size_of_0_reads_through_the_session(
    read_pool_api: ReadPoolApi,
) -> None:
    body = await read_pool_api.planned_feed()

    assert read_pool_api.state["reads"] is None
    assert sorted(node["title"] for node in body["data"]["posts"]["nodes"]) == ["First", "Second"]


async def test_a_read_connection_that_dies_under_a_statement_answers_503_then_is_replaced(
    read_pool_api: ReadPoolApi, engine: AsyncEngine
) -> None:
    before = await read_pool_api.planned_feed()
    async with engine.connect() as locker:
        pid = await locker.scalar(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": read_pool.READ_POOL_APPLICATION_NAME},
        )
        await locker.execute(text("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE"))
        answering = asyncio.ensure_future(read_pool_api.feed())
        await asyncio.wait_for(wait_for_lock(locker, pid), 10)
        await locker.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        answered = await asyncio.wait_for(answering, 10)
        await locker.rollback()

    assert answered == (503, UNAVAILABLE)
    # The pool's connection was dropped, not handed out again: the next read connects anew.
    assert await read_pool_api.planned_feed() == before
    assert (read_pool_api.reads.size, read_pool_api.reads.idle) == (1, 1)


PROBED_FEED = """query Probed($after: String) {
  posts(first: 1, after: $after) { nodes { title } pageInfo { hasPreviousPage endCursor } }
  viewer { username }
}"""


async def test_a_planned_read_takes_no_session_beside_its_read_connection(
    read_pool_api: ReadPoolApi,
) -> None:
    """One connection per request: behind PgBouncer's few server connections, a request that
    held a read transaction while it waited for a session's deadlocked them all (SERVER_BUSY).
    A planned write builds the viewer's statements for the session first; a planned read after
    it, its pageInfo probe included, must still run on its read connection alone."""
    http = read_pool_api.api.http

    async def post(query: str, variables: dict[str, Any], token: str | None = None) -> Any:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        body = {"query": query, "variables": variables}
        response = await http.post("/graphql", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert "errors" not in response.json(), response.text
        return response.json()["data"]

    registered = await post(REGISTER, {"username": "prober", "email": "prober@example.com"})
    token = registered["register"]["token"]
    answered = read_pool_api.planner.answered
    await post(CREATE_POST, {"title": "Third"}, token)
    assert read_pool_api.planner.answered == answered + 1
    first = await post(PROBED_FEED, {"after": None}, token)
    after = {"after": first["posts"]["pageInfo"]["endCursor"]}

    checkouts: list[object] = []
    listener = lambda *_: checkouts.append(None)  # noqa: E731
    event.listen(Pool, "checkout", listener)
    try:
        answered = read_pool_api.planner.answered
        data = await post(PROBED_FEED, after, token)
    finally:
        event.remove(Pool, "checkout", listener)
    assert read_pool_api.planner.answered == answered + 1
    assert data["posts"]["pageInfo"]["hasPreviousPage"] is True
    assert data["viewer"] == {"username": "prober"}
    assert checkouts == [], "the planned read took a session's connection beside its own"


IN_FILTERED = """query($titles: [String!]) {
  posts(first: 5, where: { title: { in: $titles } }) { nodes { title } }
}"""


async def test_a_planned_read_with_an_in_list_stays_on_its_read_connection(
    read_pool_api: ReadPoolApi,
) -> None:
    """An `in` filter expands its list when the statement runs (SQLAlchemy's POSTCOMPILE): such
    a statement, too, runs on the read connection, never on a session beside it."""
    variables = {"titles": ["First", "Second", "Nowhere"]}
    body = {"query": IN_FILTERED, "variables": variables}
    checkouts: list[object] = []
    listener = lambda *_: checkouts.append(None)  # noqa: E731
    event.listen(Pool, "checkout", listener)
    try:
        answered = read_pool_api.planner.answered
        response = await read_pool_api.api.http.post("/graphql", json=body)
    finally:
        event.remove(Pool, "checkout", listener)
    assert response.status_code == 200, response.text
    assert read_pool_api.planner.answered == answered + 1
    titles = sorted(node["title"] for node in response.json()["data"]["posts"]["nodes"])
    assert titles == ["First", "Second"]
    assert checkouts == [], "the planned read took a session's connection beside its own"
