"""Planned statement budgets: a planned request's statement count depends on its shape alone.

The planner runs a level's statements only once all of that level's keys are known, so 2, 8 or
24 root rows cost the same, and a nested `totalCount` is one GROUP BY, never split in two.
Each count is taken around the second request of a document: the one the planner answers.
"""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import PlannedApi, StatementCounter
from tests.schema.test_budgets import BIG_QUERY, BIG_QUERY_STATEMENTS, build_blog

FEED = """query($n: Int!) { posts(first: $n) { nodes { id title author { username } tags { name }
  comments(first: 5) { nodes { content author { username } } } } } }"""
# The page (its authors read beside it), its tags, the comment pages (their authors beside them);
# on PostgreSQL, the tags and the comment pages are read beside the page too.
FEED_STATEMENTS = {"postgresql": 1, "other": 3}
NESTED_COUNTS = """query($n: Int!) { posts(first: $n) { totalCount nodes { title
  author { username }
  comments(first: 5) { totalCount nodes { content author { username } } } } } }"""
# The page (authors beside it) and its count, the comment pages (authors beside them) and their
# counts; on PostgreSQL, the comment pages and their counts are read beside the page.
NESTED_COUNTS_STATEMENTS = {"postgresql": 2, "other": 4}
# The executor's statements but two: the planner reads each level's authors beside their rows;
# on PostgreSQL, the posts' tags and comment pages (and their counts) beside the posts too.
PLANNED_BIG_QUERY_STATEMENTS = {
    "postgresql": BIG_QUERY_STATEMENTS - 5,
    "other": BIG_QUERY_STATEMENTS - 2,
}
SIZES = [2, 8, 24]

QUERIES = {
    "feed": (FEED, FEED_STATEMENTS),
    "nested-total-counts": (NESTED_COUNTS, NESTED_COUNTS_STATEMENTS),
    "three-level-total-counts": (BIG_QUERY, PLANNED_BIG_QUERY_STATEMENTS),
}


@pytest.mark.parametrize("name", list(QUERIES))
async def test_planned_statements_are_the_same_for_any_page_size(
    planned_api: PlannedApi,
    db: AsyncSession,
    count_sql: StatementCounter,
    name: str,
    dialect: str,
) -> None:
    client, planner = planned_api.client, planned_api.planner
    query, budgets = QUERIES[name]
    expected = budgets.get(dialect, budgets["other"])
    await build_blog(db, posts=30)

    totals = []
    for size in SIZES:
        await client.query(query, {"n": size})  # taught, or planned already
        answered = planner.answered
        with count_sql() as counted:
            result = await client.query(query, {"n": size})
        assert result.errors is None
        assert len(result.data["posts"]["nodes"]) == size
        assert planner.answered == answered + 1, "the planner did not answer"
        totals.append(counted.total)

    assert totals == [expected] * len(SIZES)
