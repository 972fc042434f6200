"""A database out of reach: a full pool is "server busy", a refused connection "database
unavailable"; either answers 503 with one GraphQL error, soon, and the server recovers by itself.
A subscription's event, instead, waits for the database and is delivered once it answers."""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncmy
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gql_blog import engines, events
from gql_blog.app import create_app
from gql_blog.config import Settings
from tests.committed import empty_tables
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, serve_app
from tests.live import Committed, SocketClient, live_server, socket_client
from tests.tcp_proxy import TcpProxy

POSTS = "query Feed { posts(first: 2) { totalCount nodes { title } } }"
# Signed out, a mutation that reads: createPost would answer AuthenticationError without SQL.
LOGIN = 'mutation { login(input: {username: "nobody", password: "secret12"}) { __typename } }'
EMPTY_POSTS = {"posts": {"totalCount": 0, "nodes": []}}
BUSY = {
    "errors": [
        {
            "message": "The server is busy: no database connection came free in time. "
            "Try again shortly.",
            "extensions": {"code": "SERVER_BUSY"},
        }
    ]
}
UNAVAILABLE = {
    "errors": [
        {
            "message": "The database is unavailable. Try again shortly.",
            "extensions": {"code": "DATABASE_UNAVAILABLE"},
        }
    ]
}


@dataclasses.dataclass(frozen=True, slots=True)
class SmallPool:
    api: GraphQLClient
    engine: AsyncEngine


@pytest.fixture
async def small_pool(settings: Settings) -> AsyncIterator[SmallPool]:
    async with _small_pool(settings) as pool:
        yield pool


@asynccontextmanager
async def _small_pool(settings: Settings) -> AsyncIterator[SmallPool]:
    """The app on an engine of one connection, which waits a fifth of a second for it."""
    tight = dataclasses.replace(
        settings, pool_size=1, max_overflow=0, pool_timeout_seconds=0.2, planner=True
    )
    engine = engines.create_engine(tight)
    app = create_app(tight, sessions=engines.create_sessionmaker(engine))
    try:
        async with AsyncSession(engine) as unused, serve_app(app, unused) as api:
            yield SmallPool(api, engine)
    finally:
        await engine.dispose()


async def _post(api: GraphQLClient, query: str) -> tuple[int, object, str | None]:
    response = await api.http.post("/graphql", json={"query": query})
    return response.status_code, response.json(), response.headers.get("retry-after")


@pytest.mark.parametrize(
    ("query", "learned"),
    [(POSTS, False), (POSTS, True), (LOGIN, False)],
    ids=["query", "planned-query", "mutation"],
)
async def test_a_request_finding_every_connection_busy_answers_503_then_recovers(
    small_pool: SmallPool, query: str, learned: bool
) -> None:
    if learned:  # the planner knows the document: the second request takes the planned path
        assert (await _post(small_pool.api, query))[0] == 200
    async with small_pool.engine.connect() as holder:
        await holder.execute(text("SELECT 1"))  # the pool's one connection is taken
        started = time.monotonic()
        status, body, retry_after = await _post(small_pool.api, query)
        waited = time.monotonic() - started

    assert (status, body, retry_after) == (503, BUSY, "1")
    assert waited < 5  # the pool waits 0.2 s; the rest is a loaded machine's slack
    recovered = await _post(small_pool.api, POSTS)
    assert recovered[0] == 200
    assert recovered[1] == {"data": EMPTY_POSTS, "extensions": {"cost": 2}}


async def test_a_busy_batch_answers_one_503(small_pool: SmallPool) -> None:
    async with small_pool.engine.connect() as holder:
        await holder.execute(text("SELECT 1"))
        response = await small_pool.api.http.post(
            "/graphql", json=[{"query": POSTS}, {"query": "{ tags { totalCount } }"}]
        )

    assert response.status_code == 503
    assert response.json() == BUSY


def _unreachable_url(dialect: str, tmp_path: Path) -> str:
    """A database of `dialect` that refuses connections (nothing listens on port 1)."""
    if dialect == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'no-such-folder' / 'blog.sqlite'}"
    driver = {"postgresql": "postgresql+asyncpg", "mariadb": "mysql+asyncmy"}[dialect]
    return f"{driver}://gql@127.0.0.1:1/blog"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
async def unreachable(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[GraphQLClient]:
    """The app on a database that refuses every connection."""
    async with _serve_on(_unreachable_url(request.param, tmp_path)) as api:
        yield api


@asynccontextmanager
async def _serve_on(database_url: str) -> AsyncIterator[GraphQLClient]:
    """The app on `database_url`, with default settings and its own engine."""
    settings = Settings(database_url=database_url)
    engine = engines.create_engine(settings)
    app = create_app(settings, sessions=engines.create_sessionmaker(engine))
    try:
        async with AsyncSession(engine) as unused, serve_app(app, unused) as api:
            yield api
    finally:
        await engine.dispose()


@pytest.mark.parametrize("query", [POSTS, LOGIN], ids=["query", "mutation"])
async def test_an_unreachable_database_answers_503_at_once(
    unreachable: GraphQLClient, query: str
) -> None:
    started = time.monotonic()
    status, body, retry_after = await _post(unreachable, query)
    waited = time.monotonic() - started

    assert (status, body, retry_after) == (503, UNAVAILABLE, "1")
    assert waited < 5  # refused at once; the rest is a loaded machine's slack


async def test_a_signed_in_request_to_an_unreachable_database_answers_503(
    unreachable: GraphQLClient,
) -> None:
    response = await unreachable.http.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers={"Authorization": "Bearer some-token"},
    )

    assert response.status_code == 503
    assert response.json() == UNAVAILABLE


