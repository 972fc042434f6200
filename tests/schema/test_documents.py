"""The document cache: bounded in bytes, least recently used first, and flat in memory.

No test here reaches the database (every document is refused or served before any SQL), so they
run once, on an app whose engine never connects, rather than once per dialect.
"""

import gc
import itertools
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import parse
from starlette.routing import Route

from gql_blog.app import GraphQLApp, create_app
from gql_blog.config import Settings
from gql_blog.schema.documents import DocumentCache, estimated_size

CACHE_BYTES = 8 * 1024 * 1024
_unique = itertools.count()


def _large_document() -> str:
    """A distinct document of about 4,900 tokens (it fails validation, so it runs no SQL)."""
    number = next(_unique)
    titles = ", ".join(f'"d{number}t{index}"' for index in range(4_900))
    return f"{{ posts(where: {{ title: {{ in: [{titles}] }} }}) {{ noSuchField }} }}"


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def test_cache_keeps_at_most_its_bytes_evicting_the_least_recently_used() -> None:
    documents = {name: parse(f"{{ {name} {{ id }} }}") for name in ["viewer", "node", "nodes"]}
    size = estimated_size("{ viewer { id } }", documents["viewer"])
    cache = DocumentCache(max_bytes=2 * size)
    for name, document in documents.items():
        cache.put(name, document, [])
        cache.get("viewer")  # used again: the oldest is now "node"
    assert cache.get("node") is None
    assert cache.get("viewer") is not None
    assert cache.bytes <= 2 * size


def test_document_larger_than_the_cache_is_not_kept() -> None:
    document = parse("{ viewer { id username } }")
    cache = DocumentCache(max_bytes=10)
    entry = cache.put("q", document, [])
    assert entry.document is document
    assert len(cache) == 0


def test_an_entry_remembers_a_bounded_number_of_prices() -> None:
    entry = DocumentCache(max_bytes=1 << 20).put("q", parse("{ viewer { id } }"), [])
    for version in range(100):  # row counts refreshed again and again
        entry.remember_cost((None, "", version), version)
    assert 0 < len(entry.costs) <= 64
    assert entry.costs[(None, "", 99)] == 99


def test_estimated_size_grows_with_tokens() -> None:
    small, large = "{ viewer { id } }", "{ viewer { id username email age } }"
    grown = estimated_size(large, parse(large)) - estimated_size(small, parse(small))
    assert grown == 3 * 400 + (2 + 32) * (len(large) - len(small))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, GraphQLApp]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.sqlite'}",
        document_cache_bytes=CACHE_BYTES,
    )
    app = create_app(settings)
    graphql = next(
        route.endpoint
        for route in app.routes
        if isinstance(route, Route) and route.path == "/graphql"
    )
    assert isinstance(graphql, GraphQLApp)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http, graphql


async def _send(http: httpx.AsyncClient, query: str) -> None:
    response = await http.post("/graphql", json={"query": query})
    assert response.json()["errors"]


async def test_document_over_the_token_limit_never_enters_the_cache(
    served: tuple[httpx.AsyncClient, GraphQLApp],
) -> None:
    http, graphql = served
    await _send(http, "{ " + "__typename " * 6000 + "}")
    assert len(graphql.documents) == 0


async def test_many_distinct_large_documents_keep_memory_flat(
    served: tuple[httpx.AsyncClient, GraphQLApp],
) -> None:
    http, graphql = served
    for _ in range(10):  # more than the cache holds
        await _send(http, _large_document())
    gc.collect()
    before = _rss_bytes()
    for _ in range(30):  # unbounded, these would keep about 2 MB each
        await _send(http, _large_document())
    gc.collect()
    assert graphql.documents.bytes <= CACHE_BYTES
    assert _rss_bytes() - before < 16 * 1024 * 1024
