"""The benchmark's databases: migrated, seeded once with `gql-blog seed`, reused while they match.

A database is reused when its users, posts and comments are exactly what the plan asks for;
otherwise it is emptied (the SQLite file deleted, the PostgreSQL database dropped and created
again) and seeded. Only a PostgreSQL database whose name starts with `gqlb_bench` is ever dropped.
Every run ends the preparation with ANALYZE, so the planner has statistics.
"""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import ColumnElement, Table, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from gql_blog import db, migrations, models
from gql_blog.config import Settings

DATA_DIR: Final = Path(__file__).resolve().parent / "data"
DEFAULT_POSTGRES_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/gqlb_bench"
_DROPPABLE_PREFIX: Final = "gqlb_bench"


class SeedError(RuntimeError):
    """`gql-blog seed` failed, or left other rows than the plan asked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedPlan:
    """What `gql-blog seed` is asked for; the random seed keeps the rows the same run to run."""

    users: int
    posts_per_user: int
    comments_per_post: int
    random_seed: int = 42

    @property
    def posts(self) -> int:
        return self.users * self.posts_per_user

    @property
    def comments(self) -> int:
        return self.posts * self.comments_per_post

    def cli_arguments(self) -> list[str]:
        return [
            "--users",
            str(self.users),
            "--posts-per-user",
            str(self.posts_per_user),
            "--comments-per-post",
            str(self.comments_per_post),
            "--seed",
            str(self.random_seed),
        ]


@dataclass(frozen=True, slots=True)
class Target:
    """One database the benchmark runs against."""

    dialect: str
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RowCounts:
    users: int
    posts: int
    published_posts: int
    comments: int
    tags: int
    post_tags: int

    def matches(self, plan: SeedPlan) -> bool:
        return (self.users, self.posts, self.comments) == (plan.users, plan.posts, plan.comments)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    target: Target
    rows: RowCounts
    server_version: str
    reused: bool


def sqlite_target(plan: SeedPlan) -> Target:
    """A SQLite file per plan under bench/data/, so quick and full runs both stay cached."""
    name = f"blog-{plan.users}u-{plan.posts_per_user}p-{plan.comments_per_post}c.sqlite"
    return Target("sqlite", f"sqlite+aiosqlite:///{DATA_DIR / name}")


def postgresql_target(url: str) -> Target:
    return Target("postgresql", url)


def prepare(target: Target, plan: SeedPlan, *, say: Callable[[str], None]) -> Prepared:
    """Migrate the target, then reuse its rows if they match the plan or reseed it from empty.

    Synchronous: Alembic runs its own event loop, so call this outside of one.
    """
    _ensure_database(target)
    migrations.upgrade(target.url)
    rows = asyncio.run(count_rows(target.url))
    reused = rows.matches(plan)
    if not reused:
        if rows.users or rows.posts or rows.comments:
            say(f"{target.dialect}: {rows} does not match {plan}; emptying it")
            _reset_database(target)
            migrations.upgrade(target.url)
        _seed(target, plan, say=say)
        rows = asyncio.run(count_rows(target.url))
        if not rows.matches(plan):
            raise SeedError(f"seeding {target.dialect} gave {rows}, expected {plan}")
    # Bulk-loaded tables have no planner statistics until autovacuum gets to them; without them
    # PostgreSQL misjudges every `IN (...)` and hash-joins whole tables.
    asyncio.run(analyze(target.url))
    return Prepared(
        target=target,
        rows=rows,
        server_version=asyncio.run(server_version(target.url)),
        reused=reused,
    )


async def count_rows(url: str) -> RowCounts:
    engine = db.create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            published = models.Post.published.is_(True)
            return RowCounts(
                users=await _count(connection, models.User),
                posts=await _count(connection, models.Post),
                published_posts=await _count(connection, models.Post, published),
                comments=await _count(connection, models.Comment),
                tags=await _count(connection, models.Tag),
                post_tags=await _count(connection, models.post_tags),
            )
    finally:
        await engine.dispose()


async def _count(
    connection: AsyncConnection, table: type[models.Base] | Table, *where: ColumnElement[bool]
) -> int:
    stmt = select(func.count()).select_from(table).where(*where)
    return int(await connection.scalar(stmt) or 0)


async def analyze(url: str) -> None:
    """Gather the planner's statistics, as autovacuum (PostgreSQL) or PRAGMA optimize would."""
    engine = db.create_engine(Settings(database_url=url))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("analyze"))
    finally:
        await engine.dispose()


async def server_version(url: str) -> str:
    engine = db.create_engine(Settings(database_url=url))
    query = "select sqlite_version()" if engine.dialect.name == "sqlite" else "show server_version"
    try:
        async with engine.connect() as connection:
            return str(await connection.scalar(text(query)))
    finally:
        await engine.dispose()


def _seed(target: Target, plan: SeedPlan, *, say: Callable[[str], None]) -> None:
    command = [str(Path(sys.executable).with_name("gql-blog")), "seed", *plan.cli_arguments()]
    say(f"{target.dialect}: seeding with {' '.join(command[1:])}")
    finished = subprocess.run(command, env=server_environment(target.url), check=False)
    if finished.returncode != 0:
        raise SeedError(
            f"`gql-blog seed` failed on {target.dialect} with exit status {finished.returncode}"
            " (its output is above)"
        )


def server_environment(database_url: str) -> dict[str, str]:
    """This process's environment without any GQL_BLOG_* setting, plus the database URL."""
    environ: Mapping[str, str] = os.environ
    clean = {key: value for key, value in environ.items() if not key.startswith("GQL_BLOG_")}
    return clean | {"GQL_BLOG_DATABASE_URL": database_url}


def _ensure_database(target: Target) -> None:
    if target.dialect == "sqlite":
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        return
    asyncio.run(_create_postgresql_database(make_url(target.url)))


def _reset_database(target: Target) -> None:
    url = make_url(target.url)
    if target.dialect == "sqlite":
        path = Path(url.database or "")
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        return
    asyncio.run(_drop_postgresql_database(url))
    asyncio.run(_create_postgresql_database(url))


async def _create_postgresql_database(url: URL) -> None:
    name = url.database or ""
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("select 1 from pg_database where datname = :name"), {"name": name}
            )
            if found is None:
                await connection.execute(text(f'create database "{_checked_name(name)}"'))
    finally:
        await engine.dispose()


async def _drop_postgresql_database(url: URL) -> None:
    name = _checked_name(url.database or "")
    if not name.startswith(_DROPPABLE_PREFIX):
        raise RuntimeError(f"refusing to drop database {name!r}: not a {_DROPPABLE_PREFIX} one")
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'drop database if exists "{name}" with (force)'))
    finally:
        await engine.dispose()


def _checked_name(name: str) -> str:
    # Database names cannot be bound parameters; allow only what needs no quoting care.
    if not name or not name.replace("_", "").isalnum():
        raise RuntimeError(f"unexpected database name {name!r}")
    return name
