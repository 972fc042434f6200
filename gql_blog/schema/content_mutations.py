"""The content mutations: posts (tags created on first use), comments, and admins' bulk operations.

Writers must be signed in with an active account; only the author or an admin may change or
delete a post or comment. Another user's draft is not found rather than forbidden, so a mutation
never reveals that it exists. Each field runs in one transaction (`run_mutation`).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import strawberry
from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import UNSET

from gql_blog import audit, models, writes
from gql_blog.ids import decode_global_id
from gql_blog.schema.connections import compile_filter
from gql_blog.schema.context import Context
from gql_blog.schema.inputs import PostWhere, UserWhere
from gql_blog.schema.results import (
    AuthenticationError,
    ConflictError,
    Error,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    transact,
    validation_error,
)
from gql_blog.schema.types import BlogInfo, Comment, Post

R = TypeVar("R")

PostResult = Annotated[
    Post | ValidationError | NotFoundError | ForbiddenError | AuthenticationError | ConflictError,
    strawberry.union("PostResult"),
]
CommentResult = Annotated[
    Comment | ValidationError | NotFoundError | AuthenticationError | ForbiddenError,
    strawberry.union("CommentResult"),
]


@strawberry.type(description="The object is deleted; `id` is the global id it had.")
class Deleted:
    id: strawberry.ID


@strawberry.type(description="A bulk operation ran; `affected` rows changed.")
class BulkUpdated:
    affected: int


DeleteResult = Annotated[
    Deleted | NotFoundError | ForbiddenError | AuthenticationError,
    strawberry.union("DeleteResult"),
]
BulkResult = Annotated[
    BulkUpdated | ForbiddenError | AuthenticationError, strawberry.union("BulkResult")
]


@strawberry.type(description="One result per input, in order, and how many posts were created.")
class ImportPostsPayload:
    results: list[PostResult]
    created: int


@strawberry.input(description="A new post; tags are created on first use.")
class CreatePostInput:
    title: str
    content: str
    published: bool | None = False
    tags: list[str] | None = strawberry.field(default_factory=list)


@strawberry.input(description="Changes to a post; an omitted (or null) field stays as it is.")
class UpdatePostInput:
    title: str | None = UNSET
    content: str | None = UNSET
    published: bool | None = UNSET
    tags: list[str] | None = strawberry.field(
        default=UNSET, description="The post's tags from now on; [] removes them all."
    )
    slug: str | None = strawberry.field(
        default=UNSET,
        description="A new slug: 1 to 80 of [a-z0-9] in words joined by '-', not taken.",
    )

    def changes(self) -> writes.PostChanges:
        """The edit asked for: an omitted (UNSET) or null field is no change."""
        return writes.PostChanges(
            title=_given(self.title),
            content=_given(self.content),
            published=_given(self.published),
            tag_names=_given(self.tags),
            slug=_given(self.slug),
        )


@strawberry.input(description="A comment on a post the viewer may see.")
class AddCommentInput:
    post_id: strawberry.ID
    content: str
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="The comment of the same post this one replies to."
    )


@strawberry.input(description="A comment's new content.")
class UpdateCommentInput:
    content: str


def _sign_in() -> AuthenticationError:
    return AuthenticationError(message=writes.SIGN_IN_MESSAGE)


def _post_not_found(post_id: strawberry.ID) -> NotFoundError:
    return NotFoundError(message=writes.NO_SUCH_POST_MESSAGE, id=post_id)


def _comment_not_found(comment_id: strawberry.ID) -> NotFoundError:
    return NotFoundError(message=writes.NO_SUCH_COMMENT_MESSAGE, id=comment_id)


def _given(value: R | None) -> R | None:
    """An omitted input field (UNSET) is the same as null: no change."""
    return None if value is UNSET else value


def _active_writer(context: Context) -> models.User | None:
    """The viewer, if signed in with an active account; recorded as the writes' actor."""
    viewer = context.viewer
    if viewer is None or not viewer.is_active:
        return None
    audit.act_as(context.db.session, viewer)
    return viewer


@dataclass(frozen=True, slots=True)
class _Target:
    """The object a mutation names: its global id, and its row id (None: no such row)."""

    global_id: strawberry.ID
    row_id: int | None


def _target(value: strawberry.ID, type_name: str) -> _Target:
    """Decode before the transaction: another type names no row; a malformed id raises."""
    found, row_id = decode_global_id(value)
    return _Target(value, row_id if found == type_name else None)


