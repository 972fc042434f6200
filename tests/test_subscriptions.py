"""Subscriptions over graphql-transport-ws against a live uvicorn server, with real commits."""

import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import gql
import pytest
import websockets
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import auth, events, metrics, models, websocket
from gql_blog.config import Settings
from gql_blog.engines import create_sessionmaker
from gql_blog.ids import decode_global_id, encode_global_id
from gql_blog.loaders import Loaders
from gql_blog.schema.context import Context
from gql_blog.schema.fanout import fanout_of
from tests.committed import empty_tables
from tests.factories import make_comment, make_post, make_user
from tests.live import (
    PROTOCOL,
    WAIT_SECONDS,
    Committed,
    SocketClient,
    live_server,
    mutate,
    open_subscriptions,
    socket_client,
)
from tests.test_timeouts import slow_statement

COMMENT_ADDED = """
subscription ($postId: ID!) { commentAdded(postId: $postId) { content author { username } } }
"""
POST_PUBLISHED = "subscription ($tag: String) { postPublished(tag: $tag) { title } }"
ADD_COMMENT = """
mutation ($postId: ID!, $content: String!) {
  addComment(input: {postId: $postId, content: $content}) { __typename }
}
"""
CREATE_POST = """
mutation ($title: String!, $published: Boolean, $tags: [String!]) {
  createPost(input: {title: $title, content: "Body.", published: $published, tags: $tags}) {
    __typename
  }
}
"""


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[Committed]:
    """Rows committed for real (the server's sessions must see them); deleted afterwards."""
    yield Committed(create_sessionmaker(engine))
    await empty_tables(engine)


@pytest.fixture
def bus(settings: Settings) -> events.EventBus:
    return events.InProcessBus(queue_size=settings.subscriber_queue_size)


@pytest.fixture
async def server(settings: Settings, bus: events.EventBus) -> AsyncIterator[str]:
    async with live_server(settings, bus=bus) as address:
        yield address


async def _user(committed: Committed, **options: Any) -> models.User:
    async with committed.sessions() as session:
        user = await make_user(session, **options)
        await session.commit()
    return user


async def _post(committed: Committed, author: models.User, **options: Any) -> str:
    async with committed.sessions() as session:
        post = await make_post(session, author=author, **options)
        await session.commit()
    return encode_global_id("Post", post.id)


async def _comment(address: str, token: str, post_id: str, content: str) -> None:
    body = await mutate(address, ADD_COMMENT, {"postId": post_id, "content": content}, token=token)
    assert body["data"]["addComment"]["__typename"] == "Comment", body


async def _next_data(client: SocketClient, operation_id: str = "1") -> Any:
    message = await client.receive()
    assert message["type"] == "next", message
    assert message["id"] == operation_id
    assert "errors" not in message["payload"], message
    return message["payload"]["data"]


async def test_comment_added_reaches_the_subscriber_after_commit(
    server: str, committed: Committed
) -> None:
    alice = await _user(committed)
    post_id = await _post(committed, alice, published=True)
    token = await committed.token_for(alice)
    async with socket_client(server) as client:
        await client.subscribe_joined("1", COMMENT_ADDED, {"postId": post_id})
        await _comment(server, token, post_id, "First!")

        data = await _next_data(client)

    assert data == {"commentAdded": {"content": "First!", "author": {"username": alice.username}}}


async def test_bad_token_at_init_closes_with_4403(server: str) -> None:
    async with websockets.connect(f"ws://{server}/graphql", subprotocols=[PROTOCOL]) as ws:
        client = SocketClient(ws)
        await client.send({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})

        assert await client.closed() == (4403, "Forbidden")


async def test_token_in_header_style_casing_signs_in(server: str, committed: Committed) -> None:
    alice = await _user(committed)
    token = await committed.token_for(alice)
    async with websockets.connect(f"ws://{server}/graphql", subprotocols=[PROTOCOL]) as ws:
        client = SocketClient(ws)
        ack = await client.init({"Authorization": f"Bearer {token}"})
        await client.subscribe("1", "{ viewer { username } }")

        data = await _next_data(client)

    assert ack["type"] == "connection_ack"
    assert data == {"viewer": {"username": alice.username}}


