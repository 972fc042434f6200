"""Subscription payloads read by the planner answer exactly as strawberry's executor's.

Two live servers over one committed blog (tests/plan/conftest.py), one with the planner and one
without, each on an event bus of its own; real websocket clients subscribe to the same documents
on both, then both buses get the same batch of events. Every message of every operation must be
equal byte for byte (but the random id of a masked error), in the same order, for anonymous, an
author who owns drafts, and an admin; and the planner must have read the payloads.
"""

import asyncio
import dataclasses
import json
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gql_blog import engines, events, models
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.plan.planner import Planner
from gql_blog.plan.run import Run
from tests.committed import empty_tables
from tests.conftest import graphql_endpoint
from tests.live import Committed, SocketClient, live_app, socket_client
from tests.plan.conftest import ROLES, Blog, build_blog

WAIT_SECONDS = 10
# Once both servers have queued a batch's answers, a socket that stays quiet this long is done.
QUIET_SECONDS = 0.5
_ERROR_ID = re.compile(r'"errorId":"[0-9a-f]{32}"')

USER = "id username email firstName lastName fullName bio age isActive isAdmin createdAt"
FULL_COMMENT = f"""subscription ($postId: ID!) {{ commentAdded(postId: $postId) {{
  __typename id content createdAt editedAt
  author {{ {USER} }}
  post {{ id title content published slug publishedAt author {{ username }} tags {{ name }} }}
  parent {{ id content author {{ username email }} parent {{ content }} }}
  replies(first: 2) {{ totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    edges {{ cursor node {{ content author {{ username }} }} }} }}
}} }}"""
COMMENT_FRAGMENT = """subscription Added($postId: ID!) { added: commentAdded(postId: $postId) {
  ...bits text: content
} }
fragment bits on Comment { content author { posts(first: 1) { totalCount nodes { title } }
  comments(first: 1, orderBy: [{field: ID, direction: ASC}]) { nodes { content } } } }"""
# A nested page larger than the maximum: the executor's error, where the planner declines.
PAGE_TOO_LARGE = """subscription ($postId: ID!) { commentAdded(postId: $postId) {
  content post { comments(first: 1000) { totalCount } } } }"""
FULL_POST = f"""subscription {{ postPublished {{
  __typename id title content published createdAt updatedAt publishedAt slug
  author {{ {USER} posts(first: 2) {{ totalCount nodes {{ title }} }} }}
  tags {{ id name posts(first: 3) {{ nodes {{ title }} }} }}
  comments(first: 3) {{ totalCount edges {{ cursor node {{ content parent {{ content }} }} }} }}
}} }}"""
TAGGED_POST = 'subscription { postPublished(tag: " Python ") { title tags { name } } }'
TAG_VARIABLE = """subscription Tagged($tag: String, $withAuthor: Boolean!) {
  postPublished(tag: $tag) { title author @include(if: $withAuthor) { username } } }"""


@dataclass(frozen=True, slots=True)
class Subscription:
    operation_id: str
    query: str
    variables: dict[str, Any]


def _subscriptions(blog: Blog) -> list[Subscription]:
    def post(name: str) -> dict[str, Any]:
        return {"postId": blog.global_id("post", name)}

    return [
        Subscription("comments-hello", FULL_COMMENT, post("hello")),
        Subscription("comments-ann-draft", FULL_COMMENT, post("ann_draft")),
        Subscription("comments-bob-draft", FULL_COMMENT, post("bob_draft")),
        Subscription("fragment-news", COMMENT_FRAGMENT, post("news")),
        Subscription("fragment-hello", COMMENT_FRAGMENT, post("hello")),
        Subscription("page-too-large", PAGE_TOO_LARGE, post("hello")),
        Subscription("posts", FULL_POST, {}),
        Subscription("posts-python", TAGGED_POST, {}),
        Subscription("posts-sql", TAG_VARIABLE, {"tag": "SQL", "withAuthor": True}),
        Subscription("posts-any", TAG_VARIABLE, {"tag": None, "withAuthor": False}),
    ]