async def test_a_mariadb_socket_closed_as_it_opens_is_database_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def socket_gone(*args: object, **kwargs: object) -> None:
        # What asyncmy raises when the server closed the socket before it could be set up (a
        # server starting or stopping); the timing cannot be forced from here.
        raise RuntimeError("Transport does not expose socket instance")

    monkeypatch.setattr(asyncmy, "connect", socket_gone)
    async with _serve_on("mysql+asyncmy://gql@127.0.0.1:1/blog") as api:
        status, body, retry_after = await _post(api, POSTS)
        ready = await api.http.get("/readyz")

    assert (status, body, retry_after) == (503, UNAVAILABLE, "1")
    assert (ready.status_code, ready.json()) == (
        503,
        {
            "status": "unavailable",
            "reason": "the database is unreachable: Lost connection to the server while connecting",
        },
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ProxiedPool:
    """`small_pool` on PostgreSQL, reaching the database through `proxy`."""

    pool: SmallPool
    proxy: TcpProxy
    invalidated: list[BaseException | None]  # why the pool dropped connections, in order


@asynccontextmanager
async def _proxied(settings: Settings) -> AsyncIterator[tuple[Settings, TcpProxy]]:
    """`settings` with the database reached through a TcpProxy, and the proxy."""
    url = make_url(settings.database_url)
    port = url.port or {"postgresql": 5432}.get(url.get_backend_name(), 3306)
    async with TcpProxy(url.host or "localhost", port) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield dataclasses.replace(settings, database_url=proxied), proxy


@pytest.fixture
async def postgres_pool(dialect: str, settings: Settings) -> AsyncIterator[ProxiedPool]:
    if dialect != "postgresql":
        pytest.skip("planned reads bypass SQLAlchemy's statements on PostgreSQL only")
    async with _proxied(settings) as (proxied, proxy), _small_pool(proxied) as pool:
        invalidated: list[BaseException | None] = []

        @event.listens_for(pool.engine.sync_engine.pool, "invalidate")
        def _dropped(dbapi_connection: Any, record: Any, error: BaseException | None) -> None:
            invalidated.append(error)

        yield ProxiedPool(pool, proxy, invalidated)


async def wait_for_lock(connection: AsyncConnection, pid: int) -> None:
    """Return once the server process `pid` waits for a lock."""
    waiting = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    while await connection.scalar(waiting, {"pid": pid}) != "Lock":
        await connection.execute(text("SELECT pg_stat_clear_snapshot()"))


@pytest.mark.parametrize("death", ["terminated", "cut"])
async def test_a_planned_read_whose_connection_dies_under_it_answers_503_then_recovers(
    postgres_pool: ProxiedPool, engine: AsyncEngine, death: str
) -> None:
    api = postgres_pool.pool.api
    assert (await _post(api, POSTS))[0] == 200  # learned: the next one takes the planned path
    async with postgres_pool.pool.engine.connect() as pooled:  # the pool's one connection
        pid = await pooled.scalar(text("SELECT pg_backend_pid()"))
    async with engine.connect() as locker:
        await locker.execute(text("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE"))
        answering = asyncio.ensure_future(_post(api, POSTS))
        await asyncio.wait_for(wait_for_lock(locker, pid), 10)
        if death == "terminated":  # the server says why (FATAL 57P01), then hangs up
            await locker.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        else:  # the network fails: no word from the server
            postgres_pool.proxy.cut()
        answered = await asyncio.wait_for(answering, 10)
        dropped = len(postgres_pool.invalidated)
        await locker.rollback()

    assert answered == (503, UNAVAILABLE, "1")
    assert dropped == 1  # by the failed request itself: the pool never hands it out again
    recovered = await _post(api, POSTS)
    assert recovered[:2] == (200, {"data": EMPTY_POSTS, "extensions": {"cost": 2}})


@pytest.mark.parametrize("query", [POSTS, LOGIN], ids=["planned-query", "mutation"])
async def test_a_pooled_connection_killed_while_idle_is_replaced_unnoticed(
    postgres_pool: ProxiedPool, engine: AsyncEngine, query: str
) -> None:
    api = postgres_pool.pool.api
    assert (await _post(api, query))[0] == 200  # a query is learned: the next one is planned
    closed = asyncio.Event()
    async with postgres_pool.pool.engine.connect() as pooled:  # the pool's one connection
        driver_connection: Any = (await pooled.get_raw_connection()).driver_connection
        driver_connection.add_termination_listener(lambda _: closed.set())
    async with engine.connect() as killer:
        pid = driver_connection.get_server_pid()
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await asyncio.wait_for(closed.wait(), 10)  # asyncpg noticed: the pool holds a dead one

    status, body, _ = await _post(api, query)

    assert status == 200, body
    assert "errors" not in body


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[Committed]:
    """Rows committed for real (the server's sessions must see them); deleted afterwards."""
    yield Committed(engines.create_sessionmaker(engine))
    await empty_tables(engine)


class _WatchedBus(events.InProcessBus):
    """The in-process bus, telling when a subscription has begun to listen."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = asyncio.Event()

    def listen(self) -> AbstractAsyncContextManager[events.Listener]:
        self.listening.set()  # the hub registers the listener before anything can await
        return super().listen()


@pytest.fixture
def over_tcp(dialect: str) -> None:
    """Skip on SQLite: a file cannot be put out of reach behind a proxy."""
    if dialect == "sqlite":
        pytest.skip("an SQLite file cannot be put out of reach behind a proxy")


@asynccontextmanager
async def _post_published_behind_proxy(
    settings: Settings,
) -> AsyncIterator[tuple[SocketClient, TcpProxy, events.InProcessBus]]:
    """A live server reaching the database through a proxy, a socket listening there to
    `postPublished` (the bus's hub has its listener), the proxy and the bus."""
    bus = _WatchedBus()
    async with (
        _proxied(settings) as (proxied, proxy),
        live_server(proxied, bus=bus) as address,
        socket_client(address) as client,
    ):
        await client.subscribe("1", "subscription { postPublished { title } }")
        await asyncio.wait_for(bus.listening.wait(), 10)
        yield client, proxy, bus


@pytest.mark.usefixtures("over_tcp")
async def test_a_subscription_event_waits_out_an_unreachable_database(
    settings: Settings, committed: Committed
) -> None:
    async with committed.sessions() as session:
        post = await make_post(session, author=await make_user(session), title="Waited for")
        await session.commit()
    async with _post_published_behind_proxy(settings) as (client, proxy, bus):
        proxy.refuse()
        bus.hub.deliver([events.Event(events.Kind.POST_PUBLISHED, post.id)])
        await asyncio.wait_for(proxy.wait_refused(2), 10)  # it tried, and tried again
        proxy.accept()

        message = await client.receive()

    assert (message["type"], message["payload"].get("errors")) == ("next", None), message
    assert message["payload"]["data"] == {"postPublished": {"title": "Waited for"}}


@pytest.mark.usefixtures("over_tcp")
async def test_a_subscription_goes_on_when_an_event_session_loses_its_connection_at_the_end(
    settings: Settings, committed: Committed
) -> None:
    async with committed.sessions() as session:
        author = await make_user(session)
        posts = [await make_post(session, author=author, title=title) for title in "ABC"]
        await session.commit()
    published = [events.Event(events.Kind.POST_PUBLISHED, post.id) for post in posts]
    async with _post_published_behind_proxy(settings) as (client, proxy, bus):
        bus.hub.deliver(published[:1])  # the engine's first connection is set up by now
        received = [await client.receive()]
        proxy.cut_before(b"ROLLBACK")  # B's session, closing once B has been sent
        bus.hub.deliver(published[1:])
        received += [await client.receive(), await client.receive()]

    assert [message.get("payload", message) for message in received] == [
        {"data": {"postPublished": {"title": title}}, "extensions": {"cost": 0}} for title in "ABC"
    ]


@pytest.mark.usefixtures("over_tcp")
async def test_a_connection_lost_as_a_request_ends_leaves_its_answer_whole(
    settings: Settings,
) -> None:
    async with _proxied(settings) as (proxied, proxy), _small_pool(proxied) as pool:
        assert (await _post(pool.api, "{ tags { totalCount } }"))[0] == 200  # connected
        proxy.cut_before(b"ROLLBACK")  # as the next request's session closes, once it answered
        answered = await _post(pool.api, "{ users { totalCount } }")
        again = await _post(pool.api, "{ posts { totalCount } }")

    assert (answered[0], _data(answered)) == (200, {"users": {"totalCount": 0}})
    assert (again[0], _data(again)) == (200, {"posts": {"totalCount": 0}})


def _data(answer: tuple[int, Any, str | None]) -> Any:
    return answer[1]["data"]


CREATE_POST = 'mutation { createPost(input: {title: "Lost", content: "C"}) { __typename } }'


@pytest.mark.usefixtures("over_tcp")
async def test_a_mutation_whose_commit_is_cut_off_answers_503_and_is_not_there(
    settings: Settings, committed: Committed
) -> None:
    _, token = await committed.signed_in_user()
    signed_in = {"Authorization": f"Bearer {token}"}
    async with _proxied(settings) as (proxied, proxy), _small_pool(proxied) as pool:
        proxy.cut_before(b"COMMIT")
        response = await pool.api.http.post(
            "/graphql", json={"query": CREATE_POST}, headers=signed_in
        )
        again = await pool.api.http.post("/graphql", json={"query": POSTS})

    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    assert again.status_code == 200, again.text
    assert again.json()["data"]["posts"]["totalCount"] == 0  # the COMMIT never arrived
