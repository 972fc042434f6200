"""Persisted queries: automatic ones (Apollo's protocol), over POST, GET and batches, and the
trusted-documents allow-list."""

import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog.config import ConfigError, Settings
from gql_blog.persisted_queries import RegisteredQueries, load_trusted_documents
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, serve_api

TITLES = "query Titles { posts(first: 5) { nodes { title } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def _sha256(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def _persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def _post(api: GraphQLClient, body: object) -> httpx.Response:
    return await api.http.post("/graphql", json=body)


async def test_registered_hash_runs_without_its_text(api: GraphQLClient, db: AsyncSession) -> None:
    await make_post(db, author=await make_user(db), title="Hello")
    registered = await _post(api, {"query": TITLES, "extensions": _persisted(_sha256(TITLES))})
    assert registered.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}
    response = await _post(api, {"extensions": _persisted(_sha256(TITLES))})
    assert response.status_code == 200
    assert response.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}


async def test_unknown_hash_is_persisted_query_not_found(api: GraphQLClient) -> None:
    response = await _post(api, {"extensions": _persisted(_sha256("{ __typename }"))})
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert [error["message"] for error in body["errors"]] == ["PersistedQueryNotFound"]
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_hash_that_is_not_the_texts_is_a_400(api: GraphQLClient) -> None:
    wrong = _sha256("{ viewer { id } }")
    response = await _post(api, {"query": TITLES, "extensions": _persisted(wrong)})
    assert response.status_code == 400
    assert "is not the SHA-256 of the query" in response.json()["errors"][0]["message"]
    not_registered = await _post(api, {"extensions": _persisted(wrong)})
    assert not_registered.json()["errors"][0]["message"] == "PersistedQueryNotFound"


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": "ab"}, {"version": 1}, {"version": 1, "sha256Hash": 5}, "x"],
    ids=["other-version", "no-hash", "hash-not-a-string", "not-an-object"],
)
async def test_malformed_persisted_query_is_a_400(api: GraphQLClient, persisted: object) -> None:
    response = await _post(api, {"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert "persistedQuery" in response.json()["errors"][0]["message"]


async def test_batch_resolves_each_operation_on_its_own(api: GraphQLClient) -> None:
    known = "{ a: __typename }"
    await _post(api, {"query": known, "extensions": _persisted(_sha256(known))})
    batch = [
        {"extensions": _persisted(_sha256(known))},
        {"extensions": _persisted(_sha256("{ b: __typename }"))},
        {"query": "{ c: __typename }"},
    ]
    response = await _post(api, batch)
    assert response.status_code == 200
    first, second, third = response.json()
    assert first["data"] == {"a": "Query"}
    assert second["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert third["data"] == {"c": "Query"}


async def test_registered_hash_runs_over_get(api: GraphQLClient, db: AsyncSession) -> None:
    await make_post(db, author=await make_user(db), title="Hello")
    query = "query Titles($first: Int) { posts(first: $first) { nodes { title } } }"
    await _post(api, {"query": query, "extensions": _persisted(_sha256(query))})
    params = {
        "extensions": json.dumps(_persisted(_sha256(query))),
        "variables": json.dumps({"first": 1}),
        "operationName": "Titles",
    }
    response = await api.http.get("/graphql", params=params, headers={"accept": "*/*"})
    assert response.status_code == 200
    assert response.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}


async def test_persisted_mutation_over_get_is_a_405(api: GraphQLClient) -> None:
    mutation = "mutation { logout }"
    await _post(api, {"query": mutation, "extensions": _persisted(_sha256(mutation))})
    params = {"extensions": json.dumps(_persisted(_sha256(mutation)))}
    response = await api.http.get("/graphql", params=params)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_registered_queries_stay_within_their_bytes() -> None:
    registered = RegisteredQueries(max_bytes=10_000)
    queries = [f"{{ a{index}: __typename }}" + " " * 1000 for index in range(100)]
    for query in queries:
        registered.register(_sha256(query), query)
    assert registered.bytes <= 10_000
    assert 5 <= len(registered) < 10
    assert registered.get(_sha256(queries[-1])) == queries[-1]
    assert registered.get(_sha256(queries[0])) is None


def test_query_larger_than_the_cache_is_not_registered() -> None:
    registered = RegisteredQueries(max_bytes=100)
    registered.register(_sha256("{ __typename }" * 10), "{ __typename }" * 10)
    assert len(registered) == 0
    assert registered.bytes == 0


# --- trusted documents -------------------------------------------------------------------------

VIEWER = "query Viewer { viewer { username } }"
# As @graphql-codegen/cli's client preset writes persisted-documents.json: keys are the sha1 of
# the text (its default) or `sha256:<hex>`; a document is found by its key and by its SHA-256.
VIEWER_KEY = hashlib.sha1(VIEWER.encode()).hexdigest()
TITLES_KEY = f"sha256:{_sha256(TITLES)}"


@pytest.fixture
def trusted_file(tmp_path: Path) -> Path:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({VIEWER_KEY: VIEWER, TITLES_KEY: TITLES}))
    return path


@pytest.fixture
async def trusted_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession, trusted_file: Path
) -> AsyncIterator[GraphQLClient]:
    trusted = dataclasses.replace(settings, trusted_documents=str(trusted_file))
    async with serve_api(trusted, connection, db) as client:
        yield client


@pytest.mark.parametrize(
    "body",
    [
        {"extensions": _persisted(VIEWER_KEY)},
        {"extensions": _persisted(_sha256(VIEWER))},
        {"query": VIEWER},
        {"query": VIEWER, "extensions": _persisted(VIEWER_KEY)},
    ],
    ids=["file-key", "sha256", "full-text", "text-and-file-key"],
)
async def test_trusted_mode_runs_listed_documents(
    trusted_api: GraphQLClient, body: dict[str, Any]
) -> None:
    response = await _post(trusted_api, body)
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": None}, "extensions": {"cost": 0}}


async def test_trusted_mode_runs_a_document_by_its_prefixed_key(
    trusted_api: GraphQLClient, db: AsyncSession
) -> None:
    await make_post(db, author=await make_user(db), title="Hello")
    response = await _post(trusted_api, {"extensions": _persisted(TITLES_KEY)})
    assert response.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{ viewer { id } }"},
        {"query": "{ viewer { id } }", "extensions": _persisted(_sha256("{ viewer { id } }"))},
    ],
    ids=["full-text", "registration"],
)
async def test_trusted_mode_refuses_other_documents(
    trusted_api: GraphQLClient, body: dict[str, Any]
) -> None:
    response = await trusted_api.http.post(
        "/graphql", json=body, headers={"accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["FORBIDDEN"]
    assert "runs only its trusted documents" in errors[0]["message"]
    again = await _post(trusted_api, {"extensions": body.get("extensions") or _persisted("ab")})
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_trusted_mode_refuses_an_unlisted_operation_of_a_batch(
    trusted_api: GraphQLClient,
) -> None:
    batch = [{"query": VIEWER}, {"query": "{ __typename }"}]
    listed, other = (await _post(trusted_api, batch)).json()
    assert listed["data"] == {"viewer": None}
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read"), ("{", "is not JSON"), ('["{ a }"]', "must be a JSON object")],
    ids=["missing", "not-json", "not-an-object"],
)
def test_bad_trusted_documents_file_names_the_variable(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "persisted-documents.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=f"^GQL_BLOG_TRUSTED_DOCUMENTS: .*{problem}"):
        load_trusted_documents(str(path))
