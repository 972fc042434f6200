"""The models on every dialect: validators, full_name, cascades, constraints, timestamps."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import IntegrityError, InvalidRequestError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import selectinload

from gql_blog import models
from tests.factories import make_comment, make_post, make_tag, make_user

BLANKS = pytest.mark.parametrize("blank", ["", " ", "\t\n "], ids=["empty", "space", "whitespace"])


def assert_refused(field: str, build: Callable[[], object]) -> None:
    """Building the row raises InvalidValueError naming `field`."""
    with pytest.raises(models.InvalidValueError) as caught:
        build()
    assert caught.value.field == field


async def stored(db: AsyncSession, column: Any, row_id: int) -> Any:
    """A mapped attribute's value as the database has it (not the session's copy of the row)."""
    return await db.scalar(select(column).where(column.class_.id == row_id))


# Validators


@pytest.mark.parametrize(
    "email",
    ["alice", "@example.test", "alice@", "alice@example@test", "a b", "   @   "],
    ids=["no-at", "nothing-before", "nothing-after", "two-ats", "no-at-with-space", "blank-sides"],
)
def test_email_without_one_at_between_text_is_refused(email: str) -> None:
    assert_refused("email", lambda: models.User(email=email))


def test_email_longer_than_254_characters_is_refused() -> None:
    domain = "@example.test"
    assert_refused(
        "email", lambda: models.User(email="a" * (models.EMAIL_MAX + 1 - len(domain)) + domain)
    )


async def test_email_is_stored_trimmed_and_lower_cased(db: AsyncSession) -> None:
    user = await make_user(db, email=" Ada.Lovelace@Example.TEST ")
    assert await stored(db, models.User.email, user.id) == "ada.lovelace@example.test"


@pytest.mark.parametrize(
    "age", [-1, 151, -200, 10_000], ids=["below-0", "above-150", "far-below", "far-above"]
)
def test_age_outside_0_to_150_is_refused(age: int) -> None:
    assert_refused("age", lambda: models.User(age=age))


@pytest.mark.parametrize("age", [0, 150, None], ids=["smallest", "largest", "unknown"])
async def test_age_inside_0_to_150_is_stored(db: AsyncSession, age: int | None) -> None:
    user = await make_user(db, age=age)
    assert await stored(db, models.User.age, user.id) == age


REQUIRED_TEXT = pytest.mark.parametrize(
    ("field", "build"),
    [
        ("username", lambda value: models.User(username=value)),
        ("title", lambda value: models.Post(title=value)),
        ("content", lambda value: models.Post(content=value)),
        ("content", lambda value: models.Comment(content=value)),
        ("name", lambda value: models.Tag(name=value)),
    ],
    ids=["username", "post-title", "post-content", "comment-content", "tag-name"],
)


@REQUIRED_TEXT
@BLANKS
def test_blank_required_text_is_refused(
    field: str, build: Callable[[str], object], blank: str
) -> None:
    assert_refused(field, lambda: build(blank))


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * (models.USERNAME_MAX + 1), "ada lovelace", "ada-lovelace", "adà"],
    ids=["too-short", "too-long", "space", "dash", "non-ascii"],
)
def test_username_outside_3_to_32_word_characters_is_refused(username: str) -> None:
    assert_refused("username", lambda: models.User(username=username))


@pytest.mark.parametrize(
    "username",
    ["ada", "Ada_Lovelace_1815", "a" * models.USERNAME_MAX],
    ids=["shortest", "mixed", "longest"],
)
async def test_username_is_stored_as_typed(db: AsyncSession, username: str) -> None:
    user = await make_user(db, username=username)
    assert await stored(db, models.User.username, user.id) == username


TOO_LONG = pytest.mark.parametrize(
    ("field", "build", "maximum"),
    [
        ("title", lambda value: models.Post(title=value), models.TITLE_MAX),
        ("content", lambda value: models.Post(content=value), models.POST_CONTENT_MAX),
        ("content", lambda value: models.Comment(content=value), models.COMMENT_CONTENT_MAX),
        ("name", lambda value: models.Tag(name=value), models.TAG_NAME_MAX),
        ("first_name", lambda value: models.User(first_name=value), models.NAME_MAX),
        ("last_name", lambda value: models.User(last_name=value), models.NAME_MAX),
        ("bio", lambda value: models.User(bio=value), models.BIO_MAX),
    ],
    ids=["title", "post-content", "comment-content", "tag-name", "first-name", "last-name", "bio"],
)


@TOO_LONG
def test_text_longer_than_its_maximum_is_refused(
    field: str, build: Callable[[str], object], maximum: int
) -> None:
    assert_refused(field, lambda: build("x" * (maximum + 1)))


@TOO_LONG
def test_text_of_exactly_its_maximum_is_accepted(
    field: str, build: Callable[[str], object], maximum: int
) -> None:
    assert getattr(build("x" * maximum), field) == "x" * maximum


@pytest.mark.parametrize(
    ("field", "build"),
    [
        ("username", lambda value: models.User(username=value)),
        ("email", lambda value: models.User(email=f"{value}@example.test")),
        ("first_name", lambda value: models.User(first_name=value)),
        ("bio", lambda value: models.User(bio=value)),
        ("title", lambda value: models.Post(title=value)),
        ("content", lambda value: models.Post(content=value)),
        ("content", lambda value: models.Comment(content=value)),
        ("name", lambda value: models.Tag(name=value)),
    ],
    ids=["username", "email", "first-name", "bio", "title", "post-content", "comment", "tag"],
)
def test_text_with_nul_character_is_refused(field: str, build: Callable[[str], object]) -> None:
    assert_refused(field, lambda: build("abc\x00def"))


@pytest.mark.parametrize(
    ("first_name", "last_name"), [("", " "), ("\t", None)], ids=["empty-and-space", "tab-and-none"]
)
async def test_blank_first_and_last_name_are_stored_as_null(
    db: AsyncSession, first_name: str, last_name: str | None
) -> None:
    user = await make_user(db, first_name=first_name, last_name=last_name)
    assert await stored(db, models.User.first_name, user.id) is None
    assert await stored(db, models.User.last_name, user.id) is None


async def test_tag_name_is_stored_trimmed_and_lower_cased(db: AsyncSession) -> None:
    tag = await make_tag(db, "  GraphQL ")
    assert await stored(db, models.Tag.name, tag.id) == "graphql"


# The full_name hybrid: first and last name joined by one space, either alone, or NULL.

NAME_CASES = [
    ("Ada", "Lovelace", "Ada Lovelace"),
    ("Ada", None, "Ada"),
    (None, "Lovelace", "Lovelace"),
    (None, None, None),
]
NAMES = pytest.mark.parametrize(
    ("first_name", "last_name", "full_name"),
    NAME_CASES,
    ids=["both", "first-only", "last-only", "neither"],
)


async def make_name_variants(db: AsyncSession) -> dict[str | None, int]:
    """One user for each combination of names, keyed by the full name the contract gives them."""
    users = {}
    for first_name, last_name, full_name in NAME_CASES:
        user = await make_user(db, first_name=first_name, last_name=last_name)
        users[full_name] = user.id
    return users


@NAMES
def test_full_name_in_python(
    first_name: str | None, last_name: str | None, full_name: str | None
) -> None:
    assert models.User(first_name=first_name, last_name=last_name).full_name == full_name


@NAMES
async def test_full_name_selected_in_sql(
    db: AsyncSession, first_name: str | None, last_name: str | None, full_name: str | None
) -> None:
    user = await make_user(db, first_name=first_name, last_name=last_name)
    assert await stored(db, models.User.full_name, user.id) == full_name


@NAMES
async def test_full_name_in_where_finds_exactly_its_user(
    db: AsyncSession, first_name: str | None, last_name: str | None, full_name: str | None
) -> None:
    users = await make_name_variants(db)
    condition = (
        models.User.full_name.is_(None) if full_name is None else models.User.full_name == full_name
    )
    found = await db.scalars(
        select(models.User.id).where(condition, models.User.id.in_(users.values()))
    )
    assert found.all() == [users[full_name]]


async def test_order_by_full_name_sorts_like_python(db: AsyncSession) -> None:
    users = await make_name_variants(db)
    await make_user(db, first_name="ada", last_name="byron")
    await make_user(db, first_name="Charles", last_name="Babbage")
    await make_user(db, first_name="Ada")
    everyone = (
        await db.scalars(
            select(models.User).order_by(
                models.User.full_name.is_(None), models.User.full_name, models.User.id
            )
        )
    ).all()
    expected = sorted(
        everyone, key=lambda user: (user.full_name is None, user.full_name or "", user.id)
    )
    assert [user.id for user in everyone] == [user.id for user in expected]
    assert everyone[-1].id == users[None]


# Cascades: deleting a row removes what belongs to it, through the ORM and through Core alike.

PostDeleter = Callable[[AsyncSession, models.Post], Awaitable[None]]


async def delete_post_with_orm(db: AsyncSession, post: models.Post) -> None:
    await db.delete(post)
    await db.flush()


async def delete_post_with_core(db: AsyncSession, post: models.Post) -> None:
    await db.execute(delete(models.Post).where(models.Post.id == post.id))


DELETE_POST = pytest.mark.parametrize(
    "delete_post", [delete_post_with_orm, delete_post_with_core], ids=["orm", "core"]
)


@DELETE_POST
async def test_deleting_post_removes_its_comments(
    db: AsyncSession, delete_post: PostDeleter
) -> None:
    author = await make_user(db)
    post, other_post = await make_post(db, author=author), await make_post(db, author=author)
    await make_comment(db, post=post, author=author)
    await make_comment(db, post=post, author=author)
    kept = await make_comment(db, post=other_post, author=author)
    await delete_post(db, post)
    remaining = await db.scalars(select(models.Comment.id))
    assert remaining.all() == [kept.id]


@DELETE_POST
async def test_deleting_post_removes_its_tag_links_but_not_the_tags(
    db: AsyncSession, delete_post: PostDeleter
) -> None:
    author = await make_user(db)
    python, sql = await make_tag(db), await make_tag(db)
    post = await make_post(db, author=author, tags=[python, sql])
    other_post = await make_post(db, author=author, tags=[python])
    await delete_post(db, post)
    links = await db.execute(select(models.post_tags.c.post_id, models.post_tags.c.tag_id))
    assert [tuple(link) for link in links] == [(other_post.id, python.id)]
    tags = await db.scalars(select(models.Tag.id).order_by(models.Tag.id))
    assert tags.all() == [python.id, sql.id]


async def test_deleting_user_removes_their_posts_and_comments(db: AsyncSession) -> None:
    author, reader = await make_user(db), await make_user(db)
    post = await make_post(db, author=author)
    await make_comment(db, post=post, author=reader)
    reader_post = await make_post(db, author=reader)
    await make_comment(db, post=reader_post, author=author)
    await db.execute(delete(models.User).where(models.User.id == author.id))
    assert (await db.scalars(select(models.Post.id))).all() == [reader_post.id]
    assert (await db.scalars(select(models.Comment.id))).all() == []


async def test_deleting_tag_removes_its_links_but_not_the_posts(db: AsyncSession) -> None:
    author = await make_user(db)
    tag = await make_tag(db)
    post = await make_post(db, author=author, tags=[tag])
    await db.delete(tag)
    await db.flush()
    assert (await db.scalars(select(models.post_tags.c.post_id))).all() == []
    assert (await db.scalars(select(models.Post.id))).all() == [post.id]


async def test_post_of_missing_user_is_refused(db: AsyncSession) -> None:
    user = await make_user(db)
    db.add(models.Post(title="Orphan", content="No author.", user_id=user.id + 1))
    with pytest.raises(IntegrityError):
        await db.flush()


# Unique constraints


async def test_second_user_with_taken_username_is_refused(db: AsyncSession) -> None:
    await make_user(db, username="ada")
    with pytest.raises(IntegrityError):
        await make_user(db, username="ada")


async def test_second_user_with_taken_email_in_other_case_is_refused(db: AsyncSession) -> None:
    await make_user(db, email="ada@example.test")
    with pytest.raises(IntegrityError):
        await make_user(db, email="ADA@Example.test")


async def test_second_tag_with_the_same_normalised_name_is_refused(db: AsyncSession) -> None:
    await make_tag(db, "python")
    with pytest.raises(IntegrityError):
        await make_tag(db, " Python ")


async def test_linking_a_tag_to_a_post_twice_is_refused(db: AsyncSession) -> None:
    tag = await make_tag(db)
    post = await make_post(db, author=await make_user(db), tags=[tag])
    with pytest.raises(IntegrityError):
        await db.execute(insert(models.post_tags).values(post_id=post.id, tag_id=tag.id))


# Timestamps: aware UTC in Python, microseconds kept, whatever the connection's time zone.


@pytest.fixture
async def foreign_time_zone(connection: AsyncConnection, dialect: str) -> AsyncIterator[None]:
    """The connection runs in a session time zone far from UTC (SQLite has none)."""
    if dialect == "postgresql":
        await connection.execute(text("SET LOCAL TIME ZONE 'Asia/Kathmandu'"))
    if dialect != "mariadb":
        yield
        return
    previous = await connection.scalar(text("SELECT @@session.time_zone"))
    await connection.execute(text("SET time_zone = '+05:45'"))
    try:
        yield
    finally:
        await connection.execute(text("SET time_zone = :zone"), {"zone": previous})


def assert_utc_near_now(value: datetime) -> None:
    assert value.utcoffset() == timedelta(0)
    assert abs(value - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.usefixtures("foreign_time_zone")
async def test_created_at_is_set_to_now_in_utc(db: AsyncSession) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)
    comment = await make_comment(db, post=post, author=author)
    assert_utc_near_now(await stored(db, models.User.created_at, author.id))
    assert_utc_near_now(await stored(db, models.Post.created_at, post.id))
    assert_utc_near_now(await stored(db, models.Comment.created_at, comment.id))


@pytest.mark.usefixtures("foreign_time_zone")
async def test_server_default_created_at_is_now_in_utc(db: AsyncSession) -> None:
    await db.execute(
        text("INSERT INTO users (username, email, password_hash) VALUES (:name, :email, :hash)"),
        {"name": "raw", "email": "raw@example.test", "hash": "x"},
    )
    user_id = await db.scalar(select(models.User.id).where(models.User.username == "raw"))
    await db.execute(
        text("INSERT INTO posts (title, content, user_id) VALUES (:title, :content, :user_id)"),
        {"title": "Raw", "content": "Inserted without timestamps.", "user_id": user_id},
    )
    created_at, updated_at = (
        await db.execute(select(models.Post.created_at, models.Post.updated_at))
    ).one()
    assert_utc_near_now(await stored(db, models.User.created_at, user_id))
    assert_utc_near_now(created_at)
    assert_utc_near_now(updated_at)


@pytest.mark.usefixtures("foreign_time_zone")
@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2001, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2030, 6, 15, 12, 0, tzinfo=UTC),
        datetime(2024, 3, 1, 5, 44, 59, 123_456, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    ],
    ids=["last-microsecond-of-leap-day", "first-microsecond", "whole-hour", "other-offset"],
)
async def test_timestamp_round_trips_to_the_microsecond_in_utc(
    db: AsyncSession, moment: datetime
) -> None:
    post = await make_post(db, author=await make_user(db), created_at=moment)
    value = await stored(db, models.Post.created_at, post.id)
    assert value == moment
    assert value.utcoffset() == timedelta(0)


async def test_naive_timestamp_is_refused(db: AsyncSession) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await make_post(db, author=await make_user(db), created_at=datetime(2024, 1, 1))


async def test_new_post_updated_at_equals_its_created_at(db: AsyncSession) -> None:
    post = await make_post(db, author=await make_user(db))
    created_at, updated_at = (
        await db.execute(
            select(models.Post.created_at, models.Post.updated_at).where(models.Post.id == post.id)
        )
    ).one()
    assert updated_at == created_at


async def test_updating_post_moves_updated_at_to_now_and_keeps_created_at(db: AsyncSession) -> None:
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    post = await make_post(db, author=await make_user(db), created_at=long_ago)
    post.title = "A better title"
    await db.flush()
    assert_utc_near_now(await stored(db, models.Post.updated_at, post.id))
    assert await stored(db, models.Post.created_at, post.id) == long_ago


async def test_flush_without_a_change_keeps_updated_at(db: AsyncSession) -> None:
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    post = await make_post(db, author=await make_user(db))
    post.updated_at = long_ago  # an explicit value wins over onupdate
    await db.flush()
    post.title = post.title
    post.published = post.published
    await db.flush()
    assert await stored(db, models.Post.updated_at, post.id) == long_ago


# Text compares and orders the same on every dialect: by code point, case and spaces significant.


async def test_username_comparison_is_case_sensitive(db: AsyncSession) -> None:
    user = await make_user(db, username="alice")
    for username, expected in [("ALICE", None), ("Alice", None), ("alice", user.id)]:
        found = await db.scalar(select(models.User.id).where(models.User.username == username))
        assert found == expected, username


async def test_trailing_space_is_significant_in_comparison(db: AsyncSession) -> None:
    author = await make_user(db)
    plain = await make_post(db, author=author, title="Hello")
    await make_post(db, author=author, title="Hello ")
    found = await db.scalars(select(models.Post.id).where(models.Post.title == "Hello"))
    assert found.all() == [plain.id]


async def test_order_by_title_is_code_point_order(db: AsyncSession) -> None:
    author = await make_user(db)
    titles = [
        "banana",
        "Banana",
        "apple",
        "Zebra",
        "éclair",
        "Eclair",
        "a",
        "a\t",
        "a b",
        "_x",
        "😀",
    ]
    for title in titles:
        await make_post(db, author=author, title=title)
    ordered = await db.scalars(select(models.Post.title).order_by(models.Post.title))
    assert ordered.all() == sorted(titles)


async def test_post_content_of_100000_characters_round_trips(db: AsyncSession) -> None:
    content = ("Ünïcödé 😀 text. " * 10_000)[: models.POST_CONTENT_MAX]
    post = await make_post(db, author=await make_user(db), content=content)
    assert await stored(db, models.Post.content, post.id) == content


# Relationships never load lazily: an unplanned load fails loudly instead of hiding an N+1.

RELATIONSHIPS = [
    (mapper.class_, relationship.key)
    for mapper in models.Base.registry.mappers
    for relationship in mapper.relationships
]


@pytest.mark.parametrize(
    ("model", "attribute"),
    RELATIONSHIPS,
    ids=[f"{model.__name__}.{attribute}" for model, attribute in RELATIONSHIPS],
)
def test_relationship_is_mapped_lazy_raise(model: type[models.Base], attribute: str) -> None:
    assert model.__mapper__.relationships[attribute].lazy == "raise"


LOADED_RELATIONSHIPS = pytest.mark.parametrize(
    ("model", "attribute"),
    [
        (models.Post, "author"),
        (models.Post, "comments"),
        (models.Post, "tags"),
        (models.Comment, "post"),
        (models.User, "posts"),
        (models.Tag, "posts"),
    ],
    ids=["post.author", "post.comments", "post.tags", "comment.post", "user.posts", "tag.posts"],
)


async def load_blog(db: AsyncSession) -> dict[type[models.Base], int]:
    """A user with a tagged, commented post; the session forgets them, so nothing is loaded."""
    author = await make_user(db)
    tag = await make_tag(db)
    post = await make_post(db, author=author, tags=[tag])
    comment = await make_comment(db, post=post, author=author)
    ids = {
        models.User: author.id,
        models.Tag: tag.id,
        models.Post: post.id,
        models.Comment: comment.id,
    }
    db.expunge_all()
    return ids


@LOADED_RELATIONSHIPS
async def test_accessing_unloaded_relationship_raises(
    db: AsyncSession, model: type[models.Base], attribute: str
) -> None:
    ids = await load_blog(db)
    row = await db.get(model, ids[model])
    with pytest.raises(InvalidRequestError, match="lazy='raise'"):
        getattr(row, attribute)


@LOADED_RELATIONSHIPS
async def test_eagerly_loaded_relationship_is_readable(
    db: AsyncSession, model: type[models.Base], attribute: str
) -> None:
    ids = await load_blog(db)
    row = await db.get(model, ids[model], options=[selectinload(getattr(model, attribute))])
    value = getattr(row, attribute)
    if isinstance(value, list):
        assert len(value) == 1
    else:
        assert isinstance(value, models.Base)
