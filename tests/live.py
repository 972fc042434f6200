"""Live servers for websocket tests: uvicorn in this process, real commits, real clients."""

import asyncio
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from gql_blog import auth, models
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.events import EventBus
from tests import factories

WAIT_SECONDS = 5
# Writes for tests on live servers: a new account (its token), a published post (its title).
REGISTER = """mutation($username: String!, $email: String!) {
  register(input: {username: $username, email: $email, password: "secret1234"}) {
    ... on AuthPayload { token }
  }
}"""
CREATE_POST = """mutation($title: String!) {
  createPost(input: {title: $title, content: "Written live.", published: true}) {
    __typename ... on Post { title }
  }
}"""
PROTOCOL = "graphql-transport-ws"
GQL_BLOG = Path(sys.executable).with_name("gql-blog")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def serve_environment(database_url: str) -> dict[str, str]:
    """The environment for a `gql-blog serve` process on `database_url`, metrics unshared."""
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    return env | {"GQL_BLOG_DATABASE_URL": database_url}


async def started_workers(server: asyncio.subprocess.Process, workers: int) -> None:
    """Wait until `workers` processes have logged that their app started."""
    assert server.stderr is not None
    started = 0
    while started < workers:
        line = await server.stderr.readline()
        assert line, "the server exited before its workers started"
        started += b"Application startup complete" in line


STARTUP_SECONDS = 60


@asynccontextmanager
async def serve_process(
    url: str, **variables: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process, list[str]]]:
    """`gql-blog serve` on `url` (and `variables`) and a port of the system's choosing (no other
    process can have taken it meanwhile); its `host:port` once it listens, its log read into a
    list."""
    process = await asyncio.create_subprocess_exec(
        *(str(GQL_BLOG), "serve", "--port", "0"),
        env=serve_environment(url) | variables,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log: list[str] = []

    async def listening(stream: asyncio.StreamReader) -> str:
        while line := await stream.readline():
            log.append(line.decode(errors="replace"))
            if found := re.search(r"Uvicorn running on http://([\d.]+:\d+)", log[-1]):
                return found.group(1)
        raise AssertionError("gql-blog serve exited before it listened:\n" + "".join(log))

    async def read_log(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            log.append(line.decode(errors="replace"))

    try:
        address = await asyncio.wait_for(listening(process.stderr), STARTUP_SECONDS)
        reading = asyncio.create_task(read_log(process.stderr))
        yield address, process, log
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), STARTUP_SECONDS)
    await reading


@asynccontextmanager
async def live_server(settings: Settings, *, bus: EventBus | None = None) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port of 127.0.0.1; yields `host:port`."""
    async with live_app(create_app(settings, bus=bus)) as address:
        yield address


@asynccontextmanager
async def live_app(app: Starlette) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1; yields `host:port`."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    # The socket listens already: clients queue in its backlog until uvicorn accepts.
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        listening.close()


@dataclass(slots=True)
class Committed:
    """Rows made with real commits, and tokens for them, for tests on a live server."""

    sessions: async_sessionmaker[AsyncSession]

    async def token_for(self, user: models.User) -> str:
        async with self.sessions() as session:
            token = await auth.issue_token(session, user, lifetime=timedelta(hours=1))
            await session.commit()
        return token

    async def signed_in_user(self) -> tuple[models.User, str]:
        """A new user, committed, and a token for them."""
        async with self.sessions() as session:
            user = await factories.make_user(session)
            await session.commit()
        return user, await self.token_for(user)


class SocketClient:
    """One graphql-transport-ws connection, read message by message with a timeout."""

    def __init__(self, connection: websockets.ClientConnection, address: str | None = None) -> None:
        self.connection = connection
        self.address = address  # host:port, for `subscribe_joined`

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        """The next message but pings (answered with a pong)."""
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), WAIT_SECONDS)
            assert isinstance(raw, str), "graphql-transport-ws messages are text frames"
            message: dict[str, Any] = json.loads(raw)
            if message["type"] != "ping":
                return message
            await self.send({"type": "pong"})

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": operation_id, "type": "subscribe", "payload": payload})

    async def subscribe_joined(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        """Subscribe, and return once the server counts the subscription open (joined its
        fan-out group): graphql-transport-ws acknowledges no subscription, so an event
        committed right after `subscribe` may come before the server set it up."""
        assert self.address is not None, "subscribe_joined needs the server's address"
        before = await open_subscriptions(self.address)
        await self.subscribe(operation_id, query, variables)
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while await open_subscriptions(self.address) <= before:
            assert asyncio.get_running_loop().time() < deadline, "the subscription never opened"
            await asyncio.sleep(0.01)

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait for the server to close the socket; its close code and reason."""
        try:
            while True:
                await asyncio.wait_for(self.connection.recv(), WAIT_SECONDS)
        except websockets.ConnectionClosed as closed:
            received = closed.rcvd
            return (received.code, received.reason) if received else (None, None)


async def open_subscriptions(address: str) -> float:
    """The server's `gql_blog_open_subscriptions` gauge, from its /metrics."""
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        text = (await http.get("/metrics")).text
    (line,) = [
        line for line in text.splitlines() if line.startswith("gql_blog_open_subscriptions ")
    ]
    return float(line.split()[1])


@asynccontextmanager
async def socket_client(address: str, token: str | None = None) -> AsyncIterator[SocketClient]:
    """A connection to `address`, initialised (with `token`, when given) and acknowledged."""
    async with websockets.connect(f"ws://{address}/graphql", subprotocols=[PROTOCOL]) as ws:
        client = SocketClient(ws, address)
        payload = {} if token is None else {"authorization": f"Bearer {token}"}
        ack = await client.init(payload)
        assert ack["type"] == "connection_ack", ack
        yield client


async def mutate(
    address: str, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
) -> dict[str, Any]:
    """A GraphQL request over HTTP to `address`; the response body."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        response = await http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
    body: dict[str, Any] = response.json()
    return body
