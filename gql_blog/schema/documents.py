"""The app's one cache of documents, by query text and bounded in bytes, not only entries.

One entry per document holds everything worked out from its text once: the parse, the
validation errors (limits first), the prices per variables (`costs`) and the planner's plans per
operation (`plans`). A parsed document keeps its source text and every token (for error
locations): about 360 bytes per token, measured with tracemalloc; its plans take about as many
bytes per character of query text as `_PLAN_BYTES_PER_CHARACTER` says. An entry's size is
estimated from these when it enters, so a cache of a few large documents holds as little memory as
one of many small ones. Documents over the token limit never parse, so they never enter it.
"""

from dataclasses import dataclass, field
from typing import Any

from graphql import DocumentNode, GraphQLError
from graphql.language import Token

from gql_blog.caches import SizedLruCache

# Measured ~360 bytes per token for the AST, its tokens and locations; rounded up.
_BYTES_PER_TOKEN = 400
# What the planner's plans of a document may take, per character of its text, and per entry.
_PLAN_BYTES_PER_CHARACTER = 32
_PLAN_OVERHEAD = 4096
# Prices remembered per document (by operation, variables and row counts) before it starts afresh.
_MAX_COSTS_PER_DOCUMENT = 64


@dataclass(frozen=True, slots=True)
class CachedDocument:
    document: DocumentNode
    errors: tuple[GraphQLError, ...]  # validation errors; empty when the document is valid
    size: int  # estimated bytes the entry keeps alive (its plans included)
    # Prices of requests the limits admitted, by (operation name, variables' text, row counts'
    # version); filled by `limits.request_cost`.
    costs: dict[tuple[str | None, str, int], int] = field(default_factory=dict)
    # The planner's work on each operation of the document, by operation name (plan/planner.py).
    plans: dict[str | None, Any] = field(default_factory=dict)

    def remember_cost(self, key: tuple[str | None, str, int], cost: int) -> None:
        """Remember a price; a full memo starts afresh (prices of older row counts go too)."""
        if len(self.costs) >= _MAX_COSTS_PER_DOCUMENT:
            self.costs.clear()
        self.costs[key] = cost


class DocumentCache:
    """A least-recently-used cache of documents by query text, at most `max_bytes` in total."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: SizedLruCache[str, CachedDocument] = SizedLruCache(max_bytes)

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def max_bytes(self) -> int:
        return self._cache.max_bytes

    @property
    def bytes(self) -> int:
        """The estimated bytes the cached entries hold."""
        return self._cache.bytes

    def get(self, query: str) -> CachedDocument | None:
        return self._cache.get(query)

    def put(self, query: str, document: DocumentNode, errors: list[GraphQLError]) -> CachedDocument:
        """Cache a parsed document with its validation errors, evicting the oldest to fit."""
        entry = CachedDocument(document, tuple(errors), estimated_size(query, document))
        self._cache.put(query, entry, entry.size)
        return entry


def estimated_size(query: str, document: DocumentNode) -> int:
    """Bytes a document's entry keeps alive: its source, string values, tokens and nodes, and
    room for its plans."""
    parsed = 2 * len(query) + _BYTES_PER_TOKEN * token_count(document)
    return parsed + _PLAN_BYTES_PER_CHARACTER * len(query) + _PLAN_OVERHEAD


def token_count(document: DocumentNode) -> int:
    """The tokens of a parsed document (graphql-core links them from the document's location)."""
    if document.loc is None:
        return 0
    count = 0
    token: Token | None = document.loc.start_token
    while token is not None:
        count += 1
        token = token.next
    return count
