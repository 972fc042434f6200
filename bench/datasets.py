"""The benchmark's database: created in the throwaway cluster, migrated, seeded, and an admin.

`gql-blog seed` writes the rows; then one post gets exactly 32 comments (the post detail query
reads 20 of them), an admin account gets a sign-in token, and ANALYZE gives the planner its
statistics. Everything is deterministic for a given plan, except the timestamps (the seeder
spreads them back from the current time), which every server reads from the same rows.
"""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import asyncpg
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gql_blog import auth, engines, migrations, models
from gql_blog.config import Settings

DATABASE: Final = "bench"
# The 10x data set of `make bench BENCH_SCALE=large`, beside the usual one in the same cluster.
LARGE_DATABASE: Final = "bench_large"
DETAIL_COMMENTS: Final = 32
ADMIN_USERNAME: Final = "bench_admin"
ADMIN_PASSWORD: Final = "bench-admin-password"
EXTRA_COMMENT_TEXTS: Final = (
    "Coming back to this one again.",
    "Sharing this with my team.",
    "The second half is the best part.",
    "Thanks, this saved me an afternoon.",
)


class SeedError(RuntimeError):
    """`gql-blog seed` failed, or left other rows than the plan asked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedPlan:
    """What `gql-blog seed` is asked for; the random seed keeps the rows the same run to run."""

    users: int
    posts_per_user: int
    comments_per_post: int
    random_seed: int = 42

    def cli_arguments(self) -> list[str]:
        return [
            *("--users", str(self.users)),
            *("--posts-per-user", str(self.posts_per_user)),
            *("--comments-per-post", str(self.comments_per_post)),
            *("--seed", str(self.random_seed)),
        ]

    def command(self) -> str:
        return " ".join(["gql-blog", "seed", *self.cli_arguments()])


@dataclass(frozen=True, slots=True, kw_only=True)
class Dataset:
    """The prepared database: its URL, what it holds, the detail post and the admin's token."""

    url: str
    users: int
    posts: int
    published_posts: int
    comments: int
    tags: int
    post_tags: int
    detail_post_id: int
    admin_token: str
    server_version: str
    # The write cells' comments go to this post, which no read query shows (the oldest post of
    # the last seeded user: outside the feed, the deep query's users and the detail post), by
    # the admin, whose row id servers without sign-in (PostGraphile) are given.
    write_post_id: int
    admin_id: int
    # After every audit entry of the seed, before any the bench's writes add (ISO 8601, UTC).
    seeded_before: str

    @property
    def database(self) -> str:
        """The database's name (its URL's last part)."""
        return self.url.rsplit("/", 1)[1]


def prepare(url: str, plan: SeedPlan, *, say: Callable[[str], None]) -> Dataset:
    """Create, migrate and seed the database at `url` (empty, in the throwaway cluster).

    Synchronous: Alembic runs its own event loop, so call this outside of one.
    """
    asyncio.run(_create_database(url))
    migrations.upgrade(url)
    say(f"postgresql: {plan.command()}")
    _seed(url, plan)
    return asyncio.run(_finish(url, plan, say=say))


async def _create_database(url: str) -> None:
    # The cluster is new: the database does not exist yet. pg_stat_statements' view is created
    # in `postgres`, where the benchmark reads it from (so its own SELECTs are not counted).
    server, name = url.replace("+asyncpg", "").rsplit("/", 1)
    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(f'create database "{name}"')
        await connection.execute("create extension if not exists pg_stat_statements")
    finally:
        await connection.close()


def _seed(url: str, plan: SeedPlan) -> None:
    command = [str(Path(sys.executable).with_name("gql-blog")), "seed", *plan.cli_arguments()]
    finished = subprocess.run(
        command, env=server_environment(url), check=False, capture_output=True, text=True
    )
    if finished.returncode != 0:
        raise SeedError(
            f"`gql-blog seed` failed with exit status {finished.returncode}:\n{finished.stderr}"
        )


def server_environment(database_url: str, **extra: str) -> dict[str, str]:
    """This process's environment without any GQL_BLOG_* setting, plus the database URL."""
    environ: Mapping[str, str] = os.environ
    clean = {key: value for key, value in environ.items() if not key.startswith("GQL_BLOG_")}
    return clean | {"GQL_BLOG_DATABASE_URL": database_url} | extra


