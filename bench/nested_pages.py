"""`python -m bench.nested_pages`: the statements of per-parent pages, search and groups, timed.

Times the SQL of the read model's builders (gql_blog/read_model.py, which both executors run) and
search.py's straight on a connection, with no GraphQL and no HTTP around them, so a change of SQL
shows as itself: each statement runs `--runs` times after two warm-up runs and the median and
fastest are printed, with the database's plan (EXPLAIN).

The data is the 10x bench data set (10,000 users, 100,000 posts, 500,000 comments, 40 tags):
`prepare` creates the database at URL, migrates it and seeds it with `gql-blog seed` (once);
`run` ANALYZEs it and times the cases. `make bench-statements` does both on each of
`STATEMENT_URLS` (see the Makefile).

    .venv/bin/python -m bench.nested_pages prepare sqlite+aiosqlite:////tmp/nested.sqlite
    .venv/bin/python -m bench.nested_pages run sqlite+aiosqlite:////tmp/nested.sqlite

Cases (anonymous viewer):
- `tag_posts`: `tags(first: 50) { nodes { posts(first: 2) { nodes { title } } } }`: the posts page
  of every tag (40 tags, about 4,300 published posts each).
- `user_posts`, `post_comments`: the same for 50 users' posts and 50 posts' comments.
- `post_comments_5`: `posts(first: 20) { nodes { comments(first: 5) { nodes { content } } } }`.
- `user_comments`: 50 users' `comments(first: 2)` (about 50 each, no index in their order).
- `search_*`, `count_*`: `searchPosts(query: ..., first: 10)`'s page and its `totalCount`.
- `groups_*`: `postGroups(groupBy: [...], first: 10)`.
- `wide_post_comments` (`--case wide`): `posts(first: 20) { nodes { comments(first: 5) {...}
  } }` where each of the 20 posts has 2,000 comments (inserted for the run, rolled back).
- `own_*` (`--case own`): the bench's own search, postStats and postGroups as an admin asks them
  of the published posts; run it on any seeded database, such as the bench's 1x data.
"""

import asyncio
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click
from sqlalchemy import Select, func, insert, literal, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bench import datasets
from gql_blog import engines, migrations, models, search, stats
from gql_blog.config import Settings
from gql_blog.ordering import Ordering
from gql_blog.read_model import (
    RELATIONS,
    PageRequest,
    ViewerParameter,
    child_pages,
    compile_where,
    selected,
)

PLAN: Final = datasets.SeedPlan(users=10_000, posts_per_user=10, comments_per_post=5)
PARENTS: Final = 50
PAGE: Final = 2
WIDE_POSTS: Final = 20
WIDE_COMMENTS: Final = 2_000


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    statement: Select[Any]
    parameters: dict[str, Any]


Cases = Callable[[AsyncConnection, str], Awaitable[list[Case]]]


async def _first_ids(
    connection: AsyncConnection, stmt: Select[Any], parents: int = PARENTS
) -> list[int]:
    return [row_id for (row_id,) in await connection.execute(stmt.limit(parents))]


def _newest_posts() -> Select[Any]:
    return (
        select(models.Post.id)
        .where(models.Post.published.is_(True))
        .order_by(models.Post.created_at.desc(), models.Post.id.desc())
    )


async def page_cases(connection: AsyncConnection, dialect: str) -> list[Case]:
    """The per-parent pages (item 5 of issue #16)."""
    request = PageRequest(Ordering.of("Post"), size=PAGE)
    comments = PageRequest(Ordering.of("Comment"), size=PAGE)
    five_comments = PageRequest(Ordering.of("Comment"), size=5)
    tags = await _first_ids(connection, select(models.Tag.id).order_by(models.Tag.name))
    users = await _first_ids(connection, select(models.User.id).order_by(models.User.username))
    posts = await _first_ids(connection, _newest_posts())
    pages = [
        ("tag_posts", "Tag.posts", request, ["id", "title"], tags),
        ("user_posts", "User.posts", request, ["id", "title"], users),
        ("post_comments", "Post.comments", comments, ["id", "content"], posts),
        ("post_comments_5", "Post.comments", five_comments, ["id", "content"], posts[:20]),
        ("user_comments", "User.comments", comments, ["id", "content"], users),
    ]
    return [
        Case(
            name,
            child_pages(RELATIONS[relation], names, page, None, dialect),
            {"keys": keys},
        )
        for name, relation, page, names, keys in pages
    ]


