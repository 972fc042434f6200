"""Subscription fan-out: thousands of subscriptions on one worker, one mutation each way.

One `gql-blog serve` worker; `sockets` websockets with `per_socket` subscriptions each, half
`commentAdded` on one post and half `postPublished`, in two selections each, from anonymous,
signed-in, author and admin viewers. Then one `addComment` on that post and one `createPost`
(published): every subscription is due exactly one event. Measured: the time from each
mutation's start to each delivery (p50, p99, max), the mutations' own time, `/healthz`'s slowest
answer meanwhile, the worker's RSS idle, at its peak and after the sockets closed, and the SQL
statements of each event's delivery (from the worker's `subscription.delivered` log lines).
The round runs twice on the same worker: the second shows what the first left behind.

    make bench-fanout       # SQLite, and PostgreSQL / MariaDB in a scratch database on the
                            # servers of GQL_BLOG_TEST_POSTGRES_URL / GQL_BLOG_TEST_MYSQL_URL
    make bench-fanout FANOUT_ARGS="--dialect sqlite --sockets 20"   # a quick check

`tests/test_subscription_fanout.py` runs the same rounds with generous bounds.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import websockets
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from bench.run import _free_port as free_port
from bench.run import _say as say
from gql_blog import models
from tests.databases import DIALECTS, SERVER_VARIABLES, empty_database

PROTOCOL: Final = "graphql-transport-ws"
GQL_BLOG: Final = Path(sys.executable).with_name("gql-blog")
STARTUP_SECONDS: Final = 60.0
COMMENT_SELECTIONS: Final = (
    "subscription Comments($postId: ID!) { commentAdded(postId: $postId) "
    "{ id content author { username } } }",
    "subscription CommentsOnPost($postId: ID!) { commentAdded(postId: $postId) "
    "{ id content post { title } } }",
)
POST_SELECTIONS: Final = (
    "subscription Posts { postPublished { id title author { username } } }",
    "subscription PostsWithTags { postPublished { id title tags { name } } }",
)
REGISTER: Final = """
mutation ($name: String!, $email: String!) {
  register(input: {username: $name, email: $email, password: "fan-out password 1"}) {
    ... on AuthPayload { token user { id } }
  }
}
"""
CREATE_POST: Final = """
mutation ($title: String!) {
  createPost(input: {title: $title, content: "Body.", published: true, tags: ["fan"]}) {
    ... on Post { id }
  }
}
"""
ADD_COMMENT: Final = """
mutation ($postId: ID!) {
  addComment(input: {postId: $postId, content: "A comment."}) { ... on Comment { id } }
}
"""


@dataclass(frozen=True, slots=True)
class Plan:
    sockets: int = 200
    per_socket: int = 20
    # Each socket signs in as `viewers[i % len(viewers)]`: None anonymous, else a user's name.
    viewers: tuple[str | None, ...] = (None, None, None, None, None, None, "u1", "u2", "author")
    admins_every: int = 10  # and every tenth socket as the admin
    delivery_timeout: float = 30.0

    @property
    def due(self) -> int:
        return self.sockets * self.per_socket


@dataclass(slots=True)
class Server:
    """A `gql-blog serve` process, its address and every JSON line it logged."""

    process: asyncio.subprocess.Process
    address: str
    logs: list[dict[str, Any]] = field(default_factory=list)

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) / 1024

    def delivered(self) -> list[dict[str, Any]]:
        return [entry for entry in self.logs if entry.get("event") == "subscription.delivered"]


@dataclass(slots=True)
class Round:
    received: int
    due: int
    delivery_seconds: list[float]
    mutation_seconds: list[float]
    healthz_max_seconds: float  # while the mutations' events were delivered
    healthz_subscribing_max_seconds: float  # while the subscriptions were set up
    rss_peak_mib: float
    rss_after_mib: float
    deliveries: list[dict[str, Any]]  # the worker's `subscription.delivered` log entries

    def delivery(self, quantile: float) -> float:
        ordered = sorted(self.delivery_seconds)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


@dataclass(slots=True)
class Viewers:
    tokens: dict[str, str]  # name → token
    post_id: str  # the post every commentAdded watches


@contextlib.asynccontextmanager
async def serving(database_url: str, **variables: str) -> AsyncIterator[Server]:
    """`gql-blog serve` (one worker) on `database_url`; its log lines read as they come."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {
        "GQL_BLOG_DATABASE_URL": database_url,
        "GQL_BLOG_MAX_WEBSOCKETS_PER_ADDRESS": "10000",
        "GQL_BLOG_MAX_WEBSOCKETS": "10000",
    } | variables
    process = await asyncio.create_subprocess_exec(
        str(GQL_BLOG), "serve", "--port", str(port), env=env, stderr=asyncio.subprocess.PIPE
    )
    server = Server(process, f"127.0.0.1:{port}")
    started = asyncio.Event()
    reading = asyncio.create_task(_read_logs(server, started))
    try:
        await asyncio.wait_for(started.wait(), STARTUP_SECONDS)
        yield server
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), STARTUP_SECONDS)
        await reading