async def _bulk(
    context: Context,
    entity: str,
    where: UserWhere | PostWhere,
    operation: Callable[[AsyncSession, ColumnElement[bool]], Awaitable[int]],
) -> BulkResult:
    """An admin's one-statement bulk operation on the rows `where` matches."""
    admin = _admin(context)
    if isinstance(admin, Error):
        return admin
    found = compile_filter(context.loaders, entity, where)
    condition = true() if found is None else found.predicate

    async def body() -> BulkUpdated:
        return BulkUpdated(affected=await operation(context.db.session, condition))

    return await _run_unrefusable(context, body)


async def _run_unrefusable(context: Context, body: Callable[[], Awaitable[R]]) -> R:
    """`transact` for bodies no model rule can refuse (deletes, bulk operations)."""
    result = await transact(context, body)
    if isinstance(result, ValidationError):
        raise RuntimeError(f"a delete was refused by a model rule: {result.message}")
    return result


def _refusal(
    refused: writes.Refused, target: _Target
) -> NotFoundError | ForbiddenError | ConflictError:
    """A write's refusal as the API's error type; a NotFoundError names the id asked."""
    if refused.kind is writes.RefusalKind.NOT_FOUND:
        return NotFoundError(message=refused.message, id=target.global_id)
    if refused.kind is writes.RefusalKind.FORBIDDEN:
        return ForbiddenError(message=refused.message)
    return ConflictError(message=refused.message, field=refused.field)


def _not_editable(refused: writes.Refused, target: _Target) -> NotFoundError | ForbiddenError:
    error = _refusal(refused, target)
    assert not isinstance(error, ConflictError)  # finding what to edit conflicts with nothing
    return error


async def _editable_post(
    context: Context, viewer: models.User, target: _Target
) -> models.Post | NotFoundError | ForbiddenError:
    post = await writes.editable_post(context.db.session, target.row_id, viewer=viewer)
    return _not_editable(post, target) if isinstance(post, writes.Refused) else post


async def _create_post(context: Context, viewer: models.User, item: CreatePostInput) -> Post:
    new = await writes.create_post(
        context.db.session,
        author=viewer,
        title=item.title,
        content=item.content,
        published=bool(item.published),
        tag_names=item.tags or [],
    )
    # The payload's author and tags are the rows the write holds: no statement reads them again.
    return Post.from_model(new.row, author=viewer, tags=new.tags)


async def _update_post(
    context: Context, viewer: models.User, target: _Target, changes: UpdatePostInput
) -> PostResult:
    post = await _editable_post(context, viewer, target)
    if isinstance(post, Error):
        return post
    edited = await writes.edit_post(context.db.session, post, changes.changes())
    if isinstance(edited, writes.Refused):
        return _refusal(edited, target)
    return Post.from_model(edited)


async def _publish_post(context: Context, viewer: models.User, target: _Target) -> PostResult:
    post = await _editable_post(context, viewer, target)
    if isinstance(post, Error):
        return post
    await writes.publish_post(context.db.session, post)
    return Post.from_model(post)


async def _delete_post(context: Context, viewer: models.User, target: _Target) -> DeleteResult:
    post = await _editable_post(context, viewer, target)
    if isinstance(post, Error):
        return post
    await writes.delete_post(context.db.session, post)
    return Deleted(id=target.global_id)


async def _add_comment(
    context: Context,
    viewer: models.User,
    target: _Target,
    content: str,
    replied: _Target | None,
) -> CommentResult:
    post = None
    if target.row_id is not None:
        post = await writes.find_post(context.db.session, target.row_id, viewer=viewer)
    if post is None:
        return _post_not_found(target.global_id)
    parent = None
    if replied is not None:
        if replied.row_id is not None:
            parent = await writes.find_parent(context.db.session, replied.row_id, post=post)
        if parent is None:
            return _comment_not_found(replied.global_id)
    row = await writes.add_comment(
        context.db.session, post=post, author=viewer, content=content, parent=parent
    )
    # The payload's author and post are rows the mutation holds: no statement reads them again.
    return Comment.from_model(row, author=viewer, post=post)


async def _editable_comment(
    context: Context, viewer: models.User, target: _Target, action: str
) -> models.Comment | NotFoundError | ForbiddenError:
    comment = await writes.editable_comment(
        context.db.session, target.row_id, viewer=viewer, action=action
    )
    return _not_editable(comment, target) if isinstance(comment, writes.Refused) else comment


async def _update_comment(
    context: Context, viewer: models.User, target: _Target, content: str
) -> CommentResult:
    comment = await _editable_comment(context, viewer, target, "change")
    if isinstance(comment, Error):
        return comment
    await writes.update_comment(context.db.session, comment, content=content)
    return Comment.from_model(comment)


