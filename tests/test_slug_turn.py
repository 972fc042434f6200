"""MariaDB's slug turn (`writes._slug_turn`) when the write inside it loses its connection."""

import hashlib

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import writes

BASE = "a-title-whose-writer-dies"


async def test_a_turn_whose_connection_died_raises_the_writes_error_and_frees_the_turn(
    dialect: str, engine: AsyncEngine
) -> None:
    """A database restart mid-createPost must answer as an outage (the write's error), not as
    an internal error raised by releasing the turn on the dead connection; and the turn must not
    stay taken."""
    if dialect != "mariadb":
        pytest.skip("the slug turn is MariaDB's (GET_LOCK)")
    async with AsyncSession(engine) as session, engine.connect() as killer:

        async def write_on_a_dead_connection() -> None:
            async with writes._slug_turn(session, BASE):
                connection_id = await session.scalar(text("SELECT CONNECTION_ID()"))
                await killer.execute(text(f"KILL CONNECTION {int(connection_id)}"))
                await session.execute(text("SELECT 1"))  # the write

        with pytest.raises(OperationalError):
            await write_on_a_dead_connection()
        await session.rollback()

        # Another writer of the title gets its turn at once.
        async with AsyncSession(engine) as other, writes._slug_turn(other, BASE):
            name = f"gql_blog.slug.{hashlib.sha256(BASE.encode()).hexdigest()[:40]}"
            assert (
                await other.scalar(
                    text("SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"), {"name": name}
                )
                == 1
            )
