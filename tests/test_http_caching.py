"""HTTP caching of GET reads: Cache-Control, ETag and 304 for anonymous answers, never for a
signed-in request."""

import hashlib
import json

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog.http_caching import matches
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient

TITLES = "query Titles { posts(first: 5) { nodes { title } } }"
DIGEST = hashlib.sha256(TITLES.encode()).hexdigest()
PERSISTED = {"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": DIGEST}})}


async def _register(api: GraphQLClient) -> None:
    await api.http.post(
        "/graphql", json={"query": TITLES, "extensions": json.loads(PERSISTED["extensions"])}
    )


async def _get(api: GraphQLClient, **headers: str) -> httpx.Response:
    return await api.http.get("/graphql", params=PERSISTED, headers=headers)


async def test_anonymous_get_is_cacheable_with_an_etag(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await make_post(db, author=await make_user(db), title="Hello")
    await _register(api)
    response = await _get(api)
    assert response.status_code == 200
    assert response.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["etag"].startswith('"')
    assert response.headers["vary"] == "Authorization, Accept"


async def test_get_with_the_current_etag_is_a_304(api: GraphQLClient, db: AsyncSession) -> None:
    await make_post(db, author=await make_user(db), title="Hello")
    await _register(api)
    etag = (await _get(api)).headers["etag"]
    response = await _get(api, **{"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, max-age=60"


async def test_get_with_a_stale_etag_gets_the_new_answer(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    await make_post(db, author=author, title="Hello")
    await _register(api)
    etag = (await _get(api)).headers["etag"]
    await make_post(db, author=author, title="Again")
    response = await _get(api, **{"if-none-match": etag})
    assert response.status_code == 200
    assert response.headers["etag"] != etag
    assert len(response.json()["data"]["posts"]["nodes"]) == 2


async def test_signed_in_get_is_never_cached(api: GraphQLClient, db: AsyncSession) -> None:
    author = await make_user(db)
    await make_post(db, author=author, title="Draft", published=False)
    await _register(api)
    token = await api.token_for(author)
    response = await _get(api, authorization=f"Bearer {token}")
    assert response.json()["data"] == {"posts": {"nodes": [{"title": "Draft"}]}}
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "no-store"


async def test_signed_in_get_ignores_if_none_match(api: GraphQLClient, db: AsyncSession) -> None:
    author = await make_user(db)
    await _register(api)
    etag = (await _get(api)).headers["etag"]
    token = await api.token_for(author)
    response = await _get(api, authorization=f"Bearer {token}", **{"if-none-match": etag})
    assert response.status_code == 200
    assert "etag" not in response.headers


async def test_get_answered_with_errors_is_not_cached(api: GraphQLClient) -> None:
    response = await _get(api)  # not registered yet
    assert response.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "no-store"


async def test_plain_get_query_is_cacheable_too(api: GraphQLClient) -> None:
    response = await api.http.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 200
    assert "etag" in response.headers


async def test_post_gets_no_caching_headers(api: GraphQLClient) -> None:
    response = await api.http.post("/graphql", json={"query": "{ __typename }"})
    assert "etag" not in response.headers
    assert "cache-control" not in response.headers


@pytest.mark.parametrize(
    ("if_none_match", "expected"),
    [('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"x"', False)],
    ids=["same", "weak", "in-a-list", "any", "other"],
)
def test_if_none_match_compares_weakly(if_none_match: str, expected: bool) -> None:
    assert matches(if_none_match, '"abc"') is expected
