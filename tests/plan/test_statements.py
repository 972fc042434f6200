"""Planned statements are built once and reused: a later page runs the text of an earlier one.

A cursor's values are bind parameters, so page 5 of a connection sends the very statement page 2
sent (same SQL text: one prepared statement on PostgreSQL), and page 500 costs what page 2
costs. On PostgreSQL, nested pages walk each parent's index with LATERAL ... LIMIT, or, when
their arguments are the document's own, are read beside their parents as JSON.
"""

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import search, stats
from gql_blog.ids import encode_global_id
from tests.conftest import PlannedApi, StatementCounter
from tests.factories import make_post, make_user
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


SEARCH = """query($text: String!, $after: String) {
  searchPosts(query: $text, first: 2, after: $after) {
    edges { cursor node { title } } pageInfo { endCursor } } }"""


async def test_searches_of_any_text_and_page_send_the_same_statements(
    planned_api: PlannedApi,
    db: AsyncSession,
    count_sql: StatementCounter,
    dialect: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A search's text and cursor are parameters: its page statement is built and compiled
    once per shape, and serves every text (it cost more to build than to run)."""
    author = await make_user(db)
    for word in ("alpha", "beta"):
        for n in range(3):
            await make_post(db, author=author, title=f"{word} {n}", content=f"{word} words")
    client, planner = planned_api.client, planned_api.planner
    await client.query(SEARCH, {"text": "alpha", "after": None})  # teaches the planner
    built: list[bool] = []
    hits_statement = search.SearchQuery.hits_statement

    def counted_build(query: search.SearchQuery, request: Any, post: Any) -> Any:
        built.append(request.after is not None)
        return hits_statement(query, request, post)

    monkeypatch.setattr(search.SearchQuery, "hits_statement", counted_build)

    texts: dict[tuple[str, bool], list[str]] = {}
    found: dict[str, set[str]] = {"alpha": set(), "beta": set()}
    for text in ("alpha", "beta"):
        after = None
        for page in range(2):
            answered = planner.answered
            with count_sql() as counted:
                result = await client.query(SEARCH, {"text": text, "after": after})
            assert result.errors is None
            assert planner.answered == answered + 1, "the planner did not answer"
            texts.setdefault((text, page > 0), []).extend(counted.statements)
            connection = result.data["searchPosts"]
            found[text] |= {edge["node"]["title"] for edge in connection["edges"]}
            after = connection["pageInfo"]["endCursor"]

    # The token's user is not asked (anonymous): one statement per page.
    assert texts[("alpha", False)] == texts[("beta", False)]
    assert texts[("alpha", True)] == texts[("beta", True)]
    # Built at most once more: for the pages after a cursor (the first page's was built while
    # the planner learnt the document).
    assert built in ([True], []) if dialect == "mariadb" else built == [True]
    if dialect == "mariadb":
        return  # InnoDB's full-text index sees committed rows only: nothing found, no cursor
    assert texts[("alpha", False)] != texts[("alpha", True)]  # a cursor adds its condition
    assert found == {word: {f"{word} {n}" for n in range(3)} for word in found}


FILTERED_STATS = """query($published: Boolean!) {
  postStats(where: { published: { eq: $published } }) { count }
  postGroups(groupBy: [TAG], first: 5, where: { published: { eq: $published } }) { count } }"""


async def test_filtered_stats_and_groups_build_their_statements_once_per_filter(
    planned_api: PlannedApi, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter's values are literals of its statement: one statement per filter text, built
    once and reused (building cost more than running them)."""
    author = await make_user(db)
    for published in (True, True, False):
        await make_post(db, author=author, published=published)
    client, planner = planned_api.client, planned_api.planner
    await client.query(FILTERED_STATS, {"published": True})  # teaches the planner
    built: list[str] = []
    for name in ("post_stats_statement", "groups_statement"):
        monkeypatch.setattr(stats, name, _counting(getattr(stats, name), name, built))

    counts = []
    for published in (True, False, True, False):
        answered = planner.answered
        result = await client.query(FILTERED_STATS, {"published": published})
        assert result.errors is None
        assert planner.answered == answered + 1, "the planner did not answer"
        counts.append(result.data["postStats"]["count"])

    assert counts == [2, 0, 2, 0]  # an anonymous viewer sees no draft
    assert built == ["post_stats_statement", "groups_statement"]  # for the second filter only


def _counting(build: Any, name: str, built: list[str]) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(name)
        return build(*args, **kwargs)

    return counted
