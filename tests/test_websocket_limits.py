"""A worker's websocket limits: sockets in all, per client address, and message size."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest
import websockets

from bench.fanout import serving
from gql_blog import events
from gql_blog.config import Settings
from gql_blog.schema.context import SocketOperation
from gql_blog.schema.fanout import TOO_SLOW, Member
from tests.live import PROTOCOL, SocketClient, live_server, socket_client

POST_PUBLISHED = "subscription { postPublished { title } }"


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[str]:
    small = replace(settings, max_websockets=3, max_websockets_per_address=2, max_body_bytes=2000)
    bus = events.InProcessBus(queue_size=settings.subscriber_queue_size)
    async with live_server(small, bus=bus) as address:
        yield address


async def _refused(address: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Open one more socket: the server accepts it and closes it at once; its code and reason."""
    async with websockets.connect(
        f"ws://{address}/graphql", subprotocols=[PROTOCOL], additional_headers=headers
    ) as connection:
        code, reason = await SocketClient(connection).closed()
    assert code is not None
    assert reason is not None
    return code, reason


async def test_sockets_beyond_the_per_address_limit_are_closed_with_4429(limited: str) -> None:
    async with AsyncExitStack() as sockets:
        for _ in range(2):
            await sockets.enter_async_context(socket_client(limited))

        code, reason = await _refused(limited)

    assert code == 4429
    assert "GQL_BLOG_MAX_WEBSOCKETS_PER_ADDRESS (2)" in reason


async def test_a_closed_socket_frees_its_place(limited: str) -> None:
    for _ in range(5):
        async with socket_client(limited) as first, socket_client(limited) as second:
            await first.subscribe("1", POST_PUBLISHED)
            await second.subscribe("1", POST_PUBLISHED)

    async with socket_client(limited), socket_client(limited):
        pass  # both places are free again


async def test_sockets_beyond_the_worker_limit_are_closed_with_4429(settings: Settings) -> None:
    # Behind a trusted proxy (uvicorn's default trusts 127.0.0.1), each client is the address
    # it forwards: three clients, one socket each, fill the worker's three places.
    small = replace(settings, max_websockets=3, max_websockets_per_address=2)
    bus = events.InProcessBus(queue_size=settings.subscriber_queue_size)
    async with live_server(small, bus=bus) as address, AsyncExitStack() as stack:
        for client in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            forwarded = {"X-Forwarded-For": client}
            connection = await stack.enter_async_context(
                websockets.connect(
                    f"ws://{address}/graphql",
                    subprotocols=[PROTOCOL],
                    additional_headers=forwarded,
                )
            )
            ack = await SocketClient(connection).init()
            assert ack["type"] == "connection_ack"

        code, reason = await _refused(address, {"X-Forwarded-For": "192.0.2.4"})

    assert code == 4429
    assert "GQL_BLOG_MAX_WEBSOCKETS (3)" in reason


async def test_the_per_address_limit_counts_the_forwarded_address(settings: Settings) -> None:
    small = replace(settings, max_websockets_per_address=1)
    bus = events.InProcessBus(queue_size=settings.subscriber_queue_size)
    async with live_server(small, bus=bus) as address:
        one = {"X-Forwarded-For": "192.0.2.1"}
        async with websockets.connect(
            f"ws://{address}/graphql", subprotocols=[PROTOCOL], additional_headers=one
        ) as connection:
            assert (await SocketClient(connection).init())["type"] == "connection_ack"
            other = {"X-Forwarded-For": "192.0.2.2"}
            async with websockets.connect(
                f"ws://{address}/graphql", subprotocols=[PROTOCOL], additional_headers=other
            ) as second:
                assert (await SocketClient(second).init())["type"] == "connection_ack"

            code, _ = await _refused(address, one)

    assert code == 4429


async def test_a_message_over_the_body_limit_closes_the_socket_with_4413(limited: str) -> None:
    async with socket_client(limited) as client:
        query = "subscription { postPublished { title } }" + " " * 3000
        await client.send({"id": "1", "type": "subscribe", "payload": {"query": query}})

        code, reason = await client.closed()

    assert code == 4413
    assert reason is not None
    assert "GQL_BLOG_MAX_BODY_BYTES (2000 bytes)" in reason


async def test_a_message_within_the_body_limit_runs(limited: str) -> None:
    async with socket_client(limited) as client:
        query = "{ __typename }" + " " * 1800
        await client.send({"id": "1", "type": "subscribe", "payload": {"query": query}})
        message = await client.receive()

    assert message["type"] == "next"
    assert message["payload"]["data"] == {"__typename": "Query"}


async def test_the_limit_counts_bytes_not_characters(limited: str) -> None:
    async with socket_client(limited) as client:
        # 600 characters of 4 bytes each: 2,400 bytes of UTF-8, over the 2,000 allowed.
        query = "{ __typename } #" + "😀" * 600
        payload = json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": query}}, ensure_ascii=False
        )
        await client.connection.send(payload)

        code, _ = await client.closed()

    assert code == 4413


async def test_a_message_over_the_limit_closes_a_real_server_s_socket(database_url: str) -> None:
    # uvicorn (as `gql-blog serve` runs it) reads messages up to twice the body limit: those
    # over the limit get 4413 naming the setting, longer ones uvicorn's own 1009, unread.
    async with serving(database_url, GQL_BLOG_MAX_BODY_BYTES="2000") as server:
        closes = []
        for size in (3000, 10_000):
            async with socket_client(server.address) as client:
                query = "{ __typename }" + " " * size
                await client.send({"id": "1", "type": "subscribe", "payload": {"query": query}})
                closes.append(await client.closed())

    assert closes[0][0] == 4413
    assert "GQL_BLOG_MAX_BODY_BYTES" in (closes[0][1] or "")
    assert closes[1][0] == 1009


def _member(limit: int) -> tuple[Member, list[str], list[tuple[int, str]]]:
    sent: list[str] = []
    closed: list[tuple[int, str]] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def close(code: int, reason: str) -> None:
        closed.append((code, reason))

    operation = SocketOperation("op-1", "subscription { postPublished { id } }", None, None, send)
    return Member(operation, None, close, limit), sent, closed


async def test_a_member_sends_each_answer_under_its_own_id() -> None:
    member, sent, closed = _member(limit=3)
    member.offer('{"data":{"x":1}}')
    member.offer('{"data":{"x":2}}')
    member.end(1000, "done")  # before it sent anything: what still waits is dropped
    await member.serve()

    assert sent == []
    assert closed == [(1000, "done")]

    member, sent, closed = _member(limit=3)
    serving_task = asyncio.create_task(member.serve())
    member.offer('{"data":{"x":1}}')
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    member.end(1000, "done")
    await serving_task

    assert [json.loads(text) for text in sent] == [
        {"id": "op-1", "type": "next", "payload": {"data": {"x": 1}}}
    ]


async def test_a_member_whose_answers_pile_up_is_closed_as_too_slow() -> None:
    member, sent, closed = _member(limit=2)
    for number in range(3):  # nobody sends meanwhile: the third finds two waiting
        member.offer(f'{{"data":{{"x":{number}}}}}')
    await member.serve()

    assert sent == []
    assert closed == [TOO_SLOW]
