"""createPost, updatePost, publishPost, deletePost and importPosts: rules, errors, rollback."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import events, models, writes
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from tests.committed import CommittedApi, serve_committed_api
from tests.conftest import StatementCounter
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

RESULT = """
  __typename
  ... on Post { id title content published createdAt updatedAt author { username } tags { name } }
  ... on Error { message }
  ... on ValidationError { field }
  ... on NotFoundError { missingId: id }
"""
CREATE_POST = (
    f"""mutation($input: CreatePostInput!) {{ createPost(input: $input) {{ {RESULT} }} }}"""
)
UPDATE_POST = f"""mutation($id: ID!, $input: UpdatePostInput!) {{
  updatePost(id: $id, input: $input) {{ {RESULT} }}
}}"""
PUBLISH_POST = f"""mutation($id: ID!) {{ publishPost(id: $id) {{ {RESULT} }} }}"""
DELETE_POST = """mutation($id: ID!) { deletePost(id: $id) {
  __typename
  ... on Deleted { id }
  ... on Error { message }
  ... on NotFoundError { missingId: id }
} }"""
IMPORT_POSTS = f"""mutation($inputs: [CreatePostInput!]!) {{
  importPosts(inputs: $inputs) {{ created results {{ {RESULT} }} }}
}}"""

CONTENT_TABLES = ("posts", "tags", "post_tags", "comments")
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def _post_id(post: models.Post) -> str:
    return encode_global_id("Post", post.id)


def _new_post(**fields: Any) -> dict[str, Any]:
    return {"title": "Hello", "content": "Some words.", **fields}


async def _snapshot(db: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the content tables, read past the session's identity map."""
    tables = models.Base.metadata.tables
    return {
        name: sorted(tuple(row) for row in (await db.execute(select(tables[name]))).all())
        for name in CONTENT_TABLES
    }


async def _post_row(db: AsyncSession, post_id: int) -> models.Post | None:
    stmt = (
        select(models.Post)
        .where(models.Post.id == post_id)
        .execution_options(populate_existing=True)
    )
    return (await db.scalars(stmt)).one_or_none()


async def _tag_names(db: AsyncSession, post_id: int) -> list[str]:
    stmt = (
        select(models.Tag.name)
        .join(models.post_tags, models.post_tags.c.tag_id == models.Tag.id)
        .where(models.post_tags.c.post_id == post_id)
        .order_by(models.Tag.name)
    )
    return list(await db.scalars(stmt))


async def _count(db: AsyncSession, model: type[models.Base] | Table) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)) or 0)


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- createPost ---------------------------------------------------------------------------------


async def test_create_post_returns_a_draft_with_normalized_tags(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db, username="ada")
    await make_tag(db, "python")

    result = await api.query(
        CREATE_POST,
        {"input": _new_post(tags=["  Python ", "python", "SQL", "New Tag"])},
        viewer=author,
    )

    assert result.errors is None
    post = result.data["createPost"]
    assert post["__typename"] == "Post"
    assert (post["title"], post["content"], post["published"]) == ("Hello", "Some words.", False)
    assert post["author"] == {"username": "ada"}
    assert post["tags"] == [{"name": "new tag"}, {"name": "python"}, {"name": "sql"}]
    assert post["createdAt"] == post["updatedAt"]
    assert await _count(db, models.Tag) == 3


async def test_create_post_with_published_true_is_published(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)

    result = await api.query(CREATE_POST, {"input": _new_post(published=True)}, viewer=author)

    assert result.errors is None
    assert result.data["createPost"]["published"] is True