async def test_comments_on_a_draft_never_reach_another_user(
    server: str, committed: Committed
) -> None:
    alice = await _user(committed)
    bob = await _user(committed)
    draft_id = await _post(committed, alice, published=False)
    public_id = await _post(committed, alice, published=True)
    alice_token = await committed.token_for(alice)
    bob_token = await committed.token_for(bob)
    async with socket_client(server, bob_token) as bob_client:
        await bob_client.subscribe_joined("draft", COMMENT_ADDED, {"postId": draft_id})
        await bob_client.subscribe_joined("public", COMMENT_ADDED, {"postId": public_id})
        await _comment(server, alice_token, draft_id, "Secret.")
        await _comment(server, alice_token, public_id, "Open.")

        message = await bob_client.receive()

    # Were the draft's comment sent, it would come first: it was committed first.
    assert message["id"] == "public"
    assert message["payload"]["data"]["commentAdded"]["content"] == "Open."


async def test_author_receives_comments_on_their_own_draft(
    server: str, committed: Committed
) -> None:
    alice = await _user(committed)
    draft_id = await _post(committed, alice, published=False)
    token = await committed.token_for(alice)
    async with socket_client(server, token) as client:
        await client.subscribe_joined("1", COMMENT_ADDED, {"postId": draft_id})
        await _comment(server, token, draft_id, "Note to self.")

        data = await _next_data(client)

    assert data["commentAdded"]["content"] == "Note to self."


async def test_post_back_to_draft_stops_comment_events(server: str, committed: Committed) -> None:
    alice = await _user(committed)
    post_id = await _post(committed, alice, published=True)
    other_id = await _post(committed, alice, published=True)
    token = await committed.token_for(alice)
    async with socket_client(server) as anonymous:
        await anonymous.subscribe_joined("post", COMMENT_ADDED, {"postId": post_id})
        await anonymous.subscribe_joined("other", COMMENT_ADDED, {"postId": other_id})
        await _comment(server, token, post_id, "While public.")
        assert (await _next_data(anonymous, "post"))["commentAdded"]["content"] == "While public."
        unpublish = (
            "mutation ($id: ID!) { updatePost(id: $id, input: {published: false}) { __typename } }"
        )
        await mutate(server, unpublish, {"id": post_id}, token=token)
        await _comment(server, token, post_id, "While a draft.")
        await _comment(server, token, other_id, "Elsewhere.")

        message = await anonymous.receive()

    assert message["id"] == "other"


async def test_post_published_fires_on_create_publish_and_update(
    server: str, committed: Committed
) -> None:
    alice = await _user(committed)
    token = await committed.token_for(alice)
    draft_id = await _post(committed, alice, published=False, title="Drafted")
    async with socket_client(server) as client:
        await client.subscribe_joined("1", POST_PUBLISHED)
        await mutate(server, CREATE_POST, {"title": "Draft", "published": False}, token=token)
        await mutate(server, CREATE_POST, {"title": "Created", "published": True}, token=token)
        created = await _next_data(client)
        publish = "mutation ($id: ID!) { publishPost(id: $id) { __typename } }"
        await mutate(server, publish, {"id": draft_id}, token=token)
        published = await _next_data(client)

    assert created == {"postPublished": {"title": "Created"}}
    assert published == {"postPublished": {"title": "Drafted"}}


async def test_post_published_filters_by_tag(server: str, committed: Committed) -> None:
    alice = await _user(committed)
    token = await committed.token_for(alice)
    async with socket_client(server) as client:
        await client.subscribe_joined("1", POST_PUBLISHED, {"tag": "Python"})
        await mutate(
            server, CREATE_POST, {"title": "Rust", "published": True, "tags": ["rust"]}, token=token
        )
        await mutate(
            server, CREATE_POST, {"title": "Py", "published": True, "tags": ["python"]}, token=token
        )

        data = await _next_data(client)

    assert data == {"postPublished": {"title": "Py"}}


