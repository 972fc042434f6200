"""OpenTelemetry tracing (GQL_BLOG_OTEL): a span per operation, a child span per SQL statement."""

import dataclasses

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gql_blog import tracing
from gql_blog.app import create_app
from gql_blog.config import Settings
from tests.conftest import StatementCounter

QUERY = "query Traced { posts { totalCount nodes { author { username } } } }"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


async def _spans_of_one_query(
    settings: Settings, exporter: InMemorySpanExporter
) -> tuple[ReadableSpan, ...]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, tracer_provider=provider)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post("/graphql", json={"query": QUERY})
    assert response.json()["data"]["posts"]["totalCount"] == 0
    return exporter.get_finished_spans()


async def test_each_operation_and_each_statement_gets_a_span(
    settings: Settings, exporter: InMemorySpanExporter, count_sql: StatementCounter
) -> None:
    traced = dataclasses.replace(settings, otel=True)

    with count_sql() as counted:
        spans = await _spans_of_one_query(traced, exporter)

    operations = [span for span in spans if span.name == "graphql query Traced"]
    assert len(operations) == 1
    assert operations[0].attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Traced",
    }
    statements = [span for span in spans if span.name.startswith("sql ")]
    assert len(statements) == counted.total > 0
    operation_id = operations[0].context.span_id if operations[0].context else None
    assert {span.parent.span_id if span.parent else None for span in statements} == {operation_id}
    assert all(span.attributes and span.attributes["db.statement"] for span in statements)


async def test_tracing_is_off_by_default(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    spans = await _spans_of_one_query(settings, exporter)

    assert spans == ()


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("SELECT posts.id FROM posts", "sql SELECT"),
        ("insert into comments (id) values (1)", "sql INSERT"),
        # MariaDB's nested pages run under statement-scoped optimizer settings.
        (
            "SET STATEMENT optimizer_switch='exists_to_in=off,derived_merge=off' FOR\n"
            "SELECT parents.parent_key FROM posts",
            "sql SELECT",
        ),
        ("SET time_zone = '+00:00'", "sql SET"),
        ("", "sql"),
    ],
)
def test_a_statements_span_is_named_by_its_verb(statement: str, name: str) -> None:
    assert tracing._span_name(statement) == name
