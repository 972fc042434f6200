"""Statement budgets: every nested read costs a fixed number of statements, whatever the page size.

A budget is exact, and the same for 2 parents as for 100: one more parent never costs one more
statement. The data is shaped so no count depends on luck: comment authors include users who wrote
no post (so loading them is never free), every post has tags and comments, and drafts exist.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from gql_blog.loaders import Loaders
from gql_blog.ordering import Ordering
from gql_blog.read_model import MAX_BATCH, PageRequest
from gql_blog.serial_session import SerialSession
from tests.conftest import StatementCounter
from tests.factories import make_user
from tests.graphql_client import GraphQLClient

AUTHORS = 5
READERS = 3
TAGS = 6
TAGS_PER_POST = 2
COMMENTS_PER_POST = 3
DRAFTS = 5
START = datetime(2024, 1, 1, tzinfo=UTC)

BIG_QUERY = """
query($n: Int!) {
  posts(first: $n) {
    totalCount
    nodes {
      title
      author { username posts(first: 3) { totalCount nodes { title } } }
      tags { name posts(first: 2) { nodes { title } } }
      comments(first: 5) {
        totalCount
        nodes { content author { username } post { title } }
      }
    }
  }
}
"""
# The root page and its count, the authors, their post pages and counts, the tags, the tags' post
# pages, the comment pages and counts, the comment authors who are not post authors.
BIG_QUERY_STATEMENTS = 10


@pytest.fixture
def api(executor_api: GraphQLClient) -> GraphQLClient:
    """These are the budgets of strawberry's executor and its loaders (the planner's are in
    tests/plan/test_budgets.py)."""
    return executor_api


@dataclass(frozen=True, slots=True)
class Blog:
    authors: list[models.User]
    readers: list[models.User]
    tags: list[models.Tag]
    posts: list[models.Post]  # published, oldest first
    drafts: list[models.Post]
    comments: list[models.Comment]


async def build_blog(db: AsyncSession, *, posts: int) -> Blog:
    """Authors, readers who only comment, tags, `posts` published posts and a few drafts.

    Rows are added in bulk (one flush per table) so the 120-post data set stays quick to build.
    """
    authors = [_user(f"author{number}") for number in range(AUTHORS)]
    readers = [_user(f"reader{number}") for number in range(READERS)]
    tags = [models.Tag(name=f"topic{number}") for number in range(TAGS)]
    db.add_all([*authors, *readers, *tags])
    await db.flush()
    published = [_post(index, authors, published=True) for index in range(posts)]
    drafts = [_post(posts + index, authors, published=False) for index in range(DRAFTS)]
    everything = [*published, *drafts]
    db.add_all(everything)
    await db.flush()
    comments = [
        _comment(index, slot, post, author)
        for index, post in enumerate(everything)
        for slot, author in enumerate(_commenters(index, authors, readers))
    ]
    db.add_all(comments)
    await db.flush()
    links = [
        {"post_id": post.id, "tag_id": tags[(index + 2 * step) % TAGS].id}
        for index, post in enumerate(everything)
        for step in range(TAGS_PER_POST)
    ]
    await db.execute(insert(models.post_tags), links)
    return Blog(authors, readers, tags, published, drafts, comments)


def _user(username: str) -> models.User:
    return models.User(
        username=username, email=f"{username}@example.test", password_hash="not-a-real-hash"
    )


def _post(index: int, authors: list[models.User], *, published: bool) -> models.Post:
    return models.Post(
        title=f"Post {index:03}",
        content="Some words.",
        published=published,
        user_id=authors[index % AUTHORS].id,
        created_at=START + timedelta(minutes=index),
    )


def _commenters(
    index: int, authors: list[models.User], readers: list[models.User]
) -> list[models.User]:
    # Two readers (never post authors) and an author who did not write this post.
    return [
        readers[index % READERS],
        authors[(index + 1) % AUTHORS],
        readers[(index + 1) % READERS],
    ]


def _comment(index: int, slot: int, post: models.Post, author: models.User) -> models.Comment:
    return models.Comment(
        content=f"Comment {index}.{slot}",
        post_id=post.id,
        user_id=author.id,
        created_at=START + timedelta(minutes=index, seconds=slot + 1),
    )


async def _count(
    api: GraphQLClient,
    count_sql: StatementCounter,
    query: str,
    variables: dict[str, Any],
    *,
    viewer: models.User | None = None,
) -> tuple[int, Any]:
    """Statements one request runs, and its data (which must carry no errors)."""
    if viewer is not None:
        await api.token_for(viewer)
    with count_sql() as counted:
        result = await api.query(query, variables, viewer=viewer)
    assert result.errors is None
    return counted.total, result.data


async def _counts_for_sizes(
    api: GraphQLClient,
    count_sql: StatementCounter,
    query: str,
    sizes: list[int],
    variables: dict[str, Any] | None = None,
) -> list[int]:
    totals = []
    for size in sizes:
        total, _ = await _count(api, count_sql, query, {"n": size, **(variables or {})})
        totals.append(total)
    return totals


@pytest.mark.parametrize("size", [2, 20, 100], ids=["2-posts", "20-posts", "100-posts"])
async def test_big_nested_query_costs_the_same_for_any_page_size(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, size: int
) -> None:
    await build_blog(db, posts=120)

    total, data = await _count(api, count_sql, BIG_QUERY, {"n": size})

    assert total == BIG_QUERY_STATEMENTS
    assert data["posts"]["totalCount"] == 120
    nodes = data["posts"]["nodes"]
    assert [node["title"] for node in nodes] == [
        f"Post {index:03}" for index in range(119, 119 - size, -1)
    ]
    # Every level is filled on every page, so no loader is skipped for lack of rows.
    assert all(len(node["comments"]["nodes"]) == COMMENTS_PER_POST for node in nodes)
    assert all(len(node["tags"]) == TAGS_PER_POST for node in nodes)


async def test_big_nested_query_returns_every_level(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=120)

    _, data = await _count(api, count_sql, BIG_QUERY, {"n": 2})

    newest = data["posts"]["nodes"][0]
    assert newest["title"] == "Post 119"
    assert newest["author"]["username"] == "author4"
    assert newest["author"]["posts"]["totalCount"] == 120 // AUTHORS
    assert [post["title"] for post in newest["author"]["posts"]["nodes"]] == [
        "Post 119",
        "Post 114",
        "Post 109",
    ]
    assert [tag["name"] for tag in newest["tags"]] == ["topic1", "topic5"]
    assert [len(tag["posts"]["nodes"]) for tag in newest["tags"]] == [2, 2]
    comments = newest["comments"]
    assert comments["totalCount"] == COMMENTS_PER_POST
    assert [comment["content"] for comment in comments["nodes"]] == [
        "Comment 119.2",
        "Comment 119.1",
        "Comment 119.0",
    ]
    assert [comment["author"]["username"] for comment in comments["nodes"]] == [
        "reader0",
        "author0",
        "reader2",
    ]
    assert {comment["post"]["title"] for comment in comments["nodes"]} == {"Post 119"}


@pytest.mark.parametrize("role", ["reader", "author", "admin"])
async def test_signed_in_viewer_costs_one_more_statement(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, role: str
) -> None:
    blog = await build_blog(db, posts=120)
    viewer = {
        "reader": blog.readers[0],
        "author": blog.authors[0],
        "admin": await make_user(db, is_admin=True),
    }[role]

    total, _ = await _count(api, count_sql, BIG_QUERY, {"n": 20}, viewer=viewer)

    assert total == BIG_QUERY_STATEMENTS + 1


MIXED_AUTHORS_QUERY = """
query($n: Int!) {
  posts(first: $n) {
    nodes {
      author { username }
      comments(first: 5) { nodes { author { posts(first: 2) { totalCount nodes { title } } } } }
    }
  }
}
"""


@pytest.mark.parametrize("size", [2, 20, 100])
async def test_parents_known_already_batch_with_the_rest(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, size: int
) -> None:
    # Comment authors mix users loaded one level up (post authors) with readers loaded here;
    # the known ones must not resolve early and split their children's batch in two.
    await build_blog(db, posts=120)
    total, data = await _count(api, count_sql, MIXED_AUTHORS_QUERY, {"n": size})
    assert len(data["posts"]["nodes"]) == size
    # page, post authors, comment pages, comment authors, their post pages, their counts
    assert total == 6


async def test_viewer_costs_only_the_token_lookup(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    user = await make_user(db)

    total, data = await _count(api, count_sql, "{ viewer { username } }", {}, viewer=user)

    assert total == 1
    assert data == {"viewer": {"username": user.username}}


async def test_users_posts_comments_take_three_statements_for_any_page_size(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    query = """query($n: Int!) {
      users(first: $n) { nodes { posts { nodes { comments { nodes { content } } } } } } }"""

    assert await _counts_for_sizes(api, count_sql, query, [1, 4, 8]) == [3, 3, 3]


async def test_tags_posts_take_three_statements_with_counts_for_any_page_size(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    query = """query($n: Int!) {
      tags(first: $n) { nodes { name posts { totalCount nodes { title } } } } }"""

    assert await _counts_for_sizes(api, count_sql, query, [1, 6]) == [3, 3]


async def test_nodes_of_fifty_ids_of_three_types_take_three_statements(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    blog = await build_blog(db, posts=30)
    ids = (
        [encode_global_id("Post", post.id) for post in blog.posts[:25]]
        + [encode_global_id("Comment", comment.id) for comment in blog.comments[:17]]
        + [encode_global_id("User", user.id) for user in [*blog.authors, *blog.readers]]
    )
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"

    total, data = await _count(api, count_sql, query, {"ids": ids})

    assert len(ids) == 50
    assert total == 3
    assert [node["id"] for node in data["nodes"]] == ids


async def test_nested_last_before_returns_the_rows_just_before_the_cursor(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    cursor, titles = await _author0_post_cursor(api, position=4)
    query = """query($n: Int!, $cursor: String) { users(first: $n) { nodes { username
        posts(last: 2, before: $cursor) { nodes { title } } } } }"""

    total, data = await _count(api, count_sql, query, {"n": 8, "cursor": cursor})

    assert total == 2
    assert data["users"]["nodes"][0]["posts"]["nodes"] == [
        {"title": title} for title in titles[2:4]
    ]
    assert await _counts_for_sizes(api, count_sql, query, [1, 8], {"cursor": cursor}) == [2, 2]


async def test_nested_last_before_with_page_info_costs_one_probe(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    cursor, _ = await _author0_post_cursor(api, position=4)
    query = """query($n: Int!, $cursor: String) { users(first: $n) { nodes {
        posts(last: 2, before: $cursor) {
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { title } } } } }"""

    totals = await _counts_for_sizes(api, count_sql, query, [1, 8], {"cursor": cursor})
    _, data = await _count(api, count_sql, query, {"n": 1, "cursor": cursor})

    assert totals == [3, 3]  # the users, their pages, whether rows follow the cursor
    page_info = data["users"]["nodes"][0]["posts"]["pageInfo"]
    assert (page_info["hasNextPage"], page_info["hasPreviousPage"]) == (True, True)


async def test_nested_after_returns_the_rows_just_after_the_cursor(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    cursor, titles = await _author0_post_cursor(api, position=1)
    query = """query($n: Int!, $cursor: String) { users(first: $n) { nodes {
        posts(first: 2, after: $cursor) {
          pageInfo { hasPreviousPage hasNextPage } nodes { title } } } } }"""

    totals = await _counts_for_sizes(api, count_sql, query, [1, 8], {"cursor": cursor})
    _, data = await _count(api, count_sql, query, {"n": 1, "cursor": cursor})

    assert totals == [3, 3]  # the users, their pages, whether rows precede the cursor
    posts = data["users"]["nodes"][0]["posts"]
    assert posts["nodes"] == [{"title": title} for title in titles[2:4]]
    assert posts["pageInfo"] == {"hasPreviousPage": True, "hasNextPage": True}


async def test_nested_order_by_takes_two_statements_and_orders_each_page(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    query = """query($n: Int!) { users(first: $n) { nodes {
        posts(first: 3, orderBy: [{field: TITLE, direction: ASC}]) { nodes { title } } } } }"""

    totals = await _counts_for_sizes(api, count_sql, query, [1, 8])
    _, data = await _count(api, count_sql, query, {"n": 1})

    assert totals == [2, 2]
    assert data["users"]["nodes"][0]["posts"]["nodes"] == [
        {"title": "Post 000"},
        {"title": "Post 005"},
        {"title": "Post 010"},
    ]


async def test_nested_total_count_takes_one_grouped_statement(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    query = "query($n: Int!) { users(first: $n) { nodes { posts { totalCount nodes { id } } } } }"

    totals = await _counts_for_sizes(api, count_sql, query, [1, 8])
    _, data = await _count(api, count_sql, query, {"n": 8})

    assert totals == [3, 3]
    counts = [user["posts"]["totalCount"] for user in data["users"]["nodes"]]
    assert counts == [30 // AUTHORS] * AUTHORS + [0] * READERS


async def test_nested_page_info_without_cursors_costs_nothing_more(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    query = """query($n: Int!) { users(first: $n) { nodes {
        posts(first: 2) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } } }"""

    totals = await _counts_for_sizes(api, count_sql, query, [1, 8])
    _, data = await _count(api, count_sql, query, {"n": 1})

    assert totals == [2, 2]
    page_info = data["users"]["nodes"][0]["posts"]["pageInfo"]
    assert (page_info["hasNextPage"], page_info["hasPreviousPage"]) == (True, False)


# Each nested connection field: (root list, field on its nodes).
NESTED_FIELDS = {
    "User.posts": ("users", "posts"),
    "User.comments": ("users", "comments"),
    "Post.comments": ("posts", "comments"),
    "Tag.posts": ("tags", "posts"),
}
PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
# Each argument: (arguments, selection, statements). The root page and the nested pages are two;
# totalCount adds one GROUP BY, and a pageInfo side beyond a cursor adds one probe.
NESTED_ARGUMENTS = {
    "first": ("first: 2", "nodes { id }", 2),
    "after": ("first: 2, after: $cursor", "nodes { id }", 2),
    "last": ("last: 2", "nodes { id }", 2),
    "before": ("last: 2, before: $cursor", "nodes { id }", 2),
    "orderBy": ("orderBy: [{field: CREATED_AT, direction: ASC}]", "nodes { id }", 2),
    "totalCount": ("first: 2", "totalCount nodes { id }", 3),
    "edges": ("first: 2", "edges { cursor node { id } }", 2),
    "pageInfo": ("first: 2", PAGE_INFO, 2),
    "pageInfo-after": ("first: 2, after: $cursor", PAGE_INFO, 3),
    "pageInfo-before": ("last: 2, before: $cursor", PAGE_INFO, 3),
}


@pytest.mark.parametrize("field", list(NESTED_FIELDS))
@pytest.mark.parametrize("argument", list(NESTED_ARGUMENTS))
async def test_nested_connection_argument_has_a_fixed_budget(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, field: str, argument: str
) -> None:
    await build_blog(db, posts=15)
    root, child = NESTED_FIELDS[field]
    arguments, selection, expected = NESTED_ARGUMENTS[argument]
    variables: dict[str, Any] = {}
    declared = "$n: Int!"
    if "$cursor" in arguments:
        variables["cursor"] = await _second_child_cursor(api, root, child)
        declared += ", $cursor: String"
    nested = f"{child}({arguments}) {{ {selection} }}"
    query = f"query({declared}) {{ {root}(first: $n) {{ nodes {{ {nested} }} }} }}"

    totals = await _counts_for_sizes(api, count_sql, query, [1, 5], variables)
    _, data = await _count(api, count_sql, query, {"n": 5, **variables})

    assert totals == [expected, expected]
    assert any(_has_children(parent[child]) for parent in data[root]["nodes"])


async def test_child_pages_split_1500_parents_into_two_statements(
    db: AsyncSession, count_sql: StatementCounter
) -> None:
    blog = await build_blog(db, posts=10)
    parent_ids = _parent_ids_with_padding([author.id for author in blog.authors], total=1500)
    loaders = Loaders(SerialSession(db), viewer=None)
    request = PageRequest(ordering=Ordering.of("Post"), size=3)

    with count_sql() as counted:
        pages = await loaders.pages("User.posts", request).load_many(parent_ids)

    assert MAX_BATCH < 1500 <= 2 * MAX_BATCH
    assert counted.total == 2
    assert [len(page.rows) for page in pages[:AUTHORS]] == [10 // AUTHORS] * AUTHORS
    assert not any(page.rows for page in pages[AUTHORS:])


async def test_child_counts_split_1500_parents_into_two_statements(
    db: AsyncSession, count_sql: StatementCounter
) -> None:
    blog = await build_blog(db, posts=10)
    parent_ids = _parent_ids_with_padding([post.id for post in blog.posts], total=1500)
    loaders = Loaders(SerialSession(db), viewer=None)

    with count_sql() as counted:
        counts = await loaders.counts("Post.comments").load_many(parent_ids)

    assert counted.total == 2
    assert counts == [COMMENTS_PER_POST] * 10 + [0] * 1490


def _parent_ids_with_padding(real_ids: list[int], *, total: int) -> list[int]:
    """`real_ids` followed by ids no row has, `total` in all."""
    first_missing = max(real_ids) + 1_000_000
    return real_ids + list(range(first_missing, first_missing + total - len(real_ids)))


async def _author0_post_cursor(api: GraphQLClient, *, position: int) -> tuple[str, list[str]]:
    """The cursor of author0's post at `position` (0 = newest), and the titles of their posts."""
    result = await api.query(
        '{ user(username: "author0") { posts { edges { cursor node { title } } } } }'
    )
    assert result.errors is None
    edges = result.data["user"]["posts"]["edges"]
    return edges[position]["cursor"], [edge["node"]["title"] for edge in edges]


async def _second_child_cursor(api: GraphQLClient, root: str, child: str) -> str:
    result = await api.query(
        f"{{ {root}(first: 1) {{ nodes {{ {child}(first: 2) {{ edges {{ cursor }} }} }} }} }}"
    )
    assert result.errors is None
    edges = result.data[root]["nodes"][0][child]["edges"]
    assert len(edges) == 2
    return str(edges[1]["cursor"])


def _has_children(connection: dict[str, Any]) -> bool:
    """Whether a nested connection's page holds any row, whichever fields were selected."""
    if "pageInfo" in connection:
        return connection["pageInfo"]["startCursor"] is not None
    return bool(connection.get("nodes") or connection.get("edges"))
