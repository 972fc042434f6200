"""GraphQL over HTTP: media types, request errors, refusals, the body limit, batching, CORS, and
GraphQL JSON bodies whatever fails."""

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.types import Message

from gql_blog import auth
from gql_blog.config import Settings
from gql_blog.graphql_http import response_media_type
from gql_blog.ids import encode_global_id
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, serve_api

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def _post(api: GraphQLClient, body: object, accept: str = GRAPHQL_RESPONSE) -> httpx.Response:
    return await api.http.post("/graphql", json=body, headers={"accept": accept})


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.9", "application/json"),
        (f"{GRAPHQL_RESPONSE};q=0, application/json", "application/json"),
        ("text/html", "application/json"),
    ],
    ids=["missing", "any", "json", "graphql", "both", "json-preferred", "refused", "unknown"],
)
def test_response_media_type_follows_the_accept_header(accept: str | None, media_type: str) -> None:
    assert response_media_type(accept) == media_type


async def test_graphql_response_json_is_answered_in_kind(api: GraphQLClient) -> None:
    response = await _post(api, {"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert response.json()["data"] == {"__typename": "Query"}


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{"},
        {"query": "{ noSuchField }"},
        {"query": "query($id: ID!) { node(id: $id) { id } }", "variables": {"id": None}},
        {"query": "{ " + "__typename " * 6000 + "}"},
    ],
    ids=["parse", "validation", "variable-coercion", "limit"],
)
async def test_request_error_is_a_400_without_data_for_graphql_response_json(
    api: GraphQLClient, body: dict[str, Any]
) -> None:
    response = await _post(api, body)
    assert response.status_code == 400
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert "data" not in response.json()
    assert response.json()["errors"]


async def test_request_error_stays_a_200_without_data_for_json(api: GraphQLClient) -> None:
    response = await _post(api, {"query": "{ noSuchField }"}, accept="application/json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "data" not in response.json()


async def test_field_error_keeps_data_and_a_200(api: GraphQLClient) -> None:
    response = await _post(api, {"query": '{ node(id: "bad") { id } }'})
    assert response.status_code == 200
    assert response.json()["data"] == {"node": None}
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_mutation_over_get_is_a_405_allowing_post(api: GraphQLClient) -> None:
    response = await api.http.get("/graphql", params={"query": "mutation { logout }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["message"].startswith("Only queries run over GET")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
    ids=["text-plain", "form", "multipart", "none"],
)
async def test_post_without_a_json_body_is_refused_as_unsafe(
    api: GraphQLClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await api.http.post(
        "/graphql", content=b'{"query": "mutation { logout }"}', headers=headers
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["message"].startswith(
        "A POST body must be application/json"
    )


async def test_other_methods_get_a_405_naming_the_allowed_ones(api: GraphQLClient) -> None:
    response = await api.http.request("OPTIONS", "/graphql")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["errors"][0]["message"]


async def test_body_over_the_limit_is_a_413(api: GraphQLClient) -> None:
    padding = "x" * 1_048_576
    response = await api.http.post("/graphql", json={"query": "{ __typename }", "pad": padding})
    assert response.status_code == 413
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["maximum"] == 1_048_576


async def test_body_is_refused_while_it_arrives(api: GraphQLClient) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }", "pad": "'
        while len(sent) < 1000:  # 64 MB if nobody stops reading
            sent.append(65_536)
            yield b"x" * 65_536

    response = await api.http.post(
        "/graphql", content=endless(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["value"] == "more than 1048576"
    assert sum(sent) <= 1_048_576 + 65_536


async def test_body_at_the_limit_is_read(api: GraphQLClient) -> None:
    body = b'{"query": "{ __typename }", "pad": "'
    body += b"x" * (1_048_576 - len(body) - 2) + b'"}'
    response = await api.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


async def test_batch_of_the_maximum_operations_is_answered_in_order(api: GraphQLClient) -> None:
    batch = [{"query": f"{{ a{index}: __typename }}"} for index in range(10)]
    response = await _post(api, batch, accept="application/json")
    assert response.status_code == 200
    assert [item["data"] for item in response.json()] == [
        {f"a{index}": "Query"} for index in range(10)
    ]


async def test_batch_over_the_maximum_is_a_400_with_one_error(api: GraphQLClient) -> None:
    response = await _post(api, [{"query": "{ __typename }"}] * 11)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [error["message"] for error in errors] == [
        "The query's batch operations (11) exceeds the maximum of 10."
    ]
    assert errors[0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


@pytest.mark.parametrize(
    "batch",
    [[], [1], [{"query": 5}], [{"query": "{ __typename }", "variables": [1]}]],
    ids=["empty", "not-an-object", "query-not-a-string", "variables-not-an-object"],
)
async def test_malformed_batch_is_a_400(api: GraphQLClient, batch: list[object]) -> None:
    response = await _post(api, batch)
    assert response.status_code == 400
    assert len(response.json()["errors"]) == 1


async def test_batched_operations_run_in_order_and_see_earlier_writes(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db, username="ada")
    post = await make_post(db, author=author, published=False, title="Draft")
    token = await api.token_for(author)
    publish = "mutation($id: ID!) { publishPost(id: $id) { ... on Post { published } } }"
    count = "{ postStats { publishedCount } }"
    batch = [
        {"query": count},
        {"query": publish, "variables": {"id": encode_global_id("Post", post.id)}},
        {"query": count},
    ]
    response = await api.http.post(
        "/graphql", json=batch, headers={"authorization": f"Bearer {token}"}
    )
    assert [item["data"] for item in response.json()] == [
        {"postStats": {"publishedCount": 0}},
        {"publishPost": {"published": True}},
        {"postStats": {"publishedCount": 1}},
    ]


async def test_batching_can_be_turned_off(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    async with serve_api(
        dataclasses.replace(settings, max_batch_operations=0), connection, db
    ) as api:
        response = await _post(api, [{"query": "{ __typename }"}])
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "Batched requests are turned off."


async def test_failing_context_is_a_masked_json_500(
    settings: Settings,
    connection: AsyncConnection,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("token table is gone")

    monkeypatch.setattr(auth, "viewer_from_token", broken)
    # strawberry's executor loads the viewer so (the planner has a statement of its own).
    executor_only = dataclasses.replace(settings, planner=False)
    async with serve_api(executor_only, connection, db) as api:
        with caplog.at_level(logging.ERROR, logger="gql_blog.graphql_http"):
            response = await api.http.post(
                "/graphql",
                json={"query": "{ viewer { id } }"},
                headers={"authorization": "Bearer x"},
            )
    assert response.status_code == 500
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "token table" not in str(error)
    logged = [record for record in caplog.records if record.__dict__.get("error_id")]
    assert logged[0].__dict__["error_id"] == error["extensions"]["errorId"]


async def test_result_too_deep_to_encode_is_a_masked_json_500(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    author = await make_user(db, username="ada")
    await make_post(db, author=author)
    # 63 hops of posts > nodes > author nest the JSON 255 levels deep; orjson stops at 254.
    hops = 63
    query = '{ user(username: "ada") { ' + "posts(first: 1) { nodes { author { " * hops
    query += "id" + " } } }" * hops + " } }"
    deep = dataclasses.replace(settings, max_query_depth=250)
    async with serve_api(deep, connection, db) as api:
        response = await api.http.post("/graphql", json={"query": query})
    assert response.status_code == 500
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["errorId"] in error["message"]


async def test_client_disconnect_is_logged_at_info_without_a_traceback(
    api: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    transport = api.http._transport
    assert isinstance(transport, httpx.ASGITransport)
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    with caplog.at_level(logging.INFO):
        await transport.app(scope, receive, send)
    records = [
        record for record in caplog.records if record.getMessage() == "graphql.client_disconnected"
    ]
    assert [(record.levelno, record.exc_info) for record in records] == [(logging.INFO, None)]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert sent == []


@pytest.fixture
async def cors_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[GraphQLClient]:
    allowed = dataclasses.replace(settings, cors_origins=("https://app.example",))
    async with serve_api(allowed, connection, db) as client:
        yield client


def _preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }


async def test_preflight_from_an_allowed_origin_is_answered(cors_api: GraphQLClient) -> None:
    response = await cors_api.http.request(
        "OPTIONS", "/graphql", headers=_preflight("https://app.example")
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_preflight_from_another_origin_is_refused_as_json(cors_api: GraphQLClient) -> None:
    response = await cors_api.http.request(
        "OPTIONS", "/graphql", headers=_preflight("https://evil.example")
    )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert response.json()["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_preflight_with_no_origin_allowed_names_the_setting_and_the_origin(
    api: GraphQLClient,
) -> None:
    response = await api.http.request(
        "OPTIONS", "/graphql", headers=_preflight("http://localhost:5173")
    )

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "errors": [
            {
                "message": "CORS preflight refused: the origin http://localhost:5173 is not in "
                "GQL_BLOG_CORS_ORIGINS, so browsers keep its pages from calling this API. To "
                "allow it, add it to GQL_BLOG_CORS_ORIGINS (comma-separated origins, e.g. "
                "GQL_BLOG_CORS_ORIGINS=http://localhost:5173) and restart the server.",
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    }


async def test_refused_preflight_origin_is_logged_once_per_origin(
    api: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    origins = ["http://localhost:5173", "http://localhost:5173", "http://localhost:3000"]
    with caplog.at_level(logging.INFO, logger="gql_blog.graphql_http"):
        for origin in origins:
            await api.http.request("OPTIONS", "/graphql", headers=_preflight(origin))

    logged = [record for record in caplog.records if record.msg == "cors.origin_refused"]
    assert [(record.levelno, record.origin) for record in logged] == [  # type: ignore[attr-defined]
        (logging.WARNING, "http://localhost:5173"),
        (logging.WARNING, "http://localhost:3000"),
    ]


async def test_preflight_from_an_allowed_origin_asking_for_another_header_is_refused_as_json(
    cors_api: GraphQLClient,
) -> None:
    headers = {**_preflight("https://app.example"), "access-control-request-headers": "x-secret"}
    response = await cors_api.http.request("OPTIONS", "/graphql", headers=headers)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Disallowed CORS headers"}]}


async def test_allowed_origin_may_read_responses(cors_api: GraphQLClient) -> None:
    response = await cors_api.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"origin": "https://app.example"}
    )
    assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_no_origin_is_allowed_by_default(api: GraphQLClient) -> None:
    response = await api.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"origin": "https://app.example"}
    )
    assert "access-control-allow-origin" not in response.headers