async def test_import_posts_publishes_only_the_items_it_kept(
    server: str, committed: Committed
) -> None:
    alice = await _user(committed)
    token = await committed.token_for(alice)
    imported = """
    mutation {
      importPosts(inputs: [
        {title: " ", content: "Blank title.", published: true},
        {title: "Kept", content: "Fine.", published: true}
      ]) { created }
    }
    """
    async with socket_client(server) as client:
        await client.subscribe_joined("1", POST_PUBLISHED)
        body = await mutate(server, imported, token=token)
        first = await _next_data(client)
        await mutate(server, CREATE_POST, {"title": "Later", "published": True}, token=token)
        second = await _next_data(client)

    assert body["data"]["importPosts"]["created"] == 1
    assert [first, second] == [
        {"postPublished": {"title": "Kept"}},
        {"postPublished": {"title": "Later"}},
    ]


async def test_subscription_over_http_post_is_refused(server: str) -> None:
    body = await mutate(server, POST_PUBLISHED)

    assert body.get("data") is None
    assert "websocket" in body["errors"][0]["message"]


async def test_depth_limit_applies_to_subscriptions(
    settings: Settings, bus: events.EventBus
) -> None:
    deep = "subscription { postPublished { author { posts { nodes { author { username } } } } } }"
    limited = replace(settings, max_query_depth=3)
    async with live_server(limited, bus=bus) as address, socket_client(address) as client:
        await client.subscribe("1", deep)
        message = await client.receive()

    assert message["type"] == "error"
    assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_subscriptions_per_connection_are_limited(
    settings: Settings, bus: events.EventBus
) -> None:
    async with (
        live_server(replace(settings, max_subscriptions_per_connection=2), bus=bus) as address,
        socket_client(address) as client,
    ):
        for operation_id in ("1", "2", "3"):
            await client.subscribe(operation_id, POST_PUBLISHED)
        message = await client.receive()

    assert message["type"] == "error"
    assert message["id"] == "3"
    assert "limit" in message["payload"][0]["message"]


async def test_revoked_token_closes_the_socket_at_the_next_event(
    server: str, committed: Committed
) -> None:
    alice = await _user(committed)
    post_id = await _post(committed, alice, published=True)
    socket_token = await committed.token_for(alice)
    writer_token = await committed.token_for(alice)
    async with socket_client(server, socket_token) as client:
        await client.subscribe_joined("1", COMMENT_ADDED, {"postId": post_id})
        logout = await mutate(server, "mutation { logout }", token=socket_token)
        await _comment(server, writer_token, post_id, "After logout.")

        closed = await client.closed()

    assert logout["data"] == {"logout": True}
    assert closed[0] == 4403


async def test_a_subscriber_too_far_behind_is_disconnected(
    settings: Settings, committed: Committed
) -> None:
    alice = await _user(committed)
    token = await committed.token_for(alice)
    small = events.InProcessBus(queue_size=1)
    items = ", ".join(f'{{title: "P{n}", content: "C.", published: true}}' for n in range(3))
    many = f"mutation {{ importPosts(inputs: [{items}]) {{ created }} }}"
    async with live_server(settings, bus=small) as address, socket_client(address) as client:
        await client.subscribe_joined("1", POST_PUBLISHED)
        await mutate(address, many, token=token)

        closed = await client.closed()

    assert closed[0] == 1013
    assert "behind" in (closed[1] or "")


def _checkouts() -> float:
    return metrics.registry.get_sample_value("gql_blog_db_pool_checkout_seconds_count") or 0.0


