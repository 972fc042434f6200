"""`python -m bench.subscription_events`: what a batch of subscription events costs to deliver.

One app served by uvicorn in this process, with its in-process event bus; four sockets
(anonymous, a user, the posts' author, an admin) each subscribe `--members` times to each of
bench/fanout.py's four documents, its two `commentAdded` ones once for each of `--watched` posts
(48 fan-out groups with the default 5: 4 audiences times 2 x 5 + 2). Each batch is seven events
(a comment on each of five posts, two posts published) handed to the bus at once; a batch is
done when every subscription got its answers (70 messages a socket with the defaults).
Printed: the statements of each batch's delivery (from the `subscription.delivered` log) and
the process's CPU time. Under valgrind's callgrind, two runs of different lengths give the
instructions per batch (the difference over the extra batches leaves out start-up and the
warm-up), which do not depend on what else the machine runs. `--no-planner` runs the payloads
on strawberry's executor (GQL_BLOG_PLANNER=false).

    .venv/bin/python -m bench.subscription_events prepare sqlite+aiosqlite:///bench/results/events.sqlite
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m bench.subscription_events run URL --batches 20
"""

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import click
import orjson
from sqlalchemy.engine import make_url

from bench.fanout import COMMENT_SELECTIONS, POST_SELECTIONS
from gql_blog import auth, engines, events, metrics, migrations
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from tests import live
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.live import SocketClient, live_app, socket_client

WARMUP_BATCHES: Final = 2
# How long a client waits for a message: under callgrind, on a shared machine, a batch of 48
# groups takes longer than the tests' 5 seconds.
RECEIVE_SECONDS: Final = 300
COMMENTS_PER_BATCH: Final = 5
POSTS_PER_BATCH: Final = 2
ROLES: Final = ("anonymous", "user", "author", "admin")


def _dataset_file(url: str) -> Path:
    name = Path(make_url(url).database or "events").stem
    return Path("bench/results") / f"subscription-events-{name}.json"


@click.group()
def main() -> None:
    """Prepare a database, then deliver batches of events to subscriptions on it."""


@main.command()
@click.argument("url")
def prepare(url: str) -> None:
    """Migrate the empty database at URL and write the rows the events are about."""
    migrations.upgrade(url)
    saved = asyncio.run(_seed(url))
    path = _dataset_file(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(saved))


async def _seed(url: str) -> dict[str, Any]:
    engine = engines.create_engine(Settings(database_url=url))
    try:
        async with engines.create_sessionmaker(engine)() as session:
            user, author = await make_user(session), await make_user(session)
            admin = await make_user(session, is_admin=True)
            tags = [await make_tag(session, "python"), await make_tag(session, "sql")]
            commented = [
                await make_post(session, author=author, published=True, tags=tags)
                for _ in range(COMMENTS_PER_BATCH)
            ]
            comments = [await make_comment(session, post=post, author=user) for post in commented]
            posts = [
                await make_post(session, author=author, published=True, tags=tags[:1])
                for _ in range(POSTS_PER_BATCH)
            ]
            tokens = {
                role: await auth.issue_token(session, viewer, lifetime=timedelta(days=30))
                for role, viewer in (("user", user), ("author", author), ("admin", admin))
            }
            await session.commit()
        return {
            "commented_ids": [post.id for post in commented],
            "comment_ids": [comment.id for comment in comments],
            "published_ids": [row.id for row in posts],
            "tokens": tokens,
        }
    finally:
        await engine.dispose()


