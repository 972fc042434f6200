"""One door: every operation is parsed, validated, priced and planned once, in one cache entry.

The first request of a new document is the planner's (no run on strawberry's executor first);
its document is parsed once however often, and however (POST, GET, batched), it is sent; a plan
the planner declines runs on the executor from the same entry; hostile documents are refused by
the limits before any planning work; and the one cache holds to its bound in bytes.
"""

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from graphql.language.parser import Parser
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import persisted_queries
from gql_blog.app import GraphQLApp, create_app
from gql_blog.config import Settings
from gql_blog.plan import build
from gql_blog.schema import limits
from tests.conftest import graphql_endpoint
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, request_sessions, serve_app

FEED = "query DoorFeed($n: Int) { posts(first: $n) { nodes { title author { username } } } }"
# Introspection stays strawberry's: the planner declines it.
INTROSPECTION = "query DoorSchema { __schema { queryType { name } } }"


@dataclass(slots=True)
class Door:
    client: GraphQLClient
    graphql: GraphQLApp
    calls: dict[str, int]

    async def post(self, body: object) -> Any:
        response = await self.client.http.post("/graphql", json=body)
        assert response.status_code == 200, response.text
        return response.json()


def _counting(calls: dict[str, int], name: str, function: Callable[..., Any]) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] = calls.get(name, 0) + 1
        return function(*args, **kwargs)

    return counted


@pytest.fixture
async def door(
    settings: Settings,
    connection: AsyncConnection,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Door]:
    """The planner's app, counting parses, validations, pricings and plans built."""
    calls: dict[str, int] = {}
    monkeypatch.setattr(Parser, "parse_document", _counting(calls, "parse", Parser.parse_document))
    monkeypatch.setattr(
        limits, "validate_document", _counting(calls, "validate", limits.validate_document)
    )
    monkeypatch.setattr(
        limits, "request_limit_errors", _counting(calls, "price", limits.request_limit_errors)
    )
    monkeypatch.setattr(
        build.PlanBuilder, "build", _counting(calls, "plan", build.PlanBuilder.build)
    )
    app = create_app(
        dataclasses.replace(settings, planner=True), sessions=request_sessions(connection)
    )
    ann = await make_user(db, username="ann")
    await make_post(db, author=ann, title="Hello")
    async with serve_app(app, db) as client:
        yield Door(client, graphql_endpoint(app), calls)


async def test_the_first_request_of_a_new_document_is_planned(door: Door) -> None:
    planner = door.graphql.planner

    body = await door.post({"query": FEED, "variables": {"n": 1}})

    assert planner.answered == 1  # no first run on strawberry's executor
    assert body["data"] == {"posts": {"nodes": [{"title": "Hello", "author": {"username": "ann"}}]}}
    assert body["extensions"]["cost"] > 0


async def test_a_document_is_parsed_validated_and_planned_once_for_many_requests(
    door: Door,
) -> None:
    planner = door.graphql.planner
    for _ in range(3):
        await door.post({"query": FEED, "variables": {"n": 1}})
    await door.post({"query": FEED, "variables": {"n": 2}})  # priced anew, same plan
    response = await door.client.http.get(
        "/graphql", params={"query": FEED, "variables": orjson.dumps({"n": 1}).decode()}
    )
    assert response.status_code == 200, response.text
    batch = [{"query": FEED, "variables": {"n": 1}}, {"query": FEED, "variables": {"n": 2}}]
    answers = await door.post(batch)

    assert planner.answered == 7
    assert [answer["data"] for answer in answers] == [response.json()["data"]] * 2
    # One parse, one validation and one plan for the document; one price per variables.
    assert door.calls == {"parse": 1, "validate": 1, "plan": 1, "price": 2}


async def test_a_declined_document_runs_on_the_executor_from_the_same_entry(door: Door) -> None:
    planner = door.graphql.planner
    for _ in range(3):
        body = await door.post({"query": INTROSPECTION})
        assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
        assert body["extensions"]["cost"] == 0

    assert planner.answered == 0
    # Neither the planner's decline nor strawberry's executor parses or validates it again.
    assert door.calls["parse"] == 1
    assert door.calls["validate"] == 1
    assert door.calls["price"] == 1


async def test_the_one_cache_entry_holds_parse_prices_and_plans(door: Door) -> None:
    await door.post({"query": FEED, "variables": {"n": 1}})

    entry = door.graphql.documents.get(FEED)
    assert entry is not None
    assert entry.errors == ()
    assert list(entry.plans) == [None]  # the one operation, asked without its name
    assert len(entry.costs) == 1
    # No other cache of documents: not the planner's, not the app's prices.
    assert not hasattr(door.graphql.planner, "_documents")
    assert not hasattr(door.graphql, "_costs")


async def test_hostile_documents_are_refused_before_any_planning_work(door: Door) -> None:
    # Fragments nested in fragments, 40 levels deep, each spread twice in its parent.
    levels = 40
    spread = "posts { nodes { author { ...F%d a: id } } } again: posts { nodes { ...G%d } }"
    chain = " ".join(
        f"fragment F{n} on User {{ {spread % (n + 1, n)} }} fragment G{n} on Post {{ id }}"
        for n in range(levels)
    )
    nested = f"{{ viewer {{ ...F0 }} }} {chain} fragment F{levels} on User {{ id }}"
    deep = "{ " + "posts { nodes { author { " * 8 + "id" + " } } }" * 8 + " }"
    expensive = "{ users(first: 100) { nodes { posts(first: 100) { nodes {"
    expensive += " comments(first: 100) { nodes { id } } } } } } }"
    for query in [nested, deep, expensive]:
        body = await door.post({"query": query})
        codes = {error.get("extensions", {}).get("code") for error in body["errors"]}
        assert codes == {"QUERY_TOO_COMPLEX"}, body

    assert door.calls.get("plan", 0) == 0
    assert door.graphql.planner.answered == 0
    assert door.calls["parse"] == 3


async def test_a_persisted_query_is_resolved_once(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved: list[object] = []
    resolve = persisted_queries.PersistedQueries.resolve

    async def counted(self: persisted_queries.PersistedQueries, data: Any) -> Any:
        resolved.append(data)
        return await resolve(self, data)

    monkeypatch.setattr(persisted_queries.PersistedQueries, "resolve", counted)
    digest = persisted_queries.sha256_hex(INTROSPECTION)
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    await door.post({"query": INTROSPECTION, "extensions": extensions})
    resolved.clear()

    await door.post({"extensions": extensions})  # by its hash alone, declined by the planner
    await door.post({"query": INTROSPECTION})  # a plain POST, declined by the planner

    assert len(resolved) == 2


async def test_the_one_cache_holds_to_its_bound_in_bytes(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    limit = 256 * 1024
    bounded = dataclasses.replace(settings, planner=True, document_cache_bytes=limit)
    app = create_app(bounded, sessions=request_sessions(connection))
    graphql = graphql_endpoint(app)
    async with serve_app(app, db) as client:
        for index in range(200):  # distinct planned documents, more than the cache holds
            aliases = " ".join(f"t{index}_{alias}: title" for alias in range(20))
            result = await client.query(f"{{ posts(first: 1) {{ nodes {{ {aliases} }} }} }}")
            assert result.errors is None

    assert graphql.planner.answered == 200
    assert graphql.documents.bytes <= limit
    assert 0 < len(graphql.documents) < 200
