"""Writes behind the content mutations: posts and their tags, comments, the bulk operations.

Every function works inside the caller's transaction and never commits: the mutation runner owns
commit and rollback. A broken rule raises `models.InvalidValueError` naming the field at fault
(`tags` for tag names), so nothing is half-written when the runner rolls back.

Posts that become published and comments added are noted as events (`events.note`): the runner
sends them only once the mutation commits.
"""

import enum
import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Integer,
    Row,
    Update,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    null,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import Select

from gql_blog import audit, auth, events, models, slugs
from gql_blog.conflicts import conflict_field
from gql_blog.visibility import Viewer, visible_comments, visible_posts

MAX_TAGS_PER_POST = 10
# The messages of the content mutations' refusals (API.md), whichever path answers them.
SIGN_IN_MESSAGE = "Sign in with an active account to do this."
NO_SUCH_POST_MESSAGE = "No such post."
NO_SUCH_COMMENT_MESSAGE = "No such comment."
SLUG_TAKEN_MESSAGE = "That slug is taken already."
FORBIDDEN_POST_MESSAGE = "Only the author or an admin may change this post."
FORBIDDEN_BULK_MESSAGE = "Only admins may run bulk operations."
# How many rows one DELETE of a comment's replies names (bind parameters stay few).
_DELETE_CHUNK = 1000
# A title's numbered slugs (`slug-2`, …) that `_next_slug_number` looks at: up to 9 digits.
_SLUG_NUMBER_DIGITS = 9
_SLUG_NUMBER_LIMIT = 10**_SLUG_NUMBER_DIGITS
# How many candidates one statement asks about when looking for the first free slug.
_SLUG_CANDIDATES = 20
# How long a MariaDB writer waits for its turn at a base slug (`_slug_turn`): as long as a
# request may run by default (GQL_BLOG_REQUEST_TIMEOUT_SECONDS). Each turn lasts until the writer
# before commits, so a queue of same-title writers on a busy server took longer than 5 s, and a
# writer that then went ahead without its turn deadlocked (1213) beside the others.
_SLUG_TURN_SECONDS = 15


class RefusalKind(enum.Enum):
    """Why a write refused, named as the API's error type says it."""

    NOT_FOUND = "NotFoundError"
    FORBIDDEN = "ForbiddenError"
    CONFLICT = "ConflictError"


@dataclass(frozen=True, slots=True)
class Refused:
    """A write refused before it changed anything: why, its message, the input field at fault.

    Each execution path answers it as its error type; a NotFoundError also names the id asked.
    """

    kind: RefusalKind
    message: str
    field: str | None = None


def can_edit(user: Viewer, row: models.Post | models.Comment) -> bool:
    """Only the author or an admin may change or delete a post or comment."""
    return user.is_admin or row.user_id == user.id


