"""A database seeded so that a scan takes seconds, a real `gql-blog serve` on it, and a way to
see whether the database still runs a statement of the server's."""

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gql_blog import migrations, models
from tests.databases import empty_database
from tests.live import serve_process

POSTS = 30_000
USERS = 20
# About 360 characters: a case-insensitive substring filter reads every post's text, lowered.
CONTENT = "Some words about post number {0}, a few more of them to read. " * 6
ALIASES = 30
ORDINARY = "{ users(first: 3) { nodes { username } } }"


def scan(*, first: int = 0) -> str:
    """The scan of issue 19, point 2: ALIASES case-insensitive substring counts of every post
    (priced by the rows they read: far over the default cost limit on POSTS posts)."""
    counts = " ".join(
        f'a{i}: posts(first: {first}, where: {{content: {{contains: "absent{i}",'
        " mode: INSENSITIVE}}) { totalCount }"
        for i in range(ALIASES)
    )
    return "query Scan { " + counts + " }"


@dataclass(frozen=True, slots=True)
class Served:
    dialect: str
    database_url: str
    base_url: str
    process: asyncio.subprocess.Process
    log: list[str]


async def seed_posts(url: str) -> None:
    """USERS users and POSTS published posts of CONTENT, in a few multi-row INSERTs."""
    engine = create_async_engine(url)
    now = datetime.now(UTC)
    users = [
        {"username": f"reader{n}", "email": f"reader{n}@example.test", "password_hash": "-"}
        for n in range(USERS)
    ]
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(models.User), users)
            ids = (await connection.scalars(select(models.User.id))).all()
            for start in range(0, POSTS, 5_000):
                posts = [
                    {
                        "title": f"Post {n}",
                        "content": CONTENT.format(n),
                        "published": True,
                        "created_at": now,
                        "updated_at": now,
                        "user_id": ids[n % USERS],
                    }
                    for n in range(start, start + 5_000)
                ]
                await connection.execute(insert(models.Post), posts)
    finally:
        await engine.dispose()


@asynccontextmanager
async def seeded_database(dialect: str, tmp_dir: Path) -> AsyncIterator[str]:
    """A new database of `dialect`, migrated and seeded (`seed_posts`); its URL."""
    async with empty_database(dialect, tmp_dir) as url:
        await asyncio.to_thread(migrations.upgrade, url)
        await seed_posts(url)
        yield url


@asynccontextmanager
async def serve(dialect: str, url: str, settings: dict[str, str]) -> AsyncIterator[Served]:
    """`gql-blog serve` (one worker) on `url` and a port of its choosing, with `settings`
    (GQL_BLOG_* variables) beside the cost limit lifted: the scans are measured, not refused."""
    variables = {"GQL_BLOG_MAX_COST": str(10**9)} | settings
    async with serve_process(url, **variables) as (address, process, log):
        yield Served(dialect, url, f"http://{address}", process, log)


@asynccontextmanager
async def serve_seeded(
    dialect: str, tmp_dir: Path, settings: dict[str, str]
) -> AsyncIterator[Served]:
    """`serve` with `settings` on a new `seeded_database`."""
    async with seeded_database(dialect, tmp_dir) as url, serve(dialect, url, settings) as served:
        yield served


# -- Is the database working for the server? ----------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _sqlite_busy(served: Served) -> bool:
    """SQLite computes in the server's process: busy if it used a tenth of a core lately (an
    idle worker uses none; a statement all it gets of the loaded machine's cores)."""
    before = cpu_seconds(served.process.pid)
    await asyncio.sleep(0.3)
    return cpu_seconds(served.process.pid) - before > 0.03


RUNNING_SQL = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND state = 'active' AND pid <> pg_backend_pid()",
    "mariadb": "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE()"
    " AND COMMAND = 'Query' AND ID <> CONNECTION_ID()",
}


def _running_statements(engine: AsyncEngine, dialect: str) -> Callable[[], Awaitable[bool]]:
    async def busy() -> bool:
        async with engine.connect() as connection:
            running = await connection.scalar(text(RUNNING_SQL[dialect]))
        await asyncio.sleep(0.05)
        return bool(running)

    return busy


@asynccontextmanager
async def database_activity(served: Served) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """`await busy()`: whether the database runs a statement of the server now."""
    if served.dialect == "sqlite":

        async def busy() -> bool:
            return await _sqlite_busy(served)

        yield busy
        return
    engine = create_async_engine(make_url(served.database_url))
    try:
        yield _running_statements(engine, served.dialect)
    finally:
        await engine.dispose()


async def wait_until(busy: Callable[[], Awaitable[bool]], *, want: bool, within: float) -> float:
    """Seconds until `busy()` says `want`; fails after `within` seconds."""
    started = time.perf_counter()
    while await busy() != want:
        waited = time.perf_counter() - started
        state = "busy" if want else "idle"
        assert waited < within, f"the database was not {state} after {waited:.1f} s"
    return time.perf_counter() - started