async def test_create_post_persists_the_row(api: GraphQLClient, db: AsyncSession) -> None:
    author = await make_user(db)

    result = await api.query(CREATE_POST, {"input": _new_post(tags=["a"])}, viewer=author)

    assert result.errors is None
    rows = (await db.execute(select(models.Post.title, models.Post.user_id))).all()
    assert [tuple(row) for row in rows] == [("Hello", author.id)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"content": ""}, "content"),
        ({"content": " \n\t"}, "content"),
        ({"content": "x" * 100_001}, "content"),
        ({"content": "a\x00b"}, "content"),
        ({"tags": [f"tag{index}" for index in range(11)]}, "tags"),
        ({"tags": ["  "]}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": ["a\x00b"]}, "tags"),
    ],
    ids=[
        "empty-title",
        "blank-title",
        "long-title",
        "nul-title",
        "empty-content",
        "blank-content",
        "long-content",
        "nul-content",
        "eleven-tags",
        "blank-tag",
        "long-tag",
        "nul-tag",
    ],
)
async def test_create_post_with_invalid_input_returns_validation_error(
    api: GraphQLClient, db: AsyncSession, fields: dict[str, Any], field: str
) -> None:
    author = await make_user(db)

    result = await api.query(CREATE_POST, {"input": _new_post(**fields)}, viewer=author)

    assert result.errors is None
    assert result.data["createPost"]["__typename"] == "ValidationError"
    assert result.data["createPost"]["field"] == field
    assert await _count(db, models.Post) == 0


@pytest.mark.parametrize(
    ("title", "content", "tags"),
    [
        ("x" * 200, "x" * 100_000, [f"t{index}" for index in range(10)]),
        ("x", "y", ["x" * 50]),
    ],
    ids=["largest", "smallest"],
)
async def test_create_post_accepts_the_limits(
    api: GraphQLClient, db: AsyncSession, title: str, content: str, tags: list[str]
) -> None:
    author = await make_user(db)

    result = await api.query(
        CREATE_POST, {"input": {"title": title, "content": content, "tags": tags}}, viewer=author
    )

    assert result.errors is None
    assert result.data["createPost"]["__typename"] == "Post"
    assert len(result.data["createPost"]["tags"]) == len(tags)


@pytest.mark.parametrize(
    "fields",
    [
        {"tags": ["fresh", *(f"new{index}" for index in range(10))]},
        {"tags": ["fresh", "another"], "content": "bad\x00content"},
    ],
    ids=["eleven-tags", "nul-in-content"],
)
async def test_failing_create_post_leaves_the_database_as_it_was(
    api: GraphQLClient, db: AsyncSession, fields: dict[str, Any]
) -> None:
    author = await make_user(db)
    tag = await make_tag(db, "kept")
    post = await make_post(db, author=author, tags=[tag])
    await make_comment(db, post=post, author=author)
    before = await _snapshot(db)

    result = await api.query(CREATE_POST, {"input": _new_post(**fields)}, viewer=author)

    assert result.errors is None
    assert result.data["createPost"]["__typename"] == "ValidationError"
    assert await _snapshot(db) == before


