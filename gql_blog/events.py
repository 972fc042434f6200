"""The event bus behind subscriptions: what happened (ids only), sent only after it committed.

Writes note events in the session (`note`) while the mutation's transaction runs; the mutation
runner hands them to the bus before the commit (`EventBus.record`: a transport that travels in
the transaction, such as PostgreSQL's NOTIFY, goes out with it) and after it (`EventBus.committed`:
in-process delivery). A rolled-back transaction publishes nothing (`discard`).

Each worker delivers to its own listeners through one `Hub`: every listener has a bounded
queue, and one that falls too far behind is cut off (`ListenerTooSlowError`) instead of holding
the others up or growing without bound.

    EventBus            one interface
    ├── InProcessBus    one worker: the hub is the whole transport
    └── PostgresBus     LISTEN/NOTIFY on a dedicated connection (see events_postgres.py)
"""

import abc
import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog.config import Settings

logger = logging.getLogger(__name__)

# Events of the current transaction, in the session's info until it commits or rolls back.
PENDING_KEY = "gql_blog.pending_events"
DEFAULT_QUEUE_SIZE = 100


class Kind(enum.StrEnum):
    POST_PUBLISHED = "post_published"
    COMMENT_ADDED = "comment_added"


@dataclass(frozen=True, slots=True)
class Event:
    """Something committed: a post became published, or a comment was added to `post_id`.

    Ids only: each subscriber loads the rows itself, so it sees what it may see.
    """

    kind: Kind
    post_id: int
    comment_id: int | None = None

    def encode(self) -> str:
        """A short text for transports that carry strings (NOTIFY payloads, outbox rows)."""
        return f"{self.kind.value}:{self.post_id}:{self.comment_id or ''}"

    @classmethod
    def decode(cls, text: str) -> Self:
        kind, post_id, comment_id = text.split(":")
        return cls(Kind(kind), int(post_id), int(comment_id) if comment_id else None)


def note(session: AsyncSession, event: Event) -> None:
    """Remember `event` until the session's transaction commits (or forget it on rollback)."""
    session.info.setdefault(PENDING_KEY, []).append(event)


def pending(session: AsyncSession) -> list[Event]:
    """The events noted in the session's current transaction."""
    events: list[Event] = session.info.get(PENDING_KEY, [])
    return list(events)


def discard(session: AsyncSession) -> list[Event]:
    """Forget (and return) the events of the transaction: it rolled back, or they were sent."""
    events: list[Event] = session.info.pop(PENDING_KEY, [])
    return events


class ListenerTooSlowError(Exception):
    """The listener's queue was full when an event arrived: it fell too far behind."""


class Listener:
    """One subscription's view of the events: a bounded queue the hub fills."""

    def __init__(self, hub: "Hub", queue_size: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=queue_size)
        self._overflowed = asyncio.Event()

    def offer(self, event: Event) -> None:
        if self._overflowed.is_set():
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._overflowed.set()

    async def next(self) -> Event:
        """The next event; `ListenerTooSlowError` once the queue overflowed."""
        if self._overflowed.is_set():
            raise ListenerTooSlowError
        if not self._queue.empty():
            return self._queue.get_nowait()
        getting = asyncio.ensure_future(self._queue.get())
        overflowing = asyncio.ensure_future(self._overflowed.wait())
        try:
            await asyncio.wait({getting, overflowing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            getting.cancel()
            overflowing.cancel()
        if getting.done() and not getting.cancelled():
            return getting.result()
        raise ListenerTooSlowError

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await self.next()


class Hub:
    """This worker's listeners; `deliver` offers each of them every event."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._listeners: set[Listener] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        listener = Listener(self, self.queue_size)
        self._listeners.add(listener)
        self._idle.clear()
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
            if not self._listeners:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no listener is left (a draining shutdown, a test after disconnects)."""
        await self._idle.wait()

    def deliver(self, events: Iterable[Event]) -> None:
        for event in events:
            for listener in list(self._listeners):
                listener.offer(event)


class EventBus(abc.ABC):
    """Carries committed events to the listeners of every worker that shares the database.

    `record` runs inside the mutation's transaction, before its commit; `committed` after it.
    """

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.hub = Hub(queue_size)

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin receiving events from other workers."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop receiving; listeners stay until their subscriptions end."""

    @abc.abstractmethod
    async def record(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """Inside the transaction, before its commit: write what must travel with it."""

    @abc.abstractmethod
    def committed(self, events: Sequence[Event]) -> None:
        """After the commit: deliver what did not travel with the transaction."""

    def listen(self) -> AbstractAsyncContextManager[Listener]:
        """A listener for this worker's share of every event, removed when the block ends."""
        return self.hub.listen()


class InProcessBus(EventBus):
    """One worker: events reach this process's listeners only, straight after the commit."""

    async def start(self) -> None:
        return

    async def stop(self) -> None:
        return

    async def record(self, session: AsyncSession, events: Sequence[Event]) -> None:
        return

    def committed(self, events: Sequence[Event]) -> None:
        self.hub.deliver(events)


def create_bus(settings: Settings) -> EventBus:
    """The bus for the settings' database: LISTEN/NOTIFY on PostgreSQL, else in-process."""
    return InProcessBus(queue_size=settings.subscriber_queue_size)
