"""Limits checked before any SQL: depth, aliases, tokens, cost and list arguments."""

import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
from graphql import get_introspection_query, parse
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from gql_blog.schema import schema
from gql_blog.schema.limits import alias_count, operation_cost, query_depth
from tests.conftest import StatementCounter
from tests.graphql_client import GraphQLClient, GraphQLResult, serve_api


def _refusal(result: GraphQLResult) -> dict[str, object]:
    assert result.data is None
    assert result.error_codes == ["QUERY_TOO_COMPLEX"]
    assert result.errors is not None
    return result.errors[0]


async def _refused_without_sql(
    api: GraphQLClient, count_sql: StatementCounter, query: str, variables: dict[str, object]
) -> dict[str, object]:
    with count_sql() as counted:
        result = await api.query(query, variables)
    assert counted.total == 0
    return _refusal(result)


@pytest.fixture
async def strict_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[GraphQLClient]:
    """The API with small limits, to show each one is configurable."""
    strict = dataclasses.replace(
        settings, max_query_depth=3, max_aliases=2, max_tokens=50, max_cost=30, max_node_ids=2
    )
    async with serve_api(strict, connection, db) as client:
        yield client


HOP = "posts(first: 1) { nodes { author { "  # three levels
DEPTH_12 = "{ " + HOP * 3 + "posts(first: 1) { nodes { id } }" + " } } }" * 3 + " }"
DEPTH_13 = "{ " + HOP * 4 + "id" + " } } }" * 4 + " }"


def test_depth_counts_field_levels_from_the_root() -> None:
    assert query_depth(parse(DEPTH_12)) == 12
    assert query_depth(parse(DEPTH_13)) == 13


def test_depth_inlines_fragments() -> None:
    query = "query { posts { ...P } } fragment P on PostConnection { nodes { author { id } } }"
    assert query_depth(parse(query)) == 4


async def test_query_at_the_depth_limit_runs(api: GraphQLClient) -> None:
    result = await api.query(DEPTH_12)
    assert result.errors is None


async def test_query_over_the_depth_limit_is_refused_naming_limit_and_value(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    error = await _refused_without_sql(api, count_sql, DEPTH_13, {})
    assert error["message"] == "The query's depth (13) exceeds the maximum of 12."


async def test_depth_through_fragments_is_refused(strict_api: GraphQLClient) -> None:
    query = "{ posts { ...P } } fragment P on PostConnection { nodes { author { id } } }"
    result = await strict_api.query(query)
    assert _refusal(result)["message"] == "The query's depth (4) exceeds the maximum of 3."


async def test_introspection_for_graphiql_passes_the_limits(api: GraphQLClient) -> None:
    result = await api.query(get_introspection_query(descriptions=True))
    assert result.errors is None
    assert result.data["__schema"]["queryType"]["name"] == "Query"


def _aliased(count: int) -> str:
    return "{ " + " ".join(f"a{index}: viewer {{ id }}" for index in range(count)) + " }"


async def test_thirty_aliases_run(api: GraphQLClient) -> None:
    result = await api.query(_aliased(30))
    assert result.errors is None


async def test_thirty_one_aliases_are_refused(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    error = await _refused_without_sql(api, count_sql, _aliased(31), {})
    assert error["message"] == "The query's aliases (31) exceeds the maximum of 30."


async def test_alias_bomb_through_fragments_is_refused_at_once(api: GraphQLClient) -> None:
    # Each fragment spreads the next twice: 2**40 aliases, counted without being expanded.
    levels = 40
    fragments = " ".join(
        f"fragment F{level} on Query {{ ...F{level + 1} ...F{level + 1} }}"
        for level in range(levels)
    )
    query = f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ a: viewer {{ id }} }}"
    assert alias_count(parse(query)) == 2**levels
    started = time.perf_counter()
    result = await api.query(query)
    assert time.perf_counter() - started < 5
    assert result.data is None
    assert result.errors is not None
    refused = {error["extensions"]["limit"]: error["extensions"] for error in result.errors}
    assert refused["aliases"]["value"] == 2**levels
    assert refused["fields"]["value"] == 2 ** (levels + 1)  # `a: viewer { id }`: two each


