"""Readiness: can this process serve? Its database answers and is at the latest migration."""

import asyncio

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gql_blog import migrations
from gql_blog.outages import error_reason

# A load balancer's probe gives up after a few seconds; answer before it does.
TIMEOUT_SECONDS = 3.0


async def readiness_problem(sessions: async_sessionmaker[AsyncSession], *, head: str) -> str | None:
    """What keeps the database from serving requests, or None when it is ready."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), sessions() as session:
            connection = await session.connection()
            revision = await connection.run_sync(migrations.current_revision)
    except TimeoutError:
        return f"the database did not answer within {TIMEOUT_SECONDS:g} seconds"
    except (OSError, DBAPIError) as error:
        return f"the database is unreachable: {error_reason(error)}"
    if revision == head:
        return None
    at = "never migrated" if revision is None else f"at {revision}"
    return f"the database is not at the latest migration ({at}, head is {head})"