async def test_events_queued_together_are_delivered_in_one_session(
    server: str, bus: events.EventBus, committed: Committed
) -> None:
    alice = await _user(committed)
    async with committed.sessions() as session:
        post = await make_post(session, author=alice, published=True)
        comments = [await make_comment(session, post=post, author=alice) for _ in range(5)]
        await session.commit()
    post_id = encode_global_id("Post", post.id)
    token = await committed.token_for(alice)
    async with socket_client(server) as client:
        await client.subscribe_joined("1", COMMENT_ADDED, {"postId": post_id})
        await _comment(server, token, post_id, "Listening?")
        await _next_data(client)  # it listens
        before = _checkouts()
        # All five land in the subscription's queue before its task runs again.
        bus.hub.deliver(events.Event(events.Kind.COMMENT_ADDED, post.id, c.id) for c in comments)

        received = [await _next_data(client) for _ in comments]

    assert [data["commentAdded"]["content"] for data in received] == [c.content for c in comments]
    assert _checkouts() - before == 1  # one session, so one pooled connection, for all five


async def test_a_thousand_connect_disconnect_cycles_leave_no_listener(
    server: str, bus: events.EventBus
) -> None:
    for _ in range(1000):
        async with socket_client(server) as client:
            await client.subscribe("1", POST_PUBLISHED)
            await client.subscribe("2", "{ __typename }")
            assert (await client.receive())["id"] == "2"  # the socket's operations have run

    # The last sockets' handlers may still be finishing: wait (bounded) for them to let go.
    await asyncio.wait_for(bus.hub.wait_idle(), WAIT_SECONDS)
    assert bus.hub.listener_count == 0


async def test_open_subscriptions_are_counted_in_metrics(server: str, committed: Committed) -> None:
    alice = await _user(committed)
    token = await committed.token_for(alice)
    before = await open_subscriptions(server)
    async with socket_client(server) as client:
        await client.subscribe_joined("1", POST_PUBLISHED)
        await mutate(server, CREATE_POST, {"title": "Hi", "published": True}, token=token)
        await _next_data(client)  # the subscription is open

        during = await open_subscriptions(server)

    assert during == before + 1


async def test_the_server_pings_idle_sockets(settings: Settings, bus: events.EventBus) -> None:
    pinging = replace(settings, websocket_keepalive_seconds=1)
    async with live_server(pinging, bus=bus) as address, socket_client(address) as client:
        raw = await asyncio.wait_for(client.connection.recv(), WAIT_SECONDS)

    assert json.loads(raw) == {"type": "ping"}


async def test_an_expired_token_closes_the_socket_at_the_next_event(
    server: str, committed: Committed
) -> None:
    alice = await _user(committed)
    post_id = await _post(committed, alice, published=True)
    socket_token = await committed.token_for(alice)
    writer_token = await committed.token_for(alice)
    async with socket_client(server, socket_token) as client:
        await client.subscribe_joined("1", COMMENT_ADDED, {"postId": post_id})
        async with committed.sessions() as session:
            expire = (
                update(models.AuthToken)
                .where(models.AuthToken.token_hash == auth.token_digest(socket_token))
                .values(expires_at=models.utc_now() - timedelta(minutes=1))
            )
            await session.execute(expire)
            await session.commit()
        await _comment(server, writer_token, post_id, "After expiry.")

        closed = await client.closed()

    assert closed[0] == 4403


