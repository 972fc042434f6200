"""The planned mutations' writes: the same statements as strawberry's mutation fields, in one
transaction each (`transactions.run_write`), answering a row for the planned reader or a refusal.

A refusal is one of the API's error types as plain values (`Refusal`); the row is keyed by model
attribute, as the planned reader's rows are. Rows the write already holds (the viewer as author,
the post commented on, the new post's tags) come back beside it, so the payload does not read
them again.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gql_blog import audit, engines, events, models, transactions, writes
from gql_blog.serial_session import SerialSession
from gql_blog.visibility import Viewer


@dataclass(frozen=True, slots=True)
class Refusal:
    """An expected failure: its GraphQL type name and its fields (`message`, `field`, `id`)."""

    type_name: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Written:
    """The written row, and rows it already knows: by (entity, id), and each post's tags."""

    row: dict[str, Any]
    known: dict[tuple[str, int], Mapping[str, Any]] = field(default_factory=dict)
    tags: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Writer:
    """What a planned write needs of its request: the session and the event bus."""

    db: SerialSession
    bus: events.EventBus

    async def run(self, actor: Viewer, body: Callable[[], Awaitable[Any]]) -> Any:
        """`body` in one transaction as `actor`; a model rule's refusal is a ValidationError."""
        session = self.db.session
        audit.act_as(session, actor.id)
        await engines.begin_writing(session)
        try:
            return await transactions.run_write(
                session, body, bus=self.bus, is_refusal=lambda result: isinstance(result, Refusal)
            )
        except models.InvalidValueError as error:
            return Refusal(
                "ValidationError", {"message": error.message, "field": error.input_field}
            )


def sign_in() -> Refusal:
    return Refusal("AuthenticationError", {"message": writes.SIGN_IN_MESSAGE})


def _post_not_found(global_id: str) -> Refusal:
    return Refusal("NotFoundError", {"message": writes.NO_SUCH_POST_MESSAGE, "id": global_id})


def _comment_not_found(global_id: str) -> Refusal:
    return Refusal("NotFoundError", {"message": writes.NO_SUCH_COMMENT_MESSAGE, "id": global_id})


def _columns(row: models.Base) -> dict[str, Any]:
    table: Any = row.__table__
    return {column.key: getattr(row, column.key) for column in table.columns}


async def add_comment(
    writer: Writer,
    viewer: Viewer,
    viewer_row: Mapping[str, Any],
    *,
    post_global_id: str,
    post_id: int | None,
    content: str,
    parent_global_id: str | None = None,
    parent_id: int | None = None,
) -> Refusal | Written:
    """addComment: on a post the viewer may see (share-locked), a reply to one of its comments
    when `parent_global_id` is given, with its audit entry."""
    session = writer.db.session

    async def body() -> Refusal | Written:
        post = None
        if post_id is not None:
            post = await writes.find_post(session, post_id, viewer=viewer)
        if post is None:
            return _post_not_found(post_global_id)
        parent = None
        if parent_global_id is not None:
            if parent_id is not None:
                parent = await writes.find_parent(session, parent_id, post=post)
            if parent is None:
                return _comment_not_found(parent_global_id)
        row = await writes.add_comment(
            session, post=post, author=viewer, content=content, parent=parent
        )
        known = {("User", viewer.id): viewer_row, ("Post", post.id): _columns(post)}
        if parent is not None:
            known[("Comment", parent.id)] = _columns(parent)
        return Written(_columns(row), known)

    result: Refusal | Written = await writer.run(viewer, body)
    return result


async def create_post(
    writer: Writer,
    viewer: Viewer,
    viewer_row: Mapping[str, Any],
    *,
    title: str,
    content: str,
    published: bool,
    tag_names: list[str],
) -> Refusal | Written:
    """createPost: the post, its audit entry, its tags (created on first use) and links."""
    session = writer.db.session

    async def body() -> Written:
        new = await writes.create_post(
            session,
            author=viewer,
            title=title,
            content=content,
            published=published,
            tag_names=tag_names,
        )
        tags = [{"id": tag.id, "name": tag.name, "parent_key": new.row.id} for tag in new.tags]
        known = {("User", viewer.id): viewer_row}
        return Written(_columns(new.row), known, {new.row.id: tags})

    result: Refusal | Written = await writer.run(viewer, body)
    return result
