"""The event bus: events reach listeners only after their transaction commits."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import events, models
from gql_blog.schema.results import NotFoundError, run_mutation
from tests.graphql_client import request_sessions

PUBLISHED = events.Event(events.Kind.POST_PUBLISHED, 1)
COMMENTED = events.Event(events.Kind.COMMENT_ADDED, 1, 7)


def _noting(
    db: AsyncSession, event: events.Event, outcome: object = "done"
) -> Callable[[], Awaitable[object]]:
    async def body() -> object:
        events.note(db, event)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return body


async def test_committed_events_reach_listeners(db: AsyncSession) -> None:
    bus = events.InProcessBus()
    async with bus.listen() as listener:
        await run_mutation(db, _noting(db, PUBLISHED), bus=bus)

        assert await asyncio.wait_for(listener.next(), 2) == PUBLISHED


async def test_a_mutation_that_raises_publishes_nothing(db: AsyncSession) -> None:
    bus = events.InProcessBus()
    async with bus.listen() as listener:
        with pytest.raises(RuntimeError):
            await run_mutation(db, _noting(db, PUBLISHED, RuntimeError("boom")), bus=bus)
        await run_mutation(db, _noting(db, COMMENTED), bus=bus)

        # Had the failed mutation published, its event would come first.
        assert await asyncio.wait_for(listener.next(), 2) == COMMENTED


async def test_a_mutation_returning_an_error_publishes_nothing(db: AsyncSession) -> None:
    bus = events.InProcessBus()
    refused = NotFoundError(message="No such post.", id="x")
    async with bus.listen() as listener:
        await run_mutation(db, _noting(db, PUBLISHED, refused), bus=bus)
        await run_mutation(db, _noting(db, COMMENTED), bus=bus)

        assert await asyncio.wait_for(listener.next(), 2) == COMMENTED


async def test_listeners_are_removed_when_their_block_ends() -> None:
    hub = events.Hub()
    async with hub.listen(), hub.listen():
        assert hub.listener_count == 2

    assert hub.listener_count == 0


async def test_a_full_queue_cuts_the_listener_off() -> None:
    hub = events.Hub(queue_size=1)
    async with hub.listen() as listener:
        hub.deliver([PUBLISHED, COMMENTED])

        with pytest.raises(events.ListenerTooSlowError):
            await asyncio.wait_for(listener.next(), 2)


@pytest.mark.parametrize("event", [PUBLISHED, COMMENTED], ids=["published", "commented"])
def test_events_survive_their_text_form(event: events.Event) -> None:
    assert events.Event.decode(event.encode()) == event


@pytest.fixture
def outbox(connection: AsyncConnection) -> events.OutboxBus:
    """An outbox bus whose polls read inside the test's transaction."""
    return events.OutboxBus(request_sessions(connection))


async def test_the_outbox_delivers_what_committed_once(
    outbox: events.OutboxBus, db: AsyncSession
) -> None:
    async with outbox.listen() as listener:
        await run_mutation(db, _noting(db, PUBLISHED), bus=outbox)
        await outbox.poll()
        await outbox.poll()
        await run_mutation(db, _noting(db, COMMENTED), bus=outbox)
        await outbox.poll()

        received = [await asyncio.wait_for(listener.next(), 2) for _ in range(2)]

    assert received == [PUBLISHED, COMMENTED]


async def test_a_rolled_back_mutation_leaves_no_outbox_row(
    outbox: events.OutboxBus, db: AsyncSession
) -> None:
    with pytest.raises(RuntimeError):
        await run_mutation(db, _noting(db, PUBLISHED, RuntimeError("boom")), bus=outbox)

    assert await db.scalar(select(func.count()).select_from(models.OutboxEvent)) == 0


def _outbox_row(
    row_id: int, event: events.Event, *, age: timedelta = timedelta()
) -> models.OutboxEvent:
    created_at = models.utc_now() - age
    return models.OutboxEvent(
        id=row_id,
        kind=event.kind.value,
        post_id=event.post_id,
        comment_id=event.comment_id,
        created_at=created_at,
    )


async def test_a_lower_id_committed_late_is_still_delivered(
    outbox: events.OutboxBus, db: AsyncSession
) -> None:
    db.add(_outbox_row(10, COMMENTED))
    await db.flush()
    async with outbox.listen() as listener:
        await outbox.poll()
        db.add(_outbox_row(5, PUBLISHED))  # its transaction took id 5 first, but commits last
        await db.flush()
        await outbox.poll()

        received = [await asyncio.wait_for(listener.next(), 2) for _ in range(2)]

    assert received == [COMMENTED, PUBLISHED]


async def test_prune_deletes_rows_past_retention(
    outbox: events.OutboxBus, db: AsyncSession
) -> None:
    db.add_all([_outbox_row(1, PUBLISHED, age=timedelta(days=1)), _outbox_row(2, COMMENTED)])
    await db.flush()

    await outbox.prune()

    assert await db.scalar(select(func.count()).select_from(models.OutboxEvent)) == 1
