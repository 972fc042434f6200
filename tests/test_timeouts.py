"""Work stops when it must: a request past its time limit, a client that hangs up, and a slow
request beside which /healthz still answers at once. Real uvicorn, real sockets."""

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gql_blog import engines
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.loaders import Loaders

LOOKUP = '{ user(username: "ada") { id } }'


def slow_statement(dialect: str, seconds: float) -> str:
    """SQL that keeps the database busy for about `seconds` (SQLite: computing)."""
    if dialect == "postgresql":
        return f"SELECT pg_sleep({seconds})"
    if dialect == "mariadb":
        return f"SELECT SLEEP({seconds})"
    rows = int(seconds * 3_000_000)
    return (
        "WITH RECURSIVE counter(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counter"
        f" WHERE n < {rows}) SELECT count(*) FROM counter"
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The app under real uvicorn on a free port, its planner off: the tests slow down a loader
    of strawberry's resolvers (the planner has statements of its own); its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    app = create_app(dataclasses.replace(settings, planner=False))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def lookup_running(statement: str, entered: asyncio.Event) -> Callable[..., Awaitable[None]]:
    async def slow(self: Loaders, username: str) -> None:
        entered.set()
        await self.db.scalar(text(statement))

    return slow


async def test_healthz_answers_at_once_beside_a_slow_request(
    settings: Settings, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = asyncio.Event()
    monkeypatch.setattr(
        Loaders, "user_by_username", lookup_running(slow_statement(dialect, 3), entered)
    )
    async with serving(settings) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        slow = asyncio.create_task(http.post("/graphql", json={"query": LOOKUP}, timeout=60))
        await asyncio.wait_for(entered.wait(), 10)
        started = time.perf_counter()
        health = await http.get("/healthz", timeout=5)
        waited = time.perf_counter() - started
        await slow

    assert health.status_code == 200
    assert waited < 1.0, f"/healthz took {waited:.2f} s beside a slow request"


async def test_a_request_past_its_limit_is_stopped_with_a_clear_error(
    settings: Settings, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = dataclasses.replace(settings, request_timeout_seconds=0.5)
    entered = asyncio.Event()
    monkeypatch.setattr(
        Loaders, "user_by_username", lookup_running(slow_statement(dialect, 3), entered)
    )
    async with serving(limited) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        started = time.perf_counter()
        response = await http.post("/graphql", json={"query": LOOKUP}, timeout=60)
        waited = time.perf_counter() - started

    assert response.status_code == 503
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert "0.5 seconds" in error["message"]
    assert waited < 2.5, f"the answer took {waited:.2f} s for a limit of 0.5 s"


async def test_the_database_stops_a_statement_past_the_limit(
    settings: Settings, dialect: str
) -> None:
    if dialect == "sqlite":
        pytest.skip("SQLite has no statement time limit; the request's own limit applies")
    engine = engines.create_engine(dataclasses.replace(settings, request_timeout_seconds=0.5))
    started = time.perf_counter()
    try:
        async with engine.connect() as connection:
            # PostgreSQL cancels it ("canceling statement due to statement timeout"); MariaDB
            # interrupts the SLEEP.
            with contextlib.suppress(DBAPIError):
                await connection.execute(text(slow_statement(dialect, 5)))
    finally:
        await engine.dispose()
    assert time.perf_counter() - started < 3.0


async def test_a_client_that_hangs_up_stops_its_work(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, stopped = asyncio.Event(), asyncio.Event()

    async def endless(self: Loaders, username: str) -> None:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.set()
            raise

    monkeypatch.setattr(Loaders, "user_by_username", endless)
    async with serving(settings) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            request = asyncio.create_task(http.post("/graphql", json={"query": LOOKUP}, timeout=60))
            await asyncio.wait_for(entered.wait(), 10)
            request.cancel()  # the client gives up and closes its connection
            await asyncio.gather(request, return_exceptions=True)
        await asyncio.wait_for(stopped.wait(), 5)
