"""addComment and deleteComment: rules, errors, who may, and concurrent writers."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gql_blog import events, models
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from tests.committed import CommittedApi, serve_committed_api
from tests.conftest import StatementCounter
from tests.factories import make_comment, make_post, make_user
from tests.graphql_client import GraphQLClient

ADD_COMMENT = """mutation($postId: ID!, $content: String!) {
  addComment(input: {postId: $postId, content: $content}) {
    __typename
    ... on Comment { id content createdAt author { username } post { title } }
    ... on Error { message }
    ... on ValidationError { field }
    ... on NotFoundError { missingId: id }
  }
}"""
DELETE_COMMENT = """mutation($id: ID!) { deleteComment(id: $id) {
  __typename
  ... on Deleted { id }
  ... on Error { message }
  ... on NotFoundError { missingId: id }
} }"""


def _global(row: models.Post | models.Comment) -> str:
    return encode_global_id(type(row).__name__, row.id)


async def _comment_rows(db: AsyncSession) -> list[tuple[Any, ...]]:
    stmt = select(
        models.Comment.id, models.Comment.post_id, models.Comment.user_id, models.Comment.content
    ).order_by(models.Comment.id)
    return [tuple(row) for row in (await db.execute(stmt)).all()]


async def _add(
    api: GraphQLClient, post_id: str, viewer: models.User | None, content: str = "Nice post."
) -> dict[str, Any]:
    result = await api.query(ADD_COMMENT, {"postId": post_id, "content": content}, viewer=viewer)
    assert result.errors is None
    found: dict[str, Any] = result.data["addComment"]
    return found


async def _delete(
    api: GraphQLClient, comment_id: str, viewer: models.User | None
) -> dict[str, Any]:
    result = await api.query(DELETE_COMMENT, {"id": comment_id}, viewer=viewer)
    assert result.errors is None
    found: dict[str, Any] = result.data["deleteComment"]
    return found


# --- addComment ---------------------------------------------------------------------------------


async def test_add_comment_returns_the_comment_and_stores_it(
    api: GraphQLClient, db: AsyncSession
) -> None:
    reader = await make_user(db, username="reader")
    post = await make_post(db, author=await make_user(db), title="Engines")

    found = await _add(api, _global(post), reader, "Nice post.")

    assert found["__typename"] == "Comment"
    assert (found["content"], found["author"], found["post"]) == (
        "Nice post.",
        {"username": "reader"},
        {"title": "Engines"},
    )
    rows = await _comment_rows(db)
    assert len(rows) == 1
    assert rows[0][1:] == (post.id, reader.id, "Nice post.")
    assert found["id"] == encode_global_id("Comment", rows[0][0])


@pytest.mark.parametrize(
    "content",
    ["", "   \n", "x" * 10_001, "bad\x00byte"],
    ids=["empty", "blank", "too-long", "nul"],
)
async def test_add_comment_with_invalid_content_returns_validation_error(
    api: GraphQLClient, db: AsyncSession, content: str
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)

    found = await _add(api, _global(post), author, content)

    assert found["__typename"] == "ValidationError"
    assert found["field"] == "content"
    assert await _comment_rows(db) == []


async def test_a_missing_post_is_reported_before_invalid_content(
    api: GraphQLClient, db: AsyncSession
) -> None:
    draft = await make_post(db, author=await make_user(db), published=False)

    found = await _add(api, _global(draft), await make_user(db), "   ")

    assert (found["__typename"], found["message"]) == ("NotFoundError", "No such post.")


async def test_add_comment_accepts_the_longest_content(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)

    found = await _add(api, _global(post), author, "x" * 10_000)

    assert found["__typename"] == "Comment"


async def test_commenting_on_another_users_draft_is_not_found(
    api: GraphQLClient, db: AsyncSession
) -> None:
    draft = await make_post(db, author=await make_user(db), published=False)

    found = await _add(api, _global(draft), await make_user(db))

    assert found == {
        "__typename": "NotFoundError",
        "message": "No such post.",
        "missingId": _global(draft),
    }
    assert await _comment_rows(db) == []


@pytest.mark.parametrize("role", ["author", "admin"])
async def test_author_and_admin_may_comment_on_a_draft(
    api: GraphQLClient, db: AsyncSession, role: str
) -> None:
    author = await make_user(db)
    draft = await make_post(db, author=author, published=False)
    viewer = author if role == "author" else await make_user(db, is_admin=True)

    found = await _add(api, _global(draft), viewer)

    assert found["__typename"] == "Comment"


@pytest.mark.parametrize("kind", ["missing", "other-type"])
async def test_commenting_on_no_post_is_not_found(
    api: GraphQLClient, db: AsyncSession, kind: str
) -> None:
    user = await make_user(db)
    post_id = (
        encode_global_id("Post", 424_242)
        if kind == "missing"
        else encode_global_id("User", user.id)
    )

    found = await _add(api, post_id, user)

    assert found == {
        "__typename": "NotFoundError",
        "message": "No such post.",
        "missingId": post_id,
    }


async def test_commenting_with_a_malformed_post_id_is_bad_user_input(
    api: GraphQLClient, db: AsyncSession
) -> None:
    result = await api.query(
        ADD_COMMENT, {"postId": "Post:1", "content": "Hi"}, viewer=await make_user(db)
    )

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid id" in result.error_messages[0]


# --- deleteComment ------------------------------------------------------------------------------


async def test_delete_comment_removes_only_that_comment(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)
    doomed = await make_comment(db, post=post, author=author)
    kept = await make_comment(db, post=post, author=author)

    found = await _delete(api, _global(doomed), author)

    assert found == {"__typename": "Deleted", "id": _global(doomed)}
    assert [row[0] for row in await _comment_rows(db)] == [kept.id]


async def test_deleting_a_comment_on_another_users_draft_is_not_found(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    commenter = await make_user(db)
    draft = await make_post(db, author=author, published=False)
    comment = await make_comment(db, post=draft, author=author)

    found = await _delete(api, _global(comment), commenter)

    assert found["__typename"] == "NotFoundError"
    assert len(await _comment_rows(db)) == 1


@pytest.mark.parametrize("kind", ["missing", "other-type"])
async def test_deleting_no_comment_is_not_found(
    api: GraphQLClient, db: AsyncSession, kind: str
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)
    comment_id = encode_global_id("Comment", 424_242) if kind == "missing" else _global(post)

    found = await _delete(api, comment_id, author)

    assert found == {
        "__typename": "NotFoundError",
        "message": "No such comment.",
        "missingId": comment_id,
    }
    assert await _post_count(db) == 1


async def _post_count(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(models.Post)) or 0)


async def test_deleting_with_a_malformed_id_is_bad_user_input(
    api: GraphQLClient, db: AsyncSession
) -> None:
    result = await api.query(DELETE_COMMENT, {"id": "%%%"}, viewer=await make_user(db))

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid id" in result.error_messages[0]


# --- authorization matrix -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cast:
    post: models.Post
    comment: models.Comment
    users: dict[str, models.User | None]


@pytest.fixture
async def cast(db: AsyncSession) -> Cast:
    post_author = await make_user(db)
    commenter = await make_user(db)
    post = await make_post(db, author=post_author)
    return Cast(
        post=post,
        comment=await make_comment(db, post=post, author=commenter),
        users={
            "anonymous": None,
            "inactive-user": await make_user(db, is_active=False),
            "other-user": await make_user(db),
            "post-author": post_author,
            "author": commenter,
            "admin": await make_user(db, is_admin=True),
            "inactive-admin": await make_user(db, is_admin=True, is_active=False),
        },
    )


@pytest.mark.parametrize(
    ("role", "typename"),
    [
        ("anonymous", "AuthenticationError"),
        ("inactive-user", "AuthenticationError"),
        ("inactive-admin", "AuthenticationError"),
        ("other-user", "Comment"),
        ("author", "Comment"),
        ("admin", "Comment"),
    ],
)
async def test_who_may_comment(api: GraphQLClient, cast: Cast, role: str, typename: str) -> None:
    found = await _add(api, _global(cast.post), cast.users[role])

    assert found["__typename"] == typename


@pytest.mark.parametrize(
    ("role", "typename"),
    [
        ("anonymous", "AuthenticationError"),
        ("inactive-user", "AuthenticationError"),
        ("inactive-admin", "AuthenticationError"),
        ("other-user", "ForbiddenError"),
        ("post-author", "ForbiddenError"),
        ("author", "Deleted"),
        ("admin", "Deleted"),
    ],
)
async def test_who_may_delete_a_comment(
    api: GraphQLClient, db: AsyncSession, cast: Cast, role: str, typename: str
) -> None:
    found = await _delete(api, _global(cast.comment), cast.users[role])

    assert found["__typename"] == typename
    assert len(await _comment_rows(db)) == (0 if typename == "Deleted" else 1)


# --- concurrency (real commits, one connection per request) --------------------------------------


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[CommittedApi]:
    async with serve_committed_api(settings) as served:
        yield served


async def test_twenty_concurrent_comments_all_land(committed: CommittedApi) -> None:
    author = await make_user(committed.db)
    post = await make_post(committed.db, author=author)
    readers = [await make_user(committed.db) for _ in range(20)]
    for reader in readers:
        await committed.api.token_for(reader)
    await committed.db.commit()

    results = await asyncio.gather(
        *(
            committed.api.query(
                ADD_COMMENT, {"postId": _global(post), "content": f"Reader {index}"}, viewer=reader
            )
            for index, reader in enumerate(readers)
        )
    )

    assert [result.errors for result in results] == [None] * 20
    assert {result.data["addComment"]["__typename"] for result in results} == {"Comment"}
    rows = await _comment_rows(committed.db)
    assert sorted(row[3] for row in rows) == sorted(f"Reader {index}" for index in range(20))
    assert {row[1] for row in rows} == {post.id}


async def test_an_added_comment_lands_with_its_audit_entry_and_its_outbox_event(
    committed: CommittedApi, settings: Settings
) -> None:
    author = await make_user(committed.db)
    post = await make_post(committed.db, author=author)
    await committed.api.token_for(author)
    await committed.db.commit()

    added = await _add(committed.api, _global(post), author, "Landed whole.")
    added_again = await _add(committed.api, _global(post), author, "And again.")

    comment_ids = [row[0] for row in await _comment_rows(committed.db)]
    assert [added["id"], added_again["id"]] == [encode_global_id("Comment", i) for i in comment_ids]
    audited = (
        await committed.db.execute(
            select(models.AuditLog.entity_id, models.AuditLog.actor_id, models.AuditLog.changes)
            .where(models.AuditLog.entity_type == "Comment")
            .order_by(models.AuditLog.id)
        )
    ).all()
    assert [tuple(row) for row in audited] == [
        (
            comment_ids[0],
            author.id,
            {"content": "Landed whole.", "author": author.id, "post": post.id},
        ),
        (
            comment_ids[1],
            author.id,
            {"content": "And again.", "author": author.id, "post": post.id},
        ),
    ]
    outbox = (
        await committed.db.execute(
            select(
                models.OutboxEvent.kind, models.OutboxEvent.post_id, models.OutboxEvent.comment_id
            ).order_by(models.OutboxEvent.id)
        )
    ).all()
    # A bus that carries events in the outbox table (every one but in-memory SQLite's) finds
    # each comment's row there, written with it.
    writes_outbox = events.create_bus(settings, async_sessionmaker()).outbox
    expected = [(events.Kind.COMMENT_ADDED.value, post.id, i) for i in comment_ids]
    assert [tuple(row) for row in outbox] == (expected if writes_outbox else [])


async def test_comments_racing_the_deletion_of_their_post_land_before_it_or_find_nothing(
    committed: CommittedApi,
) -> None:
    author = await make_user(committed.db)
    post = await make_post(committed.db, author=author)
    await committed.api.token_for(author)
    await committed.db.commit()
    delete_post = "mutation($id: ID!) { deletePost(id: $id) { __typename } }"

    comments = [
        committed.api.query(ADD_COMMENT, {"postId": _global(post), "content": "Hi."}, viewer=author)
        for _ in range(10)
    ]
    deletion = committed.api.query(delete_post, {"id": _global(post)}, viewer=author)
    results = await asyncio.gather(*comments[:5], deletion, *comments[5:])
    added, deleted = results[:5] + results[6:], results[5]

    # Never a foreign-key failure: a comment waits for the deletion and finds no post, or lands
    # first and is deleted with it.
    assert [result.errors for result in (*added, deleted)] == [None] * 11
    assert {result.data["addComment"]["__typename"] for result in added} <= {
        "Comment",
        "NotFoundError",
    }
    assert await _comment_rows(committed.db) == []


async def test_of_two_concurrent_deletes_of_a_comment_one_finds_nothing(
    committed: CommittedApi,
) -> None:
    author = await make_user(committed.db)
    post = await make_post(committed.db, author=author)
    comment = await make_comment(committed.db, post=post, author=author)
    await committed.api.token_for(author)
    await committed.db.commit()
    comment_id = encode_global_id("Comment", comment.id)

    results = await asyncio.gather(
        *(committed.api.query(DELETE_COMMENT, {"id": comment_id}, viewer=author) for _ in "ab")
    )

    assert [result.errors for result in results] == [None, None]
    kinds = sorted(result.data["deleteComment"]["__typename"] for result in results)
    assert kinds == ["Deleted", "NotFoundError"]


# --- statements ---------------------------------------------------------------------------------


async def test_add_comment_takes_a_fixed_number_of_statements(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=await make_user(db))
    await api.token_for(author)
    totals = []
    for _ in range(2):
        with count_sql() as counted:
            result = await _add(api, _global(post), author)
        assert result["__typename"] == "Comment"
        totals.append(counted.total)

    # The viewer's token, the visible post (locked), the comment, its audit entry; the payload's
    # author and post come from the rows the mutation holds. On PostgreSQL the post, the comment
    # and its audit entry are one statement (`writes.comment_statement`).
    expected = 2 if dialect == "postgresql" else 4
    assert totals == [expected, expected]
