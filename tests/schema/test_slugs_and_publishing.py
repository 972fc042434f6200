"""Posts' slugs and publishing times (API.md, "Slugs" and "Publishing time"), through HTTP."""

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models, writes
from gql_blog.ids import decode_global_id
from tests.conftest import StatementCounter
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient

PAYLOAD = """
  __typename
  ... on Post { id title slug published publishedAt createdAt }
  ... on Error { message }
  ... on ValidationError { field }
  ... on ConflictError { conflictField: field }
"""
CREATE_POST = (
    f"""mutation($input: CreatePostInput!) {{ createPost(input: $input) {{ {PAYLOAD} }} }}"""
)
UPDATE_POST = f"""mutation($id: ID!, $input: UpdatePostInput!) {{
  updatePost(id: $id, input: $input) {{ {PAYLOAD} }} }}"""
PUBLISH_POST = f"""mutation($id: ID!) {{ publishPost(id: $id) {{ {PAYLOAD} }} }}"""
POST_BY_SLUG = """query($slug: String!) { postBySlug(slug: $slug) { title slug publishedAt } }"""
BY_PUBLISHING_TIME = """query($filter: PostWhere) {
  posts(where: $filter, orderBy: [{field: PUBLISHED_AT, direction: DESC}]) {
    nodes { slug publishedAt } } }"""


async def _create(api: GraphQLClient, viewer: models.User, **fields: Any) -> dict[str, Any]:
    result = await api.query(CREATE_POST, {"input": {"content": "Words.", **fields}}, viewer=viewer)
    assert result.errors is None
    post: dict[str, Any] = result.data["createPost"]
    assert post["__typename"] == "Post", post
    return post


async def _update(
    api: GraphQLClient, viewer: models.User, post_id: str, **changes: Any
) -> dict[str, Any]:
    result = await api.query(UPDATE_POST, {"id": post_id, "input": changes}, viewer=viewer)
    assert result.errors is None
    payload: dict[str, Any] = result.data["updatePost"]
    return payload


async def _audit_changes(db: AsyncSession, post_id: str) -> list[tuple[str, dict[str, Any]]]:
    _, row_id = decode_global_id(post_id)
    stmt = (
        select(models.AuditLog.action, models.AuditLog.changes)
        .where(models.AuditLog.entity_type == "Post", models.AuditLog.entity_id == row_id)
        .order_by(models.AuditLog.id)
    )
    return [(str(action), changes) for action, changes in (await db.execute(stmt)).all()]


