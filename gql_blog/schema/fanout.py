"""Subscriptions fanned out: each event is loaded and answered once per group of subscribers.

Subscriptions whose operation is the same text with the same variables, and whose viewers may
see the same rows (their *audience*: anonymous, one signed-in user, or the admins), get the
same answer; so a worker keeps them in groups, and computes each group's answer to an event
once, sending the same message (under each one's operation id) to every member.

While anyone subscribes, a worker has one dispatcher listening to the event bus. It takes the
events that arrived together as one batch and, in ONE session: looks up the tokens of the
members of the groups the batch concerns (one statement however many: a token that lapsed
closes its socket, 4403; a viewer whose rights changed moves to its new audience's group),
loads each due group's rows through loaders shared by the groups of one audience (one
statement per loader and audience, not per subscriber), and executes each group's operation
on them. With the planner on, the groups whose operation it plans read their payloads through
the planned reader instead (`Planner.read_events`), together for the groups of one audience with
one plan and the same variables but those only the root field's arguments read (`commentAdded`'s
`postId`): the batch's rows by id, then each level of the selection, one statement per plan node
whatever the number of groups, events or members, answered with the price the executor would
report; where the planner declines, the executor answers. A batch
whose rows cannot be loaded because the database is out of reach waits: it is tried again, a
second apart at most, and delivered once the database answers.

Each member sends from its own operation's task, from a bounded list of waiting messages: a
slow socket holds no one else up, and one whose messages pile up (more than
`GQL_BLOG_SUBSCRIBER_QUEUE_SIZE`) is closed (1013); so are all when events arrive faster than
the dispatcher delivers them.

A subscriber weighs little: once its member has joined its group, the execution that set it up
(its context, session, strawberry's extensions and generators) ends, and its operation's task
serves the member (`SocketOperation.hand_over`). A worker holding thousands of subscriptions
then holds a few dozen objects for each, not hundreds, and every full collection of the
garbage collector (which pauses the worker) walks that much less.

Nothing outlives a subscription: its member leaves its group when its operation ends
(completed, cancelled, socket closed), an empty group is dropped, and when the last group
goes, the dispatcher stops and its listener leaves the bus.
"""

import asyncio
import contextvars
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import orjson
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gql_blog import auth, events, metrics, models, outages, serial_session, statement_counts
from gql_blog.errors import NotPlannedError
from gql_blog.loaders import Loaders
from gql_blog.plan.planner import EventReader, Planner
from gql_blog.plan.statements import DriverFetch
from gql_blog.schema import limits
from gql_blog.schema.context import Context, SocketOperation

logger = logging.getLogger(__name__)

# Close codes and reasons of the websocket, as the client sees them.
TOKEN_LAPSED = (4403, "Forbidden: the sign-in token expired or was revoked")
TOO_SLOW = (1013, "Too far behind: events arrived faster than the client read them")
DISPATCHER_FAILED = (1011, "Internal error: subscriptions stopped; subscribe again")
# Between tries at a batch while the database is out of reach.
_RETRY_FIRST_DELAY = 0.1
_RETRY_MAX_DELAY = 1.0
_SUBSCRIPTION_ONLY = (OperationType.SUBSCRIPTION,)

Wanted = Callable[[events.Event], bool]
T = TypeVar("T")
# The root values of a batch's events that a group wants, loaded through its audience's loaders.
Load = Callable[[Loaders, list[events.Event]], Awaitable[Sequence[T]]]
# The id of the row an event's payload is (a comment's, a post's), for the planned reader.
RowId = Callable[[events.Event], int | None]


@dataclass(frozen=True, slots=True)
class Audience:
    """Whose view of the rows: anonymous (no user), one non-admin user, or any admin."""

    user_id: int | None = None
    admin: bool = False


ANONYMOUS = Audience()
ADMINS = Audience(admin=True)


