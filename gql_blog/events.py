"""The event bus behind subscriptions: what happened (ids only), sent only after it committed.

Writes note events in the session (`note`) while the mutation's transaction runs; the mutation
runner hands them to the bus before the commit (`EventBus.record`: a transport that travels in
the transaction, such as an outbox row, goes out with it) and after it (`EventBus.committed`:
in-process delivery, and PostgreSQL's NOTIFY that wakes the other workers). A rolled-back
transaction publishes nothing (`discard`).

Each worker delivers to its own listeners through one `Hub`: every listener has a bounded
queue, and one that falls too far behind is cut off (`ListenerTooSlowError`) instead of holding
the others up or growing without bound.

    EventBus            one interface
    ├── InProcessBus    one worker: the hub is the whole transport
    └── OutboxBus       SQLite, MariaDB: an outbox row with the commit, polled by every worker
        └── PostgresBus PostgreSQL: the outbox too, each worker woken to read it by a NOTIFY
"""

import abc
import asyncio
import contextvars
import enum
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

import asyncpg
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gql_blog import engines, models
from gql_blog.config import Settings

logger = logging.getLogger(__name__)

_OUTBOX_TABLE = models.Base.metadata.tables[models.OutboxEvent.__tablename__]

# Events of the current transaction, in the session's info until it commits or rolls back.
PENDING_KEY = "gql_blog.pending_events"
DEFAULT_QUEUE_SIZE = 100
# PostgreSQL: a worker reads the outbox when a NOTIFY wakes it, and at least this often.
POSTGRES_POLL_SECONDS = 5.0


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


def outbox_row(event: Event, now: datetime) -> dict[str, Any]:
    """The event's row of the outbox table, written at `now`."""
    return {
        "kind": event.kind.value,
        "post_id": event.post_id,
        "comment_id": event.comment_id,
        "created_at": now,
    }


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

    def take_waiting(self) -> list[Event]:
        """The events queued now, without waiting; `ListenerTooSlowError` once it overflowed."""
        if self._overflowed.is_set():
            raise ListenerTooSlowError
        taken = []
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

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
        # Since when someone has listened without a break; None while nobody listens.
        self.busy_since: datetime | None = None

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        listener = Listener(self, self.queue_size)
        if not self._listeners:
            self.busy_since = models.utc_now()
        self._listeners.add(listener)
        self._idle.clear()
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
            if not self._listeners:
                self.busy_since = None
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

    # Whether `record` writes the events to the outbox table (`outbox_row`), in the writing
    # transaction; a write of one statement then inserts those rows itself.
    outbox = False

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