def _tokens(count: int) -> str:
    # "{", then `count - 2` field names, then "}": exactly `count` tokens.
    return "{ " + " ".join(["__typename"] * (count - 2)) + " }"


async def test_document_at_the_token_limit_runs(api: GraphQLClient) -> None:
    # 66 tokens of structure and 4,934 strings in five `in` lists (the most one takes is 1,000).
    items = ", ".join(
        "{ title: { in: [" + ", ".join(f'"t{index}"' for index in range(size)) + "] } }"
        for size in [987, 987, 987, 987, 986]
    )
    result = await api.query(f"{{ posts(where: {{ and: [{items}] }}) {{ totalCount }} }}")
    assert result.errors is None
    assert result.data == {"posts": {"totalCount": 0}}


async def test_document_over_the_token_limit_is_refused_with_its_count(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    error = await _refused_without_sql(api, count_sql, _tokens(5001), {})
    assert error["message"] == "The query's tokens (5001) exceeds the maximum of 5000."


async def test_huge_document_is_refused_without_counting_all_of_it(api: GraphQLClient) -> None:
    error = _refusal(await api.query(_tokens(50_000)))
    assert error["message"] == "The query's tokens (more than 10000) exceeds the maximum of 5000."


async def test_comments_count_as_the_parser_counts_them(api: GraphQLClient) -> None:
    # graphql-core's `max_tokens` counts comments too: the refusal reports that count.
    query = "{ __typename }\n" + "# a comment line\n" * 5_997
    error = _refusal(await api.query(query))
    assert error["message"] == "The query's tokens (6000) exceeds the maximum of 5000."


async def test_huge_integer_literal_is_bad_user_input(api: GraphQLClient) -> None:
    result = await api.query(f"{{ posts(first: {'9' * 5000}) {{ totalCount }} }}")
    assert result.data is None
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "integer literal is too long" in result.error_messages[0]


async def test_a_validation_that_gives_up_says_why(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    # 4,980 `__typename` selections: graphql-core's overlap check runs out of recursion.
    lifted = dataclasses.replace(settings, max_fields=10_000)
    async with serve_api(lifted, connection, db) as client:
        result = await client.query("{ " + "__typename " * 4980 + "}")
    error = _refusal(result)
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "limit": "validation"}
    assert "too large" in str(error["message"])


async def test_too_many_validation_errors_are_one_coded_refusal(api: GraphQLClient) -> None:
    result = await api.query("{ " + " ".join(f"missing{n}" for n in range(150)) + " }")
    assert result.errors is not None
    assert len(result.errors) == 101  # graphql-core's 100, then why it stopped
    last = result.errors[-1]
    assert last["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert last["message"] == (
        "The query's validation errors (more than 100) exceeds the maximum of 100."
    )


async def test_document_too_deep_to_parse_is_a_depth_refusal(api: GraphQLClient) -> None:
    query = "{ posts " * 600 + "}" * 600
    error = _refusal(await api.query(query))
    assert error["extensions"]["limit"] == "depth"  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "cost"),
    [
        ("{ viewer { id } }", 0),
        ("{ posts { totalCount } }", 20),
        ("{ posts(first: 5) { nodes { tags { name } } } }", 5 + 5 * 10),
        ("{ posts(last: 3) { edges { node { comments(first: 4) { totalCount } } } } }", 3 + 12),
        (
            "{ users(first: 2) { nodes { posts { nodes {"
            " comments(first: 5) { nodes { id } } } } } } }",
            2 + 40 + 200,
        ),
        ("{ a: posts(first: 1) { totalCount } b: posts(first: 2) { totalCount } }", 3),
        ("{ posts(first: 100000) { totalCount } }", 100),
        ("query($n: Int = 7) { posts(first: $n) { totalCount } }", 7),
        (
            "{ ...Q } fragment Q on Query"
            " { tags(first: 2) { nodes { posts(first: 3) { totalCount } } } }",
            2 + 6,
        ),
    ],
    ids=[
        "no-list",
        "default-page",
        "plain-list",
        "last-and-edges",
        "three-levels",
        "aliases",
        "page-capped",
        "variable-default",
        "fragment",
    ],
)
def test_cost_is_the_contracts_formula(query: str, cost: int) -> None:
    assert operation_cost(parse(query), None, None, Settings(), schema=schema._schema) == cost