def audience_of(viewer: models.User | None) -> Audience:
    if viewer is None:
        return ANONYMOUS
    if viewer.is_admin:
        return ADMINS
    return Audience(user_id=viewer.id)


@dataclass(frozen=True, slots=True)
class GroupKey:
    """What makes two subscriptions' answers equal: the operation, and who looks."""

    query: str
    variables: bytes  # canonical JSON
    operation_name: str | None
    audience: Audience


class Member:
    """One subscription: where its answers go, and those waiting to be sent."""

    __slots__ = (
        "_close",
        "_ending",
        "_limit",
        "_prefix",
        "_send",
        "_waiting",
        "_wake",
        "group",
        "token",
    )

    def __init__(
        self,
        operation: SocketOperation,
        token: str | None,
        close: Callable[[int, str], Awaitable[None]] | None,
        limit: int,
    ) -> None:
        self.token = token
        self.group: Group | None = None
        self._send = operation.send_text
        self._prefix = '{"id":' + orjson.dumps(operation.id).decode() + ',"type":"next","payload":'
        self._close = close
        self._limit = limit
        self._waiting: deque[str] = deque()
        self._wake = asyncio.Event()
        self._ending: tuple[int, str] | None = None

    @property
    def ending(self) -> bool:
        return self._ending is not None

    def offer(self, payload: str) -> None:
        """Queue a `next` message with `payload` (JSON); one too many closes the socket."""
        if self._ending is not None:
            return
        if len(self._waiting) >= self._limit:
            self.end(*TOO_SLOW)
            return
        self._waiting.append(payload)
        self._wake.set()

    def end(self, code: int, reason: str) -> None:
        """Close the socket with `code` (what is still waiting is dropped)."""
        if self._ending is None:
            self._ending = (code, reason)
            self._wake.set()

    async def serve(self) -> None:
        """Send what is offered until the member is ended (the operation task runs this)."""
        while True:
            if self._ending is not None:
                if self._close is not None:
                    await self._close(*self._ending)
                return
            if self._waiting:
                try:
                    await self._send(self._prefix + self._waiting.popleft() + "}")
                except WebSocketDisconnected:
                    return  # the client left: its operations end with the socket
                continue
            self._wake.clear()
            await self._wake.wait()


@dataclass(slots=True, eq=False)
class Group:
    """Subscriptions with one `GroupKey`; how their events are chosen, loaded and answered."""

    key: GroupKey
    variables: dict[str, object] | None
    schema: strawberry.Schema
    template: Context
    wanted: Wanted
    load: Load[Any]
    row_id: RowId
    # How the planner reads its payloads; None: the executor answers (planner off, declined).
    reader: EventReader | None = None
    members: dict[Member, None] = field(default_factory=dict)  # an ordered set

    def regrouped(self, key: GroupKey) -> "Group":
        return dataclasses.replace(self, key=key, members={})


@dataclass(slots=True)
class _Due:
    """A group's share of a batch: its viewer and loaders, and the rows loaded for it (or,
    planned, its payloads ready to send)."""

    group: Group
    viewer: models.User | None
    loaders: Loaders
    roots: Sequence[object] = ()
    payloads: list[str] | None = None


@dataclass(frozen=True, slots=True)
class _PlannedShare:
    """A due group the planner reads: its reader, its events' rows' ids, its price."""

    due: _Due
    reader: EventReader
    row_ids: list[int]
    cost: int


