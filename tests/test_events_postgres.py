"""The PostgreSQL bus: NOTIFY with the commit, LISTEN again after its connection is killed."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import events
from gql_blog.config import Settings
from gql_blog.db import create_sessionmaker

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
