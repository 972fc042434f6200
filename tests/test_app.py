"""The HTTP surface: health, GET queries, schema drift, debug extensions and error masking."""

import dataclasses
import logging
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog.config import Settings
from gql_blog.loaders import Loaders
from gql_blog.schema import schema
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, serve_api

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_matches_the_served_schema() -> None:
    assert SCHEMA_FILE.read_text() == str(schema).rstrip("\n") + "\n", (
        "schema.graphql is stale: run `make schema`"
    )


async def test_healthz_answers_ok(api: GraphQLClient) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_query_over_get_is_answered(api: GraphQLClient, db: AsyncSession) -> None:
    await make_user(db, username="alice")
    response = await api.http.get(
        "/graphql", params={"query": '{ user(username: "ALICE") { username } }'}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"user": {"username": "alice"}}}


async def test_debug_mode_reports_statements_and_duration(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    author = await make_user(db)
    for _ in range(3):
        await make_post(db, author=author)
    debug = dataclasses.replace(settings, debug=True)
    async with serve_api(debug, connection, db) as api:
        response = await api.http.post(
            "/graphql", json={"query": "{ posts { nodes { author { username } } } }"}
        )
    extensions = response.json()["extensions"]
    assert extensions["sqlStatements"] == 2  # the page, then its authors
    assert extensions["durationMs"] > 0


async def test_production_mode_reports_no_statements(api: GraphQLClient) -> None:
    response = await api.http.post("/graphql", json={"query": "{ posts { nodes { title } } }"})
    assert "sqlStatements" not in (response.json().get("extensions") or {})


async def test_unexpected_failure_is_masked_with_an_error_id_in_the_log(
    api: GraphQLClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(self: Loaders, username: str) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(Loaders, "user_by_username", explode)
    with caplog.at_level(logging.ERROR, logger="gql_blog.schema.errors"):
        result = await api.query('{ user(username: "x") { id } }')
    assert result.error_codes == ["INTERNAL_SERVER_ERROR"]
    error = result.errors[0] if result.errors else {}
    assert "secret detail" not in str(error)
    error_id = error["extensions"]["errorId"]
    assert error_id in error["message"]
    logged = [record for record in caplog.records if record.__dict__.get("error_id") == error_id]
    assert logged, "the log carries the error id"
    assert "secret detail" in str(logged[0].exc_info)