def _events(blog: Blog) -> list[events.Event]:
    """Comments on a published post (replies too), on drafts, and posts published (drafts,
    and one twice): every subscription is due some, each viewer sees another part."""
    comments = [
        *("hello_bob", "hello_cyd", "hello_ann", "reply_ann", "reply_eve", "reply_deep"),
        *("draft_ann", "reply_draft", "bob_draft_bob", "news_dee", "news_eve_1"),
    ]
    posts = ["hello", "news", "ann_draft", "bob_draft", "untagged", "same_bob", "hello"]
    added = [
        events.Event(events.Kind.COMMENT_ADDED, row.post_id, row.id)
        for row in (blog.comments[name] for name in comments)
    ]
    published = [events.Event(events.Kind.POST_PUBLISHED, blog.posts[name].id) for name in posts]
    return [*added[:6], *published[:3], *added[6:], *published[3:]]


@dataclass(slots=True)
class Server:
    address: str
    bus: events.InProcessBus


@dataclass(frozen=True, slots=True)
class LiveTwins:
    blog: Blog
    tokens: dict[str, str | None]
    planned: Server
    generic: Server
    planner: Planner
    # The generic app's: with GQL_BLOG_PLANNER=false it never reads a payload.
    unused_planner: Planner


@pytest.fixture
async def live_twins(settings: Settings) -> AsyncIterator[LiveTwins]:
    """The committed blog, served live with the planner and without it, a bus each."""
    engine = engines.create_engine(settings)
    planned_bus = events.InProcessBus(queue_size=settings.subscriber_queue_size)
    generic_bus = events.InProcessBus(queue_size=settings.subscriber_queue_size)
    planned_app = create_app(dataclasses.replace(settings, planner=True), bus=planned_bus)
    generic_app = create_app(dataclasses.replace(settings, planner=False), bus=generic_bus)
    try:
        committed = Committed(engines.create_sessionmaker(engine))
        async with committed.sessions() as session:
            blog = await build_blog(session)
            await session.commit()
        tokens = {role: await _token(committed, blog.viewer(role)) for role in ROLES}
        async with live_app(planned_app) as planned, live_app(generic_app) as generic:
            yield LiveTwins(
                blog,
                tokens,
                Server(planned, planned_bus),
                Server(generic, generic_bus),
                graphql_endpoint(planned_app).planner,
                graphql_endpoint(generic_app).planner,
            )
    finally:
        await empty_tables(engine)
        await engine.dispose()


async def _token(committed: Committed, viewer: models.User | None) -> str | None:
    return None if viewer is None else await committed.token_for(viewer)


