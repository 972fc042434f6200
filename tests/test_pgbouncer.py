"""gql_blog behind PgBouncer in transaction pooling mode (Debian's pgbouncer 1.18, started here
with deploy/pgbouncer.ini's settings, bench/pgbouncer.py).

A real `gql-blog serve` with GQL_BLOG_PGBOUNCER=true reaches the test server only through
PgBouncer, whose few server connections every client connection shares, transaction by
transaction. Under concurrent load every kind of request succeeds: mutations, the planned read
path (its own pool, compiled statements), strawberry's path, batches and persisted queries; no
prepared statement is lost or clashes. A subscription receives every event: LISTEN goes straight
to PostgreSQL (GQL_BLOG_DATABASE_LISTEN_URL).

They run when GQL_BLOG_TEST_POSTGRES_URL is set; without pgbouncer they skip saying so, except
in CI (CI=true), where they fail.
"""

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench import pgbouncer
from gql_blog import migrations, models
from gql_blog.config import ConfigError, Settings
from tests.databases import empty_database, require, server_url
from tests.live import CREATE_POST, REGISTER, free_port, serve_process, socket_client

logger = logging.getLogger(__name__)

SERVER_CONNECTIONS = 3  # few, so that every transaction may land on another one
CLIENTS = 30
ROUNDS = 3
FEED = "query Feed { posts(first: 5) { totalCount nodes { title author { username } } } }"
VIEWER = "query Viewer { viewer { username } }"
SUBSCRIPTION = "subscription { postPublished { title } }"


@pytest.fixture(scope="module")
async def behind_pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A migrated scratch database on the test server, a `gql-blog serve` reaching it only
    through PgBouncer (LISTEN aside); the server's `host:port`."""
    server = make_url(server_url("postgresql"))
    require(pgbouncer.available())
    folder: Path = tmp_path_factory.mktemp("pgbouncer-db")
    async with empty_database("postgresql", folder) as direct_url:
        await asyncio.to_thread(migrations.upgrade, direct_url)
        with pgbouncer.throwaway_pgbouncer(
            port=free_port(),
            server_host=server.host or "127.0.0.1",
            server_port=server.port or 5432,
            say=logger.info,
            user=server.username or "postgres",
            pool_size=SERVER_CONNECTIONS,
        ) as bouncer:
            pooled_url = bouncer.url(make_url(direct_url).database or "", user=server.username)
            variables = {"GQL_BLOG_PGBOUNCER": "true", "GQL_BLOG_DATABASE_LISTEN_URL": direct_url}
            async with serve_process(pooled_url, **variables) as (address, _, _):
                yield address
                engine = create_async_engine(direct_url)
                try:
                    async with engine.connect() as connection:
                        count = select(func.count()).select_from(models.Post)
                        logger.info("posts written: %s", await connection.scalar(count))
                finally:
                    await engine.dispose()


async def _post(http: httpx.AsyncClient, body: object, token: str | None = None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = await http.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    for item in answer if isinstance(answer, list) else [answer]:
        assert "errors" not in item, item
    return answer


async def _register(http: httpx.AsyncClient) -> str:
    username = f"pooled_{uuid.uuid4().hex[:8]}"
    variables = {"username": username, "email": f"{username}@example.com"}
    answer = await _post(http, {"query": REGISTER, "variables": variables})
    return str(answer["data"]["register"]["token"])


def _apq(query: str, *, with_text: bool) -> dict[str, Any]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    return body | ({"query": query} if with_text else {})


async def test_every_kind_of_request_succeeds_under_load_through_pgbouncer(
    behind_pgbouncer: str,
) -> None:
    async with httpx.AsyncClient(base_url=f"http://{behind_pgbouncer}", timeout=60) as http:
        token = await _register(http)
        await _post(http, _apq(FEED, with_text=True))

        async def client(number: int) -> None:
            title = f"Pooled {number} {uuid.uuid4().hex[:6]}"
            written = await _post(
                http, {"query": CREATE_POST, "variables": {"title": title}}, token
            )
            assert written["data"]["createPost"]["title"] == title
            feed = await _post(http, {"query": FEED})  # planned after its first run
            assert feed["data"]["posts"]["totalCount"] >= 1
            viewer = await _post(http, {"query": VIEWER}, token)
            assert viewer["data"]["viewer"]["username"].startswith("pooled_")
            await _post(http, _apq(FEED, with_text=False))
            batch = [{"query": FEED}, {"query": VIEWER}]
            await _post(http, batch, token)

        for _ in range(ROUNDS):
            await asyncio.gather(*(client(number) for number in range(CLIENTS)))


async def test_a_subscription_gets_every_event_with_listen_beside_pgbouncer(
    behind_pgbouncer: str,
) -> None:
    async with httpx.AsyncClient(base_url=f"http://{behind_pgbouncer}", timeout=60) as http:
        token = await _register(http)
        async with socket_client(behind_pgbouncer) as subscriber:
            await subscriber.subscribe("1", SUBSCRIPTION)
            await asyncio.wait_for(_subscribed(http), 30)
            titles = [f"Announced {number}" for number in range(5)]
            for title in titles:
                await _post(http, {"query": CREATE_POST, "variables": {"title": title}}, token)
            received = []
            while len(received) < len(titles):
                message = await subscriber.receive()
                assert message["type"] == "next", message
                received.append(message["payload"]["data"]["postPublished"]["title"])
    assert received == titles


async def _subscribed(http: httpx.AsyncClient) -> None:
    """Return once the server's subscription listens (its gauge moves as it starts)."""
    while "gql_blog_open_subscriptions 1.0" not in (await http.get("/metrics")).text:
        continue  # each look is a request to the server: it waits for the answer


def test_pgbouncer_without_a_direct_listen_url_is_refused() -> None:
    environ = {
        "GQL_BLOG_DATABASE_URL": "postgresql://gql_blog@pgbouncer:6432/blog",
        "GQL_BLOG_PGBOUNCER": "true",
    }
    with pytest.raises(ConfigError, match="GQL_BLOG_DATABASE_LISTEN_URL: with GQL_BLOG_PGBOUNCER"):
        Settings.from_env(environ)
    with pytest.raises(ConfigError, match="GQL_BLOG_PGBOUNCER: PgBouncer pools PostgreSQL"):
        Settings.from_env({"GQL_BLOG_PGBOUNCER": "true"})
