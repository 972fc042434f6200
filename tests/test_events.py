"""The event bus: events reach listeners only after their transaction commits."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import events
from gql_blog.schema.results import NotFoundError, run_mutation

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
