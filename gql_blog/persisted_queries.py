"""Persisted queries: automatic ones (Apollo's protocol) and the trusted-documents allow-list.

A client sends `extensions.persistedQuery = {version: 1, sha256Hash}`, with the query text or
without it. With the text, the hash must be the text's SHA-256 (else 400) and the pair is
registered: in the database's `persisted_queries` table (`SharedQueries`), which every worker
and host reads, and in this process's cache bounded in bytes in front of it. Without the text, a
registered hash stands for its text (the cache first, then the table), and an unknown one
answers `PersistedQueryNotFound` (`PERSISTED_QUERY_NOT_FOUND`), so the client sends the text once
more. Resolution happens as the request is parsed, before any other step sees `query`, for each
operation of a batch on its own.

With trusted documents (GQL_BLOG_TRUSTED_DOCUMENTS: a JSON object hash → document text, as
`@graphql-codegen/cli`'s client preset writes `persisted-documents.json`) only those documents
run: by their hash in the file, by the SHA-256 of their text, or as their full text. Nothing is
registered, and any other document is refused (`FORBIDDEN`).
"""

import dataclasses
import hashlib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError
from sqlalchemy import delete, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import Executable
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from gql_blog import engines, metrics, models
from gql_blog.caches import SizedLruCache
from gql_blog.config import ConfigError
from gql_blog.graphql_http import RequestRefused
from gql_blog.schema.errors import FORBIDDEN, PERSISTED_QUERY_NOT_FOUND

TRUSTED_DOCUMENTS_VARIABLE = "GQL_BLOG_TRUSTED_DOCUMENTS"
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
UNTRUSTED_MESSAGE = (
    "This server runs only its trusted documents, and this operation is not one of them."
)
# Each registered entry also costs its dictionary slot and key object; rounded up.
_ENTRY_OVERHEAD_BYTES = 200


@dataclasses.dataclass
class UnresolvedRequest(GraphQLRequestData):
    """An operation whose persisted query could not be resolved: it answers `error`, unrun."""

    error: GraphQLError | None = None

    def answer(self) -> ExecutionResult:
        """The operation's answer, counted in the metrics as any refused operation is."""
        errors = [self.error] if self.error else []
        metrics.observe_operation(
            operation=self.operation_name,
            seconds=0.0,
            statements=0,
            error_codes=[(error.extensions or {}).get("code") for error in errors],
            path=metrics.EXECUTOR,
        )
        return ExecutionResult(data=None, errors=errors)


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def persisted_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The hash of `extensions.persistedQuery`, None without one; a malformed one is a 400."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise _refused("`extensions.persistedQuery` must be {version: 1, sha256Hash: string}.")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not digest:
        raise _refused("`extensions.persistedQuery.sha256Hash` must be a non-empty string.")
    return digest


class RegisteredQueries(SizedLruCache[str, str]):
    """Registered query texts by hash, least recently used first out, at most `max_bytes`."""

    def register(self, digest: str, query: str) -> None:
        self.put(digest, query, _entry_size(digest, query))


def _entry_size(digest: str, query: str) -> int:
    # A str of non-ASCII text takes up to 4 bytes a character; ASCII 1 (plus its header).
    return _ENTRY_OVERHEAD_BYTES + len(digest) + len(query.encode())


class TrustedDocuments:
    """The allow-list: each document by its key in the file and by its text's SHA-256."""

    def __init__(self, documents: Mapping[str, str]) -> None:
        self._by_hash: dict[str, str] = {}
        for key, text in documents.items():
            self._by_hash[key] = text
            self._by_hash[sha256_hex(text)] = text

    def __len__(self) -> int:
        return len(set(self._by_hash.values()))

    def get(self, digest: str) -> str | None:
        return self._by_hash.get(digest)

    def allows(self, query: str) -> bool:
        return self._by_hash.get(sha256_hex(query)) == query


