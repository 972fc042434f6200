"""graphql-transport-ws on /graphql: sign-in at `connection_init`, a session per operation, pings.

strawberry builds one context per socket (`GraphQLApp.get_context`); each operation here runs
with a copy of it that has a session of its own, closed when the operation ends (a statement
still running is cancelled on the database), so no session or loader cache lives as long as the
socket and two operations never share a transaction. A subscription's execution (and session)
ends as soon as it has joined its fan-out group; its task then only sends the group's answers.

A worker holds at most `GQL_BLOG_MAX_WEBSOCKETS` sockets, and `GQL_BLOG_MAX_WEBSOCKETS_PER_ADDRESS`
from one client address (the address the rest of the app sees: behind a trusted proxy, the
forwarded one); one more is accepted and closed at once with 4429. A message longer than
`GQL_BLOG_MAX_BODY_BYTES` closes its socket with 4413 (uvicorn's own frame limit, twice that,
closes longer ones with 1009 before they are read whole).
"""

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext, suppress
from json import JSONDecodeError
from typing import Any, Protocol, cast

import orjson
from graphql import OperationType, get_operation_ast
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.utils.aio import aclosing

from gql_blog import auth, models, serial_session
from gql_blog.config import Settings
from gql_blog.schema.context import Context, SocketOperation, Subscribed, ViewerLookup
from gql_blog.schema.documents import CachedDocument

logger = logging.getLogger(__name__)

# Subscriptions a worker sets up at once (the rest wait their turn): a burst of subscribe
# messages would otherwise fill each turn of the event loop with hundreds of set-ups, and every
# other request would wait through several such turns (bench/fanout.py: /healthz's slowest
# answer while 4,000 subscriptions start, 65-100 ms at once, 19-42 ms 4 at a time).
SUBSCRIPTION_STARTS_AT_ONCE = 4

# Close codes (graphql-transport-ws leaves 4xxx to the server) and what they say.
TOO_MANY_SOCKETS = 4429
MESSAGE_TOO_LARGE = 4413


class MessageTooLargeError(Exception):
    """A client's message was longer than `GQL_BLOG_MAX_BODY_BYTES`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Message too large: longer than GQL_BLOG_MAX_BODY_BYTES ({limit} bytes)")


class SocketCount:
    """A worker's open websockets, in all and by client address (none kept at zero)."""

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.max_websockets
        self.per_address = settings.max_websockets_per_address
        self.total = 0
        self._by_address: Counter[str | None] = Counter()

    def refusal(self, address: str | None) -> str | None:
        """Why one more socket from `address` is refused; None when it is welcome."""
        if self.total >= self.limit:
            return f"Too many websockets: this server holds GQL_BLOG_MAX_WEBSOCKETS ({self.limit})"
        if self._by_address[address] >= self.per_address:
            return (
                "Too many websockets from your address: GQL_BLOG_MAX_WEBSOCKETS_PER_ADDRESS "
                f"({self.per_address})"
            )
        return None

    @contextmanager
    def held(self, address: str | None) -> Iterator[None]:
        self.total += 1
        self._by_address[address] += 1
        try:
            yield
        finally:
            self.total -= 1
            self._by_address[address] -= 1
            if not self._by_address[address]:
                del self._by_address[address]


class _View(Protocol):
    """What the handlers need of `app.GraphQLApp` (importing it here would be a cycle)."""

    settings: Settings
    sockets: SocketCount
    subscription_starts: asyncio.Semaphore

    def document(self, query: str) -> CachedDocument | None: ...


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """Messages as text frames: graphql-transport-ws clients (browsers too) expect text.

    A message longer than `GQL_BLOG_MAX_BODY_BYTES` raises `MessageTooLargeError` unread."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        limit = cast("_View", self.view).settings.max_body_bytes
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                # UTF-8 takes at most 4 bytes a character: most messages need no encoding.
                if len(text) * 4 > limit and len(text.encode()) > limit:
                    raise MessageTooLargeError(limit)
                try:
                    message = self.view.decode_json(text)
                except JSONDecodeError as error:
                    if ignore_parsing_errors:
                        continue
                    raise NonJsonMessageReceived from error
                yield message
        except KeyError as error:  # a bytes frame: starlette finds no "text"
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            return

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except (WebSocketDisconnect, RuntimeError) as error:  # RuntimeError: closed already
            raise WebSocketDisconnected from error


def connection_token(payload: Mapping[str, object] | None) -> tuple[bool, str | None]:
    """(whether the payload names a token, the bearer token); the key's casing is free."""
    for key, value in (payload or {}).items():
        if key.lower() == "authorization":
            return True, auth.bearer_token(value) if isinstance(value, str) else None
    return False, None