async def find_post(session: AsyncSession, post_id: int, *, viewer: Viewer) -> models.Post | None:
    """The post, if it exists and the viewer may see it (another user's draft is not found).

    Share-locked until the transaction ends: a concurrent deletePost waits, so a comment never
    lands on a post deleted under it (that would be a foreign-key failure, not NotFoundError).
    """
    if post_id >= models.ID_LIMIT:
        return None
    stmt = (
        select(models.Post)
        .where(models.Post.id == post_id, visible_posts(viewer))
        .with_for_update(read=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def lock_post(session: AsyncSession, post_id: int, *, viewer: Viewer) -> models.Post | None:
    """`find_post`, its row locked until the transaction ends: edits of one post take turns."""
    if post_id >= models.ID_LIMIT:
        return None
    stmt = (
        select(models.Post)
        .where(models.Post.id == post_id, visible_posts(viewer))
        .with_for_update()
        # Read what the previous editor committed, not the copy the session may hold.
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def lock_comment(
    session: AsyncSession, comment_id: int, *, viewer: Viewer
) -> models.Comment | None:
    """The comment, if it exists and its post is visible to the viewer; locked, so of two
    concurrent deletes the second finds nothing (NotFoundError) instead of deleting twice."""
    if comment_id >= models.ID_LIMIT:
        return None
    stmt = (
        select(models.Comment)
        .where(models.Comment.id == comment_id, visible_comments(viewer))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def editable_post(
    session: AsyncSession, post_id: int | None, *, viewer: Viewer
) -> models.Post | Refused:
    """The post `post_id` names (None: no row), locked, if the viewer may change it."""
    post = None if post_id is None else await lock_post(session, post_id, viewer=viewer)
    if post is None:
        return Refused(RefusalKind.NOT_FOUND, NO_SUCH_POST_MESSAGE)
    if not can_edit(viewer, post):
        return Refused(RefusalKind.FORBIDDEN, FORBIDDEN_POST_MESSAGE)
    return post


async def editable_comment(
    session: AsyncSession, comment_id: int | None, *, viewer: Viewer, action: str
) -> models.Comment | Refused:
    """The comment `comment_id` names (None: no row), locked, if the viewer may `action` it."""
    comment = None
    if comment_id is not None:
        comment = await lock_comment(session, comment_id, viewer=viewer)
    if comment is None:
        return Refused(RefusalKind.NOT_FOUND, NO_SUCH_COMMENT_MESSAGE)
    if not can_edit(viewer, comment):
        message = f"Only the author or an admin may {action} this comment."
        return Refused(RefusalKind.FORBIDDEN, message)
    return comment


def normalize_tag_names(names: Iterable[str]) -> list[str]:
    """Trimmed, lower-cased, distinct tag names in the order given; at most ten."""
    found: dict[str, None] = {}
    for raw in names:
        name = raw.strip().lower()
        if not name:
            raise models.InvalidValueError("tags", "tag names must not be blank")
        if "\x00" in name:
            raise models.InvalidValueError("tags", "tag names must not contain NUL characters")
        if len(name) > models.TAG_NAME_MAX:
            raise models.InvalidValueError(
                "tags", f"tag names must be at most {models.TAG_NAME_MAX} characters"
            )
        found[name] = None
    if len(found) > MAX_TAGS_PER_POST:
        raise models.InvalidValueError(
            "tags", f"a post has at most {MAX_TAGS_PER_POST} tags (got {len(found)})"
        )
    return list(found)


def _insert_missing_tags(session: AsyncSession, names: Sequence[str]) -> Insert:
    """One INSERT of the names that skips any already taken, even by a concurrent writer."""
    rows = [{"name": name} for name in names]
    tags: Any = models.Tag.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(tags).values(rows).on_conflict_do_nothing(index_elements=["name"])
    if dialect == "sqlite":
        return sqlite.insert(tags).values(rows).on_conflict_do_nothing(index_elements=["name"])
    # MariaDB: a duplicate key is skipped (lengths and NULs are checked before).
    stmt: Insert = insert(tags).values(rows).prefix_with("IGNORE")
    return stmt


async def tags_named(session: AsyncSession, names: Sequence[str]) -> list[models.Tag]:
    """The tags with these (normalized) names, created on first use; in the order given.

    Tags that exist cost one read. Two transactions creating the same new tag both succeed with
    one row: the insert waits for the other's commit and skips the name, and a locking read sees
    the committed row (a plain read would not, inside MariaDB's repeatable-read snapshot). The
    first read does not lock: MariaDB's gap locks on absent names would deadlock the inserts.
    """
    if not names:
        return []
    # Sorted, so concurrent writers take the unique-key locks in one order (no deadlock).
    wanted = sorted(set(names))
    found = {tag.name: tag for tag in await session.scalars(_tags_select(wanted))}
    missing = [name for name in wanted if name not in found]
    if missing:
        await session.execute(_insert_missing_tags(session, missing))
        stmt = _tags_select(missing).with_for_update(read=True)
        found |= {tag.name: tag for tag in await session.scalars(stmt)}
    return [found[name] for name in names]


def _tags_select(names: Sequence[str]) -> Select[models.Tag]:
    return select(models.Tag).where(models.Tag.name.in_(names))


async def _link_tags(
    session: AsyncSession, post: models.Post, names: Sequence[str]
) -> list[models.Tag]:
    tags = await tags_named(session, names)
    if tags:
        await session.execute(
            insert(models.post_tags).values(
                [{"post_id": post.id, "tag_id": tag.id} for tag in tags]
            )
        )
    return tags


async def _tag_names_of(session: AsyncSession, post: models.Post) -> set[str]:
    stmt = (
        select(models.Tag.name)
        .join(models.post_tags, models.post_tags.c.tag_id == models.Tag.id)
        .where(models.post_tags.c.post_id == post.id)
    )
    return set(await session.scalars(stmt))


async def _replace_tags(session: AsyncSession, post: models.Post, names: Sequence[str]) -> bool:
    """Give the post exactly these tags; False when it had them already."""
    old = await _tag_names_of(session, post)
    if old == set(names):
        return False
    audit.note_tag_change(session, post.id, old, names)
    await session.execute(delete(models.post_tags).where(models.post_tags.c.post_id == post.id))
    await _link_tags(session, post, names)
    return True


def _note_published(session: AsyncSession, post: models.Post) -> None:
    events.note(session, events.Event(events.Kind.POST_PUBLISHED, post.id))


async def create_post(
    session: AsyncSession,
    *,
    author: Viewer,
    title: str,
    content: str,
    published: bool,
    tag_names: Iterable[str],
) -> "NewPost":
    """The new post and its tags; the model's validators check the values.

    Written with the statements it needs, not the session's unit of work: the post, its audit
    entry, its tags (see `tags_named`) and their links. The post is not added to the session.
    """
    names = normalize_tag_names(tag_names)
    now = models.utc_now()
    post = models.Post(
        title=title,
        content=content,
        published=published,
        user_id=author.id,
        created_at=now,
        updated_at=now,
        published_at=now if published else None,
    )
    post.id = await _insert_with_free_slug(session, post)
    await audit.write_created(session, models.Post, post.id, post)
    tags = await _link_tags(session, post, names)
    if published:
        _note_published(session, post)
    return NewPost(post, sorted(tags, key=lambda tag: tag.name))


@dataclass(frozen=True, slots=True)
class NewPost:
    """A post `create_post` wrote, and its tags by name (as `Post.tags` lists them)."""

    row: models.Post
    tags: list[models.Tag]


# What an INSERT of a new row writes (the id comes back from the database).
_POST_COLUMNS = (
    "title",
    "content",
    "published",
    "created_at",
    "updated_at",
    "published_at",
    "slug",
    "user_id",
)
_COMMENT_COLUMNS = ("content", "created_at", "user_id", "post_id", "parent_id")


async def _insert_with_free_slug(session: AsyncSession, post: models.Post) -> int:
    """Insert the post with the slug its title asks for (`slugs.candidate`); its id.

    The title's slug when it is free, else one past the highest number its title's slugs have
    taken (`_next_slug_number`: one read, whatever that number). A concurrent writer may take
    the chosen slug before this INSERT: it then inserts nothing (ON CONFLICT DO NOTHING,
    MariaDB's IGNORE; values are checked before) and the next number is tried, so the
    transaction never fails on it.
    """
    base = slugs.slugify(post.title)
    if session.get_bind().dialect.name not in ("postgresql", "sqlite"):
        # MariaDB: writers of the same base slug take their turn (see `_slug_turn`).
        async with _slug_turn(session, base):
            return await _insert_with_next_number(session, post, base)
    return await _insert_with_next_number(session, post, base)


@asynccontextmanager
async def _slug_turn(session: AsyncSession, base: str) -> AsyncIterator[None]:
    """MariaDB: hold a named lock on `base` while choosing and inserting its slug.

    Without it, three writers of one title deadlock (1213): two that skipped a slug the first
    committed hold shared locks on it and its gap, and each then waits for the other's insert of
    the next candidate. One writer at a time per base slug never leaves two waiting on one key.
    The lock is the connection's, not the transaction's: released as soon as the insert is done
    (the row's own lock keeps the slug until the commit). A turn not granted within the wait
    (`_SLUG_TURN_SECONDS`) goes ahead without it, as before.

    When the insert failed with its connection (lost in a database restart) or its transaction,
    the lock goes with the connection instead: the error that reaches the client is the
    insert's (an outage answers 503), not the release's.
    """
    name = f"gql_blog.slug.{hashlib.sha256(base.encode()).hexdigest()[:40]}"
    connection = await session.connection()
    granted = await connection.scalar(
        text("SELECT GET_LOCK(:name, :seconds)"), {"name": name, "seconds": _SLUG_TURN_SECONDS}
    )
    try:
        yield
    except BaseException:
        if granted == 1:
            await _release_after_failure(connection, name)
        raise
    if granted == 1:
        await connection.execute(_RELEASE_LOCK, {"name": name})


_RELEASE_LOCK = text("DO RELEASE_LOCK(:name)")


async def _release_after_failure(connection: AsyncConnection, name: str) -> None:
    """Release the turn on a connection whose insert failed; where it cannot run any more,
    close the connection (the server then releases its locks) rather than pool it."""
    try:
        await connection.execute(_RELEASE_LOCK, {"name": name})
    except SQLAlchemyError:
        await connection.invalidate()


async def _insert_with_next_number(session: AsyncSession, post: models.Post, base: str) -> int:
    number = await _next_slug_number(session, base)
    while number < _SLUG_NUMBER_LIMIT:
        post.slug = slugs.candidate(base, number)
        new_id = await _insert_unless_slug_taken(session, post)
        if new_id is not None:
            return new_id
        number = max(number + 1, 2)
    # Only slugs set by hand reach the limit (`hello-999999999`): look for the first free one.
    return await _insert_with_first_free(session, post, base)


async def _next_slug_number(session: AsyncSession, base: str) -> int:
    """1 (the base itself) when no post has `base`, else one past the highest N of the taken
    `candidate(base, N)`: one statement, a row whatever N is.

    Each head that precedes `-N` (one for titles under 70 characters, see
    `slugs.numbered_head`) is one range of the unique slug index whose numbered slugs are ranked,
    the longest numbers first, then the highest: the database reads every slug of the range
    (about 3 µs each on PostgreSQL), but one row comes back. Numbers of more than
    `_SLUG_NUMBER_DIGITS` digits are not looked at: no title reaches them, only a slug set by hand.
    """
    slug = models.Post.slug
    heads: dict[str, list[int]] = {}
    for digits in range(1, _SLUG_NUMBER_DIGITS + 1):
        heads.setdefault(slugs.numbered_head(base, digits), []).append(digits)
    highest = [
        select(slug)
        .where(
            # A range of the index (slugs compare by code point on every database; a head is
            # `[a-z0-9-]` only, so neither it nor the pattern needs escaping).
            slug > f"{head}-",
            slug < f"{head}.",
            slug.regexp_match(f"^{head}-[1-9]({'|'.join(f'[0-9]{{{n - 1}}}' for n in counts)})$"),
        )
        .order_by(func.length(slug).desc(), slug.desc())
        .limit(1)
        .scalar_subquery()
        for head, counts in heads.items()
    ]
    row = (await session.execute(select(exists().where(slug == base), *highest))).one()
    if not row[0]:
        return 1
    numbers = [slugs.number_of(base, taken) for taken in row[1:] if taken is not None]
    return max([number for number in numbers if number is not None], default=1) + 1


async def _insert_with_first_free(session: AsyncSession, post: models.Post, base: str) -> int:
    candidates = slugs.candidates(base)
    while True:
        batch = [next(candidates) for _ in range(_SLUG_CANDIDATES)]
        stmt = select(models.Post.slug).where(models.Post.slug.in_(batch))
        taken = set(await session.scalars(stmt))
        for candidate in batch:
            if candidate in taken:
                continue
            post.slug = candidate
            new_id = await _insert_unless_slug_taken(session, post)
            if new_id is not None:
                return new_id


async def _insert_unless_slug_taken(session: AsyncSession, post: models.Post) -> int | None:
    table: Any = models.Post.__table__
    values = {name: getattr(post, name) for name in _POST_COLUMNS}
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert_of = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert_of(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=["slug"])
            .returning(table.c.id)
        )
        new_id: int | None = (await session.execute(stmt)).scalar()
        return new_id
    result = await session.execute(insert(table).values(values).prefix_with("IGNORE"))
    assert isinstance(result, CursorResult)
    if result.rowcount == 0:
        return None
    key = result.inserted_primary_key
    assert key is not None
    inserted: int = key[0]
    return inserted


async def slug_taken(session: AsyncSession, slug: str, *, by_other_than: int) -> bool:
    """Whether another post has this slug (slugs are compared exactly)."""
    stmt = select(models.Post.id).where(models.Post.slug == slug, models.Post.id != by_other_than)
    return (await session.scalars(stmt)).first() is not None


def check_slug(slug: str) -> str:
    """A slug set explicitly must be valid (`slugs.is_valid`), else the field `slug` is refused."""
    if not slugs.is_valid(slug):
        raise models.InvalidValueError(
            "slug",
            f"slug must be 1 to {slugs.MAX_LENGTH} lower-case letters and digits in words "
            "joined by single '-'",
        )
    return slug


async def _insert(
    session: AsyncSession, model: type[models.Base], row: models.Base, names: Sequence[str]
) -> int:
    """One INSERT of the row's `names`; its new id."""
    table: Any = model.__table__
    values = {name: getattr(row, name) for name in names}
    result = await session.execute(insert(table).values(values))
    # An INSERT answers a CursorResult with the new key (typed as any Result, key optional).
    assert isinstance(result, CursorResult)
    key = result.inserted_primary_key
    assert key is not None
    new_id: int = key[0]
    return new_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PostChanges:
    """What an edit of a post changes; None leaves a field as it is."""

    title: str | None = None
    content: str | None = None
    published: bool | None = None
    tag_names: Sequence[str] | None = None
    slug: str | None = None


async def update_post(
    session: AsyncSession, post: models.Post, changes: PostChanges
) -> models.Post:
    """Change what is given; updated_at moves only on a change.

    A post becoming published gets the time as `published_at`; back to a draft, it loses it.
    A new `slug` must be valid (see `check_slug`) and free (see `slug_taken`: the caller asks).
    """
    tag_names = changes.tag_names
    names = None if tag_names is None else normalize_tag_names(tag_names)
    becomes_published = changes.published is True and not post.published
    if changes.title is not None:
        post.title = changes.title
    if changes.content is not None:
        post.content = changes.content
    if changes.slug is not None:
        post.slug = check_slug(changes.slug)
    if changes.published is not None:
        _set_published(post, changes.published)
    # The tag statements must not flush the column changes on their own: the one flush below
    # writes them with the tags, as one audit UPDATE row for the post.
    with session.no_autoflush:
        if names is not None and await _replace_tags(session, post, names):
            # Column changes move updated_at by themselves (onupdate); a tag change must say so.
            post.updated_at = models.utc_now()
    await session.flush()
    if becomes_published:
        _note_published(session, post)
    return post


async def edit_post(
    session: AsyncSession, post: models.Post, changes: PostChanges
) -> models.Post | Refused:
    """`update_post`, its new slug refused (CONFLICT) when another post has it: asked first, or
    taken by a concurrent writer after the check (the unique index says so)."""
    slug = changes.slug
    if slug is not None and await slug_taken(session, check_slug(slug), by_other_than=post.id):
        return _slug_taken()
    try:
        return await update_post(session, post, changes)
    except IntegrityError as error:
        if conflict_field(error, {"slug": "slug"}) is None:
            raise
        return _slug_taken()


def _slug_taken() -> Refused:
    return Refused(RefusalKind.CONFLICT, SLUG_TAKEN_MESSAGE, field="slug")


def _set_published(post: models.Post, published: bool) -> None:
    """Publishing sets the publishing time; back to a draft, it is cleared; else it stays."""
    if published and not post.published:
        post.published_at = models.utc_now()
    elif not published and post.published:
        post.published_at = None
    post.published = published


async def publish_post(session: AsyncSession, post: models.Post) -> models.Post:
    return await update_post(session, post, PostChanges(published=True))


async def delete_post(session: AsyncSession, post: models.Post) -> None:
    """Delete the post; the database drops its comments and tag links (ON DELETE CASCADE)."""
    await session.delete(post)
    await session.flush()


async def find_parent(
    session: AsyncSession, comment_id: int, *, post: models.Post
) -> models.Comment | None:
    """The comment a reply answers, if it is one of `post`'s (visible with the post).

    Share-locked until the transaction ends, as `find_post`: a concurrent deleteComment waits.
    """
    if comment_id >= models.ID_LIMIT:
        return None
    stmt = (
        select(models.Comment)
        .where(models.Comment.id == comment_id, models.Comment.post_id == post.id)
        .with_for_update(read=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def add_comment(
    session: AsyncSession,
    *,
    post: models.Post,
    author: Viewer,
    content: str,
    parent: models.Comment | None = None,
) -> models.Comment:
    """The new comment (the model's validator checks its content), a reply to `parent` when
    given, with its audit entry: two INSERTs, not the session's unit of work. The comment is
    not added to the session."""
    comment = new_comment(
        post_id=post.id,
        author=author,
        content=content,
        parent_id=None if parent is None else parent.id,
    )
    comment.id = await _insert(session, models.Comment, comment, _COMMENT_COLUMNS)
    await audit.write_created(session, models.Comment, comment.id, comment)
    events.note(session, events.Event(events.Kind.COMMENT_ADDED, post.id, comment.id))
    return comment


def new_comment(
    *, post_id: int, author: Viewer, content: str, parent_id: int | None = None
) -> models.Comment:
    """The comment `add_comment` inserts, not yet written (the model's validator has checked
    its content: InvalidValueError)."""
    return models.Comment(
        content=content,
        post_id=post_id,
        user_id=author.id,
        created_at=models.utc_now(),
        parent_id=parent_id,
    )


def comment_statement(viewer: Any, *, reply: bool, outbox: bool) -> Select[Any]:
    """`add_comment` as ONE statement, for PostgreSQL (its data-modifying CTEs).

    The post (`:post_id`, visible to `viewer`, a `ViewerParameter`) and, for a reply, the
    parent (`:parent_id`, a comment of that post) are share-locked as `find_post` and
    `find_parent` lock them; the comment is inserted from them, so nothing is written when
    either is missing; its audit entry and its outbox row are inserted from the new row. It
    answers the new comment's row with the post's (`post.<column>`) and the parent's
    (`parent.<column>`) beside it, or no row. One statement is one transaction: no BEGIN, no
    COMMIT, and nothing half-written. The values are those `new_comment`, `audit.created_rows`
    and (with `outbox`, for a bus that writes one: `EventBus.outbox`) `events.outbox_row`
    give (`:content`, `:user_id`, `:created_at`; `:actor_id`, `:changes`, `:audited_at`;
    `:kind`, `:outbox_at`).
    """
    comments: Any = models.Comment.__table__
    posts: Any = models.Post.__table__
    audit_log: Any = models.AuditLog.__table__
    outbox_table: Any = models.OutboxEvent.__table__
    post = (
        select(posts)
        .where(posts.c.id == bindparam("post_id", type_=Integer), visible_posts(viewer))
        .with_for_update(read=True)
        .cte("post")
    )
    source = select(post.c.id.label("post_id"))
    parent_id: Any = null()
    parent = None
    if reply:
        parent = (
            select(comments)
            .where(
                comments.c.id == bindparam("parent_id", type_=Integer),
                comments.c.post_id == bindparam("post_id", type_=Integer),
            )
            .with_for_update(read=True)
            .cte("parent")
        )
        source = source.join_from(post, parent, true())
        parent_id = parent.c.id
    source = source.add_columns(
        bindparam("content", type_=comments.c.content.type),
        bindparam("user_id", type_=Integer),
        bindparam("created_at", type_=comments.c.created_at.type),
        parent_id,
    )
    added = (
        insert(comments)
        .from_select(["post_id", "content", "user_id", "created_at", "parent_id"], source)
        .returning(*comments.c)
        .cte("added")
    )
    audited = insert(audit_log).from_select(
        ["entity_type", "entity_id", "action", "actor_id", "changes", "created_at"],
        select(
            bindparam("entity_type", type_=audit_log.c.entity_type.type),
            added.c.id,
            bindparam("action", type_=audit_log.c.action.type),
            bindparam("actor_id", type_=Integer),
            bindparam("changes", type_=audit_log.c.changes.type),
            bindparam("audited_at", type_=audit_log.c.created_at.type),
        ),
    )
    # The rows the payload may show beside the comment, as they were locked: read again, a post
    # deleted since (committed after this statement) would be missing.
    held = [column.label(f"post.{column.name}") for column in post.c]
    joined = added.join(post, true())
    if parent is not None:
        held += [column.label(f"parent.{column.name}") for column in parent.c]
        joined = joined.join(parent, true())
    written = select(added, *held).select_from(joined).add_cte(audited.cte("audited"))
    if not outbox:
        return written
    noted = insert(outbox_table).from_select(
        ["kind", "post_id", "comment_id", "created_at"],
        select(
            bindparam("kind", type_=outbox_table.c.kind.type),
            added.c.post_id,
            added.c.id,
            bindparam("outbox_at", type_=outbox_table.c.created_at.type),
        ),
    )
    return written.add_cte(noted.cte("noted"))


def comment_targets(viewer: Any) -> Select[Any]:
    """Which of `comment_statement`'s targets `viewer` (a `ViewerParameter`) finds: one row of
    `post_id` (`:post_id`, if visible) and `parent_id` (`:parent_id`, if a comment of it)."""
    post = (
        select(models.Post.id)
        .where(models.Post.id == bindparam("post_id", type_=Integer), visible_posts(viewer))
        .scalar_subquery()
    )
    parent = (
        select(models.Comment.id)
        .where(
            models.Comment.id == bindparam("parent_id", type_=Integer),
            models.Comment.post_id == bindparam("post_id", type_=Integer),
        )
        .scalar_subquery()
    )
    return select(post.label("post_id"), parent.label("parent_id"))


async def update_comment(
    session: AsyncSession, comment: models.Comment, *, content: str
) -> models.Comment:
    """New content (the model's validator checks it) and the time of the edit; the flush logs
    the change as an UPDATE."""
    comment.content = content
    comment.edited_at = models.utc_now()
    await session.flush()
    return comment


async def delete_comment(session: AsyncSession, comment: models.Comment) -> None:
    """Delete the comment and its replies at every depth; one audit entry, the comment's.

    The replies are found by one recursive query and deleted by one DELETE: the database's
    own cascade would not do (MariaDB stops cascade chains at 15 levels).
    """
    replies = select(models.Comment.id).where(models.Comment.parent_id == comment.id)
    tree = replies.cte("replies", recursive=True)
    below: Any = models.Comment
    tree = tree.union_all(select(below.id).where(below.parent_id == tree.c.id))
    doomed = list(await session.scalars(select(tree.c.id)))
    for chunk in range(0, len(doomed), _DELETE_CHUNK):
        stmt = delete(models.Comment).where(
            models.Comment.id.in_(doomed[chunk : chunk + _DELETE_CHUNK])
        )
        await session.execute(stmt.execution_options(synchronize_session=False))
    await session.delete(comment)
    await session.flush()


async def deactivate_users(session: AsyncSession, condition: ColumnElement[bool]) -> int:
    """Deactivate the matching active users in one UPDATE; how many were deactivated.

    The bulk statement bypasses the audit listener: it writes one audit row for each user the
    UPDATE changed (see `_bulk_change`), so a user committed meanwhile is logged or untouched.
    """
    matched = and_(condition, models.User.is_active.is_(True))
    stmt = update(models.User).values(is_active=False)
    changed = await _bulk_change(session, stmt, matched, [models.User.id])
    changes = audit.differences(models.User, {"is_active": (True, False)})
    await _write_audit(session, models.User, dict.fromkeys((row.id for row in changed), changes))
    return len(changed)


async def delete_posts(session: AsyncSession, condition: ColumnElement[bool]) -> int:
    """Delete the matching posts in one DELETE (comments and tag links cascade); how many.

    As for `deactivate_users`, each post the DELETE removed gets its audit row, with the values
    it had when deleted; their comments go unlogged, as with `deletePost`.
    """
    columns = [getattr(models.Post, name) for name in audit.AUDITED[models.Post].fields]
    changed = await _bulk_change(
        session, delete(models.Post), condition, [models.Post.id, *columns]
    )
    doomed = {row.id: audit.snapshot(models.Post, row._asdict()) for row in changed}
    await _write_audit(session, models.Post, doomed)
    return len(changed)


async def _bulk_change(
    session: AsyncSession,
    stmt: Update | Delete,
    condition: ColumnElement[bool],
    columns: Sequence[InstrumentedAttribute[Any]],
) -> Sequence[Row[Any]]:
    """Run one bulk UPDATE/DELETE on the rows `condition` matches; their `columns` (id first).

    The rows it answers are exactly the rows it changed, on every database: the statement's own
    RETURNING where the dialect has it (PostgreSQL, SQLite >= 3.35, MariaDB's DELETE); otherwise
    (MariaDB's UPDATE) a locking read picks the rows and the statement names their ids, so a row
    committed between the two is neither changed nor missing from the answer. Locking first and
    then running the statement with the same condition would not do: under PostgreSQL's READ
    COMMITTED the statement also sees rows committed after the lock, and would change them
    unlogged.
    """
    dialect = session.get_bind().dialect
    has_returning = (
        dialect.update_returning if isinstance(stmt, Update) else dialect.delete_returning
    )
    # The session's rows are not kept in step with the change: the mutation answers a count.
    stmt = stmt.execution_options(synchronize_session=False)
    if has_returning:
        return (await session.execute(stmt.where(condition).returning(*columns))).all()
    locking = select(*columns).where(condition).with_for_update()
    locked = (await session.execute(locking)).all()
    if locked:
        await session.execute(stmt.where(columns[0].in_([row[0] for row in locked])))
    return locked


async def _write_audit(
    session: AsyncSession, model: type[models.Base], changes_by_id: dict[int, dict[str, Any]]
) -> None:
    action = models.AuditAction.UPDATE if model is models.User else models.AuditAction.DELETE
    rows = audit.audit_rows(model, action, changes_by_id, actor=audit.actor_id(session))
    await audit.write_audit_rows(session, rows)


# --- accounts (register, updateViewer) ---------------------------------------------------------

# The profile fields updateViewer may change, besides the password.
PROFILE_FIELDS = ("email", "first_name", "last_name", "age", "bio")
# Columns that cannot be null: a null input leaves them as they are.
REQUIRED_PROFILE_FIELDS = {"email"}
# Which unique index a violation of `users` names → the input field it is about.
UNIQUE_USER_FIELDS = {"username": "username", "email": "email"}


def taken_message(field: str) -> str:
    """A ConflictError's message for a taken username or e-mail address."""
    return f"That {field} is taken already."


def profile_values(changes: dict[str, Any]) -> dict[str, Any]:
    """The values updateViewer's `changes` (omitted fields absent) set, in `PROFILE_FIELDS`
    order, as the model's validators leave them (`InvalidValueError` at the first refused);
    a null required field is no change."""
    checked = models.User()
    values = {}
    for name in PROFILE_FIELDS:
        if name not in changes or (changes[name] is None and name in REQUIRED_PROFILE_FIELDS):
            continue
        setattr(checked, name, changes[name])
        values[name] = getattr(checked, name)
    return values


async def update_user(
    session: AsyncSession, old: Mapping[str, Any], values: dict[str, Any]
) -> dict[str, Any] | Refused:
    """Set `values` (column → value) on the user whose columns are `old`: one UPDATE of the
    changed columns and their audit entry, as the flush of the changed row writes them (nothing
    when nothing changed); the new columns, or CONFLICT when the e-mail address is taken."""
    fields = audit.AUDITED[models.User].fields
    pairs = {
        name: (old.get(name), values[name])
        for name in fields
        if name in values and old.get(name) != values[name]
    }
    if not pairs:
        return dict(old)
    stmt = update(models.User).where(models.User.id == old["id"])
    stmt = stmt.values({name: new for name, (_, new) in pairs.items()})
    try:
        await session.execute(stmt.execution_options(synchronize_session=False))
    except IntegrityError as error:
        field = conflict_field(error, UNIQUE_USER_FIELDS)
        if field is None:
            raise
        return Refused(RefusalKind.CONFLICT, taken_message(field), field=field)
    changes = {old["id"]: audit.differences(models.User, pairs)}
    await _write_audit(session, models.User, changes)
    new = dict(old) | {name: new for name, (_, new) in pairs.items() if name != "password_hash"}
    named = models.User(first_name=new["first_name"], last_name=new["last_name"])
    return new | {"full_name": named.full_name}


# What register's INSERT writes of a new account (the id comes back from the database).
_USER_COLUMNS = (
    "username",
    "username_key",
    "email",
    "password_hash",
    "first_name",
    "last_name",
    "bio",
    "age",
    "is_active",
    "is_admin",
    "created_at",
)


# What a new account is made of, but its password: in the order the validators check them.
_ACCOUNT_FIELDS = ("username", "email", "first_name", "last_name", "age", "bio")


async def new_account(values: Mapping[str, Any]) -> models.User:
    """The account register adds (not yet written): its `values` checked by the model's
    validators, then its password's rules (`InvalidValueError` at the first refused), the
    password hashed off the event loop; outside any transaction, as argon2 takes a while."""
    user = models.User(**{name: values[name] for name in _ACCOUNT_FIELDS})
    user.password_hash = await auth.new_password_hash(values["password"])
    return user


async def create_user(session: AsyncSession, user: models.User) -> dict[str, Any] | Refused:
    """Insert the new account `user` (its values checked by the model's validators, its
    password hashed) and its audit entry, the new user as the actor: two INSERTs, not the
    session's unit of work. Its columns (`auth.IDENTITY_COLUMNS`), or CONFLICT when its username
    or e-mail address is taken (the unique indexes say so, even when two requests race)."""
    user.is_active, user.is_admin, user.created_at = True, False, models.utc_now()
    try:
        user.id = await _insert(session, models.User, user, _USER_COLUMNS)
    except IntegrityError as error:
        field = conflict_field(error, UNIQUE_USER_FIELDS)
        if field is None:
            raise
        return Refused(RefusalKind.CONFLICT, taken_message(field), field=field)
    audit.act_as(session, user.id)  # the new user signs itself up
    await audit.write_created(session, models.User, user.id, user)
    return {name: getattr(user, name) for name in auth.IDENTITY_COLUMNS}
