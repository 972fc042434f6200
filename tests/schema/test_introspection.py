"""GQL_BLOG_INTROSPECTION=false: no introspection, and no "Did you mean …" in any error."""

import dataclasses
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog.config import Settings
from tests.graphql_client import GraphQLClient, serve_api

TYPO_FIELD = "{ postz { totalCount } }"
TYPO_ENUM = "query($o: [PostOrder!]) { posts(orderBy: $o) { totalCount } }"
TYPO_ENUM_VARIABLES = {"o": [{"field": "TITEL"}]}


@pytest.fixture
async def closed_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[GraphQLClient]:
    closed = dataclasses.replace(settings, introspection=False)
    async with serve_api(closed, connection, db) as client:
        yield client


@pytest.mark.parametrize(
    "query", ["{ __schema { queryType { name } } }", '{ __type(name: "Post") { name } }']
)
async def test_introspection_is_refused_when_off(closed_api: GraphQLClient, query: str) -> None:
    result = await closed_api.query(query)
    assert result.data is None
    assert "introspection" in result.error_messages[0]


async def test_typename_still_answers_when_introspection_is_off(closed_api: GraphQLClient) -> None:
    result = await closed_api.query("{ __typename }")
    assert result.errors is None
    assert result.data == {"__typename": "Query"}


async def test_introspection_is_on_by_default(api: GraphQLClient) -> None:
    result = await api.query("{ __schema { queryType { name } } }")
    assert result.errors is None


@pytest.mark.parametrize(
    ("query", "variables"),
    [(TYPO_FIELD, {}), (TYPO_ENUM, TYPO_ENUM_VARIABLES)],
    ids=["validation", "variables"],
)
async def test_errors_suggest_names_while_introspection_is_on(
    api: GraphQLClient, query: str, variables: dict[str, object]
) -> None:
    result = await api.query(query, variables)
    assert "Did you mean" in result.error_messages[0]


@pytest.mark.parametrize(
    ("query", "variables"),
    [(TYPO_FIELD, {}), (TYPO_ENUM, TYPO_ENUM_VARIABLES)],
    ids=["validation", "variables"],
)
async def test_errors_suggest_nothing_when_introspection_is_off(
    closed_api: GraphQLClient, query: str, variables: dict[str, object]
) -> None:
    result = await closed_api.query(query, variables)
    assert result.error_messages
    assert not any("Did you mean" in message for message in result.error_messages)