class OutboxBus(EventBus):
    """An outbox row in the mutation's transaction, polled by every worker (on PostgreSQL,
    `PostgresBus`, woken by a NOTIFY).

    A worker polls only while someone listens to it, from the rows written since. Ids grow
    with each insert, but a transaction may commit after one with a higher id; so each
    poll reads from the oldest id that could still appear (`_floor`), skipping ids delivered
    already, and that floor moves past rows older than `OUTBOX_GRACE_SECONDS`. Rows older than
    the retention period are deleted by whichever worker gets there.
    """

    outbox = True

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        poll_interval: float = 0.25,
        retention: timedelta = timedelta(hours=1),
    ) -> None:
        super().__init__(queue_size=queue_size)
        self._sessions = sessions
        self._poll_interval = poll_interval
        self._retention = retention
        self._polling: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._floor = 0
        self._delivered: set[int] = set()

    async def start(self) -> None:
        # In a task: the app starts (and /readyz says why) while the database is down or behind.
        # Its own context: no request's statement count or span is the poller's.
        self._polling = asyncio.create_task(self._poll_forever(), context=contextvars.Context())

    async def stop(self) -> None:
        """Let the current poll finish (never cancel a statement midway), then stop."""
        self._stopping.set()
        if self._polling is not None:
            await self._polling

    async def record(self, session: AsyncSession, events: Sequence[Event]) -> None:
        if not events:
            return
        now = models.utc_now()
        rows = [outbox_row(event, now) for event in events]
        # The table, not the model: an ORM bulk INSERT costs more and adds nothing here.
        await session.execute(insert(_OUTBOX_TABLE), rows)

    def committed(self, events: Sequence[Event]) -> None:
        return  # every worker, this one too, finds the rows at its next poll

    async def _poll_forever(self) -> None:
        polls = 0
        started = False
        while not self._stopping.is_set():
            try:
                if self.hub.busy_since is None:
                    started = False  # nobody listens here: nothing to read
                elif not started:
                    await self._skip_history(self.hub.busy_since)
                    started = True
                if started:
                    await self.poll()
                polls += 1
                if polls % _POLLS_PER_PRUNE == 0:
                    await self.prune()
            except (OSError, SQLAlchemyError) as error:
                logger.warning("events.poll_failed", extra={"reason": str(error)})
            await self._wait_for_next_poll()

    async def _wait_for_next_poll(self) -> None:
        """Until the next poll is due (or the bus stops)."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._poll_interval)

    async def _skip_history(self, since: datetime) -> None:
        """What was written before anyone here listened (`since`) is history: skip it."""
        newest = select(func.max(models.OutboxEvent.id)).where(
            models.OutboxEvent.created_at < since
        )
        async with self._sessions() as session:
            found = await session.scalar(newest.execution_options(**_BACKGROUND))
        self._floor = found or 0
        self._delivered.clear()

    async def poll(self) -> None:
        """Deliver the rows committed since the last poll."""
        stmt = (
            select(models.OutboxEvent)
            .where(models.OutboxEvent.id > self._floor)
            .order_by(models.OutboxEvent.id)
            .limit(_POLL_BATCH)
            .execution_options(**_BACKGROUND)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(stmt)).all()
        fresh = [row for row in rows if row.id not in self._delivered]
        self._delivered.update(row.id for row in fresh)
        self.hub.deliver(Event(Kind(row.kind), row.post_id, row.comment_id) for row in fresh)
        self._advance_floor(rows)

    def _advance_floor(self, rows: Sequence[models.OutboxEvent]) -> None:
        settled = models.utc_now() - timedelta(seconds=OUTBOX_GRACE_SECONDS)
        for row in rows:
            if row.created_at > settled:
                break
            self._floor = row.id
        self._delivered = {row_id for row_id in self._delivered if row_id > self._floor}

    async def prune(self) -> None:
        """Delete the rows older than the retention period."""
        cutoff = models.utc_now() - self._retention
        async with self._sessions() as session, session.begin():
            stmt = delete(models.OutboxEvent).where(models.OutboxEvent.created_at < cutoff)
            await session.execute(stmt.execution_options(**_BACKGROUND))


class PostgresBus(OutboxBus):
    """PostgreSQL: the outbox (a row per event, in the mutation's transaction) plus a NOTIFY
    after the commit that wakes every worker to read it, on a dedicated LISTEN connection.

    The NOTIFY is sent on the listening connection, one for every write committed since the
    previous one was sent (`_notify_forever`), not inside the writes' transactions: PostgreSQL
    makes transactions that notify commit one at a time (a database-wide lock held through the
    commit's WAL flush), which halved what the database alone could commit of addComment
    (bench/README.md, "Writes (callgrind)"), and cost each write a statement.

    What a worker delivers is read from the outbox, never from a notification: a NOTIFY only
    says "look now". So an event committed while a worker's LISTEN connection is down (a
    database restart, a network blip, a killed backend) is not lost: the worker polls as soon as
    it listens again, and at least every `poll_interval` seconds meanwhile, and finds the row.
    The listening connection lives outside the pool (and, behind PgBouncer in transaction mode,
    goes straight to PostgreSQL: `listen_url`); when it breaks, it is opened again.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        listen_url: str,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        poll_interval: float = POSTGRES_POLL_SECONDS,
        retention: timedelta = timedelta(hours=1),
    ) -> None:
        super().__init__(
            sessions, queue_size=queue_size, poll_interval=poll_interval, retention=retention
        )
        self._dsn = make_url(listen_url).set(drivername="postgresql")
        self._listening: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._connected = asyncio.Condition()
        self._wake = asyncio.Event()
        self._notify_wanted = asyncio.Event()
        self._notifying: asyncio.Task[None] | None = None
        self.connections_made = 0

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the listening connection (None while it is down)."""
        return None if self._connection is None else self._connection.get_server_pid()

    async def wait_connected(self, count: int) -> None:
        """Return once the listening connection has been (re)opened `count` times in all."""
        async with self._connected:
            await self._connected.wait_for(lambda: self.connections_made >= count)

    async def start(self) -> None:
        self._listening = asyncio.create_task(self._listen_forever(), context=contextvars.Context())
        self._notifying = asyncio.create_task(self._notify_forever(), context=contextvars.Context())
        await super().start()

    async def stop(self) -> None:
        for task in (self._notifying, self._listening):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        await super().stop()

    def committed(self, events: Sequence[Event]) -> None:
        """Wake this worker now, and every worker by the next NOTIFY (`_notify_forever`)."""
        if not events:
            return
        self._wake.set()
        self._notify_wanted.set()

    async def _notify_forever(self) -> None:
        """One NOTIFY for the writes committed while the previous one was on its way.

        A NOTIFY that cannot be sent (the listening connection is down or breaks) is sent once
        it listens again; meanwhile nothing is lost: the rows are in the outbox, which every
        worker reads at least every `poll_interval` seconds and as soon as it listens again.
        """
        while True:
            await self._notify_wanted.wait()
            connection = await self._listening_connection()
            self._notify_wanted.clear()
            try:
                await connection.execute(_NOTIFY, CHANNEL)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.warning("events.notify_failed", extra={"reason": str(error)})
                self._notify_wanted.set()
                await asyncio.sleep(_RECONNECT_FIRST_DELAY)  # the broken connection is replaced

    async def _listening_connection(self) -> asyncpg.Connection:
        async with self._connected:
            await self._connected.wait_for(lambda: self._connection is not None)
            assert self._connection is not None  # what the wait was for
            return self._connection

    async def _wait_for_next_poll(self) -> None:
        """Until a NOTIFY (or a new LISTEN connection) wakes the bus, at most `poll_interval`."""
        waits = {
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(self._wake.wait()),
        }
        try:
            await asyncio.wait(
                waits, timeout=self._poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for wait in waits:
                wait.cancel()
        self._wake.clear()  # before the poll: a NOTIFY during it wakes the next one

    async def _listen_forever(self) -> None:
        delay = _RECONNECT_FIRST_DELAY
        while True:
            try:
                await self._listen_once()
                delay = _RECONNECT_FIRST_DELAY
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.warning("events.listen_failed", extra={"reason": str(error)})
            await asyncio.sleep(delay)  # a broken database gets a pause, not a tight loop
            delay = min(delay * 2, _RECONNECT_MAX_DELAY)

    async def _listen_once(self) -> None:
        """Listen until the connection breaks."""
        dsn = self._dsn.render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
            self._connection = connection
            # What was committed while no connection listened is in the outbox: read it now.
            self._wake.set()
            async with self._connected:
                self.connections_made += 1
                self._connected.notify_all()
            logger.info("events.listening", extra={"channel": CHANNEL})
            await lost.wait()
            logger.warning("events.listen_connection_lost", extra={"channel": CHANNEL})
        finally:
            self._connection = None
            if not connection.is_closed():
                await connection.close()

    def _on_notification(self, connection: object, pid: int, channel: str, payload: str) -> None:
        self._wake.set()


# A transaction that commits later than this after writing its outbox row may go unseen.
OUTBOX_GRACE_SECONDS = 10
_POLL_BATCH = 1000
# Polls are the server's own housekeeping: no trace spans (see engines.BACKGROUND).
_BACKGROUND = {engines.BACKGROUND: True}
_POLLS_PER_PRUNE = 240

CHANNEL = "gql_blog_events"
_NOTIFY = "SELECT pg_notify($1, '')"

_RECONNECT_FIRST_DELAY = 0.1
# At most a second between tries: after a restart, subscriptions resume within a second of the
# database's return (a refused connection a second costs the database nothing).
_RECONNECT_MAX_DELAY = 1.0


def create_bus(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> EventBus:
    """The bus for the settings' database: LISTEN/NOTIFY on PostgreSQL, else the outbox.

    An in-memory SQLite database lives in one process only: in-process events suffice there.
    """
    queue_size = settings.subscriber_queue_size
    retention = timedelta(seconds=settings.event_retention_seconds)
    if settings.dialect == "postgresql":
        return PostgresBus(
            sessions, settings.listen_url, queue_size=queue_size, retention=retention
        )
    if settings.dialect == "sqlite" and make_url(settings.database_url).database in _IN_MEMORY:
        return InProcessBus(queue_size=queue_size)
    return OutboxBus(
        sessions,
        queue_size=queue_size,
        poll_interval=settings.event_poll_interval_ms / 1000,
        retention=retention,
    )


_IN_MEMORY = (None, "", ":memory:")