async def test_the_npm_graphql_ws_client_receives_an_event(
    server: str, committed: Committed
) -> None:
    node = shutil.which("node")
    script = Path(__file__).with_name("graphql_ws_client.mjs")
    if node is None or not (script.parent.parent / "node_modules" / "graphql-ws").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node or the graphql-ws npm package is missing (run `npm ci`)")
        pytest.skip("node or the graphql-ws npm package is missing (run `npm ci`)")
    alice = await _user(committed)
    token = await committed.token_for(alice)
    before = await open_subscriptions(server)
    client = await asyncio.create_subprocess_exec(
        *(node, "--experimental-websocket", "--no-warnings", str(script)),
        *(f"ws://{server}/graphql", token),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(_subscribed_beyond(server, before), WAIT_SECONDS)
        variables = {"title": "From node", "published": True, "tags": ["js"]}
        await mutate(server, CREATE_POST, variables, token=token)
        assert client.stdout is not None
        line = await asyncio.wait_for(client.stdout.readline(), WAIT_SECONDS)
    finally:
        client.kill()
        await client.wait()

    post = {"title": "From node", "author": {"username": alice.username}}
    assert json.loads(line)["data"] == {"postPublished": post}


async def _subscribed_beyond(address: str, count: float) -> None:
    while await open_subscriptions(address) <= count:
        continue  # each look is a request to the server: it waits for the answer


async def test_the_python_gql_client_receives_an_event(server: str, committed: Committed) -> None:
    alice = await _user(committed)
    token = await committed.token_for(alice)
    transport = WebsocketsTransport(
        url=f"ws://{server}/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"authorization": f"Bearer {token}"},
    )
    before = await open_subscriptions(server)
    async with gql.Client(transport=transport) as session:
        document = gql.gql('subscription { postPublished(tag: "py") { title } }')
        results = session.subscribe(document)
        first = asyncio.ensure_future(anext(results))
        await asyncio.wait_for(_subscribed_beyond(server, before), WAIT_SECONDS)
        variables = {"title": "From gql", "published": True, "tags": ["py"]}
        await mutate(server, CREATE_POST, variables, token=token)

        result = await asyncio.wait_for(first, WAIT_SECONDS)
        await results.aclose()

    assert result == {"postPublished": {"title": "From gql"}}


class _BrokenBus(events.InProcessBus):
    """A bus whose listening fails with `error`, as a broken transport would."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def listen(self) -> AbstractAsyncContextManager[events.Listener]:
        raise self.error


async def test_a_failing_subscription_sends_a_masked_error(settings: Settings) -> None:
    bus = _BrokenBus(RuntimeError("SELECT secret FROM users"))
    async with live_server(settings, bus=bus) as address, socket_client(address) as client:
        await client.subscribe("1", POST_PUBLISHED)
        message = await client.receive()

    [error] = message["payload"]["errors"]
    error_id = error["extensions"]["errorId"]
    assert (message["type"], message["id"]) == ("next", "1")
    assert error == {
        "message": f"Internal server error (error id {error_id}).",
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id},
    }


async def test_a_subscription_failing_on_the_database_says_it_is_unavailable(
    settings: Settings,
) -> None:
    bus = _BrokenBus(ConnectionRefusedError(111, "Connect call failed ('10.0.0.7', 5432)"))
    async with live_server(settings, bus=bus) as address, socket_client(address) as client:
        await client.subscribe("1", POST_PUBLISHED)
        message = await client.receive()

    assert message["payload"]["errors"] == [
        {
            "message": "The database is unavailable. Try again shortly.",
            "extensions": {"code": "DATABASE_UNAVAILABLE"},
        }
    ]


# Subscribers served in groups: one answer per (operation, audience), sent to each member.
CONTENT = "subscription ($postId: ID!) { commentAdded(postId: $postId) { content } }"
WITH_AUTHOR = COMMENT_ADDED


async def _users_and_posts(
    committed: Committed, *, published: bool
) -> tuple[models.User, models.User, str]:
    """An author, an admin, and a post of the author's."""
    async with committed.sessions() as session:
        author = await make_user(session)
        admin = await make_user(session, is_admin=True)
        post = await make_post(session, author=author, published=published)
        await session.commit()
    return author, admin, encode_global_id("Post", post.id)


async def test_one_answer_per_operation_and_audience_reaches_every_member(
    server: str, committed: Committed, caplog: pytest.LogCaptureFixture
) -> None:
    author, admin, post_id = await _users_and_posts(committed, published=True)
    author_token, admin_token = (
        await committed.token_for(author),
        await committed.token_for(admin),
    )
    variables = {"postId": post_id}
    caplog.set_level(logging.INFO, logger="gql_blog.schema.fanout")
    async with (
        socket_client(server) as first,
        socket_client(server) as second,
        socket_client(server, admin_token) as admins,
    ):
        await first.subscribe_joined("a", CONTENT, variables)
        await first.subscribe_joined("b", WITH_AUTHOR, variables)
        await second.subscribe_joined("c", CONTENT, variables)
        await second.subscribe_joined("d", CONTENT, variables)
        await admins.subscribe_joined("e", CONTENT, variables)
        await _comment(server, author_token, post_id, "Hello.")

        received = [
            await first.receive(),
            await first.receive(),
            await second.receive(),
            await second.receive(),
            await admins.receive(),
        ]

    assert sorted(message["id"] for message in received) == ["a", "b", "c", "d", "e"]
    for message in received:
        assert message["payload"]["data"]["commentAdded"]["content"] == "Hello."
    [delivered] = [r for r in caplog.records if r.getMessage() == "subscription.delivered"]
    # Anonymous with two operations, the admins with one: three answers for five subscriptions.
    assert (delivered.groups, delivered.subscribers) == (3, 5)  # type: ignore[attr-defined]


async def test_an_admin_demoted_meanwhile_leaves_the_admins_group(
    server: str, committed: Committed, engine: AsyncEngine
) -> None:
    author, demoted, draft_id = await _users_and_posts(committed, published=False)
    async with committed.sessions() as session:
        keeper = await make_user(session, is_admin=True)
        public = await make_post(session, author=author, published=True)
        await session.commit()
    public_id = encode_global_id("Post", public.id)
    author_token = await committed.token_for(author)
    async with (
        socket_client(server, await committed.token_for(demoted)) as was_admin,
        socket_client(server, await committed.token_for(keeper)) as still_admin,
    ):
        for client in (was_admin, still_admin):  # both in one group: same operation, admins
            await client.subscribe_joined("draft", CONTENT, {"postId": draft_id})
            await client.subscribe_joined("public", CONTENT, {"postId": public_id})
        async with engine.begin() as connection:
            demote = update(models.User).where(models.User.id == demoted.id)
            await connection.execute(demote.values(is_admin=False))
        await _comment(server, author_token, draft_id, "Draft note.")
        await _comment(server, author_token, public_id, "Open.")

        first_of_demoted = await was_admin.receive()
        first_of_admin = await still_admin.receive()

    # The draft's comment was committed first: an admin gets it first, a user never.
    assert first_of_admin["id"] == "draft"
    assert first_of_demoted["id"] == "public"


async def test_nothing_is_kept_once_the_subscriptions_end(
    server: str, bus: events.EventBus, committed: Committed
) -> None:
    author, _, post_id = await _users_and_posts(committed, published=True)
    token = await committed.token_for(author)
    fanout = fanout_of(bus)
    for _ in range(3):
        async with socket_client(server) as first, socket_client(server, token) as second:
            await first.subscribe_joined("1", CONTENT, {"postId": post_id})
            await second.subscribe_joined("1", WITH_AUTHOR, {"postId": post_id})
            await _comment(server, token, post_id, "Seen.")
            await first.receive()
            await second.receive()
            assert fanout.group_count == 2

    await asyncio.wait_for(bus.hub.wait_idle(), WAIT_SECONDS)  # the dispatcher stopped listening
    assert fanout.group_count == 0


def _alive(kind: type) -> int:
    return sum(isinstance(thing, kind) for thing in gc.get_objects())


async def test_a_subscriber_keeps_no_context_or_session_of_its_own(
    server: str, committed: Committed
) -> None:
    """Once joined, a subscription is its task and its group membership: its execution (the
    context, the session, strawberry's extensions and generators) has ended, so a worker's
    thousands of subscribers do not weigh on every full garbage collection."""
    _, _, post_id = await _users_and_posts(committed, published=True)
    sockets, per_socket = 5, 20
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(socket_client(server)) for _ in range(sockets)]
        for client in clients:
            for number in range(per_socket):
                await client.subscribe_joined(str(number), CONTENT, {"postId": post_id})
        gc.collect()

        contexts, sessions = _alive(Context), _alive(AsyncSession)

    # One of each for each socket (strawberry's context of the connection), and the group's.
    assert contexts <= sockets + 2, f"{contexts} contexts alive for 100 subscriptions"
    assert sessions <= sockets + 2, f"{sessions} sessions alive for 100 subscriptions"


