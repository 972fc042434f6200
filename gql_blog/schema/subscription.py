"""The subscriptions: `commentAdded` and `postPublished`, fed by the event bus after commit.

A subscription holds no session while it waits. The events it takes from its queue at once (one,
or all that piled up meanwhile) are delivered in a short session of their own, with fresh
loaders and the viewer looked up again from the token the socket signed in with, so what is
sent is what that viewer may see at that moment: a comment on a post that went back to draft
reaches only its author and admins. One session (one pooled connection, one statement per
loader) for a whole batch lets a subscription catch up when connections are scarce, instead of
waiting for the pool once per event and falling ever further behind. A token that lapsed
(expired, revoked) closes the socket at the next event; so does a subscriber that fell too far
behind.
"""

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager

import strawberry

from gql_blog import auth, db, events, metrics
from gql_blog.loaders import Loaders
from gql_blog.schema.context import Context
from gql_blog.schema.ids import decode_global_id
from gql_blog.schema.types import NODE_TYPES, BlogInfo, Comment, Post

logger = logging.getLogger(__name__)

# Close codes and reasons of the websocket, as the client sees them.
TOKEN_LAPSED = (4403, "Forbidden: the sign-in token expired or was revoked")
TOO_SLOW = (1013, "Too far behind: events arrived faster than the client read them")


class _SocketClosedError(Exception):
    """The socket was closed on the subscriber's behalf; its subscription ends."""


async def _close(context: Context, code: int, reason: str) -> None:
    if context.close_connection is not None:
        await context.close_connection(code, reason)


@asynccontextmanager
async def _event_session(context: Context) -> AsyncIterator[None]:
    """One event's session, loaders and viewer; closed when the event has been sent."""
    if context.sessions is None:
        raise RuntimeError("subscriptions run only over a websocket, with a session factory")
    async with context.sessions() as session:
        serial = db.SerialSession(session)
        viewer = await auth.viewer_from_token(session, context.token)
        if context.token is not None and viewer is None:
            logger.info("subscription.token_lapsed", extra={"request_id": context.request_id})
            await _close(context, *TOKEN_LAPSED)
            raise _SocketClosedError
        context.db = serial
        context.viewer = viewer
        depth = context.settings.max_filter_depth
        context.loaders = Loaders(serial, viewer, max_filter_depth=depth)
        try:
            yield
        finally:
            await serial.drain()


async def _deliveries(
    context: Context, wanted: Callable[[events.Event], bool]
) -> AsyncGenerator[list[events.Event], None]:
    """The wanted events in batches (those queued together), each inside one `_event_session`."""
    # The operation's own session (its viewer lookup) is done with: give its connection back.
    await context.db.session.close()
    metrics.open_subscriptions.inc()
    try:
        async with context.events.listen() as listener:
            while True:
                try:
                    batch = [await listener.next(), *listener.take_waiting()]
                except events.ListenerTooSlowError:
                    logger.warning(
                        "subscription.too_slow", extra={"request_id": context.request_id}
                    )
                    await _close(context, *TOO_SLOW)
                    return
                batch = [event for event in batch if wanted(event)]
                if not batch:
                    continue
                try:
                    async with _event_session(context):
                        yield batch
                except _SocketClosedError:
                    return
    finally:
        metrics.open_subscriptions.dec()


def _post_row_id(post_id: strawberry.ID) -> int | None:
    """The row id of a post's global id; another type's id names no post (no events)."""
    found, row_id = decode_global_id(post_id, known_types=NODE_TYPES)
    return row_id if found == "Post" else None


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Comments on that post as they are committed, if the viewer may see them."
    )
    async def comment_added(
        self, info: BlogInfo, post_id: strawberry.ID
    ) -> AsyncGenerator[Comment, None]:
        context = info.context
        row_id = _post_row_id(post_id)

        def wanted(event: events.Event) -> bool:
            return event.kind is events.Kind.COMMENT_ADDED and event.post_id == row_id

        async for batch in _deliveries(context, wanted):
            ids = [event.comment_id for event in batch if event.comment_id is not None]
            for row in await context.loaders.comments.load_many(ids):
                if row is not None:
                    yield Comment.from_model(row)

    @strawberry.subscription(
        description="Posts as they become published; with `tag`, only posts with that tag."
    )
    async def post_published(
        self, info: BlogInfo, tag: str | None = None
    ) -> AsyncGenerator[Post, None]:
        context = info.context
        tag_name = None if tag is None else tag.strip().lower()

        def wanted(event: events.Event) -> bool:
            return event.kind is events.Kind.POST_PUBLISHED

        async for batch in _deliveries(context, wanted):
            rows = await context.loaders.posts.load_many([event.post_id for event in batch])
            published = [row for row in rows if row is not None and row.published]
            if tag_name is not None:
                tags = await context.loaders.tags_of_posts.load_many([row.id for row in published])
                published = [
                    row
                    for row, row_tags in zip(published, tags, strict=True)
                    if tag_name in {tag_row.name for tag_row in row_tags}
                ]
            for row in published:
                yield Post.from_model(row)
