"""Per-parent pages (`read_model.child_pages`): each dialect's statement gives the rows that
ranking every child gives, over awkward data, and MariaDB's walks each parent only as far as its
page (issue 16, item 5)."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ordering import Ordering, OrderTerm
from gql_blog.read_model import (
    RELATIONS,
    PageRequest,
    _bounded_pages,
    _ranked_pages,
    child_pages,
    compile_where,
    key_in,
    selected,
)
from tests.factories import make_comment, make_post, make_user

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

POST_ORDERS = [
    (),  # CREATED_AT descending (ties on it below), then the id
    (OrderTerm("PUBLISHED_AT"),),  # nullable: drafts' NULLs last
    (OrderTerm("PUBLISHED_AT", descending=True),),  # NULLs first
    (OrderTerm("PUBLISHED_AT", nulls_first=True), OrderTerm("TITLE", descending=True)),
    (OrderTerm("TITLE"), OrderTerm("CREATED_AT", descending=True)),  # mixed directions
]
POST_WHERES = [None, {"title": {"contains": "b"}}, {"comments": {"some": {"id": {"ne": 0}}}}]


async def _rows(db: AsyncSession, stmt: Any, request: PageRequest) -> list[tuple[Any, ...]]:
    rows = await db.execute(stmt, request.cursor_parameters())
    return [tuple(row) for row in rows]


async def _pages_agree(
    db: AsyncSession,
    relation_name: str,
    request: PageRequest,
    viewer: Any,
    dialect: str,
    keys: Sequence[int],
) -> list[tuple[Any, ...]]:
    """Asserts that the dialect's page statement and the bounded one give the ranked rows."""
    relation = RELATIONS[relation_name]
    columns = selected(relation.model, ["id"])

    def parent_in(column: Any) -> Any:
        return key_in(column, dialect, keys)

    ranked = await _rows(db, _ranked_pages(relation, columns, request, viewer, parent_in), request)
    bounded = _bounded_pages(relation, ["id"], request, viewer, keys)
    chosen = child_pages(relation, ["id"], request, viewer, dialect, keys)
    assert await _rows(db, bounded, request) == ranked, request
    assert await _rows(db, chosen, request) == ranked, request
    return ranked