async def _read_logs(server: Server, started: asyncio.Event) -> None:
    stream = server.process.stderr
    assert stream is not None
    while line := await stream.readline():
        if b"Uvicorn running on" in line:  # listening (startup completes just before)
            started.set()
        with contextlib.suppress(ValueError):
            server.logs.append(json.loads(line))


async def _graphql(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


async def prepare(server: Server, database_url: str, plan: Plan) -> Viewers:
    """Register the plan's users and an admin (promoted in the database), and the post."""
    names = {name for name in plan.viewers if name is not None} | {"author", "admin"}
    tokens: dict[str, str] = {}
    suffix = os.urandom(4).hex()
    async with httpx.AsyncClient(base_url=f"http://{server.address}", timeout=30) as http:
        for name in sorted(names):
            username = f"{name}{suffix}"
            variables = {"name": username, "email": f"{username}@example.com"}
            data = await _graphql(http, REGISTER, variables)
            tokens[name] = data["register"]["token"]
        created = await _graphql(http, CREATE_POST, {"title": "Watched"}, tokens["author"])
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(models.User)
                .where(models.User.username == f"admin{suffix}")
                .values(is_admin=True)
            )
    finally:
        await engine.dispose()
    return Viewers(tokens, created["createPost"]["id"])


def _token(plan: Plan, viewers: Viewers, index: int) -> str | None:
    if index % plan.admins_every == plan.admins_every - 1:
        return viewers.tokens["admin"]
    name = plan.viewers[index % len(plan.viewers)]
    return None if name is None else viewers.tokens[name]


class _Tally:
    """Deliveries received by all sockets; `all_in` is set once `due` have arrived."""

    def __init__(self, due: int) -> None:
        self.due = due
        self.received = 0
        self.all_in = asyncio.Event()

    def add(self) -> None:
        self.received += 1
        if self.received >= self.due:
            self.all_in.set()