async def test_create_post_statements_do_not_grow_with_the_number_of_tags(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    author = await make_user(db)
    await api.token_for(author)
    totals = []
    for tags in (["one"], [f"many{index}" for index in range(10)]):
        with count_sql() as counted:
            result = await api.query(CREATE_POST, {"input": _new_post(tags=tags)}, viewer=author)
        assert result.errors is None
        totals.append(counted.total)

    assert totals[0] == totals[1]


# --- updatePost ---------------------------------------------------------------------------------


async def test_update_post_changes_the_given_fields_and_moves_updated_at(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(
        db, author=author, title="Old", content="Old words.", created_at=LONG_AGO
    )

    result = await api.query(
        UPDATE_POST,
        {"id": _post_id(post), "input": {"title": "New", "tags": ["Fresh"]}},
        viewer=author,
    )

    assert result.errors is None
    updated = result.data["updatePost"]
    assert (updated["title"], updated["content"]) == ("New", "Old words.")
    assert updated["tags"] == [{"name": "fresh"}]
    assert _moment(updated["createdAt"]) == LONG_AGO
    assert _moment(updated["updatedAt"]) > LONG_AGO
    row = await _post_row(db, post.id)
    assert row is not None
    assert (row.title, row.updated_at) == ("New", _moment(updated["updatedAt"]))


async def test_update_post_with_only_new_tags_moves_updated_at(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, created_at=LONG_AGO)

    result = await api.query(
        UPDATE_POST, {"id": _post_id(post), "input": {"tags": ["later"]}}, viewer=author
    )

    assert result.errors is None
    assert _moment(result.data["updatePost"]["updatedAt"]) > LONG_AGO


@pytest.mark.parametrize(
    "changes",
    [{}, {"title": "Same", "published": True, "tags": ["Kept", "kept"]}],
    ids=["nothing", "same-values"],
)
async def test_update_post_that_changes_nothing_keeps_updated_at(
    api: GraphQLClient, db: AsyncSession, changes: dict[str, Any]
) -> None:
    author = await make_user(db)
    tag = await make_tag(db, "kept")
    post = await make_post(db, author=author, title="Same", tags=[tag], created_at=LONG_AGO)

    result = await api.query(UPDATE_POST, {"id": _post_id(post), "input": changes}, viewer=author)

    assert result.errors is None
    assert _moment(result.data["updatePost"]["updatedAt"]) == LONG_AGO


async def test_update_post_with_empty_tags_removes_them_but_keeps_the_tags(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, tags=[await make_tag(db, "gone")])

    result = await api.query(
        UPDATE_POST, {"id": _post_id(post), "input": {"tags": []}}, viewer=author
    )

    assert result.errors is None
    assert result.data["updatePost"]["tags"] == []
    assert await _tag_names(db, post.id) == []
    assert await _count(db, models.Tag) == 1


async def test_comment_does_not_move_the_post_updated_at(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, created_at=LONG_AGO)

    result = await api.query(
        """mutation($id: ID!) { addComment(input: {postId: $id, content: "Hi"}) { __typename } }""",
        {"id": _post_id(post)},
        viewer=author,
    )

    assert result.errors is None
    row = await _post_row(db, post.id)
    assert row is not None
    assert row.updated_at == LONG_AGO


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": " "}, "title"),
        ({"content": "x" * 100_001}, "content"),
        ({"tags": [f"t{index}" for index in range(11)]}, "tags"),
        ({"title": "Fine", "content": "nul\x00"}, "content"),
    ],
    ids=["blank-title", "long-content", "eleven-tags", "nul-content-after-good-title"],
)
async def test_update_post_with_invalid_input_changes_nothing(
    api: GraphQLClient, db: AsyncSession, changes: dict[str, Any], field: str
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, tags=[await make_tag(db, "kept")])
    before = await _snapshot(db)

    result = await api.query(UPDATE_POST, {"id": _post_id(post), "input": changes}, viewer=author)

    assert result.errors is None
    assert result.data["updatePost"]["__typename"] == "ValidationError"
    assert result.data["updatePost"]["field"] == field
    assert await _snapshot(db) == before


# --- errors shared by updatePost, publishPost and deletePost ------------------------------------

POST_MUTATIONS = {
    "updatePost": (UPDATE_POST, {"input": {"title": "Changed"}}),
    "publishPost": (PUBLISH_POST, {}),
    "deletePost": (DELETE_POST, {}),
}


@pytest.fixture(params=list(POST_MUTATIONS))
def mutation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _run(
    api: GraphQLClient, mutation: str, post_id: str, viewer: models.User | None
) -> dict[str, Any]:
    query, variables = POST_MUTATIONS[mutation]
    result = await api.query(query, {"id": post_id, **variables}, viewer=viewer)
    assert result.errors is None
    found: dict[str, Any] = result.data[mutation]
    return found


async def test_changing_another_users_draft_is_not_found(
    api: GraphQLClient, db: AsyncSession, mutation: str
) -> None:
    author = await make_user(db)
    draft = await make_post(db, author=author, published=False)
    before = await _snapshot(db)

    found = await _run(api, mutation, _post_id(draft), await make_user(db))

    assert found == {
        "__typename": "NotFoundError",
        "message": "No such post.",
        "missingId": _post_id(draft),
    }
    assert await _snapshot(db) == before


