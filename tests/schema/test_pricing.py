"""A cost model that prices what the database does (issue 19, point 2): counts, filters that no
index serves, relation filters and their nesting, stats, groups and search are priced by the
rows they may read, from the tables' row counts; relation filters nest at most
GQL_BLOG_MAX_RELATION_FILTER_DEPTH deep.
"""

from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import parse

from gql_blog.config import Settings
from gql_blog.row_counts import RowCounts
from gql_blog.schema import schema
from gql_blog.schema.limits import operation_cost
from tests.conftest import StatementCounter
from tests.databases import DIALECTS
from tests.graphql_client import GraphQLClient
from tests.scans import ALIASES, POSTS, Served, scan, serve_seeded

# The issue's database: 2,000 users, 40,000 posts, 120,000 comments (and 40 tags on them).
ISSUE_ROWS = RowCounts(
    {"users": 2_000, "posts": 40_000, "comments": 120_000, "tags": 40, "post_tags": 80_000}
)
INSENSITIVE = '{content: {contains: "x", mode: INSENSITIVE}}'


@pytest.mark.parametrize(
    ("query", "cost"),
    [
        ("{ posts(first: 0) { totalCount } }", 400),
        (f"{{ posts(first: 0, where: {INSENSITIVE}) {{ totalCount }} }}", 40_000),
        (f"{{ posts(first: 5, where: {INSENSITIVE}) {{ nodes {{ id }} }} }}", 5 + 40_000),
        ('{ posts(first: 10, where: {title: {eq: "x"}}) { nodes { id } } }', 10 + 400),
        ("{ users(first: 10) { nodes { posts(first: 5) { totalCount } } } }", 10 + 10 * 5 + 2),
        (
            '{ posts(first: 0, where: {comments: {some: {content: {eq: "x"}}}}) { totalCount } }',
            400 + 12_000 + 1_200,  # posts tested, comments probed, comments tested
        ),
        (
            '{ posts(first: 0, where: {author: {username: {eq: "x"}}}) { totalCount } }',
            400 + 4_000 + 400,  # posts tested, one author probed and tested per post
        ),
        (
            f'{{ posts(first: 5, where: {{id: {{in: ["UG9zdDox", "UG9zdDoy"]}},'
            f" {INSENSITIVE[1:-1]}}}) {{ totalCount nodes {{ id }} }} }}",
            5 + 2 * 2,  # two ids: two rows tested, for the page and for the count
        ),
        ("{ postStats { count } }", 400),
        ('{ userStats(where: {fullName: {contains: "a"}}) { count } }', 2_000),
        ("{ postGroups(groupBy: [TAG]) { count } }", 10 + 400 + 800),
        ('{ searchPosts(query: "jazz", first: 10) { nodes { id } } }', 10 + 4_000),
    ],
    ids=[
        "total-count",
        "insensitive-count",
        "insensitive-page",
        "plain-filter-page",
        "nested-counts",
        "to-many-relation",
        "to-one-relation",
        "indexed-ids",
        "stats",
        "stats-pattern",
        "groups-by-tag",
        "search",
    ],
)
def test_cost_prices_the_rows_the_database_may_read(query: str, cost: int) -> None:
    assert (
        operation_cost(
            parse(query), None, None, Settings(), schema=schema._schema, counts=ISSUE_ROWS
        )
        == cost
    )


def test_nested_relation_filters_multiply_their_fanouts() -> None:
    def cost(where: str) -> int:
        query = f"{{ posts(first: 0, where: {where}) {{ totalCount }} }}"
        return operation_cost(
            parse(query), None, None, Settings(), schema=schema._schema, counts=ISSUE_ROWS
        )

    one = cost('{comments: {some: {content: {eq: "x"}}}}')
    two = cost('{comments: {some: {author: {username: {eq: "x"}}}}}')
    three = cost('{comments: {some: {author: {posts: {every: {title: {contains: "x"}}}}}}}')
    assert one < two < three
    # Every comment's author's 20 posts, each tested by a substring: 2.4 million rows.
    assert three > 2_400_000


def test_without_row_counts_only_the_rows_returned_are_priced() -> None:
    query = f"{{ posts(first: 5, where: {INSENSITIVE}) {{ totalCount nodes {{ id }} }} }}"
    assert operation_cost(parse(query), None, None, Settings(), schema=schema._schema) == 5


