"""Read replicas: a throwaway PostgreSQL 15 primary and its streaming replica (`pg_basebackup
-R`, bench/cluster.py), real `gql-blog serve` processes over HTTP.

- reads run on the replica: with its replay paused, a read does not see a post committed since;
- a request with a mutation runs on the primary, the reads after it too (a batch sees its write);
- read-your-writes: the mutation's answer carries `GQL-Blog-Commit-LSN`; a read that sends it
  back sees the write while the replica has not replayed it (a bad value is a 400);
- a replica that lags past GQL_BLOG_REPLICA_MAX_LAG_SECONDS, or is down, is skipped (reads
  succeed on the primary) and shown in /readyz and /metrics, and used again once it is fit;
- replica URLs are refused at startup for SQLite and MariaDB.

They run when GQL_BLOG_TEST_POSTGRES_URL is set (as every PostgreSQL test); without PostgreSQL
15's binaries they skip saying so, except in CI (CI=true), where they fail.
"""

import asyncio
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from bench import cluster
from gql_blog import migrations, replicas
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.replicas import COMMIT_LSN_HEADER
from tests.databases import require, server_url
from tests.live import CREATE_POST, GQL_BLOG, REGISTER, free_port, serve_process

logger = logging.getLogger(__name__)

DATABASE = "blog"
WAIT_SECONDS = 60  # a replica that restarts catches up with the primary first (10 s or so)
TITLES = "query Titles { posts(first: 50) { nodes { title } } }"


@dataclass(frozen=True, slots=True)
class Pair:
    """A primary and its streaming replica, the blog database migrated on the primary."""

    primary: cluster.Cluster
    replica: cluster.Cluster

    @property
    def primary_url(self) -> str:
        return self.primary.url(DATABASE, driver="postgresql+asyncpg")

    @property
    def replica_url(self) -> str:
        return self.replica.url(DATABASE, driver="postgresql+asyncpg")


def _require_postgres_binaries() -> None:
    server_url("postgresql")  # skips unless the PostgreSQL tests run at all
    problem = cluster.available(cluster.LEAN_SETTINGS)
    if not (cluster.PG_BIN / "pg_basebackup").exists():
        problem = problem or f"no pg_basebackup in {cluster.PG_BIN}"
    require(problem)


@contextmanager
def _clusters() -> Iterator[tuple[cluster.Cluster, cluster.Cluster]]:
    settings = cluster.LEAN_SETTINGS
    with (
        cluster.throwaway_cluster(
            port=free_port(), core=None, say=logger.info, settings=settings
        ) as primary,
        cluster.throwaway_replica(primary, port=free_port(), say=logger.info) as replica,
    ):
        yield primary, replica


@pytest.fixture(scope="module")
async def pair() -> AsyncIterator[Pair]:
    _require_postgres_binaries()
    with _clusters() as (primary, replica):
        admin = create_async_engine(
            primary.url("postgres", driver="postgresql+asyncpg"), isolation_level="AUTOCOMMIT"
        )
        try:
            async with admin.connect() as connection:
                await connection.execute(text(f"CREATE DATABASE {DATABASE}"))
        finally:
            await admin.dispose()
        pair = Pair(primary, replica)
        await asyncio.to_thread(migrations.upgrade, pair.primary_url)
        yield pair


@pytest.fixture
async def replica_engine(pair: Pair) -> AsyncIterator[AsyncEngine]:
    """A connection to the replica itself; its replay runs again at the end of the test."""
    engine = create_async_engine(pair.replica_url, isolation_level="AUTOCOMMIT")
    yield engine
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_wal_replay_resume()"))
    await engine.dispose()


async def _replay(engine: AsyncEngine, action: str) -> None:
    async with engine.connect() as connection:
        await connection.execute(text(f"SELECT pg_wal_replay_{action}()"))


async def _caught_up(pair: Pair, replica: AsyncEngine) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    primary = create_async_engine(pair.primary_url)
    try:
        async with primary.connect() as connection:
            position = await connection.scalar(text("SELECT pg_current_wal_lsn()::text"))
    finally:
        await primary.dispose()
    await _until(lambda: _replayed(replica, str(position)))


async def _replayed(replica: AsyncEngine, position: str) -> bool:
    async with replica.connect() as connection:
        found = await connection.execute(
            text("SELECT pg_last_wal_replay_lsn() >= CAST(CAST(:position AS text) AS pg_lsn)"),
            {"position": position},
        )
        return bool(found.scalar())


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    async def wait() -> None:
        # Polled: the state lives in other processes (the server, the replica), not in an Event.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    await asyncio.wait_for(wait(), WAIT_SECONDS)