async def sign_in(context: Context, sessions: async_sessionmaker[AsyncSession]) -> None:
    """The socket's token from `connection_init`; a bad one refuses the connection (4403)."""
    named, token = connection_token(context.connection_params)
    if not named:
        return
    if token is None:
        raise ConnectionRejectionError
    async with sessions() as session:
        viewer = await auth.viewer_from_token(session, token)
    if viewer is None:
        raise ConnectionRejectionError
    context.token = token


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """strawberry's handler with per-operation sessions, server pings, and closing on demand."""

    context: Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed = False
        self._pinging: asyncio.Task[None] | None = None
        # The socket token's user, looked up once for the operations that start meanwhile.
        self._viewer_lookup: asyncio.Future[models.User | None] | None = None

    async def handle(self) -> None:
        """strawberry's message loop, within the worker's socket limits and message size."""
        sockets = cast("_View", self.view).sockets
        address = self.context.client_address
        refusal = sockets.refusal(address)
        if refusal is not None:
            logger.warning("websocket.refused", extra={"reason": refusal})
            await self.close(TOO_MANY_SOCKETS, refusal)
            return
        with sockets.held(address):
            try:
                await super().handle()
            except MessageTooLargeError as error:
                # The operations have ended (strawberry's `shutdown` ran on the way out).
                await self.close(MESSAGE_TOO_LARGE, str(error))

    def on_request_accepted(self) -> None:
        super().on_request_accepted()
        self._pinging = asyncio.create_task(self._ping())

    async def shutdown(self) -> None:
        if self._pinging is not None:
            self._pinging.cancel()
            with suppress(asyncio.CancelledError):
                await self._pinging
        await super().shutdown()

    async def _ping(self) -> None:
        """Keep-alive: a ping every interval keeps proxies from dropping an idle socket."""
        interval = self.context.settings.websocket_keepalive_seconds
        with suppress(WebSocketDisconnected):
            while not self._closed:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def close(self, code: int, reason: str) -> None:
        """Close the socket (once); what the operations still send is dropped."""
        if self._closed:
            return
        self._closed = True
        logger.info("websocket.closed", extra={"code": code, "reason": reason})
        with suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code=code, reason=reason)

    async def send_message(self, message: Message) -> None:
        if self._closed:
            return
        await super().send_message(message)

    async def send_text(self, text: str) -> None:
        """Send a message encoded already (a subscription's answer, shared by its group)."""
        if self._closed:
            return
        socket = cast("TextWebSocketAdapter", self.websocket).ws
        try:
            await socket.send_text(text)
        except (WebSocketDisconnect, RuntimeError) as error:  # RuntimeError: closed already
            raise WebSocketDisconnected from error

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """strawberry's `run_operation`, with a context (and session) of the operation's own.

        A subscription that joined its fan-out group is served from here once its execution
        has ended: what stays per subscriber is this task and its group membership, not the
        execution's context, session, extensions and generators (fewer objects for the
        garbage collector to walk in every full collection, which pauses the worker)."""
        subscribed: list[Subscribed] = []
        try:
            async with self._start_turn(operation):
                await self._execute(operation, subscribed)
            if subscribed:
                await subscribed.pop().serve()
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
        finally:
            for never_served in subscribed:  # the operation ended before its serving began
                never_served.abandon()

    def _start_turn(self, operation: Operation[Context, None]) -> AbstractAsyncContextManager[Any]:
        """A subscription's turn to be set up (see SUBSCRIPTION_STARTS_AT_ONCE): its execution
        ends once it has joined its group. Any other operation runs at once (a query's turn
        would last as long as its statements). A new text is parsed and validated here into
        the document cache, where the limits' extension then finds it."""
        view = cast("_View", self.view)
        cached = view.document(operation.query)
        if cached is None or cached.errors:
            return nullcontext()
        found = get_operation_ast(cached.document, operation.operation_name)
        if found is None or found.operation is not OperationType.SUBSCRIPTION:
            return nullcontext()
        return view.subscription_starts

    async def _execute(
        self, operation: Operation[Context, None], subscribed: list[Subscribed]
    ) -> None:
        """The operation's execution, in a session of its own; a subscription hands itself
        over to `subscribed` on the way."""
        sessions = self.context.sessions
        if sessions is None:
            raise RuntimeError("a websocket context needs its session factory")
        async with sessions() as session:
            serial = serial_session.SerialSession(session)
            context = _operation_context(self.context, serial, self.close)
            context.operation = SocketOperation(
                operation.id,
                operation.query,
                operation.variables,
                operation.operation_name,
                self.send_text,
                subscribed.append,
            )
            try:
                await self._load_viewer(context)
                await self._stream(operation, context)
            finally:
                # Ended (completed, cancelled, socket gone): a statement still running
                # is stopped on the database before the session closes.
                await serial.stop()

    async def _load_viewer(self, context: Context) -> None:
        """The operation's viewer, from the token's lookup in flight if there is one: a client
        subscribing twenty times at once costs one statement, not twenty. A token that signs
        no one in now is looked up again by the operation, to say why."""
        token = context.token
        if token is None:
            await context.load_viewer()
            return
        if self._viewer_lookup is None:
            lookup = asyncio.ensure_future(self._look_up_viewer(token))
            self._viewer_lookup = lookup
            lookup.add_done_callback(self._forget_lookup)
        viewer = await asyncio.shield(self._viewer_lookup)
        if viewer is None:
            await context.load_viewer()
            return
        context.use_viewer(viewer)

    def _forget_lookup(self, lookup: "asyncio.Future[models.User | None]") -> None:
        if self._viewer_lookup is lookup:
            self._viewer_lookup = None
        if not lookup.cancelled():
            lookup.exception()  # retrieved: its awaiters have it

    async def _look_up_viewer(self, token: str) -> models.User | None:
        sessions = self.context.sessions
        assert sessions is not None
        async with sessions() as session:
            return await auth.viewer_from_token(session, token)

    async def _stream(self, operation: Operation[Context, None], context: Context) -> None:
        result_source = await self.schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=context,
            root_value=self.root_value,
            operation_name=operation.operation_name,
        )
        async with aclosing(result_source):
            await self._send_result_stream(operation, result_source)


def _operation_context(
    connection: Context,
    serial: serial_session.SerialSession,
    close: Callable[[int, str], Awaitable[None]],
) -> Context:
    """A copy of the socket's context for one operation: its own session, loaders, viewer."""
    return connection.for_operation(
        viewer=ViewerLookup.FROM_TOKEN, db=serial, warnings=[], close_connection=close
    )