async def _finish(url: str, plan: SeedPlan, *, say: Callable[[str], None]) -> Dataset:
    engine = engines.create_engine(Settings(database_url=url))
    try:
        async with engine.begin() as connection:
            posts = int(await connection.scalar(select(func.count()).select_from(models.Post)))
            if posts != plan.users * plan.posts_per_user:
                raise SeedError(f"seeding gave {posts} posts, expected {plan}")
            detail_post_id = await _give_comments(connection, DETAIL_COMMENTS)
            await _audit_posts(connection)
        sessions = engines.create_sessionmaker(engine)
        async with sessions.begin() as session:
            admin = await auth.ensure_admin(
                session,
                username=ADMIN_USERNAME,
                email=f"{ADMIN_USERNAME}@example.com",
                password=ADMIN_PASSWORD,
            )
            token = await auth.issue_token(session, admin, lifetime=timedelta(days=1))
            admin_id = admin.id
        seeded_before = (models.utc_now() + timedelta(seconds=1)).isoformat()
        # Bulk-loaded tables have no planner statistics until autovacuum gets to them.
        async with engine.connect() as connection:
            await connection.execute(text("commit"))
            await connection.execute(text("analyze"))
        dataset = await _describe(
            engine,
            url,
            detail_post_id=detail_post_id,
            token=token,
            admin_id=admin_id,
            seeded_before=seeded_before,
        )
    finally:
        await engine.dispose()
    say(
        f"postgresql: {dataset.users:,} users, {dataset.posts:,} posts, "
        f"{dataset.comments:,} comments; post {detail_post_id} has {DETAIL_COMMENTS} comments"
    )
    return dataset


async def _give_comments(connection: AsyncConnection, wanted: int) -> int:
    """Add comments to the lowest-id published post with 2+ tags until it has `wanted`; its id."""
    tags = (
        select(func.count())
        .select_from(models.post_tags)
        .where(models.post_tags.c.post_id == models.Post.id)
        .scalar_subquery()
    )
    post = (
        await connection.execute(
            select(models.Post.id, models.Post.created_at)
            .where(models.Post.published.is_(True), tags >= 2)
            .order_by(models.Post.id)
            .limit(1)
        )
    ).one()
    have = int(
        await connection.scalar(
            select(func.count())
            .select_from(models.Comment)
            .where(models.Comment.post_id == post.id)
        )
    )
    user_ids = list(await connection.scalars(select(models.User.id).order_by(models.User.id)))
    rows = [
        {
            "content": EXTRA_COMMENT_TEXTS[index % len(EXTRA_COMMENT_TEXTS)],
            "created_at": post.created_at + timedelta(hours=index + 1),
            "user_id": user_ids[(index * 37) % len(user_ids)],
            "post_id": post.id,
        }
        for index in range(wanted - have)
    ]
    if rows:
        await connection.execute(insert(models.Comment), rows)
    return int(post.id)


async def _audit_posts(connection: AsyncConnection) -> None:
    """An audit entry per seeded post, as createPost writes one: the seed bulk-loads without
    them, and `auditLog` then has nothing to page through."""
    await connection.execute(
        text(
            "insert into audit_logs (entity_type, entity_id, action, actor_id, changes,"
            " created_at) select 'Post', id, 'CREATE', user_id,"
            " json_build_object('title', title, 'published', published), created_at from posts"
        )
    )


async def _describe(
    engine: AsyncEngine,
    url: str,
    *,
    detail_post_id: int,
    token: str,
    admin_id: int,
    seeded_before: str,
) -> Dataset:
    async with engine.connect() as connection:
        last_user = (
            select(models.Post.user_id)
            .where(models.Post.user_id != admin_id)
            .order_by(models.Post.user_id.desc())
            .limit(1)
            .scalar_subquery()
        )
        write_post_id = await connection.scalar(
            select(models.Post.id)
            .where(models.Post.user_id == last_user, models.Post.id != detail_post_id)
            .order_by(models.Post.created_at, models.Post.id)
            .limit(1)
        )

        async def count(table: str, where: str = "") -> int:
            return int(await connection.scalar(text(f"select count(*) from {table} {where}")))

        return Dataset(
            url=url,
            users=await count("users"),
            posts=await count("posts"),
            published_posts=await count("posts", "where published"),
            comments=await count("comments"),
            tags=await count("tags"),
            post_tags=await count("post_tags"),
            detail_post_id=detail_post_id,
            admin_token=token,
            server_version=str(await connection.scalar(text("show server_version"))),
            write_post_id=int(write_post_id),
            admin_id=admin_id,
            seeded_before=seeded_before,
        )
