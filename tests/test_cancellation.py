"""A request's end ends its database work: a request stopped at its time limit, or whose client
hangs up, has its running statement cancelled on the database (PostgreSQL: asyncpg's cancel
request; MariaDB: KILL QUERY; SQLite: sqlite3's interrupt), so the database is idle within a
second of the answer and the worker's next request works.

A real `gql-blog serve` process (one worker, a 2-second request limit) on a database seeded with
enough posts that 30 aliases of a case-insensitive substring count (the scan of issue 19) run far
longer than the limit. PostgreSQL and MariaDB show what runs in pg_stat_activity / the process
list; SQLite runs inside the server's process, so its CPU time says whether it still computes.
"""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from gql_blog import engines, serial_session
from gql_blog.config import Settings
from tests.databases import DIALECTS
from tests.scans import (
    ALIASES,
    ORDINARY,
    RUNNING_SQL,
    Served,
    database_activity,
    scan,
    seeded_database,
    serve,
    wait_until,
)
from tests.test_timeouts import slow_statement

LIMIT_SECONDS = 2
# The database must be idle this soon after the answer (the issue asks for a second; the rest
# is room for a loaded two-core machine). Before the fix: 5 s or more on every database.
IDLE_WITHIN_SECONDS = 1.5
SCAN = scan()
# The same scan with its filters in variables: run cheap first (the planner plans it), so the
# expensive run takes the planned path (on PostgreSQL, the asyncpg read pool's connections).
PLANNED_SCAN = (
    "query PlannedScan("
    + ", ".join(f"$w{i}: PostWhere" for i in range(ALIASES))
    + ") {"
    + " ".join(f"a{i}: posts(first: 0, where: $w{i}) {{ totalCount }}" for i in range(ALIASES))
    + " }"
)
CHEAP = {f"w{i}": {"title": {"eq": "absent"}, "id": {"in": []}} for i in range(ALIASES)}
EXPENSIVE = {
    f"w{i}": {"content": {"contains": f"absent{i}", "mode": "INSENSITIVE"}} for i in range(ALIASES)
}


@pytest.fixture(scope="module", params=DIALECTS)
async def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    dialect = str(request.param)
    async with seeded_database(dialect, tmp_path_factory.mktemp("cancel")) as url:
        limit = {"GQL_BLOG_REQUEST_TIMEOUT_SECONDS": str(LIMIT_SECONDS)}
        async with serve(dialect, url, limit) as served:
            yield served


# -- The tests -----------------------------------------------------------------------------------


async def _post(http: httpx.AsyncClient, query: str, variables: Any = None) -> httpx.Response:
    return await http.post("/graphql", json={"query": query, "variables": variables}, timeout=60)


async def _assert_next_request_works(http: httpx.AsyncClient) -> None:
    response = await _post(http, ORDINARY)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["users"]["nodes"][0]["username"].startswith("reader")


async def _assert_stopped_at_the_limit(served: Served, query: str, variables: Any = None) -> None:
    async with (
        database_activity(served) as busy,
        httpx.AsyncClient(base_url=served.base_url) as http,
    ):
        started = time.perf_counter()
        response = await _post(http, query, variables)
        answered = time.perf_counter() - started
        idle_after = await wait_until(busy, want=False, within=IDLE_WITHIN_SECONDS + 0.5)
        await _assert_next_request_works(http)

    assert response.status_code == 503, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert answered < LIMIT_SECONDS + 2, f"answered after {answered:.1f} s"
    assert idle_after < IDLE_WITHIN_SECONDS, f"busy {idle_after:.2f} s after the answer"


async def test_a_request_past_its_limit_stops_its_statements(served: Served) -> None:
    await _assert_stopped_at_the_limit(served, SCAN)


async def test_a_planned_request_past_its_limit_stops_its_statements(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        learned = await _post(http, PLANNED_SCAN, CHEAP)
    assert learned.status_code == 200, learned.text
    await _assert_stopped_at_the_limit(served, PLANNED_SCAN, EXPENSIVE)


async def test_a_client_that_hangs_up_stops_its_statements(served: Served) -> None:
    async with (
        database_activity(served) as busy,
        httpx.AsyncClient(base_url=served.base_url) as http,
    ):
        request = asyncio.create_task(_post(http, SCAN))
        await wait_until(busy, want=True, within=LIMIT_SECONDS)
        request.cancel()  # the client gives up and closes its connection
        await asyncio.gather(request, return_exceptions=True)
        idle_after = await wait_until(busy, want=False, within=IDLE_WITHIN_SECONDS + 0.5)
        await _assert_next_request_works(http)

    assert idle_after < IDLE_WITHIN_SECONDS, f"busy {idle_after:.2f} s after the hang-up"
    assert any("graphql.client_disconnected" in line for line in served.log)


# -- One statement, long by construction, stopped while it runs ---------------------------------


async def test_stop_ends_the_running_statement_and_leaves_the_session_usable(
    settings: Settings, dialect: str
) -> None:
    engine = engines.create_engine(dataclasses.replace(settings, request_timeout_seconds=60))
    sent = asyncio.Event()
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *_: sent.set())
    serial = serial_session.SerialSession(sessions=engines.create_sessionmaker(engine))
    try:
        running = asyncio.ensure_future(serial.scalar(text(slow_statement(dialect, 30))))
        await asyncio.wait_for(sent.wait(), 10)
        started = time.perf_counter()
        await serial.stop()
        stopped_after = time.perf_counter() - started
        await serial.close()
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
            if dialect != "sqlite":  # SQLite's statement ran in this process: it has ended
                assert await connection.scalar(text(RUNNING_SQL[dialect])) == 0
    finally:
        await engine.dispose()

    assert running.done()
    # PostgreSQL: the awaiting task is cancelled (asyncpg cancels on the server); the others:
    # the statement fails ("interrupted", "Query execution was interrupted").
    assert running.cancelled() or isinstance(running.exception(), DBAPIError)
    assert stopped_after < IDLE_WITHIN_SECONDS, f"the statement ran {stopped_after:.2f} s more"
