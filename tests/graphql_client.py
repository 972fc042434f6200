"""A GraphQL client for tests: real HTTP through the ASGI app, inside the test's transaction."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from gql_blog import auth, models
from gql_blog.app import create_app
from gql_blog.config import Settings


@dataclass(frozen=True, slots=True)
class GraphQLResult:
    data: Any
    errors: list[dict[str, Any]] | None
    status: int
    extensions: dict[str, Any] | None = None

    @property
    def error_messages(self) -> list[str]:
        return [error["message"] for error in self.errors or []]

    @property
    def error_codes(self) -> list[str | None]:
        return [(error.get("extensions") or {}).get("code") for error in self.errors or []]


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, db: AsyncSession) -> None:
        self.http = http
        self._db = db
        self._tokens: dict[int, str] = {}

    async def token_for(self, user: models.User) -> str:
        """A sign-in token for `user` (issued once per test)."""
        if user.id not in self._tokens:
            self._tokens[user.id] = await auth.issue_token(
                self._db, user, lifetime=timedelta(hours=1)
            )
        return self._tokens[user.id]

    async def query(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        viewer: models.User | None = None,
    ) -> GraphQLResult:
        headers = {}
        if viewer is not None:
            headers["Authorization"] = f"Bearer {await self.token_for(viewer)}"
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        return GraphQLResult(
            body.get("data"), body.get("errors"), response.status_code, body.get("extensions")
        )


# What a response must never show: a traceback, SQL, or the names of the drivers underneath.
LEAKS = ("Traceback", "SELECT ", "INSERT INTO", "sqlalchemy", "asyncpg", "asyncmy", "sqlite3")


def assert_clean(response: httpx.Response) -> None:
    """No 5xx, no masked internal error, nothing of the server's insides."""
    assert response.status_code < 500, response.text[:500]
    body = response.json()
    codes = [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]
    assert "INTERNAL_SERVER_ERROR" not in codes, response.text[:500]
    assert not any(leak in response.text for leak in LEAKS), response.text[:500]


def request_sessions(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Request sessions joined to the test's transaction: their commits are savepoints."""
    return async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@asynccontextmanager
async def serve_app(
    app: Starlette, db: AsyncSession, *, client_address: str = "127.0.0.1"
) -> AsyncIterator[GraphQLClient]:
    """Real HTTP through `app` (with its lifespan) from `client_address`; tokens via `db`."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield GraphQLClient(http, db)


@asynccontextmanager
async def serve_api(
    settings: Settings,
    connection: AsyncConnection,
    db: AsyncSession,
    *,
    client_address: str = "127.0.0.1",
) -> AsyncIterator[GraphQLClient]:
    """The app with `settings`, its request sessions joined to the test's transaction.

    Requests come from `client_address`, as the server sees it.
    """
    app = create_app(settings, sessions=request_sessions(connection))
    async with serve_app(app, db, client_address=client_address) as client:
        yield client
