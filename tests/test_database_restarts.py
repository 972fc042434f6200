"""The database restarts under load, and the server rides it out without a restart of its own.

Each database is a throwaway server on a free port, migrated: PostgreSQL from bench/cluster.py
(initdb, pg_ctl), MariaDB from tests/mariadb_server.py (mariadb-install-db, mariadbd). A real
`gql-blog serve` process answers real HTTP on it and a graphql-transport-ws subscription to
`postPublished` listens, while clients read (a planned feed, the signed-in viewer) and write
(createPost, addComment). Then the database stops (pg_ctl stop -m fast or immediate; mariadbd
SIGTERM or SIGKILL), stays down a while and starts again on the same port and data:

- while it is down, every request fails fast with 503 and the exact DATABASE_UNAVAILABLE error,
  mutations too; /readyz answers 503 and /healthz 200;
- within 5 seconds of its return every request succeeds again, and the same subscription
  delivers every post committed (the outbox loses no event: on PostgreSQL each worker reads it
  again once its LISTEN connection is back, on MariaDB it polls it);
- every write the server acknowledged is in the database; a write in flight at the stop was
  either acknowledged (and is there) or answered with the error.

The subscription stays open across the restart: the websocket never depended on the database,
so closing it would only make every client reconnect. Without initdb or mariadbd the tests skip
saying so; in CI (CI=true) they fail.

bench/cluster.py is imported rather than copied: it uses the standard library only and does
nothing on import, so the bench and these tests share one throwaway cluster.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
import websockets
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench import cluster
from gql_blog import migrations, models
from gql_blog.ids import decode_global_id
from tests import mariadb_server
from tests.databases import require
from tests.live import SocketClient, free_port, serve_process, socket_client

logger = logging.getLogger(__name__)  # the figures: pytest --log-cli-level=INFO shows them

CLIENTS = 3
DOWN_SECONDS = 1.0  # how long the database stays down
FAIL_FAST_SECONDS = 1.0  # the longest a request may take while the database is down
RECOVERY_SECONDS = 5.0  # after the database's return, until every request succeeds
STARTUP_SECONDS = 60
DATABASE = "blog"
UNAVAILABLE = {
    "errors": [
        {
            "message": "The database is unavailable. Try again shortly.",
            "extensions": {"code": "DATABASE_UNAVAILABLE"},
        }
    ]
}
REGISTER = """mutation($username: String!, $email: String!) {
  register(input: {username: $username, email: $email, password: "secret1234"}) {
    __typename ... on AuthPayload { token }
  }
}"""
CREATE_POST = """mutation($title: String!) {
  createPost(input: {title: $title, content: "Written under load.", published: true}) {
    __typename ... on Post { id }
  }
}"""
ADD_COMMENT = """mutation($postId: ID!, $content: String!) {
  addComment(input: {postId: $postId, content: $content}) { __typename ... on Comment { id } }
}"""
FEED = "query Feed { posts(first: 5) { totalCount nodes { title author { username } } } }"
VIEWER = "query Viewer { viewer { username } }"
SUBSCRIPTION = "subscription { postPublished { title } }"


class Restartable(Protocol):
    def stop(self, mode: str) -> None: ...

    def start(self) -> None: ...


class _Postgres:
    """A throwaway cluster as `Restartable`: each start gives it a new postmaster."""

    def __init__(self, running: cluster.Cluster) -> None:
        self.cluster = running

    def stop(self, mode: str) -> None:
        self.cluster.stop(mode)

    def start(self) -> None:
        self.cluster = self.cluster.start()


@dataclass(frozen=True, slots=True)
class Served:
    """A restartable database, migrated, and one `gql-blog serve` process on it."""

    database: Restartable
    url: str
    address: str
    process: asyncio.subprocess.Process
    log: list[str]
    keeps_every_event: bool  # the outbox: events committed while nobody could listen stay
    stop_modes: dict[str, str]  # what "graceful" and "crash" mean for this database


@contextmanager
def _throwaway_postgres() -> Iterator[tuple[Restartable, str]]:
    require(cluster.available(cluster.LEAN_SETTINGS))
    settings = cluster.LEAN_SETTINGS
    with cluster.throwaway_cluster(
        port=free_port(), core=None, say=logger.info, settings=settings
    ) as pg:
        yield _Postgres(pg), pg.url(DATABASE, driver="postgresql+asyncpg")


@contextmanager
def _throwaway_mariadb() -> Iterator[tuple[Restartable, str]]:
    require(mariadb_server.available())
    with mariadb_server.throwaway_mariadb(port=free_port()) as server:
        yield server, server.url(DATABASE)


async def _create_database(url: str) -> None:
    """CREATE DATABASE on the server of `url`, through its built-in database."""
    postgres = make_url(url).get_backend_name() == "postgresql"
    admin_url = make_url(url).set(database="postgres" if postgres else "mysql")
    options = "" if postgres else " CHARACTER SET utf8mb4"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE {DATABASE}{options}"))
    finally:
        await admin.dispose()


# Each database: its throwaway server, whether its bus keeps every event, how it stops.
_DATABASES = {
    "postgresql": (_throwaway_postgres, True, {"graceful": "fast", "crash": "immediate"}),
    "mariadb": (_throwaway_mariadb, True, {"graceful": "term", "crash": "kill"}),
}


@pytest.fixture(scope="module", params=list(_DATABASES))
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """The database named by the parameter, throwaway and migrated, and a server on it."""
    throwaway, keeps_every_event, stop_modes = _DATABASES[request.param]
    with throwaway() as (database, url):
        await _create_database(url)
        await asyncio.to_thread(migrations.upgrade, url)
        async with serve_process(url) as (address, process, log):
            yield Served(database, url, address, process, log, keeps_every_event, stop_modes)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request of the load and what came back."""

    kind: str
    started: float
    finished: float
    status: int
    body: Any
    retry_after: str | None
    written: str | None = None  # a write's title or comment text

    @property
    def is_ok(self) -> bool:
        return self.status == 200 and "errors" not in self.body and bool(self.body.get("data"))

    @property
    def is_unavailable(self) -> bool:
        return (self.status, self.body, self.retry_after) == (503, UNAVAILABLE, "1")

    @property
    def acknowledged_id(self) -> int | None:
        """The row id of the post or comment a write's answer acknowledges."""
        if self.written is None or not self.is_ok:
            return None
        result = self.body["data"][self.kind]
        if "id" not in result:
            return None  # a user error (none is expected): nothing acknowledged
        return decode_global_id(result["id"], known_types={"Post", "Comment"})[1]

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass(slots=True)
class Progress:
    """What the load and the subscription have seen so far; waits for a condition on them."""

    answers: list[Answer] = field(default_factory=list)
    delivered: dict[str, float] = field(default_factory=dict)  # title: when it arrived
    ended: list[dict[str, Any]] = field(default_factory=list)  # the subscription's end or error
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def answered(self, answer: Answer) -> None:
        await self._note(lambda: self.answers.append(answer))

    async def published(self, title: str) -> None:
        await self._note(lambda: self.delivered.setdefault(title, time.monotonic()))

    async def subscription_ended(self, message: dict[str, Any]) -> None:
        await self._note(lambda: self.ended.append(message))

    async def _note(self, record: Callable[[], object]) -> None:
        async with self.changed:
            record()
            self.changed.notify_all()

    async def until(self, condition: Callable[[], bool], seconds: float) -> None:
        """Return once `condition` holds, the subscription ended, or `seconds` have passed (the
        assertions after say which went wrong)."""
        async with self.changed:
            with suppress(TimeoutError):
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: bool(self.ended) or condition()), seconds
                )

    def posts(self, *, since: float = 0.0) -> dict[str, Answer]:
        """Acknowledged createPost answers of requests sent at `since` or later, by title."""
        return {
            a.written: a
            for a in self.answers
            if a.kind == "createPost" and a.written and a.acknowledged_id and a.started >= since
        }