def test_the_issues_scan_is_over_the_default_cost_limit() -> None:
    cost = operation_cost(
        parse(scan()), None, None, Settings(), schema=schema._schema, counts=ISSUE_ROWS
    )
    assert cost == ALIASES * 40_000
    assert cost > Settings().max_cost


# -- Relation filters nest at most GQL_BLOG_MAX_RELATION_FILTER_DEPTH deep -----------------------

FOUR_DEEP = (
    '{comments: {some: {author: {posts: {every: {comments: {some: {content: {eq: "x"}}}}}}}}}'
)


async def test_relation_filters_nested_too_deep_are_bad_user_input_before_sql(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    with count_sql() as counted:
        result = await api.query(f"{{ posts(where: {FOUR_DEEP}) {{ nodes {{ id }} }} }}")
    assert counted.total == 0
    assert result.data is None
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.error_messages == [
        "where.comments.some.author.posts.every.comments.some: relation filters nest at most 3"
        " deep (GQL_BLOG_MAX_RELATION_FILTER_DEPTH); this one nests 4."
    ]


async def test_relation_depth_is_checked_in_variables_too(api: GraphQLClient) -> None:
    where = {"posts": {"some": {"comments": {"some": {"post": {"author": {"id": {"eq": "1"}}}}}}}}
    result = await api.query(
        "query($w: UserWhere) { users(where: $w) { totalCount } }", {"w": where}
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "this one nests 4" in result.error_messages[0]


def _deepest_allowed(quantifier: str, nots_at: set[int]) -> dict[str, object]:
    """Three relation filters and `not`s, ten levels in all (the default filter depth)."""
    hops = iter([("comments", True), ("author", False), ("posts", True)])
    levels: list[tuple[str, bool]] = []
    for level in range(9):
        hop = None if level in nots_at else next(hops, None)
        levels.append(hop or ("not", False))
    where: dict[str, object] = {"createdAt": {"isNull": False}}
    for key, to_many in reversed(levels):
        where = {key: {quantifier: where}} if to_many else {key: where}
    return where


@pytest.mark.parametrize("quantifier", ["some", "none", "every"])
@pytest.mark.parametrize(
    "nots_at", [set(), {0}, {0, 2, 4, 6}], ids=["hops-first", "not-1", "mixed"]
)
async def test_the_deepest_allowed_filter_runs_on_every_database(
    api: GraphQLClient, quantifier: str, nots_at: set[int]
) -> None:
    where = _deepest_allowed(quantifier, nots_at)
    result = await api.query(
        "query($w: PostWhere) { posts(where: $w) { totalCount nodes { id } } }", {"w": where}
    )
    assert result.errors is None
    assert result.data == {"posts": {"totalCount": 0, "nodes": []}}


# -- A served worker prices by the rows of its database ------------------------------------------


@pytest.fixture(scope="module", params=DIALECTS)
async def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    """`gql-blog serve` with the default cost limit, on POSTS posts."""
    tmp_dir = tmp_path_factory.mktemp("pricing")
    async with serve_seeded(
        str(request.param), tmp_dir, {"GQL_BLOG_MAX_COST": str(Settings().max_cost)}
    ) as served:
        yield served


async def _post(served: Served, query: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
        return await http.post("/graphql", json={"query": query})


async def test_served_cost_counts_the_databases_rows(served: Served) -> None:
    response = await _post(served, "{ posts(first: 0) { totalCount } }")
    body = response.json()
    assert body["data"] == {"posts": {"totalCount": POSTS}}
    assert body["extensions"]["cost"] == POSTS // 100  # 0.01 per row counted


async def test_served_scan_of_the_issue_is_refused_before_sql(served: Served) -> None:
    response = await _post(served, scan())
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["limit"] == "cost"
    assert error["extensions"]["value"] == ALIASES * POSTS


async def test_served_single_scan_is_priced_within_the_limit_and_answers(served: Served) -> None:
    response = await _post(served, f"{{ posts(first: 0, where: {INSENSITIVE}) {{ totalCount }} }}")
    body = response.json()
    assert response.status_code == 200, response.text
    assert body["data"] == {"posts": {"totalCount": 0}}
    assert body["extensions"]["cost"] == POSTS