async def _awkward_posts(db: AsyncSession) -> tuple[list[models.User], list[models.Post]]:
    """Three authors (and one without posts) whose posts tie on their creation and publishing
    times, with drafts (no publishing time), and titles that tie too."""
    authors = [await make_user(db) for _ in range(4)]
    posts = []
    for index in range(24):
        author = authors[index % 3]
        published = index % 4 != 1
        posts.append(
            await make_post(
                db,
                author=author,
                title=["abc", "bcd", "cde"][index % 3 if index % 5 else 0],
                published=published,
                created_at=AT + timedelta(minutes=index // 6),
                published_at=AT - timedelta(hours=index // 8) if published else None,
            )
        )
    for post in posts[::3]:
        await make_comment(db, post=post, author=authors[0])
    return authors, posts


@pytest.mark.parametrize("terms", POST_ORDERS)
async def test_pages_of_posts_are_the_ranked_ones(
    db: AsyncSession, dialect: str, terms: tuple[OrderTerm, ...]
) -> None:
    authors, posts = await _awkward_posts(db)
    viewer = authors[1]  # sees the published posts and its own drafts: NULLs among the rows
    keys = [author.id for author in authors]
    ordering = Ordering.of("Post", terms)
    cursors = [None, *(tuple(ordering.values(post)) for post in posts[::5])]
    nonempty = 0
    for plain in POST_WHERES:
        where = compile_where(viewer, "Post", plain, max_depth=5)
        for size in (1, 2, 9):
            for backward in (False, True):
                for cursor in cursors:
                    request = PageRequest(
                        ordering,
                        size,
                        backward=backward,
                        after=None if backward else cursor,
                        before=cursor if backward else None,
                        where=where,
                    )
                    rows = await _pages_agree(db, "User.posts", request, viewer, dialect, keys)
                    nonempty += bool(rows)
    assert nonempty > 60  # of 108 cases: they compare pages, not nothing with nothing


async def test_pages_of_comments_and_replies_are_the_ranked_ones(
    db: AsyncSession, dialect: str
) -> None:
    """Comments tie on their creation time; some posts are drafts (their comments hidden from
    the anonymous viewer); replies' parent is a comment too (its own alias of comments)."""
    author = await make_user(db)
    posts = [await make_post(db, author=author, published=index != 1) for index in range(3)]
    roots: list[models.Comment] = []
    for index in range(30):
        post = posts[index % 3]
        parent = roots[index % 2] if len(roots) > 2 and index % 3 == 0 else None
        comment = await make_comment(
            db,
            post=post,
            author=author,
            created_at=AT + timedelta(minutes=index // 7),
            parent=parent,
        )
        roots.append(comment)
    cases = [
        ("Post.comments", [post.id for post in posts]),
        ("Comment.replies", [comment.id for comment in roots[:4]]),
        ("User.comments", [author.id]),
    ]
    ordering = Ordering.of("Comment")
    for name, keys in cases:
        for viewer in (None, author):
            for size in (1, 3):
                for backward in (False, True):
                    request = PageRequest(ordering, size, backward=backward)
                    rows = await _pages_agree(db, name, request, viewer, dialect, keys)
                    assert rows or viewer is None


async def test_mariadb_walks_each_parent_only_as_far_as_its_page(
    db: AsyncSession, dialect: str
) -> None:
    """Two posts of 300 comments, pages of 2: MariaDB's statement ranks nothing, and finds each
    post's bound reading 3 comments (ANALYZE's rows read per run of the subquery), where the
    semi-join MariaDB makes of a comment's visibility (without `exists_to_in=off`) reads and
    sorts all 300."""
    if dialect != "mariadb":
        pytest.skip("ANALYZE FORMAT=JSON is MariaDB's")
    author = await make_user(db)
    posts = [await make_post(db, author=author) for _ in range(2)]
    for post in posts:
        for index in range(300):
            await make_comment(db, post=post, author=author, created_at=AT + timedelta(index))
    request = PageRequest(Ordering.of("Comment"), 2)
    keys = [post.id for post in posts]
    stmt = child_pages(RELATIONS["Post.comments"], ["id"], request, None, dialect, keys)
    connection = await db.connection()
    sql = str(stmt.compile(connection, compile_kwargs={"literal_binds": True}))
    assert "ROW_NUMBER" not in sql.upper()
    prefix, _, select = sql.partition(" FOR ")
    plan = await connection.exec_driver_sql(f"{prefix} FOR ANALYZE FORMAT=JSON {select}")

    reads = _subquery_reads(json.loads(plan.scalar_one()), "comments")

    assert len((await db.execute(stmt)).all()) == 6
    assert reads, "no subquery read comments"
    assert max(reads) <= request.size + 1, reads


def _subquery_reads(plan: Any, table: str, *, nested: bool = False) -> list[float]:
    """The rows each run of a subquery read of `table`, per access (ANALYZE's r_rows)."""
    if isinstance(plan, list):
        return [read for item in plan for read in _subquery_reads(item, table, nested=nested)]
    if not isinstance(plan, dict):
        return []
    if "select_id" in plan:
        nested = plan["select_id"] != 1
    found = [
        read for value in plan.values() for read in _subquery_reads(value, table, nested=nested)
    ]
    if nested and plan.get("table_name") == table and plan.get("r_loops"):
        found.append(plan["r_rows"])
    return found


@pytest.mark.parametrize(
    ("relation", "terms", "is_bounded"),
    [
        ("Post.comments", (), True),  # ix_comments_post_id_created_at, walked backwards
        ("Comment.replies", (), True),  # CREATED_AT ascending
        ("User.posts", (OrderTerm("CREATED_AT"),), True),
        ("User.comments", (OrderTerm("ID"),), True),  # ix_comments_user_id
        ("User.comments", (), False),  # no index orders a user's comments by time
        ("User.posts", (OrderTerm("TITLE"),), False),
        ("User.posts", (OrderTerm("CREATED_AT"), OrderTerm("TITLE")), False),
        ("Tag.posts", (), False),  # no index orders a tag's posts
    ],
)
def test_mariadb_bounds_the_pages_an_index_walks_and_ranks_the_others(
    relation: str, terms: tuple[OrderTerm, ...], is_bounded: bool
) -> None:
    model = RELATIONS[relation].model.__name__
    request = PageRequest(Ordering.of(model, terms), 2)
    stmt = child_pages(RELATIONS[relation], ["id"], request, None, "mariadb", [1, 2])
    sql = str(stmt.compile(dialect=mysql.dialect()))
    assert ("AS bound_id" in sql) == is_bounded
    assert ("row_number() OVER" in sql) != is_bounded