class Load:
    """Clients sending reads and writes one after another until told to stop."""

    def __init__(self, http: httpx.AsyncClient, token: str, post_id: str, tag: str) -> None:
        self._http = http
        self._signed_in = {"Authorization": f"Bearer {token}"}
        self._post_id = post_id
        self._tag = tag
        self._stopping = asyncio.Event()

    async def run(self, progress: Progress) -> None:
        async with asyncio.TaskGroup() as clients:
            for number in range(CLIENTS):
                clients.create_task(self._client(number, progress))

    def stop(self) -> None:
        self._stopping.set()

    async def _client(self, number: int, progress: Progress) -> None:
        sent = 0
        while not self._stopping.is_set():
            sent += 1
            written = f"{self._tag} c{number} #{sent}"
            comment = {"postId": self._post_id, "content": written}
            for kind, query, variables, signed_in in [
                ("createPost", CREATE_POST, {"title": written}, True),
                ("feed", FEED, None, False),
                ("addComment", ADD_COMMENT, comment, True),
                ("viewer", VIEWER, None, True),
            ]:
                answer = await self._send(kind, query, variables, signed_in=signed_in)
                await progress.answered(answer)
                # A client backs off a little after a failure, as real ones do.
                await asyncio.sleep(0.01 if answer.is_ok else 0.05)

    async def _send(
        self, kind: str, query: str, variables: dict[str, str] | None, *, signed_in: bool
    ) -> Answer:
        started = time.monotonic()
        response = await self._http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self._signed_in if signed_in else {},
        )
        written = None if variables is None else variables.get("title", variables.get("content"))
        return Answer(
            kind,
            started,
            time.monotonic(),
            response.status_code,
            response.json(),
            response.headers.get("retry-after"),
            written,
        )