async def _delete_comment(context: Context, viewer: models.User, target: _Target) -> DeleteResult:
    comment = await _editable_comment(context, viewer, target, "delete")
    if isinstance(comment, Error):
        return comment
    await writes.delete_comment(context.db.session, comment)
    return Deleted(id=target.global_id)


async def _import_one(context: Context, viewer: models.User, item: CreatePostInput) -> PostResult:
    """One item in its own savepoint: a bad item is reported, the others are kept."""
    try:
        async with context.db.session.begin_nested():
            return await _create_post(context, viewer, item)
    except models.InvalidValueError as error:
        return validation_error(error)


async def _import_posts(
    context: Context, viewer: models.User, items: list[CreatePostInput]
) -> ImportPostsPayload:
    results = [await _import_one(context, viewer, item) for item in items]
    created = sum(isinstance(result, Post) for result in results)
    return ImportPostsPayload(results=results, created=created)


def _admin(context: Context) -> models.User | AuthenticationError | ForbiddenError:
    viewer = _active_writer(context)
    if viewer is None:
        return _sign_in()
    if not viewer.is_admin:
        return ForbiddenError(message=writes.FORBIDDEN_BULK_MESSAGE)
    return viewer


@strawberry.type
class ContentMutation:
    @strawberry.mutation(description="Write a post (a draft unless published: true).")
    async def create_post(self, info: BlogInfo, input: CreatePostInput) -> PostResult:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return _sign_in()
        return await transact(context, lambda: _create_post(context, viewer, input))

    @strawberry.mutation(description="Change a post; its author or an admin.")
    async def update_post(
        self, info: BlogInfo, id: strawberry.ID, input: UpdatePostInput
    ) -> PostResult:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return _sign_in()
        target = _target(id, "Post")
        return await transact(context, lambda: _update_post(context, viewer, target, input))

    @strawberry.mutation(description="Publish a post; its author or an admin.")
    async def publish_post(self, info: BlogInfo, id: strawberry.ID) -> PostResult:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return _sign_in()
        target = _target(id, "Post")
        return await transact(context, lambda: _publish_post(context, viewer, target))

    @strawberry.mutation(description="Delete a post with its comments; its author or an admin.")
    async def delete_post(self, info: BlogInfo, id: strawberry.ID) -> DeleteResult:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return _sign_in()
        target = _target(id, "Post")
        return await _run_unrefusable(context, lambda: _delete_post(context, viewer, target))

    @strawberry.mutation(description="Comment on a post the viewer may see.")
    async def add_comment(self, info: BlogInfo, input: AddCommentInput) -> CommentResult:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return _sign_in()
        target = _target(input.post_id, "Post")
        replied = None if input.parent_id is None else _target(input.parent_id, "Comment")
        return await transact(
            context, lambda: _add_comment(context, viewer, target, input.content, replied)
        )

    @strawberry.mutation(description="Change a comment's content; its author or an admin.")
    async def update_comment(
        self, info: BlogInfo, id: strawberry.ID, input: UpdateCommentInput
    ) -> CommentResult:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return _sign_in()
        target = _target(id, "Comment")
        return await transact(
            context, lambda: _update_comment(context, viewer, target, input.content)
        )

    @strawberry.mutation(description="Delete a comment and its replies; its author or an admin.")
    async def delete_comment(self, info: BlogInfo, id: strawberry.ID) -> DeleteResult:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return _sign_in()
        target = _target(id, "Comment")
        return await _run_unrefusable(context, lambda: _delete_comment(context, viewer, target))

    @strawberry.mutation(
        description="Deactivate the matching active users in one statement (admins only); "
        "`affected` counts the users deactivated."
    )
    async def deactivate_users(self, info: BlogInfo, where: UserWhere) -> BulkResult:
        return await _bulk(info.context, "User", where, writes.deactivate_users)

    @strawberry.mutation(
        description="Delete the matching posts, their comments and tag links, in one statement "
        "(admins only)."
    )
    async def delete_posts(self, info: BlogInfo, where: PostWhere) -> BulkResult:
        return await _bulk(info.context, "Post", where, writes.delete_posts)

    @strawberry.mutation(
        description="Create many posts; each in its own savepoint, so bad items are reported "
        "and good ones kept."
    )
    async def import_posts(
        self, info: BlogInfo, inputs: list[CreatePostInput]
    ) -> ImportPostsPayload:
        context = info.context
        viewer = _active_writer(context)
        if viewer is None:
            return ImportPostsPayload(results=[_sign_in() for _ in inputs], created=0)
        payload = await transact(context, lambda: _import_posts(context, viewer, inputs))
        if isinstance(payload, ValidationError):  # items report their own; never expected here
            return ImportPostsPayload(results=[payload for _ in inputs], created=0)
        return payload