async def test_changing_another_users_post_is_forbidden(
    api: GraphQLClient, db: AsyncSession, mutation: str
) -> None:
    post = await make_post(db, author=await make_user(db))
    before = await _snapshot(db)

    found = await _run(api, mutation, _post_id(post), await make_user(db))

    assert found["__typename"] == "ForbiddenError"
    assert await _snapshot(db) == before


@pytest.mark.parametrize(
    "global_id",
    [encode_global_id("Post", 999_999), encode_global_id("Post", 2**40)],
    ids=["missing", "beyond-integer-range"],
)
async def test_changing_a_missing_post_is_not_found(
    api: GraphQLClient, db: AsyncSession, mutation: str, global_id: str
) -> None:
    found = await _run(api, mutation, global_id, await make_user(db, is_admin=True))

    assert found == {
        "__typename": "NotFoundError",
        "message": "No such post.",
        "missingId": global_id,
    }


async def test_an_id_of_another_type_is_not_found(
    api: GraphQLClient, db: AsyncSession, mutation: str
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)
    comment = await make_comment(db, post=post, author=author)
    comment_id = encode_global_id("Comment", comment.id)

    found = await _run(api, mutation, comment_id, author)

    assert found["__typename"] == "NotFoundError"
    assert found["missingId"] == comment_id


async def test_a_malformed_id_is_a_top_level_bad_user_input_error(
    api: GraphQLClient, db: AsyncSession, mutation: str
) -> None:
    query, variables = POST_MUTATIONS[mutation]

    result = await api.query(query, {"id": "not-an-id", **variables}, viewer=await make_user(db))

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid id" in result.error_messages[0]
    assert result.data is None


# --- authorization matrix -------------------------------------------------------------------------

ROLES = ["anonymous", "inactive-user", "other-user", "author", "admin", "inactive-author"]


@dataclass(frozen=True, slots=True)
class Cast:
    author: models.User
    post: models.Post
    users: dict[str, models.User | None]


@pytest.fixture
async def cast(db: AsyncSession) -> Cast:
    author = await make_user(db)
    post = await make_post(db, author=author)
    inactive_author = await make_user(db, is_active=False)
    users = {
        "anonymous": None,
        "inactive-user": await make_user(db, is_active=False),
        "other-user": await make_user(db),
        "author": author,
        "admin": await make_user(db, is_admin=True),
        "inactive-author": inactive_author,
    }
    return Cast(author=author, post=post, users=users)


SUCCESS = {
    "createPost": "Post",
    "updatePost": "Post",
    "publishPost": "Post",
    "deletePost": "Deleted",
}
MATRIX = {
    "anonymous": "AuthenticationError",
    "inactive-user": "AuthenticationError",
    "other-user": "ForbiddenError",
    "author": None,
    "admin": None,
}


@pytest.mark.parametrize("role", list(MATRIX))
async def test_who_may_change_a_post(
    api: GraphQLClient, cast: Cast, mutation: str, role: str
) -> None:
    found = await _run(api, mutation, _post_id(cast.post), cast.users[role])

    assert found["__typename"] == (MATRIX[role] or SUCCESS[mutation])


async def test_an_inactive_author_may_not_change_their_post(
    api: GraphQLClient, db: AsyncSession, mutation: str
) -> None:
    author = await make_user(db, is_active=False)
    post = await make_post(db, author=author)

    found = await _run(api, mutation, _post_id(post), author)

    assert found["__typename"] == "AuthenticationError"


@pytest.mark.parametrize(
    ("role", "typename"),
    [
        ("anonymous", "AuthenticationError"),
        ("inactive-user", "AuthenticationError"),
        ("other-user", "Post"),
        ("admin", "Post"),
    ],
)
async def test_who_may_create_a_post(
    api: GraphQLClient, cast: Cast, role: str, typename: str
) -> None:
    result = await api.query(CREATE_POST, {"input": _new_post()}, viewer=cast.users[role])

    assert result.errors is None
    assert result.data["createPost"]["__typename"] == typename