class Fanout:
    """A worker's subscriptions on one event bus, grouped; one dispatcher while any exist."""

    def __init__(self, bus: events.EventBus) -> None:
        self._bus = bus
        self._groups: dict[GroupKey, Group] = {}
        self._dispatching: asyncio.Task[None] | None = None
        self._busy = False

    @property
    def group_count(self) -> int:
        return len(self._groups)

    def subscribe(
        self,
        context: Context,
        schema: strawberry.Schema,
        wanted: Wanted,
        load: Load[T],
        row_id: RowId,
    ) -> AsyncIterator[T]:
        """For a subscription resolver: `async for never in ...: yield never`. It yields
        nothing: the answers are sent from here, until the operation ends."""
        return _Served(self._serve(context, schema, wanted, load, row_id))

    async def _serve(
        self,
        context: Context,
        schema: strawberry.Schema,
        wanted: Wanted,
        load: Load[Any],
        row_id: RowId,
    ) -> None:
        operation = context.operation
        if operation is None or context.sessions is None:
            raise RuntimeError("subscriptions run only over a websocket, with a session factory")
        # The operation's own session (its viewer lookup) is done with: give its connection back.
        await context.db.session.close()
        await self._start(context)
        key = GroupKey(
            operation.query,
            orjson.dumps(operation.variables or {}, option=orjson.OPT_SORT_KEYS),
            operation.operation_name,
            audience_of(context.viewer),
        )
        template = context.for_operation(
            db=serial_session.SerialSession(
                sessions=context.sessions
            ),  # never opened: replaced per batch
            viewer=None,
            token=None,
            close_connection=None,
            operation=None,
            connection_params=None,
            warnings=[],
        )
        limit = context.settings.subscriber_queue_size
        member = Member(operation, context.token, context.close_connection, limit)
        group = self._groups.get(key) or Group(
            key,
            operation.variables,
            schema,
            template,
            wanted,
            load,
            row_id,
            _event_reader(context.planner, template, key),
        )
        self._join(member, group)
        subscribed = _Subscribed(self, member)
        if operation.hand_over is not None:
            operation.hand_over(subscribed)
            return
        await subscribed.serve()

    async def _start(self, context: Context) -> None:
        """Listen (in the subscriber's task: a bus that cannot listen fails its subscription)."""
        if self._dispatching is not None:
            return
        listening = self._bus.listen()
        listener = await listening.__aenter__()
        if self._dispatching is not None:  # another subscriber started one meanwhile
            await listening.__aexit__(None, None, None)
            return
        # Its own context: no request's statement count or span is the dispatcher's.
        self._dispatching = asyncio.create_task(
            self._dispatch(listening, listener, context), context=contextvars.Context()
        )

    def _join(self, member: Member, group: Group) -> None:
        self._groups.setdefault(group.key, group)
        group.members[member] = None
        member.group = group
        metrics.open_subscriptions.inc()

    def leave(self, member: Member) -> None:
        group = member.group
        member.group = None
        if group is None:
            return
        metrics.open_subscriptions.dec()
        group.members.pop(member, None)
        if not group.members and self._groups.get(group.key) is group:
            del self._groups[group.key]
        if not self._groups and not self._busy and self._dispatching is not None:
            self._dispatching.cancel()  # waiting for events: nothing is cut short
            self._dispatching = None

    async def _dispatch(
        self,
        listening: AbstractAsyncContextManager[events.Listener],
        listener: events.Listener,
        context: Context,
    ) -> None:
        this = asyncio.current_task()
        sessions = context.sessions
        assert sessions is not None
        depth = context.settings.max_filter_depth
        try:
            while self._dispatching is this:
                try:
                    batch = [await listener.next(), *listener.take_waiting()]
                except events.ListenerTooSlowError:
                    logger.warning("subscription.too_slow", extra={"groups": len(self._groups)})
                    self._end_all(TOO_SLOW)
                    await listening.__aexit__(None, None, None)
                    listening = self._bus.listen()
                    listener = await listening.__aenter__()
                    continue
                await self._deliver_batch(sessions, depth, batch)
                if not self._groups and self._dispatching is this:
                    self._dispatching = None
        except Exception:
            # Never expected (a batch's errors are caught): the subscriptions cannot go on
            # without a dispatcher, so they end, and their clients may subscribe again.
            logger.exception("subscription.dispatcher_failed")
            if self._dispatching is this:
                self._dispatching = None
            self._end_all(DISPATCHER_FAILED)
        finally:
            await listening.__aexit__(None, None, None)

    def _end_all(self, close: tuple[int, str]) -> None:
        for group in self._groups.values():
            for member in group.members:
                member.end(*close)

    async def _deliver_batch(
        self, sessions: async_sessionmaker[AsyncSession], depth: int, batch: list[events.Event]
    ) -> None:
        self._busy = True
        try:
            await self._deliver(sessions, depth, batch)
        except Exception:
            logger.exception("subscription.delivery_failed")
        finally:
            self._busy = False

    async def _deliver(
        self, sessions: async_sessionmaker[AsyncSession], depth: int, batch: list[events.Event]
    ) -> None:
        """Answer every group the batch concerns; while the database is out of reach, wait."""
        delay = _RETRY_FIRST_DELAY
        while True:
            if not any(self._wanted(group, batch) for group in self._groups.values()):
                return
            started = time.perf_counter()
            phases: dict[str, float] = {}
            with statement_counts.count_statements() as counted:
                async with AsyncExitStack() as attempt:
                    try:
                        session = await attempt.enter_async_context(sessions())
                        serial = serial_session.SerialSession(session)
                        attempt.push_async_callback(serial.stop)
                        await session.connection()
                        phases["connection"] = time.perf_counter()
                        due = await self._prepare(serial, depth, batch)
                        phases["loaded"] = time.perf_counter()
                    except Exception as error:
                        _log_outage(error, "subscription.event_waits")
                    else:
                        answered = AsyncExitStack()
                        await answered.enter_async_context(attempt.pop_all())
                        try:
                            offered = await self._answer(serial, due)
                            # Logged once the answers are queued, before the session closes:
                            # by then members may have been sent theirs, and left.
                            _log_delivered(batch, due, offered, counted, started, phases)
                        finally:
                            await _end_session(answered)
                        return
            await asyncio.sleep(delay)  # after the failed session closed: it holds no connection
            delay = min(delay * 2, _RETRY_MAX_DELAY)

    @staticmethod
    def _wanted(group: Group, batch: list[events.Event]) -> list[events.Event]:
        return [event for event in batch if group.wanted(event)]

    async def _prepare(
        self, serial: serial_session.SerialSession, depth: int, batch: list[events.Event]
    ) -> list[_Due]:
        """The due groups with their rows loaded: tokens checked, members regrouped."""
        concerned = [group for group in self._groups.values() if self._wanted(group, batch)]
        viewers = await self._check_tokens(serial, concerned)
        due = self._due(serial, depth, batch, viewers)
        await self._read_planned(serial, due, batch)
        # All at once: the loads of one audience's groups share their loaders' statements.
        await asyncio.gather(
            *(
                self._load(share, self._wanted(share.group, batch))
                for share in due
                if share.payloads is None
            )
        )
        return due

    async def _read_planned(
        self, serial: serial_session.SerialSession, due: list[_Due], batch: list[events.Event]
    ) -> None:
        """The payloads of the due groups the planner reads: the groups of one audience whose
        readers share a plan and a shape in one read, whatever their number (`_PlannedShare`)."""
        reads: dict[tuple[Audience, int, bytes], list[_PlannedShare]] = {}
        for share in due:
            reader = share.group.reader
            if reader is None or (cost := _price(share.group)) is None:
                continue
            wanted = self._wanted(share.group, batch)
            row_ids = [i for event in wanted if (i := share.group.row_id(event)) is not None]
            key = (share.group.key.audience, id(reader.plan), reader.shape)
            reads.setdefault(key, []).append(_PlannedShare(share, reader, row_ids, cost))
        if not reads:
            return
        template = next(iter(reads.values()))[0].due.group.template
        assert template.planner is not None
        try:
            driver = await template.planner.event_fetch(serial, template.tracer)
        except Exception as error:
            if outages.outage_of(error) is not None:
                raise  # the batch waits for the database
            logger.exception("subscription.plan_failed")
            driver = None  # never expected: the reads go through the session
        for shares in reads.values():
            await _read_payloads(serial, driver, shares)

    @staticmethod
    async def _load(share: _Due, wanted: list[events.Event]) -> None:
        """The share's rows, for the executor."""
        share.roots = await share.group.load(share.loaders, wanted)

    async def _check_tokens(
        self, serial: serial_session.SerialSession, groups: list[Group]
    ) -> dict[str, models.User]:
        """The viewers of the groups' members' tokens, in one statement: a member whose token
        lapsed is ended (4403), one whose rights changed moves to its audience's group."""
        tokens = {m.token for g in groups for m in g.members if m.token is not None}
        if not tokens:
            return {}
        viewers = await serial.locked(lambda session: auth.viewers_from_tokens(session, tokens))
        for group in groups:
            for member in list(group.members):
                if member.token is None or member.ending:
                    continue
                viewer = viewers.get(member.token)
                if viewer is None:
                    logger.info("subscription.token_lapsed")
                    member.end(*TOKEN_LAPSED)
                elif (audience := audience_of(viewer)) != group.key.audience:
                    self._regroup(member, group, audience)
        return viewers

    def _due(
        self,
        serial: serial_session.SerialSession,
        depth: int,
        batch: list[events.Event],
        viewers: dict[str, models.User],
    ) -> list[_Due]:
        """The groups with live members that want some of the batch, with their audience's
        viewer and loaders (one of each per audience, shared by its groups)."""
        shared: dict[Audience, tuple[models.User | None, Loaders]] = {}
        due: list[_Due] = []
        for group in list(self._groups.values()):
            members = [m for m in group.members if not m.ending]
            if not members or not self._wanted(group, batch):
                continue
            audience = group.key.audience
            if audience not in shared:
                token = members[0].token
                viewer = None if token is None else viewers[token]
                shared[audience] = (viewer, Loaders(serial, viewer, max_filter_depth=depth))
            due.append(_Due(group, *shared[audience]))
        return due

    def _regroup(self, member: Member, group: Group, audience: Audience) -> None:
        key = dataclasses.replace(group.key, audience=audience)
        self.leave(member)
        self._join(member, self._groups.get(key) or group.regrouped(key))

    async def _answer(self, serial: serial_session.SerialSession, due: list[_Due]) -> int:
        """Execute each due group's operation on each of its rows; offer the answer to all.
        How many members were offered answers."""
        offered: set[Member] = set()

        def offer(group: Group, payload: str) -> None:
            for member in list(group.members):
                member.offer(payload)
                offered.add(member)

        async def answer(share: _Due) -> None:
            group = share.group
            for payload in share.payloads or ():
                offer(group, payload)
            for root in share.roots:
                context = group.template.for_operation(
                    viewer=share.viewer, loaders=share.loaders, db=serial, warnings=[]
                )
                result = await group.schema.execute(
                    group.key.query,
                    variable_values=group.variables,
                    context_value=context,
                    root_value=root,
                    operation_name=group.key.operation_name,
                    allowed_operation_types=_SUBSCRIPTION_ONLY,
                )
                offer(group, orjson.dumps(_next_payload(result)).decode())

        await asyncio.gather(*(answer(share) for share in due))
        return len(offered)


