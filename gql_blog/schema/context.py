"""What every resolver of one request shares: its session, viewer, loaders and the settings."""

from dataclasses import dataclass, field

from gql_blog import models
from gql_blog.config import Settings
from gql_blog.db import SerialSession
from gql_blog.loaders import Loaders


@dataclass(slots=True)
class Context:
    db: SerialSession
    viewer: models.User | None
    settings: Settings
    request_id: str
    # The sign-in token the request carried (`logout` revokes it); None when it had none.
    token: str | None = None
    # Which fields each connection's nodes select, by connection field node (see lookahead.py).
    lookahead: dict[int, frozenset[str]] = field(default_factory=dict)
    _loaders: Loaders | None = None

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