async def wide_cases(connection: AsyncConnection, dialect: str) -> list[Case]:
    """`posts(first: 20) { nodes { comments(first: 5) {...} } }` over posts of 2,000 comments
    each: copies of the first 2,000 comments given to the 20 newest posts, inserted in the
    connection's transaction (never committed: the database is left as it was)."""
    posts = await _first_ids(connection, _newest_posts(), WIDE_POSTS)
    comment = models.Comment.__table__
    copied = ["content", "created_at", "user_id"]
    for post_id in posts:
        copies = select(*(comment.c[name] for name in copied), literal(post_id))
        await connection.execute(
            insert(comment).from_select(
                [*copied, "post_id"], copies.where(comment.c.id <= WIDE_COMMENTS)
            )
        )
    request = PageRequest(Ordering.of("Comment"), size=5)
    stmt = child_pages(RELATIONS["Post.comments"], ["id", "content"], request, None, dialect)
    return [Case("wide_post_comments", stmt, {"keys": posts})]


async def search_cases(connection: AsyncConnection, dialect: str) -> list[Case]:
    """searchPosts(query: "resolver loader", first: 10): its page and its count (item 6)."""
    cases = []
    for text_ in SEARCHES:
        found = search.SearchQuery(connection.dialect.name, text=text_, viewer=None, where=None)
        page = found.page_statement(search.SearchRequest(size=10))
        count = found.count_statement()
        assert page is not None
        assert count is not None
        words = "_".join(text_.split())
        cases += [Case(f"search_{words}", page, {}), Case(f"count_{words}", count, {})]
    return cases


async def group_cases(connection: AsyncConnection, dialect: str) -> list[Case]:
    """postGroups(groupBy: [...], first: 10) (item 6)."""
    return [
        Case(
            "groups_" + "_".join(field.value.lower() for field in fields),
            stats.groups_statement(viewer=None, where=None, group_by=fields, limit=10),
            {},
        )
        for fields in GROUPINGS
    ]


async def own_cases(connection: AsyncConnection, dialect: str) -> list[Case]:
    """The bench's own reads (bench/queries.py OWN_READS) as the planner builds them: an admin
    viewer, `where: { published: { eq: true } }`; searchPosts("keyset pagination", first: 10)
    selecting id and title, its count, postStats, postGroups(groupBy: [TAG] / [AUTHOR])."""
    viewer = ViewerParameter.of(_Admin())
    where = compile_where(viewer, "Post", {"published": {"eq": True}}, max_depth=10)
    found = search.SearchQuery(dialect, text=OWN_SEARCH, viewer=viewer, where=where)
    # MariaDB's snippet is cut from the content, which the planner then selects too.
    names = ["id", "title", *(["content"] if dialect == "mariadb" else [])]
    page = found.page_statement(search.SearchRequest(size=10), selected(models.Post, names))
    count = found.count_statement()
    assert page is not None
    assert count is not None
    groups = [
        Case(
            f"own_groups_{field.value.lower()}",
            stats.groups_statement(viewer=viewer, where=where, group_by=[field], limit=10),
            {},
        )
        for field in (stats.GroupField.TAG, stats.GroupField.AUTHOR)
    ]
    return [
        Case("own_search", page, {}),
        Case("own_search_count", count, {}),
        Case("own_post_stats", stats.post_stats_statement(viewer=viewer, where=where), {}),
        *groups,
    ]


@dataclass(frozen=True, slots=True)
class _Admin:
    id: int = 0
    is_admin: bool = True


OWN_SEARCH: Final = "keyset pagination"
SEARCHES: Final = ("resolver loader", "python")
GROUPINGS: Final = (
    (stats.GroupField.TAG,),
    (stats.GroupField.AUTHOR,),
    (stats.GroupField.AUTHOR, stats.GroupField.TAG),
)
CASES: Final[dict[str, Cases]] = {
    "pages": page_cases,
    "search": search_cases,
    "groups": group_cases,
    "own": own_cases,
    "wide": wide_cases,
}


async def _analyze(connection: AsyncConnection, dialect: str) -> None:
    tables = ["users", "posts", "comments", "tags", "post_tags"]
    if dialect in ("postgresql", "sqlite"):
        await connection.execute(text("ANALYZE"))
    else:
        await connection.execute(text(f"ANALYZE TABLE {', '.join(tables)}"))


async def _explain(connection: AsyncConnection, dialect: str, case: Case) -> list[str]:
    # The parameters rendered as literals: EXPLAIN takes the statement as one text.
    stmt = case.statement.params(**case.parameters)
    try:
        compiled = stmt.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    except CompileError as error:  # PostgreSQL's REGCONFIG, say, has no literal form
        return [f"  (no EXPLAIN: {error})"]
    sql = str(compiled)
    prefix = {
        "postgresql": "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ",
        "sqlite": "EXPLAIN QUERY PLAN ",
        "mariadb": "EXPLAIN ",
    }[dialect]
    if sql.startswith("SET STATEMENT "):  # MariaDB's per-statement settings come first
        settings, _, sql = sql.partition(" FOR ")
        prefix = f"{settings} FOR {prefix}"
    raw = await connection.exec_driver_sql(prefix + sql.replace("%", "%%"))
    return ["  " + " | ".join(str(value) for value in row) for row in raw]