class _Subscribed:
    """A member in its group; served from its operation's task (see `SocketOperation`)."""

    __slots__ = ("_fanout", "_member")

    def __init__(self, fanout: Fanout, member: Member) -> None:
        self._fanout = fanout
        self._member = member

    async def serve(self) -> None:
        try:
            await self._member.serve()
        finally:
            self._fanout.leave(self._member)

    def abandon(self) -> None:
        self._fanout.leave(self._member)


class _Served(Generic[T]):
    """An async iterator that yields nothing: its first step serves until the end."""

    def __init__(self, serving: Awaitable[None]) -> None:
        self._serving = serving

    def __aiter__(self) -> "_Served[T]":
        return self

    async def __anext__(self) -> T:
        await self._serving
        raise StopAsyncIteration


def _event_reader(planner: Planner | None, template: Context, key: GroupKey) -> EventReader | None:
    """How the planner reads the group's payloads; None with the planner off, or declined."""
    if planner is None:
        return None
    cached = template.documents.get(key.query)
    if cached is None or cached.errors:
        return None
    variables = orjson.loads(key.variables)
    return planner.event_reader(cached, key.operation_name, variables)


async def _read_payloads(
    serial: serial_session.SerialSession, driver: DriverFetch | None, shares: list["_PlannedShare"]
) -> None:
    """Set each share's `next` payloads, read by the planner in one read and priced as the
    executor prices them; left None where the planner declines (the executor answers instead)."""
    first = shares[0].due
    context = first.group.template
    planner = context.planner
    assert planner is not None
    try:
        data = await planner.read_events(
            [(share.reader, share.row_ids) for share in shares],
            viewer=first.viewer,
            settings=context.settings,
            db=serial,
            driver=driver,
        )
    except NotPlannedError as reason:
        logger.debug("subscription.plan_declined", extra={"reason": str(reason)})
        return
    except Exception as error:
        if outages.outage_of(error) is not None:
            raise  # the batch waits for the database
        # Never expected: the executor answers the groups, its errors masked as ever.
        logger.exception("subscription.plan_failed")
        return
    for share, items in zip(shares, data, strict=True):
        extensions = {"cost": share.cost}
        share.due.payloads = [
            orjson.dumps({"data": item, "extensions": extensions}).decode() for item in items
        ]


