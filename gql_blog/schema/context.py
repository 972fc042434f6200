"""What every resolver of one request shares: its session, viewer, loaders and the settings."""

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gql_blog import auth, events, models
from gql_blog.config import Settings
from gql_blog.loaders import Loaders
from gql_blog.plan.planner import Planner
from gql_blog.read_pool import ReadPool
from gql_blog.row_counts import RowCounts
from gql_blog.schema.documents import DocumentCache
from gql_blog.schema.warnings import signed_out_warning
from gql_blog.serial_session import SerialSession

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)


class Subscribed(Protocol):
    """A subscription that joined its fan-out group, to be served once its operation's
    execution has unwound (see fanout.py)."""

    async def serve(self) -> None:
        """Send its answers until it ends (the operation's task runs this)."""

    def abandon(self) -> None:
        """Leave the group without being served (the operation ended first)."""


@dataclass(frozen=True, slots=True)
class SocketOperation:
    """A websocket operation, as subscriptions fan out its answers (see fanout.py)."""

    id: str
    query: str
    variables: dict[str, object] | None
    operation_name: str | None
    # Sends one text frame (a whole graphql-transport-ws message) to the socket.
    send_text: Callable[[str], Awaitable[None]]
    # Takes a subscription that joined its group: the operation's task serves it after the
    # execution that set it up has ended, so nothing of that execution stays per subscriber.
    # None: the subscription is served from within its execution.
    hand_over: Callable[[Subscribed], None] | None = None


class ViewerLookup(enum.Enum):
    """How a copy of a context (`Context.for_operation`) comes by its viewer."""

    SHARED = "shared"  # the original's viewer and its one lookup
    FROM_TOKEN = "from token"  # its own lookup of the token's user, on first use


@dataclass(slots=True)
class Context:
    db: SerialSession
    viewer: models.User | None
    settings: Settings
    request_id: str
    # The app's parsed and validated documents, shared by its requests (see documents.py).
    documents: DocumentCache
    # Where mutations send their events once committed, and subscriptions listen.
    events: events.EventBus
    # The tables' row counts the cost model prices by, kept fresh by the app (row_counts.py).
    row_counts: RowCounts = field(default_factory=RowCounts)
    # PostgreSQL over HTTP: the planned read path's own connections (see read_pool.ReadPool).
    reads: ReadPool | None = None
    # The sign-in token the request carried (`logout` revokes it); None when it had none.
    token: str | None = None
    # The client's address, as uvicorn reports it (behind a trusted proxy: the forwarded one).
    client_address: str | None = None
    # Opens the operation's span when tracing is on (GQL_BLOG_OTEL); None when it is off.
    tracer: "Tracer | None" = None
    # What the client should know about its request, as `extensions.warnings`.
    warnings: list[str] = field(default_factory=list)
    # A websocket operation's: the sessions each subscription event opens one of, and how to
    # close the socket (a lapsed token, a subscriber too far behind). None over HTTP.
    sessions: async_sessionmaker[AsyncSession] | None = None
    close_connection: Callable[[int, str], Awaitable[None]] | None = None
    # A websocket's: the planner its subscriptions' events are read by; None with it off.
    planner: Planner | None = None
    # A websocket operation's own: its id and text, and how to send it a ready message.
    operation: "SocketOperation | None" = None
    # The websocket's `connection_init` payload (strawberry sets it); None over HTTP.
    connection_params: dict[str, object] | None = None
    # Which fields each connection's nodes select, by connection field node (see lookahead.py).
    lookahead: dict[int, frozenset[str]] = field(default_factory=dict)
    _loaders: Loaders | None = None
    # The viewer row is loaded for resolvers only (the planned path reads the token itself).
    _viewer_loaded: bool = False
    _viewer_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def for_operation(
        self,
        *,
        viewer: models.User | ViewerLookup | None = ViewerLookup.SHARED,
        loaders: Loaders | None = None,
        **fields: Any,
    ) -> "Context":
        """A copy for another operation: its own lookahead and `loaders` (None: fresh ones, built
        on first use), `fields` replaced. A `viewer` given is taken as looked up already."""
        copy = dataclasses.replace(self, lookahead={}, _loaders=loaders, **fields)
        if viewer is ViewerLookup.SHARED:
            return copy
        copy._viewer_lock = asyncio.Lock()
        if viewer is ViewerLookup.FROM_TOKEN:
            copy.viewer, copy._viewer_loaded = None, False
        else:
            copy.use_viewer(viewer)
        return copy

    async def load_viewer(self) -> models.User | None:
        """Look up the token's user once, before strawberry's resolvers read `viewer`."""
        async with self._viewer_lock:
            if not self._viewer_loaded:
                self.viewer = await self.db.locked(
                    lambda session: auth.viewer_from_token(session, self.token)
                )
                if self.viewer is None and (token := self.token) is not None:
                    reason = await self.db.locked(
                        lambda session: auth.why_signed_out(session, token, models.utc_now())
                    )
                    self.report_signed_out(reason)
                self._viewer_loaded = True
        return self.viewer

    def use_viewer(self, viewer: models.User | None) -> None:
        """The token's user, looked up already (a websocket's operations share a lookup)."""
        self.viewer = viewer
        self._viewer_loaded = True

    def report_signed_out(self, reason: auth.SignedOut) -> None:
        """Warn the client that its `Bearer` token signed no one in, and why (once per request,
        whichever execution path looked the token up first)."""
        warning = signed_out_warning(reason)
        if warning in self.warnings:
            return
        # The token itself is never logged: it may be a live credential of someone else.
        logger.info(
            "auth.token_refused", extra={"request_id": self.request_id, "reason": reason.value}
        )
        self.warnings.append(warning)

    @property
    def loaders(self) -> Loaders:
        """The request's loaders, built on first use (a planned request never needs them)."""
        if self._loaders is None:
            self._loaders = Loaders(
                self.db, self.viewer, max_filter_depth=self.settings.max_filter_depth
            )
        return self._loaders

    @loaders.setter
    def loaders(self, loaders: Loaders) -> None:
        self._loaders = loaders
