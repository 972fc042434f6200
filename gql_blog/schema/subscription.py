"""The subscriptions: `commentAdded` and `postPublished`, fed by the event bus after commit.

A subscription holds no session while it waits. Subscribers are served in groups (see
`fanout.py`): an event is loaded and answered once per distinct operation (text and variables)
and audience (anonymous, each signed-in user, admins), in one short session per batch of events
with fresh loaders and the viewers looked up again from their tokens, so what is sent is what
each viewer may see at that moment: a comment on a post that went back to draft reaches only
its author and admins. A token that lapsed (expired, revoked) closes the socket at the next
event; so does a subscriber that fell too far behind.

A batch whose rows cannot be loaded because the database is out of reach (restarting, say)
waits: its session is tried again, a second apart at most, and the batch is delivered once the
database answers. The subscriptions stay open meanwhile; nothing about them needs the database.
"""

from collections.abc import AsyncGenerator

import strawberry

from gql_blog import events
from gql_blog.ids import decode_global_id
from gql_blog.loaders import Loaders
from gql_blog.schema.fanout import fanout_of
from gql_blog.schema.types import BlogInfo, Comment, Post


def _post_row_id(post_id: strawberry.ID) -> int | None:
    """The row id of a post's global id; another type's id names no post (no events)."""
    found, row_id = decode_global_id(post_id)
    return row_id if found == "Post" else None


def _comment_id(event: events.Event) -> int | None:
    """The row of a `commentAdded` payload: the comment the event is about."""
    return event.comment_id


def _post_id(event: events.Event) -> int | None:
    """The row of a `postPublished` payload: the post the event is about."""
    return event.post_id


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Comments on that post as they are committed, if the viewer may see them."
    )
    async def comment_added(
        self, info: BlogInfo, post_id: strawberry.ID
    ) -> AsyncGenerator[Comment, None]:
        row_id = _post_row_id(post_id)

        def wanted(event: events.Event) -> bool:
            return event.kind is events.Kind.COMMENT_ADDED and event.post_id == row_id

        async def load(loaders: Loaders, batch: list[events.Event]) -> list[Comment]:
            ids = [event.comment_id for event in batch if event.comment_id is not None]
            rows = await loaders.comments.load_many(ids)
            return [Comment.from_model(row) for row in rows if row is not None]

        fanout = fanout_of(info.context.events)
        subscribed = fanout.subscribe(info.context, info.schema, wanted, load, _comment_id)
        async for never in subscribed:
            yield never

    @strawberry.subscription(
        description="Posts as they become published; with `tag`, only posts with that tag."
    )
    async def post_published(
        self, info: BlogInfo, tag: str | None = None
    ) -> AsyncGenerator[Post, None]:
        tag_name = None if tag is None else tag.strip().lower()

        def wanted(event: events.Event) -> bool:
            return event.kind is events.Kind.POST_PUBLISHED

        async def load(loaders: Loaders, batch: list[events.Event]) -> list[Post]:
            rows = await loaders.posts.load_many([event.post_id for event in batch])
            published = [row for row in rows if row is not None and row.published]
            if tag_name is not None:
                tags = await loaders.tags_of_posts.load_many([row.id for row in published])
                published = [
                    row
                    for row, row_tags in zip(published, tags, strict=True)
                    if tag_name in {tag_row.name for tag_row in row_tags}
                ]
            return [Post.from_model(row) for row in published]

        fanout = fanout_of(info.context.events)
        subscribed = fanout.subscribe(info.context, info.schema, wanted, load, _post_id)
        async for never in subscribed:
            yield never