async def test_new_posts_get_slugs_from_their_titles_unique_among_drafts_too(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    bob = await make_user(db)

    first = await _create(api, ada, title="Crème Brûlée: a Recipe!")
    draft = await _create(api, bob, title="crème brûlée — a recipe")
    third = await _create(api, ada, title="Crème brûlée, a recipe", published=True)
    symbols = await _create(api, ada, title="???")

    assert [post["slug"] for post in (first, draft, third, symbols)] == [
        "creme-brulee-a-recipe",
        "creme-brulee-a-recipe-2",
        "creme-brulee-a-recipe-3",
        "post",
    ]
    assert await _audit_changes(db, first["id"]) == [
        (
            "CREATE",
            {
                "title": "Crème Brûlée: a Recipe!",
                "content": "Words.",
                "published": False,
                "slug": "creme-brulee-a-recipe",
                "author": ada.id,
            },
        )
    ]


async def test_publishing_time_is_set_on_publishing_cleared_on_unpublishing_and_set_anew(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    published = await _create(api, ada, title="Out now", published=True)
    draft = await _create(api, ada, title="Later")

    assert published["publishedAt"] == published["createdAt"]
    assert draft["publishedAt"] is None
    result = await api.query(PUBLISH_POST, {"id": draft["id"]}, viewer=ada)
    first_time = result.data["publishPost"]["publishedAt"]
    assert first_time is not None
    assert first_time > draft["createdAt"]
    unpublished = await _update(api, ada, draft["id"], published=False)
    assert (unpublished["published"], unpublished["publishedAt"]) == (False, None)
    again = await _update(api, ada, draft["id"], published=True)
    assert again["publishedAt"] > first_time
    # Publishing a published post again keeps its time.
    result = await api.query(PUBLISH_POST, {"id": draft["id"]}, viewer=ada)
    assert result.data["publishPost"]["publishedAt"] == again["publishedAt"]


async def test_a_slug_stays_when_the_title_changes_and_may_be_set_explicitly(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    post = await _create(api, ada, title="First title")

    retitled = await _update(api, ada, post["id"], title="Second title")
    renamed = await _update(api, ada, post["id"], slug="my-own-slug-2026")
    kept = await _update(api, ada, post["id"], slug="my-own-slug-2026")

    assert retitled["slug"] == "first-title"
    assert (renamed["slug"], renamed["title"]) == ("my-own-slug-2026", "Second title")
    assert kept["slug"] == "my-own-slug-2026"
    assert (await _audit_changes(db, post["id"]))[1:] == [
        ("UPDATE", {"title": ["First title", "Second title"]}),
        ("UPDATE", {"slug": ["first-title", "my-own-slug-2026"]}),
    ]


async def test_an_explicit_slug_must_be_valid_and_free(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    other = await make_user(db)
    taken = await make_post(db, author=other, published=False, slug="taken")
    post = await _create(api, ada, title="Mine")

    refusals = [
        await _update(api, ada, post["id"], slug=slug)
        for slug in ["", "Upper", "two--dashes", "-edge", "edge-", "a b", "x" * 81, "é"]
    ]
    conflict = await _update(api, ada, post["id"], slug="taken", title="Changed")

    assert {(r["__typename"], r["field"]) for r in refusals} == {("ValidationError", "slug")}
    assert conflict["__typename"] == "ConflictError"
    assert conflict["conflictField"] == "slug"
    longest = await _update(api, ada, post["id"], slug="x" * 80)
    assert longest["slug"] == "x" * 80
    unchanged = await api.query(POST_BY_SLUG, {"slug": "x" * 80}, viewer=ada)
    assert unchanged.data["postBySlug"]["title"] == "Mine"  # the conflict changed nothing
    assert taken.slug == "taken"


async def test_post_by_slug_follows_the_visibility_of_post(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    admin = await make_user(db, is_admin=True)
    stranger = await make_user(db)
    await make_post(db, author=ada, title="Open", slug="open-post")
    await make_post(db, author=ada, title="Hidden", slug="hidden-post", published=False)

    def titles(result: Any) -> Any:
        found = result.data["postBySlug"]
        return None if found is None else found["title"]

    assert titles(await api.query(POST_BY_SLUG, {"slug": "open-post"})) == "Open"
    assert titles(await api.query(POST_BY_SLUG, {"slug": "hidden-post"})) is None
    assert titles(await api.query(POST_BY_SLUG, {"slug": "hidden-post"}, viewer=stranger)) is None
    assert titles(await api.query(POST_BY_SLUG, {"slug": "hidden-post"}, viewer=ada)) == "Hidden"
    assert titles(await api.query(POST_BY_SLUG, {"slug": "hidden-post"}, viewer=admin)) == "Hidden"
    # Compared exactly: no case folding, no prefix match, NUL is no error.
    for slug in ["Open-Post", "open", "open-post ", "open\x00post"]:
        assert titles(await api.query(POST_BY_SLUG, {"slug": slug})) is None


async def test_posts_order_and_filter_by_publishing_time(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    early, late = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
    await make_post(db, author=ada, slug="early", created_at=late, published_at=early)
    await make_post(db, author=ada, slug="late", created_at=early, published_at=late)
    await make_post(db, author=ada, slug="draft", published=False)

    everything = await api.query(BY_PUBLISHING_TIME, {"filter": None}, viewer=ada)
    after = await api.query(
        BY_PUBLISHING_TIME, {"filter": {"publishedAt": {"gt": "2024-03-01T00:00:00Z"}}}
    )
    drafts = await api.query(
        BY_PUBLISHING_TIME,
        {"filter": {"publishedAt": {"isNull": True}, "slug": {"endsWith": "aft"}}},
        viewer=ada,
    )

    # DESC puts nulls (drafts) first, as every ordering does.
    assert [node["slug"] for node in everything.data["posts"]["nodes"]] == [
        "draft",
        "late",
        "early",
    ]
    assert after.data["posts"]["nodes"] == [
        {"slug": "late", "publishedAt": "2024-06-01T00:00:00+00:00"}
    ]
    assert drafts.data["posts"]["nodes"] == [{"slug": "draft", "publishedAt": None}]


async def test_a_slug_taken_after_the_check_is_still_a_conflict(
    api: GraphQLClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = await make_user(db)
    await make_post(db, author=ada, slug="raced")
    post = await _create(api, ada, title="Mine")

    async def free(*args: Any, **kwargs: Any) -> bool:
        return False  # as if a concurrent writer committed it just after the check

    monkeypatch.setattr(writes, "slug_taken", free)
    conflict = await _update(api, ada, post["id"], slug="raced", title="Changed")

    assert (conflict["__typename"], conflict["conflictField"]) == ("ConflictError", "slug")
    again = await api.query(POST_BY_SLUG, {"slug": "mine"}, viewer=ada)
    assert again.data["postBySlug"]["title"] == "Mine"  # rolled back


async def test_posts_of_one_title_take_the_same_statements_each(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    ada = await make_user(db)
    await api.token_for(ada)
    counts = []

    for _ in range(60):
        with count_sql() as counted:
            post = await _create(api, ada, title="Same title")
        counts.append((counted.total, post["slug"]))

    assert [slug for _, slug in counts] == ["same-title"] + [
        f"same-title-{n}" for n in range(2, 61)
    ]
    # One read finds the next slug, whatever the number of posts that have the title already.
    assert {total for total, _ in counts[1:]} == {counts[1][0]}
    assert counts[0][0] == counts[1][0]


async def test_a_long_title_numbers_its_slugs_within_the_limit_past_nine(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)

    made = [(await _create(api, ada, title="x" * 90))["slug"] for _ in range(11)]

    assert made == [
        "x" * 80,
        *(f"{'x' * 78}-{n}" for n in range(2, 10)),
        f"{'x' * 77}-10",
        f"{'x' * 77}-11",
    ]


async def test_a_new_slug_numbers_on_from_the_highest_taken(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    for slug in ("hello", "hello-7", "hello-world", "hello-12a", "hello-0042", "hello-1-99"):
        await make_post(db, author=ada, slug=slug)
    await db.flush()

    numbered = await _create(api, ada, title="Hello")
    again = await _create(api, ada, title="Hello!")

    # A slug set by hand that looks like a number (`-0042`) or is another title's is not one.
    assert (numbered["slug"], again["slug"]) == ("hello-8", "hello-9")


async def test_a_number_set_by_hand_past_nine_digits_is_passed_over(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    for slug in ("hello", "hello-2", "hello-999999999", "hello-9999999999"):
        await make_post(db, author=ada, slug=slug)
    await db.flush()

    post = await _create(api, ada, title="Hello")

    # No title reaches the last nine-digit number: the first free slug is taken instead.
    assert post["slug"] == "hello-3"