def test_cost_reads_page_sizes_from_variables() -> None:
    document = parse("query($n: Int) { posts(first: $n) { nodes { tags { name } } } }")
    assert operation_cost(document, None, {"n": 4}, Settings(), schema=schema._schema) == 4 + 40


async def test_every_response_reports_its_cost(api: GraphQLClient) -> None:
    result = await api.query("{ posts(first: 3) { nodes { comments { totalCount } } } }")
    assert result.errors is None
    assert result.extensions == {"cost": 3 + 60}


async def test_query_over_the_cost_limit_is_refused_before_sql(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    query = (
        "query($n: Int!) { users(first: $n) { nodes { posts(first: $n) { nodes {"
        " comments(first: 10) { totalCount } } } } } }"
    )
    error = await _refused_without_sql(api, count_sql, query, {"n": 100})
    assert error["message"] == "The query's cost (110100) exceeds the maximum of 50000."


async def test_limits_follow_the_settings(strict_api: GraphQLClient) -> None:
    result = await strict_api.query("{ posts(first: 31) { totalCount } }")
    assert _refusal(result)["message"] == "The query's cost (31) exceeds the maximum of 30."


def _ids(count: int) -> list[str]:
    return [encode_global_id("Post", number) for number in range(1, count + 1)]


async def test_nodes_takes_at_most_the_maximum_ids(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    with count_sql() as counted:
        result = await api.query(query, {"ids": _ids(101)})
    assert counted.total == 0
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.error_messages == ["`nodes(ids:)` takes at most 100 ids (got 101)."]


async def test_nodes_with_the_maximum_ids_runs(api: GraphQLClient) -> None:
    result = await api.query("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": _ids(100)})
    assert result.errors is None
    assert result.data == {"nodes": [None] * 100}


async def test_import_posts_takes_at_most_the_maximum_items(api: GraphQLClient) -> None:
    query = "mutation($items: [CreatePostInput!]!) { importPosts(inputs: $items) { created } }"
    items = [{"title": f"t{number}", "content": "c"} for number in range(101)]
    result = await api.query(query, {"items": items})
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.error_messages == ["`importPosts(inputs:)` takes at most 100 items (got 101)."]


@pytest.mark.parametrize("operator", ["and", "or"])
async def test_logical_filter_lists_take_at_most_the_maximum_items(
    api: GraphQLClient, operator: str
) -> None:
    items = [{"title": {"eq": f"t{number}"}} for number in range(101)]
    where = {"not": {operator: items}}
    result = await api.query(
        "query($w: PostWhere) { posts(where: $w) { totalCount } }", {"w": where}
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.error_messages == ["An `and`/`or` filter list takes at most 100 items (got 101)."]


async def test_logical_filter_list_of_the_maximum_runs_on_every_database(
    api: GraphQLClient,
) -> None:
    items = [{"title": {"eq": f"t{number}"}} for number in range(100)]
    result = await api.query(
        "query($w: PostWhere) { posts(where: $w) { totalCount } }", {"w": {"or": items}}
    )
    assert result.errors is None
    assert result.data == {"posts": {"totalCount": 0}}


async def test_list_limits_follow_the_settings(strict_api: GraphQLClient) -> None:
    result = await strict_api.query(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": _ids(3)}
    )
    assert result.error_messages == ["`nodes(ids:)` takes at most 2 ids (got 3)."]


PLANNED = "query($n: Int!) { posts(first: $n) { nodes { title } } }"


async def test_planned_repeat_reports_its_cost(strict_api: GraphQLClient) -> None:
    await strict_api.query(PLANNED, {"n": 5})  # the planner plans the document
    result = await strict_api.query(PLANNED, {"n": 6})
    assert result.errors is None
    assert result.extensions == {"cost": 6}


async def test_planned_repeat_with_costlier_variables_is_refused(
    strict_api: GraphQLClient,
) -> None:
    await strict_api.query(PLANNED, {"n": 5})
    result = await strict_api.query(PLANNED, {"n": 31})
    assert _refusal(result)["message"] == "The query's cost (31) exceeds the maximum of 30."
