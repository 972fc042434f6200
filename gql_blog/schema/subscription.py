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

A batch whose rows cannot be loaded because the database is out of reach (restarting, say)
waits: its session is tried again, a second apart at most, and the batch is delivered once the
database answers. The subscription stays open meanwhile; nothing about it needs the database.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import strawberry

from gql_blog import auth, db, events, metrics
from gql_blog.loaders import Loaders
from gql_blog.schema.context import Context
from gql_blog.schema.ids import decode_global_id
from gql_blog.schema.types import NODE_TYPES, BlogInfo, Comment, Post

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Close codes and reasons of the websocket, as the client sees them.
TOKEN_LAPSED = (4403, "Forbidden: the sign-in token expired or was revoked")
TOO_SLOW = (1013, "Too far behind: events arrived faster than the client read them")
# Between tries at an event while the database is out of reach.
_RETRY_FIRST_DELAY = 0.1
_RETRY_MAX_DELAY = 1.0


class _SocketClosedError(Exception):
    """The socket was closed on the subscriber's behalf; its subscription ends."""


async def _close(context: Context, code: int, reason: str) -> None:
    if context.close_connection is not None:
        await context.close_connection(code, reason)


@asynccontextmanager
async def _event_session(context: Context) -> AsyncIterator[None]:
    """One batch's session, loaders and viewer; closed when its events have been sent."""
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


async def _loaded(
    context: Context,
    batch: list[events.Event],
    load: Callable[[list[events.Event]], Awaitable[list[T]]],
    stack: AsyncExitStack,
) -> list[T]:
    """`load(batch)` inside the batch's session, which stays open on `stack` (the fields the
    client selected load through it). While the database is out of reach, wait and try again."""
    delay = _RETRY_FIRST_DELAY
    while True:
        async with AsyncExitStack() as attempt:
            try:
                await attempt.enter_async_context(_event_session(context))
                values = await load(batch)
            except Exception as error:
                _log_outage(context, error, "subscription.event_waits")
            else:
                await stack.enter_async_context(attempt.pop_all())
                return values
        await asyncio.sleep(delay)  # after the failed session closed: it holds no connection
        delay = min(delay * 2, _RETRY_MAX_DELAY)


async def _end_session(context: Context, session: AsyncExitStack) -> None:
    """Close the batch's session. It only read: a connection lost by now (the database went
    down just after the events were sent) loses nothing, and the subscription goes on."""
    try:
        await session.aclose()
    except Exception as error:
        _log_outage(context, error, "subscription.session_lost")


def _log_outage(context: Context, error: Exception, event: str) -> None:
    """Log `event` if `error` is the database out of reach; raise anything else."""
    outage = db.outage_of(error)
    if outage is None:
        raise error
    logger.warning(event, extra={"request_id": context.request_id, "outage": outage.value})


async def _deliveries(
    context: Context,
    wanted: Callable[[events.Event], bool],
    load: Callable[[list[events.Event]], Awaitable[list[T]]],
) -> AsyncGenerator[T, None]:
    """What `load` makes of the wanted events, batch by batch (those queued together), each
    batch in one session."""
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
                session = AsyncExitStack()
                try:
                    try:
                        values = await _loaded(context, batch, load, session)
                    except _SocketClosedError:
                        return
                    for value in values:
                        yield value
                finally:
                    await _end_session(context, session)
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

        async def load(batch: list[events.Event]) -> list[Comment]:
            ids = [event.comment_id for event in batch if event.comment_id is not None]
            rows = await context.loaders.comments.load_many(ids)
            return [Comment.from_model(row) for row in rows if row is not None]

        async for comment in _deliveries(context, wanted, load):
            yield comment

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

        async def load(batch: list[events.Event]) -> list[Post]:
            rows = await context.loaders.posts.load_many([event.post_id for event in batch])
            published = [row for row in rows if row is not None and row.published]
            if tag_name is not None:
                tags = await context.loaders.tags_of_posts.load_many([row.id for row in published])
                published = [
                    row
                    for row, row_tags in zip(published, tags, strict=True)
                    if tag_name in {tag_row.name for tag_row in row_tags}
                ]
            return [Post.from_model(row) for row in published]

        async for post in _deliveries(context, wanted, load):
            yield post