async def _graphql(
    http: httpx.AsyncClient, body: object, *, token: str | None = None, lsn: str | None = None
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if lsn is not None:
        headers[COMMIT_LSN_HEADER] = lsn
    return await http.post("/graphql", json=body, headers=headers)


async def _titles(http: httpx.AsyncClient, *, lsn: str | None = None) -> set[str]:
    response = await _graphql(http, {"query": TITLES}, lsn=lsn)
    assert response.status_code == 200, response.text
    return {node["title"] for node in response.json()["data"]["posts"]["nodes"]}


async def _register(http: httpx.AsyncClient) -> str:
    username = f"writer_{uuid.uuid4().hex[:8]}"
    variables = {"username": username, "email": f"{username}@example.com"}
    response = await _graphql(http, {"query": REGISTER, "variables": variables})
    assert response.status_code == 200, response.text
    assert COMMIT_LSN_HEADER in response.headers
    return str(response.json()["data"]["register"]["token"])


async def _create_post(http: httpx.AsyncClient, token: str, title: str) -> httpx.Response:
    body = {"query": CREATE_POST, "variables": {"title": title}}
    response = await _graphql(http, body, token=token)
    assert response.json()["data"]["createPost"] == {"__typename": "Post", "title": title}
    return response


async def _readyz_replicas(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/readyz")
    assert response.status_code == 200, response.text  # a replica never makes the server unready
    replicas: list[dict[str, Any]] = response.json()["replicas"]
    return replicas


async def _usable_metric(http: httpx.AsyncClient) -> float | None:
    for family in text_string_to_metric_families((await http.get("/metrics")).text):
        for sample in family.samples:
            if sample.name == "gql_blog_db_replica_usable":
                return float(sample.value)
    return None


async def test_reads_run_on_the_replica_and_a_client_reads_its_own_writes(
    pair: Pair, replica_engine: AsyncEngine
) -> None:
    variables = {
        "GQL_BLOG_DATABASE_REPLICA_URLS": pair.replica_url,
        "GQL_BLOG_REPLICA_MAX_LAG_SECONDS": "3600",  # paused replay must not get it skipped
    }
    async with (
        serve_process(pair.primary_url, **variables) as (address, _, _),
        httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as http,
    ):
        await _until(lambda: _replica_usable(http))
        token = await _register(http)
        await _caught_up(pair, replica_engine)
        await _replay(replica_engine, "pause")

        written = await _create_post(http, token, "Only on the primary")
        lsn = written.headers[COMMIT_LSN_HEADER]
        for _ in range(3):  # strawberry's path, then the planner's (its own read pool)
            assert "Only on the primary" not in await _titles(http)
            assert "Only on the primary" in await _titles(http, lsn=lsn)

        batch = [
            {"query": CREATE_POST, "variables": {"title": "Written and read at once"}},
            {"query": TITLES},
        ]
        answers = (await _graphql(http, batch, token=token)).json()
        seen = {node["title"] for node in answers[1]["data"]["posts"]["nodes"]}
        assert {"Only on the primary", "Written and read at once"} <= seen

        refused = await _graphql(http, {"query": TITLES}, lsn="yesterday")
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert COMMIT_LSN_HEADER in refused.json()["errors"][0]["message"]

        await _replay(replica_engine, "resume")
        await _until(lambda: _has_title(http, "Written and read at once"))


async def _replica_usable(http: httpx.AsyncClient) -> bool:
    return all(replica["usable"] for replica in await _readyz_replicas(http))


async def _has_title(http: httpx.AsyncClient, title: str) -> bool:
    return title in await _titles(http)


async def test_a_lagging_replica_is_skipped_and_shown_until_it_catches_up(
    pair: Pair, replica_engine: AsyncEngine
) -> None:
    variables = {
        "GQL_BLOG_DATABASE_REPLICA_URLS": pair.replica_url,
        "GQL_BLOG_REPLICA_MAX_LAG_SECONDS": "1",
    }
    async with (
        serve_process(pair.primary_url, **variables) as (address, _, _),
        httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as http,
    ):
        await _until(lambda: _replica_usable(http))
        assert await _usable_metric(http) == 1
        token = await _register(http)
        await _caught_up(pair, replica_engine)
        await _replay(replica_engine, "pause")
        await _create_post(http, token, "Behind the lagging replica")

        await _until(lambda: _not(_replica_usable(http)))
        (shown,) = await _readyz_replicas(http)
        assert shown["usable"] is False
        assert "lags" in shown["reason"]
        assert shown["lag_seconds"] > 1
        assert await _usable_metric(http) == 0
        # Its reads went to the primary: the post is there, with no header sent.
        assert "Behind the lagging replica" in await _titles(http)

        await _replay(replica_engine, "resume")
        await _until(lambda: _replica_usable(http))
        assert await _usable_metric(http) == 1


async def _not(condition: Awaitable[bool]) -> bool:
    return not await condition


async def test_a_replica_that_goes_down_is_skipped_and_used_again_when_back(pair: Pair) -> None:
    variables = {"GQL_BLOG_DATABASE_REPLICA_URLS": pair.replica_url}
    async with (
        serve_process(pair.primary_url, **variables) as (address, _, _),
        httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as http,
    ):
        await _until(lambda: _replica_usable(http))
        pair.replica.stop("fast")
        try:
            await _until(lambda: _not(_replica_usable(http)))
            (shown,) = await _readyz_replicas(http)
            assert "unreachable" in shown["reason"]
            assert await _usable_metric(http) == 0
            for _ in range(5):
                await _titles(http)  # 200 each: the reads go to the primary
        finally:
            await asyncio.to_thread(pair.replica.start)
        await _until(lambda: _replica_usable(http))


@pytest.mark.parametrize(
    "database_url", ["sqlite+aiosqlite:///./never.db", "mysql+asyncmy://root@127.0.0.1/never"]
)
def test_replica_urls_are_refused_at_startup_for_sqlite_and_mariadb(database_url: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GQL_BLOG_")}
    env |= {
        "GQL_BLOG_DATABASE_URL": database_url,
        "GQL_BLOG_DATABASE_REPLICA_URLS": "postgresql://postgres@127.0.0.1/replica",
    }
    finished = subprocess.run(
        [str(GQL_BLOG), "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode != 0
    assert "GQL_BLOG_DATABASE_REPLICA_URLS: read replicas need a PostgreSQL database" in (
        finished.stderr
    )


async def test_a_page_on_an_allowed_origin_may_send_and_read_the_commit_lsn() -> None:
    app = create_app(Settings(cors_origins=("https://blog.example.com",)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        preflight = await http.options(
            "/graphql",
            headers={
                "Origin": "https://blog.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": f"content-type, {COMMIT_LSN_HEADER.lower()}",
            },
        )
        answer = await http.get("/healthz", headers={"Origin": "https://blog.example.com"})
    assert preflight.status_code == 200
    assert COMMIT_LSN_HEADER.lower() in preflight.headers["access-control-allow-headers"].lower()
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert COMMIT_LSN_HEADER.lower() in exposed


def _server(name: str) -> replicas.Replica:
    engine = create_async_engine("sqlite+aiosqlite://")
    return replicas.Replica(name, engine, async_sessionmaker(engine), None)


def test_reads_take_usable_replicas_in_turn_and_the_primary_when_none_has_replayed() -> None:
    first, second, down = _server("first"), _server("second"), _server("down")
    primary = replicas.Server("primary", first.engine, first.sessions, None)
    first.usable = second.usable = True
    first.replayed, second.replayed = replicas.parse_lsn("0/100"), replicas.parse_lsn("0/200")
    databases = replicas.Databases(primary=primary, replicas=[first, down, second])

    chosen = [databases.for_reads().name for _ in range(4)]
    assert chosen == ["first", "second", "first", "second"]  # "down" is skipped
    assert {databases.for_reads(replicas.parse_lsn("0/180")).name for _ in range(3)} == {"second"}
    assert databases.for_reads(replicas.parse_lsn("1/0")) is primary  # none has replayed it


@pytest.mark.parametrize("value", ["", "0/", "16B3748", "0/16B3748/1", "G/1", "0/123456789"])
def test_a_malformed_commit_lsn_names_the_header(value: str) -> None:
    with pytest.raises(replicas.BadLsnError, match=COMMIT_LSN_HEADER):
        replicas.parse_lsn(value)


def test_lsns_compare_as_postgresql_orders_them() -> None:
    assert replicas.parse_lsn("0/FFFFFFFF") < replicas.parse_lsn("1/0")
    assert replicas.parse_lsn(" 0/16b3748 ") == 0x16B3748