async def test_a_worker_sets_up_few_subscriptions_at_once(
    server: str, committed: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of subscribe messages is set up SUBSCRIPTION_STARTS_AT_ONCE at a time (other
    requests wait through shorter turns of the event loop), their text new to the worker
    too; all of them are served."""
    author, _, post_id = await _users_and_posts(committed, published=True)
    token = await committed.token_for(author)
    running: list[int] = [0, 0]  # now, most
    execute = websocket.TransportWSHandler._execute

    async def counted(handler: websocket.TransportWSHandler, *arguments: Any) -> None:
        running[0] += 1
        running[1] = max(running)
        try:
            await execute(handler, *arguments)
        finally:
            running[0] -= 1

    monkeypatch.setattr(websocket.TransportWSHandler, "_execute", counted)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(socket_client(server, token)) for _ in range(3)]
        before = await open_subscriptions(server)
        for client in clients:
            for number in range(20):
                await client.subscribe(str(number), CONTENT, {"postId": post_id})
        deadline = time.monotonic() + WAIT_SECONDS
        while await open_subscriptions(server) < before + 60:
            assert time.monotonic() < deadline, "the burst's subscriptions never all opened"
            await asyncio.sleep(0.01)

    assert 1 <= running[1] <= websocket.SUBSCRIPTION_STARTS_AT_ONCE


async def test_an_operation_completed_by_the_client_stops_its_statement(
    settings: Settings, bus: events.EventBus, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, ended = asyncio.Event(), asyncio.Event()

    async def slow(self: Loaders, username: str) -> None:
        async def statement(session: AsyncSession) -> None:
            entered.set()
            try:
                await session.scalar(text(slow_statement(dialect, 20)))
            finally:
                ended.set()

        await self.db.locked(statement)

    monkeypatch.setattr(Loaders, "user_by_username", slow)
    async with live_server(settings, bus=bus) as address, socket_client(address) as client:
        await client.subscribe("1", '{ user(username: "ada") { id } }')
        await asyncio.wait_for(entered.wait(), WAIT_SECONDS)
        await asyncio.sleep(0.2)  # the statement is on its way to the database
        started = time.perf_counter()
        await client.send({"id": "1", "type": "complete"})
        await asyncio.wait_for(ended.wait(), 10)
        stopped_after = time.perf_counter() - started

    # Waited for (as before), the statement would have run its 20 s.
    assert stopped_after < 2, f"the statement ran {stopped_after:.2f} s after `complete`"


COMMENT_ADDED_WITH_PARENT = """
subscription ($postId: ID!) { commentAdded(postId: $postId) { content parent { content } } }
"""
REPLY = """
mutation ($postId: ID!, $parentId: ID!) {
  addComment(input: {postId: $postId, content: "A reply.", parentId: $parentId}) { __typename }
}
"""


async def test_comment_added_fires_for_replies(server: str, committed: Committed) -> None:
    alice = await _user(committed)
    post_id = await _post(committed, alice, published=True)
    async with committed.sessions() as session:
        _, row_id = decode_global_id(post_id)
        post = await session.get(models.Post, row_id)
        assert post is not None
        top = await make_comment(session, post=post, author=alice, content="Top.")
        await session.commit()
    token = await committed.token_for(alice)
    async with socket_client(server) as client:
        await client.subscribe_joined("1", COMMENT_ADDED_WITH_PARENT, {"postId": post_id})
        body = await mutate(
            server,
            REPLY,
            {"postId": post_id, "parentId": encode_global_id("Comment", top.id)},
            token=token,
        )
        assert body["data"]["addComment"]["__typename"] == "Comment", body

        data = await _next_data(client)

    assert data == {"commentAdded": {"content": "A reply.", "parent": {"content": "Top."}}}
