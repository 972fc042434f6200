"""The soak's subscribers: graphql-transport-ws clients that record every event they are sent.

Each subscriber is one websocket with one `postPublished` (every post that becomes published)
and one `commentAdded` per post it watches. `open_subscribers` spreads them evenly over the
server's worker processes: it connects, asks /proc which worker accepted the socket
(`workers.socket_owner`), and keeps the socket only if that worker has fewer than its share.
Half of them sign in (a token in `connection_init`), half stay anonymous. A reader task per
socket records what arrives, and anything that is not an event (an error, a `complete`, the
server closing the socket) as a problem: during a soak, a subscription never ends by itself.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import websockets

from bench import outcome, workers
from gql_blog.ids import encode_global_id

PROTOCOL: Final = "graphql-transport-ws"
HANDSHAKE_SECONDS: Final = 30.0
# Sockets tried per subscriber before giving up on spreading them evenly.
TRIES_PER_SUBSCRIBER: Final = 20
POSTS: Final = "subscription SoakPosts { postPublished { id title published } }"
COMMENTS: Final = (
    "subscription SoakComments($postId: ID!) { commentAdded(postId: $postId) { id content } }"
)
_POSTS_ID: Final = "posts"


class SubscriberError(RuntimeError):
    """A subscriber could not connect, or the sockets could not be spread over the workers."""


@dataclass(slots=True, eq=False)
class Subscriber:
    """One socket: where it landed, what it watches, and what it received."""

    number: int
    worker_pid: int
    watched: dict[str, int]  # commentAdded's operation id → the post's row id
    signed_in: bool
    connection: websockets.ClientConnection
    changed: asyncio.Event
    posts: set[int] = field(default_factory=set)
    comments: dict[int, int] = field(default_factory=dict)  # comment row id → post row id
    problems: list[str] = field(default_factory=list)
    closing: bool = False
    reader: "asyncio.Task[None] | None" = None

    async def subscribe(self) -> None:
        await self._send({"id": _POSTS_ID, "type": "subscribe", "payload": {"query": POSTS}})
        for operation_id, post_id in self.watched.items():
            variables = {"postId": encode_global_id("Post", post_id)}
            payload = {"query": COMMENTS, "variables": variables}
            await self._send({"id": operation_id, "type": "subscribe", "payload": payload})
        self.reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        self.closing = True
        await self.connection.close()
        if self.reader is not None:
            await self.reader

    async def _send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                await self._receive(json.loads(raw))
                self.changed.set()
        except websockets.ConnectionClosed as closed:
            if not self.closing:
                self.problems.append(f"the server closed the socket: {closed}")
        except (ValueError, KeyError, TypeError) as error:
            self.problems.append(f"an unreadable message: {error!r}")
        self.changed.set()

    async def _receive(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            await self._send({"type": "pong"})
            return
        if kind != "next" or message["payload"].get("errors"):
            self.problems.append(f"{json.dumps(message)[:300]}")
            return
        data = message["payload"]["data"]
        operation_id = message["id"]
        if operation_id == _POSTS_ID:
            post = data["postPublished"]
            self.posts.add(outcome.row_id(post["id"], "Post"))
            if post["published"] is not True:
                self.problems.append(f"postPublished sent a draft: {post}")
            return
        comment_id = outcome.row_id(data["commentAdded"]["id"], "Comment")
        self.comments[comment_id] = self.watched[operation_id]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How many subscribers, the posts they watch, the tokens half of them sign in with."""

    count: int
    comment_posts: list[int]
    watched_per_subscriber: int
    tokens: list[str]

    def watched(self, number: int) -> dict[str, int]:
        """Subscriber `number` watches the next posts after its predecessor's first ones, so
        with two workers each post has watchers on both."""
        posts = self.comment_posts
        start = 2 * number
        chosen = [posts[(start + k) % len(posts)] for k in range(self.watched_per_subscriber)]
        return {f"comments-{post_id}": post_id for post_id in dict.fromkeys(chosen)}


@dataclass(slots=True)
class Subscribers:
    """Every subscriber, and an event set whenever any of them receives a message."""

    members: list[Subscriber]
    changed: asyncio.Event

    async def wait_until(self, done: Callable[[], bool], *, seconds: float) -> bool:
        """Wait until `done()` holds (checked after every message) or `seconds` pass; whether
        it holds."""
        deadline = time.monotonic() + seconds
        while True:
            self.changed.clear()
            if done():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def close(self) -> None:
        for subscriber in self.members:
            await subscriber.close()


async def open_subscribers(
    address: str, plan: Plan, *, server_port: int, worker_pids: list[int]
) -> Subscribers:
    """`plan.count` subscribed sockets, in turn on each worker (subscriber n on worker n mod N)."""
    group = Subscribers(members=[], changed=asyncio.Event())
    landed = dict.fromkeys(worker_pids, 0)
    tries = plan.count * TRIES_PER_SUBSCRIBER
    while len(group.members) < plan.count:
        if tries == 0:
            await group.close()
            raise SubscriberError(
                f"only {len(group.members)} of {plan.count} subscribers landed on the worker "
                f"meant for them after {plan.count * TRIES_PER_SUBSCRIBER} sockets ({landed})"
            )
        tries -= 1
        number = len(group.members)
        token = plan.tokens[number % len(plan.tokens)] if number % 2 else None
        connection = await _connect(address, token)
        client_port = connection.local_address[1]
        owner = workers.socket_owner(worker_pids, server_port=server_port, client_port=client_port)
        if owner != worker_pids[number % len(worker_pids)]:
            await connection.close()  # the other worker took it: try again
            continue
        landed[owner] += 1
        subscriber = Subscriber(
            number=number,
            worker_pid=owner,
            watched=plan.watched(number),
            signed_in=token is not None,
            connection=connection,
            changed=group.changed,
        )
        await subscriber.subscribe()
        group.members.append(subscriber)
    return group


async def _connect(address: str, token: str | None) -> websockets.ClientConnection:
    payload = {} if token is None else {"authorization": f"Bearer {token}"}
    try:
        connection = await websockets.connect(
            f"ws://{address}/graphql", subprotocols=[PROTOCOL], open_timeout=HANDSHAKE_SECONDS
        )
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(connection.recv(), HANDSHAKE_SECONDS))
    except (OSError, TimeoutError, websockets.WebSocketException) as error:
        raise SubscriberError(f"no websocket to ws://{address}/graphql: {error!r}") from None
    if ack.get("type") != "connection_ack":
        await connection.close()
        raise SubscriberError(f"the server refused connection_init: {ack}")
    return connection
