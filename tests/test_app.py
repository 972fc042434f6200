"""The HTTP surface: health, GET queries, schema drift, debug extensions and error masking."""

import asyncio
import base64
import dataclasses
import gc
import logging
import socket
import warnings
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gql_blog import engines
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.loaders import Loaders
from gql_blog.schema import schema
from tests.committed import serve_committed_api
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


async def test_root_sends_clients_to_graphql(api: GraphQLClient) -> None:
    response = await api.http.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/graphql"
    assert response.json() == {
        "message": "The GraphQL API, and GraphiQL for browsers, are at /graphql."
    }


async def test_shutdown_lets_the_request_in_flight_finish_then_disposes_the_engine(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[AsyncEngine] = []
    closed: list[object] = []
    create_engine = engines.create_engine

    def recording_engine(settings: Settings) -> AsyncEngine:
        engine = create_engine(settings)
        event.listen(engine.sync_engine, "close", lambda *args: closed.append(args))
        created.append(engine)
        return engine

    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(self: Loaders, username: str) -> None:
        entered.set()
        await release.wait()

    monkeypatch.setattr(engines, "create_engine", recording_engine)
    monkeypatch.setattr(Loaders, "user_by_username", slow)
    listener = socket.create_server(("127.0.0.1", 0))  # listening already: connects queue up
    port = listener.getsockname()[1]
    # strawberry's executor runs the loader patched above (the planner has its own statements).
    executor_only = dataclasses.replace(settings, planner=False)
    server = uvicorn.Server(
        uvicorn.Config(create_app(executor_only), log_config=None, lifespan="on")
    )
    stopping = asyncio.Event()
    shutdown = server.shutdown

    async def observed_shutdown(sockets: list[socket.socket] | None = None) -> None:
        stopping.set()
        await shutdown(sockets)

    server.shutdown = observed_shutdown  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        # A token the server looks up: the request holds a pooled connection until it ends.
        request = asyncio.create_task(
            http.post(
                "/graphql",
                json={"query": '{ user(username: "ada") { id } }'},
                headers={"Authorization": "Bearer no-such-token"},
            )
        )
        await asyncio.wait_for(entered.wait(), 10)
        server.should_exit = True
        await asyncio.wait_for(stopping.wait(), 10)
        assert closed == []  # the engine is still in use
        release.set()
        response = await asyncio.wait_for(request, 10)
    await asyncio.wait_for(serving, 10)

    assert response.status_code == 200
    assert response.json()["data"] == {"user": None}
    assert len(created) == 1
    assert closed, "disposing the engine closed its pooled connection"


async def test_authorization_that_is_not_bearer_is_reported_and_logged(
    api: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gql_blog.app"):
        response = await api.http.post(
            "/graphql",
            json={"query": "{ viewer { id } }"},
            headers={"Authorization": "Token s3cret-value"},
        )

    body = response.json()
    assert body["data"] == {"viewer": None}
    assert body["extensions"]["warnings"] == [
        "The Authorization header is not `Bearer <token>`, so this request ran signed out."
    ]
    logged = [record for record in caplog.records if record.msg == "auth.authorization_ignored"]
    assert len(logged) == 1
    assert "s3cret" not in caplog.text


async def test_query_over_get_is_answered(api: GraphQLClient, db: AsyncSession) -> None:
    await make_user(db, username="alice")
    response = await api.http.get(
        "/graphql", params={"query": '{ user(username: "ALICE") { username } }'}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"user": {"username": "alice"}}


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
    assert extensions["sqlStatements"] == 1  # the page, its authors read beside it (planned)
    assert extensions["durationMs"] > 0
    # strawberry's executor reports its own: the page, then its authors.
    executor = dataclasses.replace(debug, planner=False)
    async with serve_api(executor, connection, db) as api:
        response = await api.http.post(
            "/graphql", json={"query": "{ posts { nodes { author { username } } } }"}
        )
    assert response.json()["extensions"]["sqlStatements"] == 2


async def test_production_mode_reports_no_statements(api: GraphQLClient) -> None:
    response = await api.http.post("/graphql", json={"query": "{ posts { nodes { title } } }"})
    assert "sqlStatements" not in (response.json().get("extensions") or {})


async def test_unexpected_failure_is_masked_with_an_error_id_in_the_log(
    settings: Settings,
    connection: AsyncConnection,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def explode(self: Loaders, username: str) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(Loaders, "user_by_username", explode)
    # strawberry's executor runs the loader patched above (the planner has its own statements).
    executor_only = dataclasses.replace(settings, planner=False)
    async with serve_api(executor_only, connection, db) as api:
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


@pytest.mark.parametrize(
    "body",
    [
        b'"x"',
        b"null",
        b'{"query": "{ viewer { id } }\xff"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"query": "query($s: String!) { user(username: $s) { id } }", '
        b'"variables": {"s": "\\ud800"}}',
    ],
    ids=["string", "null", "invalid-utf8", "deeply-nested", "lone-surrogate"],
)
async def test_unusable_body_is_a_400_with_a_graphql_json_error(
    api: GraphQLClient, body: bytes
) -> None:
    response = await api.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


async def test_other_methods_get_a_json_405(api: GraphQLClient) -> None:
    response = await api.http.put("/graphql", json={"query": "{ viewer { id } }"})
    assert response.status_code == 405
    assert response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($s: String!) { user(username: $s) { id } }", {"s": "ab\u0000"}),
        ("query($s: String!) { tag(name: $s) { id } }", {"s": "ab\u0000"}),
    ],
    ids=["user", "tag"],
)
async def test_lookup_with_nul_finds_nothing(
    api: GraphQLClient, query: str, variables: dict[str, str]
) -> None:
    result = await api.query(query, variables)
    assert result.errors is None
    assert next(iter(result.data.values())) is None


@pytest.mark.parametrize(
    "where",
    [
        {"username": {"eq": "ab\u0000"}},
        {"createdAt": {"gt": "0001-01-01T00:00:00+14:00"}},
        {"createdAt": {"lt": "9999-12-31T23:59:59-14:00"}},
    ],
    ids=["nul-text", "before-year-one", "after-year-9999"],
)
async def test_filter_operand_no_column_holds_is_bad_user_input(
    api: GraphQLClient, where: dict[str, object]
) -> None:
    result = await api.query(
        "query($w: UserWhere) { users(where: $w) { totalCount } }", {"w": where}
    )
    assert result.error_codes == ["BAD_USER_INPUT"]


async def test_id_filter_beyond_the_id_range_matches_nothing(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    await make_post(db, author=author)
    huge = base64.b64encode(b"Post:99999999999").decode()
    result = await api.query(
        "query($id: ID!) { posts(where: {id: {eq: $id}}) { totalCount } }", {"id": huge}
    )
    assert result.errors is None
    assert result.data == {"posts": {"totalCount": 0}}


async def test_failed_root_field_returns_every_connection(settings: Settings) -> None:
    # `posts` fails before any SQL and null propagates to `data`; graphql-core then cancels
    # the sibling fields, some of them inside their statement.
    query = """{ user(username: "nobody") { id } post(id: "UG9zdDox") { id }
      users { totalCount } posts(first: 1, last: 1) { totalCount } }"""
    generic = dataclasses.replace(settings, planner=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with serve_committed_api(generic) as served:
            for _ in range(5):
                result = await served.api.query(query)
                assert result.error_codes == ["BAD_USER_INPUT"]
            gc.collect()
    assert [str(warning.message) for warning in caught] == []