async def _delivered(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    """The fan-outs' `subscription.delivered` records, once there are `count` of them (each is
    logged once its batch's answers are queued)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        found = [r for r in caplog.records if r.getMessage() == "subscription.delivered"]
        if len(found) >= count:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{len(found)} of {count} deliveries"
        await asyncio.sleep(0.01)


async def _received(client: SocketClient) -> dict[str, list[str]]:
    """Every message the socket got until it fell quiet, raw, by operation id."""
    received: dict[str, list[str]] = defaultdict(list)
    while True:
        try:
            raw = await asyncio.wait_for(client.connection.recv(), QUIET_SECONDS)
        except TimeoutError:
            return dict(received)
        assert isinstance(raw, str)
        message = json.loads(raw)
        if message["type"] == "ping":
            await client.send({"type": "pong"})
            continue
        received[message["id"]].append(_ERROR_ID.sub('"errorId":"<error id>"', raw))


def _differences(planned: dict[str, list[str]], generic: dict[str, list[str]]) -> str:
    lines = []
    for operation_id in sorted(planned.keys() | generic.keys()):
        ours, theirs = planned.get(operation_id, []), generic.get(operation_id, [])
        if ours != theirs:
            lines += [f"{operation_id}:", f"  planned: {ours}", f"  generic: {theirs}"]
    return "\n".join(lines)


@pytest.mark.parametrize("role", ROLES)
async def test_subscription_payloads_answer_alike(
    live_twins: LiveTwins, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    twins, token = live_twins, live_twins.tokens[role]
    subscriptions = _subscriptions(twins.blog)
    caplog.set_level(logging.INFO, logger="gql_blog.schema.fanout")
    async with (
        socket_client(twins.planned.address, token) as planned,
        socket_client(twins.generic.address, token) as generic,
    ):
        for client in (planned, generic):
            for subscription in subscriptions:
                await client.subscribe_joined(
                    subscription.operation_id, subscription.query, subscription.variables
                )
        answered = twins.planner.answered
        batch = _events(twins.blog)
        twins.planned.bus.hub.deliver(batch)
        twins.generic.bus.hub.deliver(batch)
        await _delivered(caplog, 2)

        from_planned, from_generic = await _received(planned), await _received(generic)

    assert from_planned == from_generic, _differences(from_planned, from_generic)
    assert sum(map(len, from_generic.values())) >= 10, from_generic  # not a vacuous comparison
    assert "page-too-large" in from_generic  # the executor answered what the planner declined
    # Every group but the declined one was read by the planner, in one read for the batch per
    # plan and payload variables: the three FULL_COMMENT groups in one, both fragment ones in one.
    assert twins.planner.answered - answered == len(subscriptions) - 1 - 2 - 1
    assert twins.unused_planner.answered == 0  # the planner off: the executor answered all


# --- statements per batch: fixed by the selection, whatever the events and subscribers ----------

COUNTED_COMMENTS = """subscription ($postId: ID!) { commentAdded(postId: $postId) {
  content author { username } post { title tags { name } }
  replies(first: 2) { totalCount nodes { content } } } }"""
# The comments (their authors read beside them), their posts, the posts' tags (on PostgreSQL,
# read beside the posts), the replies' pages and their counts.
COUNTED_COMMENTS_STATEMENTS = {"postgresql": 4, "other": 5}
COUNTED_POSTS = 'subscription { postPublished(tag: "python") { title author { username } } }'
# The subscribers' tokens, the posts (their authors beside them), the posts' tags for `tag`.
COUNTED_POSTS_STATEMENTS = 3
HELLO_COMMENTS = ("hello_bob", "hello_cyd", "hello_ann", "reply_ann", "reply_eve", "reply_deep")
PUBLISHED = ("hello", "news", "same_ann", "same_bob", "untagged", "ann_draft", "hello")


async def _one_delivery(
    twins: LiveTwins,
    caplog: pytest.LogCaptureFixture,
    subscription: Subscription,
    token: str | None,
    batch: list[events.Event],
    subscribers: int,
) -> logging.LogRecord:
    """The planned server's `subscription.delivered` record of `batch`, for `subscribers`
    subscriptions to one document (one group)."""
    caplog.set_level(logging.INFO, logger="gql_blog.schema.fanout")
    async with socket_client(twins.planned.address, token) as client:
        for number in range(subscribers):
            await client.subscribe_joined(
                f"{subscription.operation_id}-{number}", subscription.query, subscription.variables
            )
        answered = twins.planner.answered
        twins.planned.bus.hub.deliver(batch)
        [delivered] = await _delivered(caplog, 1)
    assert twins.planner.answered == answered + 1  # the group's one planned read
    return delivered


@pytest.mark.parametrize(
    ("events_in_batch", "subscribers"),
    [(1, 1), (6, 1), (6, 3)],
    ids=["one-event", "six-events", "six-events-three-subscribers"],
)
async def test_comment_payloads_take_statements_fixed_by_the_selection(
    live_twins: LiveTwins,
    caplog: pytest.LogCaptureFixture,
    events_in_batch: int,
    subscribers: int,
    dialect: str,
) -> None:
    blog = live_twins.blog
    subscription = Subscription(
        "comments", COUNTED_COMMENTS, {"postId": blog.global_id("post", "hello")}
    )
    batch = [
        events.Event(events.Kind.COMMENT_ADDED, blog.posts["hello"].id, blog.comments[name].id)
        for name in HELLO_COMMENTS[:events_in_batch]
    ]

    delivered = await _one_delivery(live_twins, caplog, subscription, None, batch, subscribers)

    assert (delivered.events, delivered.subscribers) == (events_in_batch, subscribers)  # type: ignore[attr-defined]
    expected = COUNTED_COMMENTS_STATEMENTS.get(dialect, COUNTED_COMMENTS_STATEMENTS["other"])
    assert delivered.statements == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("events_in_batch", "subscribers"),
    [(1, 1), (7, 1), (7, 3)],
    ids=["one-event", "seven-events", "seven-events-three-subscribers"],
)
async def test_tagged_post_payloads_take_statements_fixed_by_the_selection(
    live_twins: LiveTwins, caplog: pytest.LogCaptureFixture, events_in_batch: int, subscribers: int
) -> None:
    blog = live_twins.blog
    batch = [
        events.Event(events.Kind.POST_PUBLISHED, blog.posts[name].id)
        for name in PUBLISHED[:events_in_batch]
    ]
    token = live_twins.tokens["author"]
    subscription = Subscription("posts", COUNTED_POSTS, {})

    delivered = await _one_delivery(live_twins, caplog, subscription, token, batch, subscribers)

    assert (delivered.events, delivered.subscribers) == (events_in_batch, subscribers)  # type: ignore[attr-defined]
    assert delivered.statements == COUNTED_POSTS_STATEMENTS  # type: ignore[attr-defined]


TAG_ARGUMENT = (
    "subscription ($tag: String) { postPublished(tag: $tag) { title author { username } } }"
)
# Each group watches a post of its own (comments) or a tag of its own (posts).
WATCHED = (("hello", "python"), ("news", "sql"), ("same_bob", "graphql"))


@pytest.mark.parametrize("groups_per_selection", [1, 3], ids=["one-group", "three-groups"])
async def test_groups_of_an_audience_read_a_batch_together(
    live_twins: LiveTwins,
    caplog: pytest.LogCaptureFixture,
    groups_per_selection: int,
    dialect: str,
) -> None:
    """Two audiences (anonymous, the author), each with 1 or 3 groups of COUNTED_COMMENTS (a
    post each) and 1 or 3 of TAG_ARGUMENT (a tag each): the statements are the tokens', then per
    audience the comments' and the posts' selections', whatever the number of groups."""
    twins, blog = live_twins, live_twins.blog
    watched = WATCHED[:groups_per_selection]
    batch = [
        events.Event(events.Kind.COMMENT_ADDED, blog.posts[post].id, blog.comments[name].id)
        for post, name in (
            ("hello", "hello_bob"),
            ("news", "news_dee"),
            ("same_bob", "same_bob_ann"),
        )
    ] + [events.Event(events.Kind.POST_PUBLISHED, blog.posts[post].id) for post, _ in WATCHED]
    caplog.set_level(logging.INFO, logger="gql_blog.schema.fanout")
    async with (
        socket_client(twins.planned.address) as anonymous,
        socket_client(twins.planned.address, twins.tokens["author"]) as author,
    ):
        for client in (anonymous, author):
            for post, tag in watched:
                variables = {"postId": blog.global_id("post", post)}
                await client.subscribe_joined(f"comments-{post}", COUNTED_COMMENTS, variables)
                await client.subscribe_joined(f"posts-{tag}", TAG_ARGUMENT, {"tag": tag})
        answered = twins.planner.answered
        twins.planned.bus.hub.deliver(batch)
        [delivered] = await _delivered(caplog, 1)
        received = [await _received(client) for client in (anonymous, author)]

    groups = 2 * 2 * groups_per_selection
    assert (delivered.groups, delivered.subscribers) == (groups, groups)  # type: ignore[attr-defined]
    # Every subscription was answered (a comment on its post; the posts of its tag).
    assert all(len(messages) == 2 * groups_per_selection for messages in received)
    assert twins.planner.answered - answered == 2 * 2  # one read per audience and selection
    comments = COUNTED_COMMENTS_STATEMENTS.get(dialect, COUNTED_COMMENTS_STATEMENTS["other"])
    posts = COUNTED_POSTS_STATEMENTS - 1  # the posts, their tags (the tokens counted once)
    assert delivered.statements == 1 + 2 * (comments + posts)  # type: ignore[attr-defined]


async def test_a_failing_planned_read_leaves_the_answer_to_the_executor(
    live_twins: LiveTwins, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(self: Run, row_ids: Any) -> Any:
        raise RuntimeError("SELECT secret FROM users")

    monkeypatch.setattr(Run, "execute_events", failing)
    blog = live_twins.blog
    caplog.set_level(logging.INFO, logger="gql_blog.schema.fanout")
    async with socket_client(live_twins.planned.address) as client:
        await client.subscribe_joined("1", TAGGED_POST)
        live_twins.planned.bus.hub.deliver(
            [events.Event(events.Kind.POST_PUBLISHED, blog.posts["hello"].id)]
        )
        message = await client.receive()

    assert message["payload"] == {
        "data": {
            "postPublished": {"title": "Hello world", "tags": [{"name": "python"}, {"name": "sql"}]}
        },
        "extensions": {"cost": 10},  # a plain list is priced at 10 rows
    }
    assert [r for r in caplog.records if r.getMessage() == "subscription.plan_failed"]
