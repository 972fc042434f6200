"""The PostgreSQL bus: an outbox row with the commit and a NOTIFY after it, LISTEN again after
its connection is killed, and no event lost while it was down."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import events, models
from gql_blog.config import Settings
from gql_blog.engines import create_sessionmaker
from tests.tcp_proxy import TcpProxy

WAIT_SECONDS = 5
FIRST = events.Event(events.Kind.POST_PUBLISHED, 1)
SECOND = events.Event(events.Kind.COMMENT_ADDED, 2, 3)


@pytest.fixture
async def outbox_emptied(engine: AsyncEngine) -> AsyncIterator[None]:
    """These tests commit for real: the outbox rows they leave are deleted at their end."""
    yield
    async with engine.begin() as connection:
        await connection.execute(delete(models.OutboxEvent))


@pytest.fixture
async def bus(
    dialect: str, database_url: str, engine: AsyncEngine, outbox_emptied: None
) -> AsyncIterator[events.PostgresBus]:
    if dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    bus = events.PostgresBus(create_sessionmaker(engine), database_url)
    await bus.start()
    await asyncio.wait_for(bus.wait_connected(1), WAIT_SECONDS)
    yield bus
    await bus.stop()


async def _commit(engine: AsyncEngine, bus: events.EventBus, event: events.Event) -> None:
    """As the mutation runner does (`transactions.run_write`): record, commit, then tell."""
    async with engine.connect() as connection, AsyncSession(bind=connection) as session:
        await bus.record(session, [event])
        await session.commit()
    bus.committed([event])


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


async def test_writes_committed_together_wake_another_worker_with_one_notify(
    bus: events.PostgresBus,
    database_url: str,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another worker that polls only when woken: the NOTIFY alone brings it the events.
    other = events.PostgresBus(create_sessionmaker(engine), database_url, poll_interval=600)
    notified: list[str] = []

    def on_notification(connection: object, pid: int, channel: str, payload: str) -> None:
        notified.append(channel)
        other._wake.set()

    monkeypatch.setattr(other, "_on_notification", on_notification)
    await other.start()
    try:
        await asyncio.wait_for(other.wait_connected(1), WAIT_SECONDS)
        async with other.listen() as listener:
            for event in (FIRST, SECOND):
                async with AsyncSession(engine) as session:
                    await bus.record(session, [event])
                    await session.commit()
            bus.committed([FIRST])
            bus.committed([SECOND])
            received = [await asyncio.wait_for(listener.next(), WAIT_SECONDS) for _ in "12"]
    finally:
        await other.stop()

    assert received == [FIRST, SECOND]
    assert notified == [events.CHANNEL]  # the second commit came before the first NOTIFY left


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


async def test_events_committed_while_the_listener_is_down_all_arrive_once_it_listens(
    dialect: str, database_url: str, engine: AsyncEngine, outbox_emptied: None
) -> None:
    if dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    url = make_url(database_url)
    async with TcpProxy(url.host or "localhost", url.port or 5432) as proxy:
        # Only the LISTEN connection goes through the proxy; no timed poll comes in between.
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        bus = events.PostgresBus(create_sessionmaker(engine), proxied, poll_interval=600)
        await bus.start()
        try:
            await asyncio.wait_for(bus.wait_connected(1), WAIT_SECONDS)
            async with bus.listen() as listener:
                proxy.refuse()  # the listening connection breaks, and cannot come back yet
                await asyncio.wait_for(proxy.wait_refused(1), WAIT_SECONDS)
                # Another worker writes them (this one would wake itself after its own commits).
                writer = events.OutboxBus(create_sessionmaker(engine))
                for event in (FIRST, SECOND):
                    await _commit(engine, writer, event)
                await asyncio.sleep(0.2)
                assert listener.take_waiting() == []  # nothing woke the bus meanwhile
                proxy.accept()
                await asyncio.wait_for(bus.wait_connected(2), WAIT_SECONDS)
                received = [await asyncio.wait_for(listener.next(), WAIT_SECONDS) for _ in "12"]
        finally:
            await bus.stop()

    assert received == [FIRST, SECOND]


async def test_an_event_is_an_outbox_row_that_commits_with_the_mutation(
    bus: events.PostgresBus, engine: AsyncEngine
) -> None:
    async with AsyncSession(engine) as session:
        await bus.record(session, [FIRST])
        await session.rollback()
    await _commit(engine, bus, SECOND)

    async with engine.connect() as connection:
        rows = (await connection.execute(select(models.OutboxEvent.post_id))).scalars().all()
    assert rows == [SECOND.post_id]


async def test_after_a_long_outage_the_bus_listens_again_within_a_second_or_so(
    dialect: str, database_url: str, engine: AsyncEngine
) -> None:
    if dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    url = make_url(database_url)
    async with TcpProxy(url.host or "localhost", url.port or 5432) as proxy:
        bus = events.PostgresBus(
            create_sessionmaker(engine),
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
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
