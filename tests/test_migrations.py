"""Migrations on every dialect: each test migrates its own empty database."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import column, func, insert, inspect, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_blog import migrations, models, search
from gql_blog.config import Settings
from gql_blog.engines import create_engine
from tests.databases import DIALECTS, empty_database

pytestmark = pytest.mark.parametrize("dialect", DIALECTS)

FIRST_REVISION = "0001"
# The users table as revision 0001 made it: the model's has grown columns since.
USERS_AT_FIRST_REVISION = table(
    "users", column("id"), column("username"), column("email"), column("password_hash")
)


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrations.upgrade, url, revision)


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(migrations.downgrade, url, revision)


def _table_names(connection: Connection) -> set[str]:
    """The tables, but full-text search's (an FTS5 table and its shadow tables on SQLite)."""
    names = inspect(connection).get_table_names()
    return {name for name in names if not search.is_search_object(name, "table")}


async def inspect_database(url: str) -> tuple[str | None, list[object], set[str]]:
    """The database's revision, its differences from the models, and its tables."""
    async with engine_for(url) as engine, engine.connect() as connection:
        revision = await connection.run_sync(migrations.current_revision)
        differences = await connection.run_sync(migrations.schema_differences)
        tables = await connection.run_sync(_table_names)
    return revision, differences, tables


async def test_upgrade_head_on_empty_database_matches_the_models(
    dialect: str, tmp_path: Path
) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url)
        revision, differences, tables = await inspect_database(url)
    assert differences == []
    assert revision == migrations.head_revision()
    assert tables == set(models.Base.metadata.tables) | {"alembic_version"}


async def test_downgrade_base_leaves_only_the_version_table(dialect: str, tmp_path: Path) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url)
        await downgrade(url, "base")
        revision, _, tables = await inspect_database(url)
    assert revision is None
    assert tables == {"alembic_version"}


async def test_data_written_at_first_revision_survives_upgrade_head(
    dialect: str, tmp_path: Path
) -> None:
    users = USERS_AT_FIRST_REVISION
    posts = models.Post.__table__
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url, FIRST_REVISION)
        async with engine_for(url) as engine, engine.begin() as connection:
            await connection.execute(
                insert(users).values(
                    id=1, username="ada", email="ada@example.test", password_hash="x"
                )
            )
            await connection.execute(
                insert(posts).values(id=1, title="Notes", content="On engines.", user_id=1)
            )
        await upgrade(url)
        async with engine_for(url) as engine, engine.connect() as connection:
            user_rows = (await connection.execute(select(users.c.id, users.c.username))).all()
            post_rows = (
                await connection.execute(select(posts.c.id, posts.c.title, posts.c.user_id))
            ).all()
            revision = await connection.run_sync(migrations.current_revision)
    assert revision == migrations.head_revision()
    assert [tuple(row) for row in user_rows] == [(1, "ada")]
    assert [tuple(row) for row in post_rows] == [(1, "Notes", 1)]


async def test_upgrade_after_downgrade_base_matches_the_models(
    dialect: str, tmp_path: Path
) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url)
        await downgrade(url, "base")
        await upgrade(url)
        revision, differences, _ = await inspect_database(url)
    assert differences == []
    assert revision == migrations.head_revision()


async def test_downgrade_to_first_revision_restores_its_tables(
    dialect: str, tmp_path: Path
) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url, FIRST_REVISION)
        _, _, tables_at_first = await inspect_database(url)
        await upgrade(url)
        await downgrade(url, FIRST_REVISION)
        revision, _, tables = await inspect_database(url)
    assert revision == FIRST_REVISION
    assert tables == tables_at_first


