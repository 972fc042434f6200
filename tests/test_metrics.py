"""GET /metrics: Prometheus text with operations, latency, statements, errors and refusals."""

import dataclasses

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import metrics
from gql_blog.app import create_app
from gql_blog.config import Settings
from tests.conftest import StatementCounter
from tests.graphql_client import GraphQLClient, request_sessions, serve_app


async def _samples(api: GraphQLClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _sum(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The samples of `name` whose labels include `labels`, added up (whatever their others)."""
    wanted = frozenset(labels.items())
    return sum(value for (n, has), value in samples.items() if n == name and wanted <= has)


async def test_operations_are_counted_by_name_and_outcome(api: GraphQLClient) -> None:
    before = await _samples(api)

    for _ in range(2):
        assert (await api.query("query MetricsFeed { posts { totalCount } }")).errors is None
    broken = await api.query('query MetricsBroken { node(id: "nonsense") { id } }')
    assert broken.error_codes == ["BAD_USER_INPUT"]

    after = await _samples(api)
    name = "gql_blog_graphql_operations_total"
    feed = {"operation": "MetricsFeed", "outcome": "success"}
    assert _sum(after, name, **feed) - _sum(before, name, **feed) == 2
    failed = {"operation": "MetricsBroken", "outcome": "error"}
    assert _sum(after, name, **failed) - _sum(before, name, **failed) == 1
    errors = "gql_blog_graphql_errors_total"
    code = {"code": "BAD_USER_INPUT"}
    assert _value(after, errors, **code) - _value(before, errors, **code) == 1


@pytest.mark.parametrize("planner", [True, False])
async def test_operations_are_counted_by_the_path_that_answered_them(
    settings: Settings, connection: AsyncConnection, db: AsyncSession, planner: bool
) -> None:
    """The planner answers a read from its first request on (one door: the document is planned
    on first sight); with GQL_BLOG_PLANNER=false every read is the executor's."""
    app = create_app(
        dataclasses.replace(settings, planner=planner), sessions=request_sessions(connection)
    )
    async with serve_app(app, db) as api:
        before = await _samples(api)
        for _ in range(3):
            response = await api.query("query MetricsPaths { posts(first: 2) { totalCount } }")
            assert response.errors is None
        after = await _samples(api)

    name = "gql_blog_graphql_operations_total"
    paths = {
        path: _value(after, name, **labels) - _value(before, name, **labels)
        for path in ("planned", "executor")
        for labels in [{"operation": "MetricsPaths", "outcome": "success", "path": path}]
    }
    assert paths == ({"planned": 3, "executor": 0} if planner else {"planned": 0, "executor": 3})


async def test_parse_errors_are_counted_without_a_code(api: GraphQLClient) -> None:
    before = await _samples(api)

    await api.query("query MetricsTypo { posts {")

    after = await _samples(api)
    errors = "gql_blog_graphql_errors_total"
    assert _value(after, errors, code="NONE") - _value(before, errors, code="NONE") == 1


async def test_unknown_persisted_queries_are_counted_by_their_code(api: GraphQLClient) -> None:
    before = await _samples(api)

    unknown = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    body = {"operationName": "MetricsPersisted", "extensions": unknown}
    await api.http.post("/graphql", json=body)

    after = await _samples(api)
    errors = "gql_blog_graphql_errors_total"
    code = {"code": "PERSISTED_QUERY_NOT_FOUND"}
    assert _value(after, errors, **code) - _value(before, errors, **code) == 1
    name = "gql_blog_graphql_operations_total"
    failed = {"operation": "MetricsPersisted", "outcome": "error", "path": "executor"}
    assert _value(after, name, **failed) - _value(before, name, **failed) == 1


async def test_latency_and_statements_are_observed_per_operation(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    before = await _samples(api)

    with count_sql() as counted:
        assert (await api.query("query MetricsTimed { posts { totalCount } }")).errors is None

    after = await _samples(api)
    latency = "gql_blog_graphql_operation_duration_seconds_count"
    timed = {"operation": "MetricsTimed"}
    assert _value(after, latency, **timed) - _value(before, latency, **timed) == 1
    statements = "gql_blog_graphql_operation_sql_statements_sum"
    assert _value(after, statements) - _value(before, statements) == counted.total > 0


async def test_limit_refusals_are_exposed(api: GraphQLClient) -> None:
    before = await _samples(api)

    metrics.count_limit_refusal("depth")

    after = await _samples(api)
    name = "gql_blog_limit_refusals_total"
    assert _value(after, name, limit="depth") - _value(before, name, limit="depth") == 1


@pytest.mark.parametrize(
    ("name", "label"),
    [(None, "(anonymous)"), ("Feed", "Feed"), ("not a name", "(other)"), ("Late", "(other)")],
    ids=["anonymous", "named", "not-a-graphql-name", "beyond-the-limit"],
)
def test_operation_names_label_at_most_a_bounded_set(name: str | None, label: str) -> None:
    names = metrics.OperationNames(limit=2)
    names.label("First")
    names.label("Feed")

    assert names.label(name) == label
