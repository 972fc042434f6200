"""Events cross server processes: subscribe through one `gql-blog serve`, mutate through another.

PostgreSQL carries them with LISTEN/NOTIFY, SQLite and MariaDB through the outbox.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_blog.engines import create_sessionmaker
from tests.committed import empty_tables
from tests.live import (
    GQL_BLOG,
    Committed,
    free_port,
    mutate,
    serve_environment,
    socket_client,
    started_workers,
)

STARTUP_SECONDS = 60
CREATE_POST = """
mutation { createPost(input: {title: "Across", content: "Body.", published: true}) { __typename } }
"""


@asynccontextmanager
async def gql_blog_serve(database_url: str, **variables: str) -> AsyncIterator[str]:
    """`gql-blog serve` in a process of its own; yields its `host:port` once it has started."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *(str(GQL_BLOG), "serve", "--port", str(port)),
        env=serve_environment(database_url) | variables,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(started_workers(server, 1), STARTUP_SECONDS)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        await asyncio.wait_for(server.communicate(), STARTUP_SECONDS)


async def _open_subscriptions(address: str) -> float:
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gql_blog_open_subscriptions":
                return sample.value
    return 0.0


async def _subscribed(address: str) -> None:
    """Return once the server's subscription listens (its gauge moves as it starts listening)."""
    while await _open_subscriptions(address) < 1:
        continue  # each look is a request to the server: it waits for the answer


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[Committed]:
    yield Committed(create_sessionmaker(engine))
    await empty_tables(engine)


async def test_an_event_crosses_from_one_server_process_to_another(
    database_url: str, committed: Committed
) -> None:
    _, token = await committed.signed_in_user()
    async with AsyncExitStack() as stack:
        subscribed_to = await stack.enter_async_context(gql_blog_serve(database_url))
        mutated_on = await stack.enter_async_context(gql_blog_serve(database_url))
        client = await stack.enter_async_context(socket_client(subscribed_to))
        await client.subscribe("1", "subscription { postPublished { title } }")
        await asyncio.wait_for(_subscribed(subscribed_to), STARTUP_SECONDS)

        started = time.monotonic()
        body = await mutate(mutated_on, CREATE_POST, token=token)
        message = await client.receive()
        elapsed = time.monotonic() - started

    assert body["data"]["createPost"]["__typename"] == "Post", body
    assert message["payload"]["data"] == {"postPublished": {"title": "Across"}}
    assert elapsed < 1