async def test_slugs_and_publishing_times_are_filled_for_existing_posts_and_go_back_down(
    dialect: str, tmp_path: Path
) -> None:
    # Posts and comments as revision 0008 knows them: no slug, publishing time or replies yet.
    users = USERS_AT_FIRST_REVISION
    posts = table(
        "posts",
        column("id"),
        column("title"),
        column("content"),
        column("published"),
        column("user_id"),
        column("created_at"),
        column("updated_at"),
    )
    comments = table(
        "comments", column("id"), column("content"), column("user_id"), column("post_id")
    )
    created = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    titles = ["Hello, World!", "hello world", "Crème brûlée", "???", "Hello World"]
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url, "0008")
        async with engine_for(url) as engine, engine.begin() as connection:
            await connection.execute(
                insert(users).values(id=1, username="ada", email="a@x.test", password_hash="x")
            )
            for number, title in enumerate(titles, start=1):
                await connection.execute(
                    insert(posts).values(
                        id=number,
                        title=title,
                        content="C",
                        published=number != 2,
                        user_id=1,
                        created_at=created.replace(day=number, tzinfo=None),
                        updated_at=created.replace(day=number, tzinfo=None),
                    )
                )
            await connection.execute(
                insert(comments).values(id=1, content="First", user_id=1, post_id=1)
            )
        await upgrade(url)
        new_posts = models.Post.__table__
        new_comments = models.Comment.__table__
        async with engine_for(url) as engine, engine.connect() as connection:
            filled = (
                await connection.execute(
                    select(new_posts.c.id, new_posts.c.slug, new_posts.c.published_at).order_by(
                        new_posts.c.id
                    )
                )
            ).all()
            replies = (
                await connection.execute(select(new_comments.c.parent_id, new_comments.c.edited_at))
            ).all()
            differences = await connection.run_sync(migrations.schema_differences)
        assert differences == []
        assert [(row.id, row.slug) for row in filled] == [
            (1, "hello-world"),
            (2, "hello-world-2"),
            (3, "creme-brulee"),
            (4, "post"),
            (5, "hello-world-3"),
        ]
        assert [row.published_at for row in filled] == [
            None if number == 2 else created.replace(day=number) for number in range(1, 6)
        ]
        assert [tuple(row) for row in replies] == [(None, None)]
        await downgrade(url, "0008")
        async with engine_for(url) as engine, engine.connect() as connection:
            kept_posts = (await connection.execute(select(posts.c.id, posts.c.title))).all()
            kept_comments = (
                await connection.execute(select(comments.c.id, comments.c.post_id))
            ).all()
            columns = await connection.run_sync(
                lambda sync: {
                    name: {c["name"] for c in inspect(sync).get_columns(name)}
                    for name in ("posts", "comments")
                }
            )
            revision = await connection.run_sync(migrations.current_revision)
    assert revision == "0008"
    assert sorted(tuple(row) for row in kept_posts) == list(enumerate(titles, start=1))
    assert [tuple(row) for row in kept_comments] == [(1, 1)]
    assert not {"slug", "published_at"} & columns["posts"]
    assert not {"parent_id", "edited_at"} & columns["comments"]


async def test_stats_index_is_built_over_existing_posts_and_goes_back_down(
    dialect: str, tmp_path: Path
) -> None:
    # Revision 0009's posts are the model's: 0010 adds an index only.
    users, posts = USERS_AT_FIRST_REVISION, models.Post.__table__
    rows = [(number, f"Post {number}", number % 2 == 0) for number in range(1, 5)]
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url, "0009")
        async with engine_for(url) as engine, engine.begin() as connection:
            await connection.execute(
                insert(users).values(id=1, username="ada", email="a@x.test", password_hash="x")
            )
            for number, title, published in rows:
                await connection.execute(
                    insert(posts).values(
                        id=number,
                        title=title,
                        content="C",
                        published=published,
                        user_id=1,
                        slug=f"post-{number}",
                    )
                )
        await upgrade(url)
        async with engine_for(url) as engine, engine.connect() as connection:
            indexes_at_head = await connection.run_sync(_post_index_names)
            differences = await connection.run_sync(migrations.schema_differences)
            (published_count,) = (
                await connection.execute(
                    select(func.count()).select_from(posts).where(posts.c.published.is_(True))
                )
            ).one()
        await downgrade(url, "0009")
        async with engine_for(url) as engine, engine.connect() as connection:
            indexes_below = await connection.run_sync(_post_index_names)
            kept = (await connection.execute(select(posts.c.id, posts.c.title))).all()
            revision = await connection.run_sync(migrations.current_revision)
    assert differences == []
    assert "ix_posts_published_created_at" in indexes_at_head
    assert published_count == 2
    assert revision == "0009"
    assert "ix_posts_published_created_at" not in indexes_below
    assert sorted(tuple(row) for row in kept) == [(number, title) for number, title, _ in rows]


def _post_index_names(connection: Connection) -> set[str]:
    return {index["name"] or "" for index in inspect(connection).get_indexes("posts")}