async def _subscribe(client: SocketClient, progress: Progress) -> None:
    """Record every post the subscription delivers, until it ends (it must not)."""
    await client.subscribe("1", SUBSCRIPTION)
    while True:
        try:
            message = await client.receive()
        except TimeoutError:
            continue  # nothing published for a while: keep listening
        except websockets.ConnectionClosed as closed:
            message = {"type": "closed", "reason": str(closed)}
        if message["type"] != "next" or message["payload"].get("errors"):
            await progress.subscription_ended(message)
            return
        await progress.published(message["payload"]["data"]["postPublished"]["title"])


async def _graphql(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], *, token: str | None = None
) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text
    return response.json()["data"]


async def _written(url: str, tag: str) -> dict[str, dict[str, int]]:
    """What the test wrote that is in the database: for posts and comments, {text: row id}."""
    engine = create_async_engine(url)
    queries = {
        "createPost": select(models.Post.title, models.Post.id).where(
            models.Post.title.startswith(tag)
        ),
        "addComment": select(models.Comment.content, models.Comment.id).where(
            models.Comment.content.startswith(tag)
        ),
    }
    try:
        async with engine.connect() as connection:
            return {
                kind: {row[0]: row[1] for row in await connection.execute(query)}
                for kind, query in queries.items()
            }
    finally:
        await engine.dispose()


def _all_delivered(progress: Progress, returned: float, served: Served) -> bool:
    """Whether every acknowledged post the subscription must deliver has arrived."""
    after = progress.posts(since=returned)
    delivered = [progress.delivered[title] for title in after if title in progress.delivered]
    if not delivered:
        return False
    expected = progress.posts(since=0.0 if served.keeps_every_event else min(delivered))
    return expected.keys() <= progress.delivered.keys()


# graceful: pg_ctl stop -m fast, mariadbd's SIGTERM; crash: -m immediate, SIGKILL.
@pytest.mark.parametrize("stop", ["graceful", "crash"])
async def test_requests_and_subscriptions_ride_out_a_database_restart(
    served: Served, stop: str
) -> None:
    stop_mode = served.stop_modes[stop]
    with _server_log_shown(served):
        await _restart_under_load(served, stop_mode)


@contextmanager
def _server_log_shown(served: Served) -> Iterator[None]:
    """The server's warnings and errors of this test, in the test's log (pytest shows it when
    the test fails)."""
    seen = len(served.log)
    try:
        yield
    finally:
        for line in served.log[seen:]:
            if '"level":"WARNING"' in line or '"level":"ERROR"' in line:
                logger.warning("server: %s", line.rstrip())


