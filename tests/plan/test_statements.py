"""Planned statements are built once and reused: a later page runs the text of an earlier one.

A cursor's values are bind parameters, so page 5 of a connection sends the very statement page 2
sent (same SQL text: one prepared statement on PostgreSQL), and page 500 costs what page 2
costs. On PostgreSQL, nested pages walk each parent's index with LATERAL ... LIMIT, or, when
their arguments are the document's own, are read beside their parents as JSON.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog.ids import encode_global_id
from tests.conftest import PlannedApi, StatementCounter
from tests.schema.test_budgets import build_blog

PAGES = """query($after: String, $comments: Int = 2) { posts(first: 3, after: $after) {
  edges { cursor node { id title comments(first: $comments) { nodes { id } } } }
  pageInfo { endCursor hasNextPage } } }"""
# The comment pages' size as the document's own: on PostgreSQL, read beside the posts.
EMBEDDED_PAGES = PAGES.replace("$comments: Int = 2", "").replace("$comments", "2")


async def _planned_page(
    planned_api: PlannedApi, count_sql: StatementCounter, after: str | None, query: str = PAGES
) -> tuple[list[str], str]:
    client, planner = planned_api.client, planned_api.planner
    answered = planner.answered
    with count_sql() as counted:
        result = await client.query(query, {"after": after})
    assert result.errors is None
    assert planner.answered == answered + 1, "the planner did not answer"
    return counted.statements, result.data["posts"]["pageInfo"]["endCursor"]


async def test_later_pages_send_the_same_statements(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await build_blog(db, posts=30)
    await planned_api.client.query(PAGES, {"after": None})  # teaches the planner the document

    first_statements, cursor = await _planned_page(planned_api, count_sql, None)
    texts_by_page = []
    for _ in range(4):
        statements, cursor = await _planned_page(planned_api, count_sql, cursor)
        texts_by_page.append(statements)

    assert len(first_statements) == 2  # the page, the comment pages
    assert all(texts == texts_by_page[0] for texts in texts_by_page)
    assert texts_by_page[0] != first_statements  # a cursor adds its keyset condition


async def test_nested_pages_walk_each_parent(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    """LATERAL on PostgreSQL, a correlated `IN (... LIMIT n + 1)` per parent on SQLite, a
    correlated `LIMIT n, 1` bound per parent on MariaDB: no ROW_NUMBER() over every child of
    every parent."""
    await build_blog(db, posts=6)
    with count_sql() as first:  # strawberry's executor answers a document's first run
        await planned_api.client.query(PAGES, {"after": None})

    statements, _ = await _planned_page(planned_api, count_sql, None)

    nested = " ".join(statements[1].upper().split())
    ranked = "ROW_NUMBER() OVER (PARTITION BY" in nested
    if dialect == "postgresql":
        assert "LATERAL" in nested
    elif dialect == "sqlite":
        assert "COMMENTS.ID IN (SELECT COMMENTS.ID" in nested
        assert "LIMIT" in nested
    else:
        assert ") AS BOUND_ID" in nested
        assert "ORDER BY COMMENTS.CREATED_AT DESC, COMMENTS.ID DESC LIMIT" in nested
    assert not ranked
    # The executor's loader (loaders.ChildPages) runs the same builder: the same variant.
    executor = [" ".join(s.upper().split()) for s in first.statements]
    walked = [s for s in executor if "COMMENTS.ID IN (SELECT COMMENTS.ID" in s]
    ranking = [s for s in executor if "ROW_NUMBER() OVER (PARTITION BY" in s]
    lateral = [s for s in executor if " LATERAL " in s]
    bounded = [s for s in executor if ") AS BOUND_ID" in s]
    expected = {"sqlite": (1, 0, 0, 0), "postgresql": (0, 0, 1, 0), "mariadb": (0, 0, 0, 1)}
    assert (len(walked), len(ranking), len(lateral), len(bounded)) == expected[dialect]


NODES = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
  ... on Post { title author { username } } ... on Tag { name } ... on User { username } } }"""


async def test_nodes_are_planned_with_one_statement_per_type(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter
) -> None:
    blog = await build_blog(db, posts=4)
    posts, tag, draft = blog.posts[:2], blog.tags[0], blog.drafts[0]
    ids = [
        encode_global_id("Post", posts[0].id),
        encode_global_id("Tag", tag.id),
        encode_global_id("Post", posts[1].id),
        encode_global_id("Post", draft.id),  # hidden from the anonymous client: null
        encode_global_id("User", 10**9),  # no such user: null
    ]
    client, planner = planned_api.client, planned_api.planner
    await client.query(NODES, {"ids": ids})  # teaches the planner the document

    answered = planner.answered
    with count_sql() as counted:
        result = await client.query(NODES, {"ids": ids})

    assert result.errors is None
    assert planner.answered == answered + 1, "the planner did not answer"
    nodes = result.data["nodes"]
    assert [node and node["__typename"] for node in nodes] == ["Post", "Tag", "Post", None, None]
    assert nodes[1] == {"__typename": "Tag", "id": ids[1], "name": tag.name}
    assert nodes[0]["title"] == posts[0].title
    assert counted.total == 3  # the posts (their authors beside them), the tag, the user


async def test_pages_of_the_documents_own_size_are_read_beside_their_parents_on_postgresql(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    """`comments(first: 2)` under each post: on PostgreSQL each post's page comes as JSON in the
    posts' own statement; the answer is the one the pages run by a statement of their own give."""
    await build_blog(db, posts=6)
    client = planned_api.client
    await client.query(EMBEDDED_PAGES, {"after": None})  # planned on first sight

    statements, cursor = await _planned_page(planned_api, count_sql, None, EMBEDDED_PAGES)
    later, _ = await _planned_page(planned_api, count_sql, cursor, EMBEDDED_PAGES)

    for after in (None, cursor):
        beside = await client.query(EMBEDDED_PAGES, {"after": after})
        apart = await client.query(PAGES, {"after": after})
        assert beside.errors is None
        assert beside.data == apart.data
    if dialect != "postgresql":
        assert len(statements) == len(later) == 2  # the page, the comment pages
        return
    assert len(statements) == len(later) == 1
    page = " ".join(statements[0].upper().split())
    assert "JSON_AGG" in page
    assert "LIMIT" in page
    assert "ROW_NUMBER() OVER (PARTITION BY" not in page
