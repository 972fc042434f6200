"""The URL bound of `gql-blog serve`: an overlong GET is a GraphQL JSON 414 (a real server)."""

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import orjson
import pytest

from gql_blog import migrations
from gql_blog.http_protocol import MAX_URL_BYTES
from tests.databases import empty_database
from tests.scans import Served, serve


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async with empty_database("sqlite", tmp_path_factory.mktemp("urls")) as url:
        await asyncio.to_thread(migrations.upgrade, url)
        async with serve("sqlite", url, {}) as served:
            yield served


async def _get(base_url: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """One GET over a raw socket (httpx refuses URLs over 64 KiB): status, headers, body."""
    address = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    request = f"GET {target} HTTP/1.1\r\nHost: test\r\nAccept: application/json\r\n"
    writer.write(request.encode() + b"Connection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def _query_target(padding: int) -> str:
    """A GET of `{ __typename }` with `padding` bytes of comment in its query string."""
    return "/graphql?query=" + quote("{ __typename #" + "x" * padding + "\n}")


@pytest.mark.parametrize("padding", [210_000, 5_000_000], ids=["210KB", "5MB"])
async def test_an_overlong_get_is_a_graphql_json_414_naming_the_limit(
    served: Served, padding: int
) -> None:
    target = _query_target(padding)

    status, headers, body = await _get(served.base_url, target)

    assert status == 414
    assert headers["content-type"] == "application/json"
    [error] = orjson.loads(body)["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "URL bytes",
        "maximum": MAX_URL_BYTES,
        "value": len(target),
    }
    assert error["message"] == (
        f"The query's URL bytes ({len(target)}) exceeds the maximum of {MAX_URL_BYTES}."
    )


async def test_a_get_just_within_the_limit_runs(served: Served) -> None:
    target = _query_target(MAX_URL_BYTES - len(_query_target(0)))
    assert len(target) == MAX_URL_BYTES

    status, _, body = await _get(served.base_url, target)

    assert (status, orjson.loads(body)["data"]) == (200, {"__typename": "Query"})


async def test_the_server_answers_the_next_request_after_refusing_one(served: Served) -> None:
    await _get(served.base_url, _query_target(210_000))

    status, _, body = await _get(served.base_url, _query_target(10))

    assert (status, orjson.loads(body)["data"]) == (200, {"__typename": "Query"})
