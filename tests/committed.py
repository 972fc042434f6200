"""The app on its own engine, with real commits: for tests of concurrent requests.

Each request gets its own connection from the app's pool, as in production. Rows are made and
tokens issued through `CommittedApi.db` and committed before the requests; every table is
emptied afterwards, so the next test starts from an empty database again.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.applications import Starlette

from gql_blog import engines, models
from gql_blog.app import create_app
from gql_blog.config import Settings
from tests.graphql_client import GraphQLClient


@dataclass(frozen=True, slots=True)
class CommittedApi:
    api: GraphQLClient
    db: AsyncSession
    app: Starlette


async def empty_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(models.Base.metadata.sorted_tables):
            await connection.execute(delete(table))


@asynccontextmanager
async def serve_committed_api(settings: Settings) -> AsyncIterator[CommittedApi]:
    """The app with its own engine (built by its lifespan); tables emptied afterwards."""
    engine = engines.create_engine(settings)
    app = create_app(settings)
    try:
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
            ) as http,
            engines.create_sessionmaker(engine)() as session,
        ):
            yield CommittedApi(GraphQLClient(http, session), session, app)
    finally:
        await empty_tables(engine)
        await engine.dispose()
