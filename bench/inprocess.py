"""`python -m bench.inprocess`: one bench query sent to gql_blog's ASGI app in process.

No HTTP server and no load generator: the app (with its real lifespan, read pool and planner)
gets raw ASGI requests, 16 at a time, as wrk's connections would send them. Under valgrind's
callgrind it counts the instructions one request costs, which do not depend on what else the
machine runs: the difference between two runs of different lengths, divided by the extra
requests, leaves out start-up and the first (unplanned) requests. bench/README.md has the
commands and the figures.

    .venv/bin/python -m bench.inprocess prepare postgresql://postgres@127.0.0.1:5432/gqlb_inprocess
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m bench.inprocess run URL detail --requests 496
"""

import asyncio
import time
from pathlib import Path
from typing import Any, Final

import asyncpg
import click
import orjson
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from bench import datasets, queries
from gql_blog import migrations
from gql_blog.app import create_app
from gql_blog.config import Settings

CONCURRENCY: Final = 16
WARMUP_REQUESTS: Final = 50
PLAN: Final = datasets.SeedPlan(users=200, posts_per_user=10, comments_per_post=5)
QUERIES: Final = {
    "feed": queries.FEED,
    "deep": queries.DEEP,
    "detail": queries.DETAIL,
    # gql_blog's own reads that take no variables.
    **{name: queries.OWN_READS[name] for name in ("search", "post_stats", "post_groups")},
}
# The writes issue 16 measures: a comment returned with its author, a post with two tags.
WRITES: Final = {
    "add-comment": (
        "mutation AddComment($input: AddCommentInput!) { addComment(input: $input) {"
        " __typename ... on Comment { id content createdAt author { id username } }"
        " ... on Error { message } } }"
    ),
    "create-post": (
        "mutation CreatePost($input: CreatePostInput!) { createPost(input: $input) {"
        " __typename ... on Post { id title published tags { name } author { username } }"
        " ... on Error { message } } }"
    ),
}


def _dataset_file(url: str) -> Path:
    return Path("bench/results") / f"inprocess-{make_url(url).database}.json"


@click.group()
def main() -> None:
    """Prepare a database, then send it one query in process."""


@main.command()
@click.argument("url")
def prepare(url: str) -> None:
    """(Re)create the database at URL (PostgreSQL), migrate and seed it."""
    target = make_url(url).set(drivername="postgresql+asyncpg")
    asyncio.run(_recreate(target.render_as_string(hide_password=False)))
    plain = target.render_as_string(hide_password=False)
    migrations.upgrade(plain)
    datasets._seed(plain, PLAN)
    dataset = asyncio.run(datasets._finish(plain, PLAN, say=click.echo))
    path = _dataset_file(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps({"detail_post_id": dataset.detail_post_id, "token": dataset.admin_token})
    )


async def _recreate(url: str) -> None:
    target = make_url(url)
    server = target.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        await connection.execute(f'drop database if exists "{target.database}"')
        await connection.execute(f'create database "{target.database}"')
    finally:
        await connection.close()


@main.command()
@click.argument("url")
@click.argument("query", type=click.Choice(sorted(QUERIES | WRITES)))
@click.option("--requests", default=2000, show_default=True, help="Requests after the warm-up.")
def run(url: str, query: str, requests: int) -> None:
    """Send QUERY to the app on URL: a warm-up, then --requests at 16 at a time."""
    saved = orjson.loads(_dataset_file(url).read_bytes())
    post_id = saved["detail_post_id"]
    if query in WRITES:
        variables = _write_variables(query, post_id)
        body = orjson.dumps({"query": WRITES[query], "variables": variables})
    else:
        variables = queries.variables_for(query, "global", detail_post_id=post_id)
        body = orjson.dumps({"query": QUERIES[query], "variables": variables})
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {saved['token']}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    database_url = make_url(url).set(drivername="postgresql+asyncpg")
    settings = Settings(
        database_url=database_url.render_as_string(hide_password=False),
        pool_size=20,
        max_overflow=0,
        read_pool_size=20,
        # Under callgrind a request runs some fifty times slower: no limit may stop it.
        request_timeout_seconds=3600,
        pool_timeout_seconds=3600,
    )
    seconds, cpu = asyncio.run(_send(settings, body, headers, requests))
    click.echo(
        f"{query}: {requests / seconds:,.0f} req/s in process, "
        f"{cpu / requests * 1e6:,.0f} us of CPU per request"
    )


def _write_variables(query: str, post_id: int) -> dict[str, Any]:
    """The same input for every request: a comment on the detail post, a post tagged twice."""
    if query == "add-comment":
        return {"input": {"postId": queries.post_global_id(post_id), "content": "Measured."}}
    post = {"title": "Measured", "content": "Body.", "published": True, "tags": ["a", "b"]}
    return {"input": post}


async def _send(
    settings: Settings, body: bytes, headers: list[tuple[bytes, bytes]], requests: int
) -> tuple[float, float]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        first = await _request(manager.app, body, headers)
        if b'"errors"' in first or b'"message"' in first:
            raise click.ClickException(f"the query failed: {first[:300]!r}")
        for _ in range(WARMUP_REQUESTS):
            await _request(manager.app, body, headers)

        async def client(count: int) -> None:
            for _ in range(count):
                await _request(manager.app, body, headers)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(requests // CONCURRENCY) for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, time.process_time() - cpu


async def _request(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    answered = asyncio.Event()
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # the client stays connected until the answer is in
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    answered.set()
    if sent[0]["status"] != 200:
        raise click.ClickException(f"status {sent[0]['status']}: {sent[1:]}")
    return bytes(sent[1]["body"])


if __name__ == "__main__":
    main()
