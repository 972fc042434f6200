"""The PostgreSQL bus: NOTIFY with the commit, LISTEN again after its connection is killed."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import events
from gql_blog.config import Settings
from gql_blog.db import create_sessionmaker
from tests.tcp_proxy import TcpProxy

WAIT_SECONDS = 5
FIRST = events.Event(events.Kind.POST_PUBLISHED, 1)
SECOND = events.Event(events.Kind.COMMENT_ADDED, 2, 3)


@pytest.fixture
async def bus(dialect: str, database_url: str) -> AsyncIterator[events.PostgresBus]:
    if dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    bus = events.PostgresBus(database_url)
    await bus.start()
    await asyncio.wait_for(bus.wait_connected(1), WAIT_SECONDS)
    yield bus
    await bus.stop()


async def _commit(engine: AsyncEngine, bus: events.EventBus, event: events.Event) -> None:
    async with engine.connect() as connection, AsyncSession(bind=connection) as session:
        await bus.record(session, [event])
        await session.commit()


async def test_create_bus_picks_listen_notify_on_postgresql(
    bus: events.PostgresBus, settings: Settings, engine: AsyncEngine
) -> None:
    chosen = events.create_bus(settings, create_sessionmaker(engine))

    assert isinstance(chosen, events.PostgresBus)


async def test_a_committed_notify_reaches_the_listener(
    bus: events.PostgresBus, engine: AsyncEngine
) -> None:
    async with bus.listen() as listener:
        await _commit(engine, bus, FIRST)

        assert await asyncio.wait_for(listener.next(), WAIT_SECONDS) == FIRST


async def test_a_rolled_back_notify_is_never_sent(
    bus: events.PostgresBus, engine: AsyncEngine
) -> None:
    async with bus.listen() as listener:
        async with AsyncSession(engine) as session:
            await bus.record(session, [FIRST])
            await session.rollback()
        await _commit(engine, bus, SECOND)

        assert await asyncio.wait_for(listener.next(), WAIT_SECONDS) == SECOND


async def test_a_killed_listen_connection_listens_again(
    bus: events.PostgresBus, engine: AsyncEngine
) -> None:
    async with engine.connect() as connection:
        await connection.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": bus.listener_pid}
        )
    await asyncio.wait_for(bus.wait_connected(2), WAIT_SECONDS)
    async with bus.listen() as listener:
        await _commit(engine, bus, FIRST)

        assert await asyncio.wait_for(listener.next(), WAIT_SECONDS) == FIRST


async def test_after_a_long_outage_the_bus_listens_again_within_a_second_or_so(
    dialect: str, database_url: str
) -> None:
    if dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    url = make_url(database_url)
    async with TcpProxy(url.host or "localhost", url.port or 5432) as proxy:
        bus = events.PostgresBus(
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )
        await bus.start()
        try:
            await asyncio.wait_for(bus.wait_connected(1), WAIT_SECONDS)
            proxy.refuse()  # the database goes away; the bus tries again, less and less often
            await asyncio.wait_for(proxy.wait_refused(5), WAIT_SECONDS)  # 2.5 s into it
            proxy.accept()
            back = time.monotonic()
            await asyncio.wait_for(bus.wait_connected(2), WAIT_SECONDS)
            waited = time.monotonic() - back
        finally:
            await bus.stop()

    assert waited < 2  # tries are at most a second apart (slack for a loaded machine)