def _price(group: Group) -> int | None:
    """The price of the group's operation, as the executor reports it with each answer; None
    when the executor should answer: the limits refuse it now, or its document left the cache
    (the executor parses it again)."""
    context = group.template
    cached = context.documents.get(group.key.query)
    if cached is None:
        return None
    cost, refused = limits.request_cost(
        cached,
        group.key.operation_name,
        group.variables,
        context.settings,
        schema=group.schema._schema,
        counts=context.row_counts,
    )
    return None if refused else cost


def _next_payload(result: ExecutionResult) -> dict[str, Any]:
    """A `next` message's payload, as strawberry's handler sends it."""
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


async def _end_session(session: AsyncExitStack) -> None:
    """Close the batch's session. It only read: a connection lost by now (the database went
    down just after the answers were queued) loses nothing, and the subscriptions go on."""
    try:
        await session.aclose()
    except Exception as error:
        _log_outage(error, "subscription.session_lost")


def _log_outage(error: Exception, event: str) -> None:
    """Log `event` if `error` is the database out of reach; raise anything else."""
    outage = outages.outage_of(error)
    if outage is None:
        raise error
    logger.warning(event, extra={"outage": outage.value})


def _log_delivered(
    batch: list[events.Event],
    due: list[_Due],
    subscribers: int,
    counted: statement_counts.StatementCount,
    started: float,
    phases: dict[str, float],
) -> None:
    logger.info(
        "subscription.delivered",
        extra={
            "events": len(batch),
            "groups": len(due),
            "subscribers": subscribers,
            "statements": counted.total,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "connection_ms": round((phases["connection"] - started) * 1000, 3),
            "load_ms": round((phases["loaded"] - phases["connection"]) * 1000, 3),
        },
    )


_fanouts: "WeakKeyDictionary[events.EventBus, Fanout]" = WeakKeyDictionary()


def fanout_of(bus: events.EventBus) -> Fanout:
    """The worker's fan-out over `bus` (made on first use)."""
    found = _fanouts.get(bus)
    if found is None:
        found = _fanouts[bus] = Fanout(bus)
    return found