async def test_admin_may_change_another_users_draft(api: GraphQLClient, db: AsyncSession) -> None:
    draft = await make_post(db, author=await make_user(db), published=False)

    result = await api.query(
        UPDATE_POST,
        {"id": _post_id(draft), "input": {"title": "Edited"}},
        viewer=await make_user(db, is_admin=True),
    )

    assert result.errors is None
    assert result.data["updatePost"]["title"] == "Edited"


# --- publishPost --------------------------------------------------------------------------------


async def test_publish_post_publishes_a_draft_and_moves_updated_at(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    draft = await make_post(db, author=author, published=False, created_at=LONG_AGO)

    result = await api.query(PUBLISH_POST, {"id": _post_id(draft)}, viewer=author)

    assert result.errors is None
    assert result.data["publishPost"]["published"] is True
    assert _moment(result.data["publishPost"]["updatedAt"]) > LONG_AGO
    row = await _post_row(db, draft.id)
    assert row is not None
    assert row.published is True


async def test_publishing_a_published_post_changes_nothing(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, created_at=LONG_AGO)

    result = await api.query(PUBLISH_POST, {"id": _post_id(post)}, viewer=author)

    assert result.errors is None
    assert result.data["publishPost"]["published"] is True
    assert _moment(result.data["publishPost"]["updatedAt"]) == LONG_AGO


async def test_posts_becoming_published_are_noted_for_subscriptions(db: AsyncSession) -> None:
    author = await make_user(db)
    draft = await make_post(db, author=author, published=False)
    published = await writes.create_post(
        db, author=author, title="Out", content="Now.", published=True, tag_names=[]
    )
    await writes.create_post(
        db, author=author, title="Draft", content="Later.", published=False, tag_names=[]
    )
    await writes.publish_post(db, draft)
    await writes.publish_post(db, draft)

    published_ids = [event.post_id for event in events.pending(db)]
    assert published_ids == [published.row.id, draft.id]


async def test_rolled_back_publications_are_discarded(db: AsyncSession) -> None:
    author = await make_user(db)
    await writes.create_post(
        db, author=author, title="Out", content="Now.", published=True, tag_names=[]
    )

    events.discard(db)

    assert events.pending(db) == []


# --- deletePost ---------------------------------------------------------------------------------


async def test_delete_post_removes_its_comments_and_tag_links_but_not_its_tags(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    tag = await make_tag(db, "kept")
    post = await make_post(db, author=author, tags=[tag])
    other = await make_post(db, author=author, tags=[tag])
    await make_comment(db, post=post, author=author)
    kept_comment = await make_comment(db, post=other, author=author)

    result = await api.query(DELETE_POST, {"id": _post_id(post)}, viewer=author)

    assert result.errors is None
    assert result.data == {"deletePost": {"__typename": "Deleted", "id": _post_id(post)}}
    snapshot = await _snapshot(db)
    assert [row[0] for row in snapshot["posts"]] == [other.id]
    assert [row[0] for row in snapshot["comments"]] == [kept_comment.id]
    assert snapshot["post_tags"] == [(other.id, tag.id)]
    assert [row[0] for row in snapshot["tags"]] == [tag.id]


# --- several mutations in one request -------------------------------------------------------------


async def test_a_failed_mutation_does_not_spoil_the_next_one_in_the_request(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db, username="ada")
    post = await make_post(db, author=author, title="Before")

    result = await api.query(
        """mutation($id: ID!) {
          bad: updatePost(id: $id, input: {title: " "}) { __typename }
          good: updatePost(id: $id, input: {content: "After."}) {
            ... on Post { title content author { username } }
          }
        }""",
        {"id": _post_id(post)},
        viewer=author,
    )

    assert result.errors is None
    assert result.data == {
        "bad": {"__typename": "ValidationError"},
        "good": {"title": "Before", "content": "After.", "author": {"username": "ada"}},
    }


# --- importPosts --------------------------------------------------------------------------------


async def test_import_posts_keeps_good_items_and_reports_bad_ones_in_order(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)

    result = await api.query(
        IMPORT_POSTS,
        {
            "inputs": [
                _new_post(title="First", tags=["shared"]),
                _new_post(title=" ", tags=["orphan"]),
                _new_post(title="Third", tags=["Shared", "more"], published=True),
                _new_post(title="Fourth", tags=[f"t{index}" for index in range(11)]),
            ]
        },
        viewer=author,
    )

    assert result.errors is None
    payload = result.data["importPosts"]
    assert payload["created"] == 2
    results = payload["results"]
    assert [item["__typename"] for item in results] == [
        "Post",
        "ValidationError",
        "Post",
        "ValidationError",
    ]
    assert [results[1]["field"], results[3]["field"]] == ["title", "tags"]
    assert results[2]["tags"] == [{"name": "more"}, {"name": "shared"}]
    titles = await db.scalars(select(models.Post.title).order_by(models.Post.id))
    assert list(titles) == ["First", "Third"]
    tags = await db.scalars(select(models.Tag.name).order_by(models.Tag.name))
    assert list(tags) == ["more", "shared"]


async def test_import_posts_signed_out_reports_every_item(api: GraphQLClient) -> None:
    result = await api.query(IMPORT_POSTS, {"inputs": [_new_post(), _new_post()]})

    assert result.errors is None
    payload = result.data["importPosts"]
    assert payload["created"] == 0
    assert [item["__typename"] for item in payload["results"]] == ["AuthenticationError"] * 2


async def test_import_of_nothing_creates_nothing(api: GraphQLClient, db: AsyncSession) -> None:
    result = await api.query(IMPORT_POSTS, {"inputs": []}, viewer=await make_user(db))

    assert result.errors is None
    assert result.data == {"importPosts": {"created": 0, "results": []}}


# --- concurrency (real commits, one connection per request) --------------------------------------


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[CommittedApi]:
    async with serve_committed_api(settings) as served:
        yield served


async def _signed_in_authors(committed: CommittedApi, count: int) -> list[models.User]:
    """`count` users with tokens, committed for the concurrent requests to see."""
    authors = [await make_user(committed.db) for _ in range(count)]
    for author in authors:
        await committed.api.token_for(author)
    await committed.db.commit()
    return authors


async def test_concurrent_posts_creating_one_new_tag_share_one_tag_row(
    committed: CommittedApi,
) -> None:
    authors = await _signed_in_authors(committed, 10)

    results = await asyncio.gather(
        *(
            committed.api.query(
                CREATE_POST, {"input": _new_post(tags=["Brand New", "other"])}, viewer=author
            )
            for author in authors
        )
    )

    assert [result.errors for result in results] == [None] * 10
    assert {result.data["createPost"]["__typename"] for result in results} == {"Post"}
    names = await committed.db.scalars(select(models.Tag.name).order_by(models.Tag.name))
    assert list(names) == ["brand new", "other"]
    assert await _count(committed.db, models.post_tags) == 20


async def test_concurrent_posts_of_one_title_get_distinct_numbered_slugs(
    committed: CommittedApi,
) -> None:
    authors = await _signed_in_authors(committed, 10)

    results = await asyncio.gather(
        *(
            committed.api.query(CREATE_POST, {"input": _new_post(title="One Title")}, viewer=author)
            for author in authors
        )
    )

    assert [result.errors for result in results] == [None] * 10
    assert {result.data["createPost"]["__typename"] for result in results} == {"Post"}
    made = await committed.db.scalars(
        select(models.Post.slug).where(models.Post.title == "One Title")
    )
    # Writers that chose the same number try the next one: each gets its own, none fails.
    numbers = sorted(1 if slug == "one-title" else int(slug.split("-")[-1]) for slug in made)
    assert len(set(numbers)) == 10
    assert numbers[0] == 1


async def test_concurrent_edits_of_one_post_take_turns(committed: CommittedApi) -> None:
    author = await make_user(committed.db)
    post = await make_post(committed.db, author=author)
    await committed.api.token_for(author)
    await committed.db.commit()
    tag_sets = [[f"only{index}", "shared"] for index in range(8)]

    results = await asyncio.gather(
        *(
            committed.api.query(
                UPDATE_POST, {"id": _post_id(post), "input": {"tags": tags}}, viewer=author
            )
            for tags in tag_sets
        )
    )

    assert [result.errors for result in results] == [None] * 8
    assert {result.data["updatePost"]["__typename"] for result in results} == {"Post"}
    assert await _tag_names(committed.db, post.id) in tag_sets


async def test_created_at_of_a_new_post_is_recent(api: GraphQLClient, db: AsyncSession) -> None:
    author = await make_user(db)

    result = await api.query(CREATE_POST, {"input": _new_post()}, viewer=author)

    assert result.errors is None
    created = _moment(result.data["createPost"]["createdAt"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)


# --- audit ----------------------------------------------------------------------------------------


async def test_post_mutations_are_audited_with_the_viewer_as_actor(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    created = await api.query(CREATE_POST, {"input": _new_post(published=True)}, viewer=author)
    post_id = created.data["createPost"]["id"]

    await api.query(UPDATE_POST, {"id": post_id, "input": {"title": "Renamed"}}, viewer=author)
    await api.query(DELETE_POST, {"id": post_id}, viewer=author)

    stmt = (
        select(models.AuditLog.action, models.AuditLog.actor_id, models.AuditLog.changes)
        .where(models.AuditLog.entity_type == "Post")
        .order_by(models.AuditLog.id)
    )
    fields = {"content": "Some words.", "published": True, "slug": "hello", "author": author.id}
    assert [tuple(row) for row in (await db.execute(stmt)).all()] == [
        ("CREATE", author.id, {"title": "Hello", **fields}),
        ("UPDATE", author.id, {"title": ["Hello", "Renamed"]}),
        ("DELETE", author.id, {"title": "Renamed", **fields}),
    ]


async def test_update_post_changing_title_and_tags_writes_one_audit_row(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, title="Old", tags=[await make_tag(db, "python")])
    variables = {"id": _post_id(post), "input": {"title": "New", "tags": ["sql", "python", "go"]}}

    result = await api.query(UPDATE_POST, variables, viewer=author)

    assert result.errors is None
    log = models.AuditLog
    stmt = select(log.entity_type, log.action, log.changes).where(log.action == "UPDATE")
    assert [tuple(row) for row in (await db.execute(stmt)).all()] == [
        (
            "Post",
            "UPDATE",
            {"title": ["Old", "New"], "tags": [["python"], ["go", "python", "sql"]]},
        ),
    ]


async def test_create_post_with_tags_writes_one_audit_row(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)

    result = await api.query(CREATE_POST, {"input": _new_post(tags=["sql", "go"])}, viewer=author)

    assert result.errors is None
    log = models.AuditLog
    stmt = select(log.entity_type, log.action).where(log.entity_type != "User")
    assert [tuple(row) for row in (await db.execute(stmt)).all()] == [("Post", "CREATE")]


async def test_create_post_with_tags_takes_a_fixed_number_of_statements(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    author = await make_user(db)
    await make_tag(db, name="old")
    await api.token_for(author)

    with count_sql() as counted:
        result = await api.query(
            CREATE_POST, {"input": _new_post(tags=["old", "new"], published=True)}, viewer=author
        )

    assert result.errors is None
    assert result.data["createPost"]["tags"] == [{"name": "new"}, {"name": "old"}]
    # The viewer's token, the slugs taken, the post, its audit entry, the tags named, the new one
    # inserted and read back, the tag links; the payload's author and tags come from the rows
    # written. On MariaDB the slug also takes and gives back its turn (`writes._slug_turn`).
    assert counted.total == 8 + (2 if dialect == "mariadb" else 0)
