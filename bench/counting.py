"""SQL statements per request: one request through each app, in process, with the counter on.

The request goes through the whole ASGI app (context getter, session, schema, JSON) over httpx's
ASGI transport, which runs the app in the caller's task, so `gql_blog.db.count_statements()` sees
every statement the request sends. Transaction control (BEGIN, SAVEPOINT, ...) is not counted.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from gql_blog import db
from gql_blog.config import Settings

AppFactory = Callable[..., Starlette]

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")


@dataclass(frozen=True, slots=True, kw_only=True)
class CountedRequest:
    statements: int
    data: Any
    errors: Any
    response_bytes: int


async def count_request(
    create_app: AppFactory,
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    query: str,
) -> CountedRequest:
    """Send `query` twice (the first warms caches) and count the second request's statements."""
    app = create_app(settings, sessions=sessions)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.post("/graphql", json={"query": query})
            with db.count_statements() as counted:
                response = await client.post("/graphql", json={"query": query})
    body = orjson.loads(response.content)
    statements = [
        sql
        for sql in counted.statements
        if not sql.lstrip().upper().startswith(_TRANSACTION_CONTROL)
    ]
    return CountedRequest(
        statements=len(statements),
        data=body.get("data"),
        errors=body.get("errors"),
        response_bytes=len(response.content),
    )