@main.command()
@click.argument("url")
@click.option("--batches", default=20, show_default=True, help="Batches after the warm-up.")
@click.option("--members", default=5, show_default=True, help="Subscriptions per group.")
@click.option(
    "--watched",
    default=COMMENTS_PER_BATCH,
    show_default=True,
    type=click.IntRange(1, COMMENTS_PER_BATCH),
    help="Commented posts each `commentAdded` document is subscribed to (a group each).",
)
@click.option("--planner/--no-planner", default=True, help="Read payloads with the planner.")
def run(url: str, batches: int, members: int, watched: int, planner: bool) -> None:
    """Deliver --batches batches of events to the subscriptions on URL's prepared rows."""
    saved = orjson.loads(_dataset_file(url).read_bytes())
    live.WAIT_SECONDS = RECEIVE_SECONDS
    per_socket = members * (len(COMMENT_SELECTIONS) * watched + len(POST_SELECTIONS))
    settings = Settings(
        database_url=url,
        planner=planner,
        subscriber_queue_size=1000,
        max_subscriptions_per_connection=per_socket,
    )
    statements = _Statements()
    logging.getLogger("gql_blog.schema.fanout").addHandler(statements)
    logging.getLogger("gql_blog.schema.fanout").setLevel(logging.INFO)
    cpu = asyncio.run(_deliver(settings, saved, batches, members, watched))
    measured = statements.per_batch[WARMUP_BATCHES:]
    click.echo(
        f"{'planner' if planner else 'executor'}: {batches} batches, statements per batch "
        f"{sorted(set(measured))}, {cpu / batches * 1e3:,.1f} ms of CPU per batch"
    )


class _Statements(logging.Handler):
    """The statements of each delivery, from the fan-out's `subscription.delivered` records."""

    def __init__(self) -> None:
        super().__init__()
        self.per_batch: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "subscription.delivered":
            self.per_batch.append(record.statements)  # type: ignore[attr-defined]


async def _deliver(
    settings: Settings, saved: dict[str, Any], batches: int, members: int, watched: int
) -> float:
    bus = events.InProcessBus(queue_size=1000)
    posts = [encode_global_id("Post", row_id) for row_id in saved["commented_ids"][:watched]]
    documents = [(query, {"postId": post}) for query in COMMENT_SELECTIONS for post in posts]
    documents += [(query, {}) for query in POST_SELECTIONS]
    batch = [
        events.Event(events.Kind.COMMENT_ADDED, post_id, comment_id)
        for post_id, comment_id in zip(saved["commented_ids"], saved["comment_ids"], strict=True)
    ] + [events.Event(events.Kind.POST_PUBLISHED, post_id) for post_id in saved["published_ids"]]
    due = members * (len(COMMENT_SELECTIONS) * watched + len(POST_SELECTIONS) * POSTS_PER_BATCH)
    async with (
        live_app(create_app(settings, bus=bus)) as address,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = [
            await stack.enter_async_context(socket_client(address, saved["tokens"].get(role)))
            for role in ROLES
        ]
        for client in clients:
            for number in range(members):
                for index, (query, variables) in enumerate(documents):
                    await client.subscribe(f"{index}-{number}", query, variables)
        await _all_open(len(clients) * members * len(documents))
        for _ in range(WARMUP_BATCHES):
            await _one_batch(bus, batch, clients, due)
        started = time.process_time()
        for _ in range(batches):
            await _one_batch(bus, batch, clients, due)
        return time.process_time() - started


async def _all_open(count: int) -> None:
    """Wait until `count` subscriptions are open, reading the gauge in process: a look costs
    the same few instructions however long the set-up takes (an HTTP request to /metrics
    would add a timing-dependent share to the instruction counts)."""
    deadline = time.monotonic() + 600
    while (found := metrics.registry.get_sample_value("gql_blog_open_subscriptions")) != count:
        if time.monotonic() > deadline:
            raise click.ClickException(f"{found} subscriptions open, not {count}")
        await asyncio.sleep(0.01)


async def _one_batch(
    bus: events.InProcessBus, batch: list[events.Event], clients: list[SocketClient], due: int
) -> None:
    bus.hub.deliver(batch)
    for client in clients:
        for _ in range(due):
            message = await client.receive()
            if message["type"] != "next" or "errors" in message["payload"]:
                raise click.ClickException(f"not an answer: {message}")


if __name__ == "__main__":
    main()