async def _cpu_clock(connection: AsyncConnection, dialect: str) -> Callable[[], float]:
    """Seconds of CPU spent serving this connection so far: its PostgreSQL backend's or MariaDB
    thread's (from /proc, the server on this machine), SQLite's process's."""
    if dialect == "sqlite":
        return time.process_time
    if dialect == "postgresql":
        task = await connection.scalar(text("SELECT pg_backend_pid()"))
    else:
        task = await connection.scalar(
            text("SELECT tid FROM information_schema.processlist WHERE id = CONNECTION_ID()")
        )
    return _schedstat_clock(Path(f"/proc/{task}/schedstat"))


def _schedstat_clock(path: Path) -> Callable[[], float]:
    # /proc answers from memory: reading it between two statements blocks nothing.
    if not path.exists():
        return lambda: math.nan  # a server elsewhere
    return lambda: int(path.read_text().split()[0]) / 1e9


async def _time(
    connection: AsyncConnection, case: Case, runs: int, cpu: Callable[[], float]
) -> tuple[list[float], list[float], int]:
    rows = 0
    for _ in range(2):
        rows = len((await connection.execute(case.statement, case.parameters)).all())
    seconds, cpu_seconds = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), cpu()
        (await connection.execute(case.statement, case.parameters)).all()
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(cpu() - cpu_started)
    return seconds, cpu_seconds, rows


async def _run(url: str, which: Sequence[str], runs: int, explain: bool) -> None:
    engine = engines.create_engine(Settings(database_url=url))
    dialect = engine.dialect.name
    dialect = "mariadb" if dialect == "mysql" else dialect
    try:
        async with engine.connect() as connection:
            await _analyze(connection, dialect)
            await connection.commit()
            cpu = await _cpu_clock(connection, dialect)
            for group in which:
                for case in await CASES[group](connection, dialect):
                    seconds, cpu_seconds, rows = await _time(connection, case, runs, cpu)
                    click.echo(
                        f"{dialect:10} {case.name:16} rows {rows:4}  median "
                        f"{statistics.median(seconds) * 1000:9.2f} ms  fastest "
                        f"{min(seconds) * 1000:9.2f} ms  CPU median "
                        f"{statistics.median(cpu_seconds) * 1000:9.2f} ms  ({runs} runs)",
                    )
                    if explain:
                        click.echo("\n".join(await _explain(connection, dialect, case)))
                await connection.rollback()  # what a group inserted (`wide`) is its own
    finally:
        await engine.dispose()


@click.group()
def main() -> None:
    """Per-parent pages, search and groups: their statements timed on the 10x data set."""


async def _create_database(url: str) -> None:
    """Create URL's database on its PostgreSQL or MariaDB server unless it exists."""
    target = make_url(url)
    name = target.database
    if target.get_backend_name() == "sqlite" or name is None:
        return
    postgresql = target.get_backend_name() == "postgresql"
    server = target.set(database="postgres" if postgresql else "mysql")
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            if postgresql:
                found = await connection.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                )
                if not found:
                    await connection.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                await connection.execute(
                    text(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
                )
    finally:
        await engine.dispose()


async def _posts(url: str) -> int:
    engine = engines.create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(models.Post)))
    finally:
        await engine.dispose()


@main.command()
@click.argument("url")
def prepare(url: str) -> None:
    """Create, migrate and seed the database at URL with the 10x data set (once: a database
    that holds posts already is left as it is)."""
    asyncio.run(_create_database(url))
    migrations.upgrade(url)
    if asyncio.run(_posts(url)):
        click.echo(f"{url}: seeded already")
        return
    command = [str(Path(sys.executable).with_name("gql-blog")), "seed", *PLAN.cli_arguments()]
    subprocess.run(command, env=datasets.server_environment(url), check=True)


@main.command()
@click.argument("url")
@click.option("--case", "which", multiple=True, type=click.Choice(sorted(CASES)))
@click.option("--runs", default=20, show_default=True, type=click.IntRange(1))
@click.option("--explain/--no-explain", default=True, show_default=True)
def run(url: str, which: tuple[str, ...], runs: int, explain: bool) -> None:
    """Time each case's statement on the database at URL (seeded by `prepare`)."""
    asyncio.run(_run(url, which or sorted(CASES), runs, explain))


if __name__ == "__main__":
    main()