@dataclass(slots=True)
class _Socket:
    connection: websockets.ClientConnection
    tally: _Tally
    arrivals: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def _open_socket(
    address: str, token: str | None, plan: Plan, post_id: str, tally: _Tally
) -> _Socket:
    connection = await websockets.connect(
        f"ws://{address}/graphql", subprotocols=[PROTOCOL], max_size=None
    )
    payload = {} if token is None else {"authorization": f"Bearer {token}"}
    await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
    ack = json.loads(await connection.recv())
    assert ack["type"] == "connection_ack", ack
    for number in range(plan.per_socket):
        selections = COMMENT_SELECTIONS if number % 2 == 0 else POST_SELECTIONS
        query = selections[(number // 2) % len(selections)]
        variables = {"postId": post_id} if number % 2 == 0 else {}
        message = {
            "id": str(number),
            "type": "subscribe",
            "payload": {"query": query, "variables": variables},
        }
        await connection.send(json.dumps(message))
    return _Socket(connection, tally)


async def _read(socket: _Socket) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in socket.connection:
            message = json.loads(raw)
            if message["type"] == "ping":
                await socket.connection.send('{"type":"pong"}')
            elif message["type"] == "next" and "errors" not in message["payload"]:
                socket.arrivals.append(time.monotonic())
                socket.tally.add()
            else:
                socket.problems.append(str(message)[:300])


async def open_subscriptions(address: str) -> float:
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("gql_blog_open_subscriptions "):
            return float(line.split()[1])
    return 0.0


async def _wait_open(address: str, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while (found := await open_subscriptions(address)) != count:
        assert time.monotonic() < deadline, f"{found} subscriptions open, not {count}"
        await asyncio.sleep(0.1)


class _Watch:
    """Meanwhile: /healthz every 20 ms (its slowest answer) and the worker's RSS (its peak)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.healthz_max = 0.0
        self.rss_peak = server.rss_mib()
        self._tasks: list[asyncio.Task[None]] = []

    def restart(self) -> float:
        """The slowest /healthz answer so far; the next phase's counts from now."""
        slowest, self.healthz_max = self.healthz_max, 0.0
        return slowest

    async def __aenter__(self) -> "_Watch":
        self._tasks = [asyncio.create_task(self._healthz()), asyncio.create_task(self._rss())]
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _healthz(self) -> None:
        async with httpx.AsyncClient(base_url=f"http://{self.server.address}") as http:
            while True:
                started = time.monotonic()
                response = await http.get("/healthz")
                assert response.status_code == 200
                self.healthz_max = max(self.healthz_max, time.monotonic() - started)
                await asyncio.sleep(0.02)

    async def _rss(self) -> None:
        while True:
            self.rss_peak = max(self.rss_peak, self.server.rss_mib())
            await asyncio.sleep(0.05)


async def run_round(server: Server, viewers: Viewers, plan: Plan) -> Round:
    """Open the sockets and subscriptions, make both mutations, wait for every delivery, close."""
    logged = len(server.delivered())
    before = await open_subscriptions(server.address)
    sockets: list[_Socket] = []
    tally = _Tally(plan.due)
    readers: list[asyncio.Task[None]] = []
    async with _Watch(server) as watch:
        try:
            for start in range(0, plan.sockets, 20):
                opened = await asyncio.gather(
                    *(
                        _open_socket(
                            server.address, _token(plan, viewers, i), plan, viewers.post_id, tally
                        )
                        for i in range(start, min(start + 20, plan.sockets))
                    )
                )
                sockets += opened
                readers += [asyncio.create_task(_read(socket)) for socket in opened]
            try:
                await _wait_open(server.address, int(before) + plan.due, plan.delivery_timeout)
            except AssertionError as error:
                problems = [problem for socket in sockets for problem in socket.problems]
                raise AssertionError(f"{error}; the server sent {problems[:3]}") from error
            subscribing = watch.restart()
            mutations = await _mutate(server, viewers)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.all_in.wait(), plan.delivery_timeout)
            await asyncio.sleep(0.2)  # anything more (there should be nothing) arrives too
        finally:
            for socket in sockets:
                await socket.connection.close()
            await asyncio.gather(*readers, return_exceptions=True)
        await _wait_open(server.address, int(before), plan.delivery_timeout)
    problems = [problem for socket in sockets for problem in socket.problems]
    assert not problems, problems[:5]
    started = min(mutations)
    return Round(
        received=sum(len(socket.arrivals) for socket in sockets),
        due=plan.due,
        delivery_seconds=[arrival - started for s in sockets for arrival in s.arrivals],
        mutation_seconds=list(mutations.values()),
        healthz_max_seconds=watch.healthz_max,
        healthz_subscribing_max_seconds=subscribing,
        rss_peak_mib=watch.rss_peak,
        rss_after_mib=server.rss_mib(),
        deliveries=server.delivered()[logged:],
    )


async def _mutate(server: Server, viewers: Viewers) -> dict[float, float]:
    """addComment, then createPost: {start time: seconds taken} of each."""
    token = viewers.tokens["author"]
    taken: dict[float, float] = {}
    async with httpx.AsyncClient(base_url=f"http://{server.address}", timeout=60) as http:
        await http.get("/healthz")  # connected
        for query, variables in (
            (ADD_COMMENT, {"postId": viewers.post_id}),
            (CREATE_POST, {"title": "Fanned out"}),
        ):
            started = time.monotonic()
            await _graphql(http, query, variables, token)
            taken[started] = time.monotonic() - started
    return taken


@dataclass(slots=True)
class Figures:
    database: str
    idle_mib: float
    rounds: list[Round]


async def measure(database_url: str, plan: Plan) -> Figures:
    async with serving(database_url) as server:
        viewers = await prepare(server, database_url, plan)
        idle = server.rss_mib()
        rounds = [await run_round(server, viewers, plan) for _ in range(2)]
    return Figures(database_url.split(":")[0].split("+")[0], idle, rounds)


def table(figures: list[Figures]) -> str:
    lines = [
        "| database | round | delivered | delivery p50 / p99 / max | mutations "
        "| /healthz max subscribing / delivering "
        "| RSS idle / peak / after (MiB) | SQL per delivery (groups, time) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        for number, result in enumerate(figure.rounds, 1):
            statements = " + ".join(
                f"{entry['statements']} ({entry['groups']} groups, {entry['duration_ms']:.0f} ms)"
                for entry in result.deliveries
            )
            mutations = " / ".join(f"{seconds * 1000:.0f}" for seconds in result.mutation_seconds)
            lines.append(
                f"| {figure.database} | {number} | {result.received:,} of {result.due:,} "
                f"| {result.delivery(0.5) * 1000:.0f} / {result.delivery(0.99) * 1000:.0f} / "
                f"{max(result.delivery_seconds, default=float('nan')) * 1000:.0f} ms "
                f"| {mutations} ms | {result.healthz_subscribing_max_seconds * 1000:.0f} / "
                f"{result.healthz_max_seconds * 1000:.0f} ms "
                f"| {figure.idle_mib:.0f} / {result.rss_peak_mib:.0f} / "
                f"{result.rss_after_mib:.0f} | {statements} |"
            )
    return "\n".join(lines)


def _dialects(arguments: argparse.Namespace) -> list[str]:
    """SQLite, and each server whose tests' variable is set (or those asked for)."""
    if arguments.dialect:
        return list(arguments.dialect)
    return ["sqlite"] + [
        dialect for dialect, variable in SERVER_VARIABLES.items() if os.environ.get(variable)
    ]


async def _migrated(database_url: str) -> None:
    """The database at the latest migration (`gql-blog db upgrade`)."""
    process = await asyncio.create_subprocess_exec(
        str(GQL_BLOG),
        "db",
        "upgrade",
        env=os.environ | {"GQL_BLOG_DATABASE_URL": database_url},
    )
    assert await process.wait() == 0, f"gql-blog db upgrade failed on {database_url}"


async def _main(arguments: argparse.Namespace) -> None:
    plan = Plan(sockets=arguments.sockets, per_socket=arguments.per_socket)
    figures = []
    with tempfile.TemporaryDirectory() as scratch:
        for dialect in _dialects(arguments):
            # A scratch database on the tests' server, dropped afterwards.
            async with empty_database(dialect, Path(scratch)) as url:
                await _migrated(url)
                say(f"fan-out on {dialect}: {plan.due:,} subscriptions on {plan.sockets} sockets")
                figures.append(await measure(url, plan))
    sys.stdout.write(table(figures) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dialect", action="append", choices=DIALECTS, help="(repeatable; default: all set up)"
    )
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--per-socket", type=int, default=20)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