def load_trusted_documents(path: str) -> TrustedDocuments:
    """Read a persisted-documents JSON file (hash → text); a bad file names the variable."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{TRUSTED_DOCUMENTS_VARIABLE}: cannot read {path}: {error}") from None
    try:
        documents = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"{TRUSTED_DOCUMENTS_VARIABLE}: {path} is not JSON: {error}") from None
    if not isinstance(documents, dict) or not all(
        isinstance(key, str) and isinstance(text, str) for key, text in documents.items()
    ):
        raise ConfigError(
            f"{TRUSTED_DOCUMENTS_VARIABLE}: {path} must be a JSON object of hash → document text"
        )
    return TrustedDocuments(documents)


class SharedQueries:
    """The registered texts every worker and host shares: the `persisted_queries` table.

    Each lookup and registration is a short session of its own on the primary (never the
    request's: a registration commits whatever the request does next). A registration of a
    hash already there moves its `registered_at`; every `_REGISTRATIONS_PER_PRUNE`-th one also
    deletes the rows not registered again within the retention period, so the table cannot
    grow without bound.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, retention: timedelta) -> None:
        self._sessions = sessions
        self._retention = retention
        self._registrations = 0

    async def get(self, digest: str) -> str | None:
        stmt = select(models.PersistedQuery.query).where(models.PersistedQuery.sha256 == digest)
        async with self._sessions() as session:
            found: str | None = await session.scalar(stmt)
            return found

    async def register(self, digest: str, query: str) -> None:
        async with self._sessions() as session, session.begin():
            now = models.utc_now()
            await session.execute(_upsert(session, digest, query, now))
            self._registrations += 1
            if self._registrations % _REGISTRATIONS_PER_PRUNE == 0:
                cutoff = now - self._retention
                await session.execute(
                    delete(models.PersistedQuery)
                    .where(models.PersistedQuery.registered_at < cutoff)
                    .execution_options(**{engines.BACKGROUND: True})
                )


_REGISTRATIONS_PER_PRUNE = 100


def _upsert(session: AsyncSession, digest: str, query: str, now: Any) -> Executable:
    """INSERT the row, or move the `registered_at` of the one already there (any dialect)."""
    values = {"sha256": digest, "query": query, "registered_at": now}
    table = models.PersistedQuery
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        return mysql.insert(table).values(values).on_duplicate_key_update(registered_at=now)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(table)
        .values(values)
        .on_conflict_do_update(index_elements=["sha256"], set_={"registered_at": now})
    )


class PersistedQueries:
    """Resolves each operation's query: registered (APQ) or, in trusted mode, from the list.

    Registered texts are shared through `shared` once the app has started (`share`); until
    then (and in unit tests without a database) they stay in this process.
    """

    def __init__(self, *, max_bytes: int, trusted: TrustedDocuments | None = None) -> None:
        self.registered = RegisteredQueries(max_bytes)
        self.trusted = trusted
        self.shared: SharedQueries | None = None

    def share(self, shared: SharedQueries | None) -> None:
        self.shared = shared

    async def resolve_all(
        self, request_data: GraphQLRequestData | list[GraphQLRequestData]
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if isinstance(request_data, list):
            return [await self.resolve(data) for data in request_data]
        return await self.resolve(request_data)

    async def resolve(self, data: GraphQLRequestData) -> GraphQLRequestData:
        """The operation with its query text, or an `UnresolvedRequest` that answers why not."""
        digest = persisted_hash(data.extensions)
        if self.trusted is not None:
            return self._resolve_trusted(data, digest, self.trusted)
        if digest is None:
            return data
        if data.query is None:
            query = await self._registered_text(digest)
            if query is None:
                return _unresolved(data, _not_found())
            return dataclasses.replace(data, query=query)
        _check_hash(data.query, digest)
        if self.registered.get(digest) is None:
            if self.shared is not None:
                await self.shared.register(digest, data.query)
            self.registered.register(digest, data.query)
        return data

    async def _registered_text(self, digest: str) -> str | None:
        """The text registered for `digest`: this process's cache first, then the table."""
        query = self.registered.get(digest)
        if query is None and self.shared is not None:
            query = await self.shared.get(digest)
            if query is not None:
                self.registered.register(digest, query)
        return query

    def _resolve_trusted(
        self, data: GraphQLRequestData, digest: str | None, trusted: TrustedDocuments
    ) -> GraphQLRequestData:
        if digest is not None:
            listed = trusted.get(digest)
            if data.query is not None and data.query != listed:
                _check_hash(data.query, digest)
            if listed is None:
                error = _not_found() if data.query is None else _untrusted()
                return _unresolved(data, error)
            return dataclasses.replace(data, query=listed)
        if data.query is None or trusted.allows(data.query):
            return data  # no query at all: strawberry answers that 400
        return _unresolved(data, _untrusted())


def _check_hash(query: str, digest: str) -> None:
    if sha256_hex(query) != digest:
        raise _refused(
            "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of the query "
            "(hex, lower case, of its UTF-8 text)."
        )


def _unresolved(data: GraphQLRequestData, error: GraphQLError) -> UnresolvedRequest:
    return UnresolvedRequest(
        query=None,
        variables=data.variables,
        operation_name=data.operation_name,
        extensions=data.extensions,
        protocol=data.protocol,
        error=error,
    )


def _not_found() -> GraphQLError:
    return GraphQLError(NOT_FOUND_MESSAGE, extensions={"code": PERSISTED_QUERY_NOT_FOUND})


def _untrusted() -> GraphQLError:
    return GraphQLError(UNTRUSTED_MESSAGE, extensions={"code": FORBIDDEN})


def _refused(message: str) -> RequestRefused:
    return RequestRefused(400, GraphQLError(message, extensions={"code": "BAD_USER_INPUT"}))
