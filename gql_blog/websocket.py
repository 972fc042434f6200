"""graphql-transport-ws on /graphql: sign-in at `connection_init`, a session per operation, pings.

strawberry builds one context per socket (`GraphQLApp.get_context`); each operation here runs
with a copy of it that has a session of its own, closed when the operation ends, so no session
or loader cache lives as long as the socket and two operations never share a transaction.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.utils.aio import aclosing

from gql_blog import auth, db
from gql_blog.schema.context import Context

logger = logging.getLogger(__name__)


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """Messages as text frames: graphql-transport-ws clients (browsers too) expect text."""

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

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """strawberry's `run_operation`, with a context (and session) of the operation's own."""
        sessions = self.context.sessions
        if sessions is None:
            raise RuntimeError("a websocket context needs its session factory")
        try:
            async with sessions() as session:
                serial = db.SerialSession(session)
                context = _operation_context(self.context, serial, self.close)
                try:
                    await context.load_viewer()
                    await self._stream(operation, context)
                finally:
                    await serial.drain()
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

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
    connection: Context, serial: db.SerialSession, close: Callable[[int, str], Awaitable[None]]
) -> Context:
    """A copy of the socket's context for one operation: its own session, loaders, viewer."""
    return dataclasses.replace(
        connection,
        db=serial,
        viewer=None,
        warnings=[],
        lookahead={},
        close_connection=close,
        _loaders=None,
        _viewer_loaded=False,
        _viewer_lock=asyncio.Lock(),
    )