async def _restart_under_load(served: Served, stop_mode: str) -> None:
    username = f"restart_{uuid.uuid4().hex[:8]}"
    tag = f"{username} {stop_mode}"  # begins every title and comment the test writes
    progress = Progress()
    async with httpx.AsyncClient(base_url=f"http://{served.address}", timeout=30) as http:
        account = {"username": username, "email": f"{username}@example.com"}
        registered = await _graphql(http, REGISTER, account)
        assert registered["register"]["__typename"] == "AuthPayload", registered
        token = registered["register"]["token"]
        anchor = await _graphql(http, CREATE_POST, {"title": f"{tag} anchor"}, token=token)
        load = Load(http, token, anchor["createPost"]["id"], tag)
        async with socket_client(served.address) as client, asyncio.TaskGroup() as tasks:
            subscribing = tasks.create_task(_subscribe(client, progress))
            loading = tasks.create_task(load.run(progress))
            # Going before the stop: writes acknowledged, and the subscription delivers them.
            await progress.until(
                lambda: len(progress.posts()) >= 5 and bool(progress.delivered), STARTUP_SECONDS
            )

            await asyncio.to_thread(served.database.stop, stop_mode)
            stopped = time.monotonic()
            ready, health = await http.get("/readyz"), await http.get("/healthz")
            await asyncio.sleep(DOWN_SECONDS)  # the outage, as the load sees it
            starting = time.monotonic()
            await asyncio.to_thread(served.database.start)
            returned = time.monotonic()  # pg_ctl and mariadbd have seen it accept connections

            def recovered() -> bool:
                since = [a for a in progress.answers if a.started >= returned and a.is_ok]
                resumed = progress.posts(since=returned).keys() & progress.delivered.keys()
                return len({a.kind for a in since}) == 4 and len(since) >= 12 and bool(resumed)

            await progress.until(recovered, RECOVERY_SECONDS)
            ready_again = await http.get("/readyz")
            load.stop()
            await loading
            # Each acknowledged post on its way: from the first after the return on (the outbox:
            # every one, before the stop too).
            await progress.until(lambda: _all_delivered(progress, returned, served), 5)
            assert not progress.ended, progress.ended  # the subscription is still open
            subscribing.cancel()

    answers = progress.answers
    odd = [a for a in answers if not (a.is_ok or a.is_unavailable)]
    assert not odd, odd[:5]  # nothing but successes and the outage's exact 503: no 500

    # Down: every request failed, fast, with the outage's error; /readyz said so.
    down = [a for a in answers if a.started >= stopped and a.finished <= starting]
    assert {a.kind for a in down} == {"createPost", "addComment", "feed", "viewer"}
    assert all(a.is_unavailable for a in down)
    slowest_down = max(a.seconds for a in down)
    assert slowest_down < FAIL_FAST_SECONDS
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["reason"].startswith("the database is unreachable: ")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})

    # Back: within seconds every request succeeds, on the same server process.
    failed_after = [a.finished - returned for a in answers if a.started >= returned and not a.is_ok]
    recovery = max(failed_after, default=0.0)
    assert recovery < RECOVERY_SECONDS
    first_ok = min(a.finished for a in answers if a.started >= returned and a.is_ok) - returned
    assert ready_again.status_code == 200
    assert served.process.returncode is None
    assert not [line for line in served.log if "graphql.unexpected_error" in line]

    # The same subscription delivers again, and from its first event on it misses none (the
    # outbox: none at all).
    assert _all_delivered(progress, returned, served)
    resumed = progress.posts(since=returned).keys() & progress.delivered.keys()
    resumed_after = min(progress.delivered[title] for title in resumed) - returned
    assert resumed_after < RECOVERY_SECONDS

    # No acknowledged write is lost: each is in the database, under the id its answer gave.
    present = await _written(served.url, tag)
    writes = [a for a in answers if a.written is not None]
    acknowledged = {(a.kind, a.written): a.acknowledged_id for a in writes if a.is_ok}
    assert len(acknowledged) == len([a for a in writes if a.is_ok])  # each text written once
    assert {key: present[key[0]].get(key[1]) for key in acknowledged} == acknowledged
    failed = [a for a in writes if not a.is_ok]
    committed_anyway = [a for a in failed if a.written in present[a.kind]]
    logger.info(
        "%s: %d requests, %d while down (slowest %.0f ms); after the database's return, the"
        " first answer in %.3f s and every request succeeds from %.2f s on; the subscription"
        " resumed after %.2f s; %d writes acknowledged, all present; %d failed with the error,"
        " %d of them committed all the same",
        stop_mode,
        len(answers),
        len(down),
        slowest_down * 1000,
        first_ok,
        recovery,
        resumed_after,
        len(acknowledged),
        len(failed),
        len(committed_anyway),
    )
