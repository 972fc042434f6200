"""What every resolver of one request shares: its session, viewer, loaders and the settings."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gql_blog import models
from gql_blog.config import Settings
from gql_blog.db import SerialSession
from gql_blog.loaders import Loaders

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


@dataclass(slots=True)
class Context:
    db: SerialSession
    viewer: models.User | None
    loaders: Loaders
    settings: Settings
    request_id: str
    # The sign-in token the request carried (`logout` revokes it); None when it had none.
    token: str | None = None
    # The client's address, as uvicorn reports it (behind a trusted proxy: the forwarded one).
    client_address: str | None = None
    # Opens the operation's span when tracing is on (GQL_BLOG_OTEL); None when it is off.
    tracer: "Tracer | None" = None
    # What the client should know about its request, as `extensions.warnings`.
    warnings: list[str] = field(default_factory=list)
    # Which fields each connection's nodes select, by connection field node (see lookahead.py).
    lookahead: dict[int, frozenset[str]] = field(default_factory=dict)
