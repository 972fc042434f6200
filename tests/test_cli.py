"""The gql-blog command: migrations, the serve check, one-line failures, admins, seeding, SDL."""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Executable, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gql_blog import auth, cli, migrations, models, seed, slugs
from gql_blog.config import Settings
from gql_blog.engines import create_engine
from gql_blog.schema import schema
from tests.databases import DIALECTS, empty_database
from tests.live import GQL_BLOG, free_port, serve_environment, started_workers

HEAD = migrations.head_revision()
FIRST_REVISION = "0001"
UNREACHABLE_URL = "postgresql://gql:secret@127.0.0.1:1/blog"
SMALL_PLAN = seed.SeedPlan(users=40, posts_per_user=2, comments_per_post=1, random_seed=7)


def invoke(url: str, *args: str, stdin: str | None = None, **env: str) -> Result:
    """Run `gql-blog ARGS` in this process with GQL_BLOG_DATABASE_URL=url."""
    return CliRunner().invoke(
        cli.main, list(args), input=stdin, env={"GQL_BLOG_DATABASE_URL": url, **env}
    )


async def run(url: str, *args: str, stdin: str | None = None, **env: str) -> Result:
    """`invoke` in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(invoke, url, *args, stdin=stdin, **env)


def error_line(result: Result) -> str:
    """The one line an expected failure prints; a crash or a traceback fails the test."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def fetch(url: str, stmt: Executable) -> list[Any]:
    async with engine_for(url) as engine, engine.connect() as connection:
        return list((await connection.execute(stmt)).all())


async def upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrations.upgrade, url, revision)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite+aiosqlite:///{tmp_path / 'blog.db'}"


@pytest.fixture
def unmigrated_sqlite_url(sqlite_url: str, tmp_path: Path) -> str:
    """An empty SQLite file: a database that was never migrated."""
    (tmp_path / "blog.db").touch()
    return sqlite_url


@pytest.fixture
async def migrated_sqlite_url(sqlite_url: str) -> str:
    await upgrade(sqlite_url)
    return sqlite_url


# db upgrade / current / check / downgrade


async def test_db_upgrade_migrates_a_new_database_to_head(sqlite_url: str) -> None:
    result = await run(sqlite_url, "db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{HEAD} (head)\n"
    async with engine_for(sqlite_url) as engine, engine.connect() as connection:
        assert await connection.run_sync(migrations.current_revision) == HEAD


async def test_db_upgrade_to_a_revision_stops_there(sqlite_url: str) -> None:
    result = await run(sqlite_url, "db", "upgrade", FIRST_REVISION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{FIRST_REVISION} (not at head; head is {HEAD})\n"


async def test_db_upgrade_to_an_unknown_revision_is_one_line(sqlite_url: str) -> None:
    result = await run(sqlite_url, "db", "upgrade", "nosuchrevision")
    assert "nosuchrevision" in error_line(result)


async def test_db_current_reports_head_after_upgrade(migrated_sqlite_url: str) -> None:
    result = await run(migrated_sqlite_url, "db", "current")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{HEAD} (head)\n"


async def test_db_current_reports_an_unmigrated_database(unmigrated_sqlite_url: str) -> None:
    result = await run(unmigrated_sqlite_url, "db", "current")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"none (not at head; head is {HEAD})\n"


async def test_db_check_fails_before_upgrade(unmigrated_sqlite_url: str) -> None:
    result = await run(unmigrated_sqlite_url, "db", "check")
    assert error_line(result) == (
        f"Error: database is not at the latest migration (never migrated, head is {HEAD}): "
        "run gql-blog db upgrade"
    )
    assert result.stdout == ""


async def test_db_check_passes_after_upgrade(migrated_sqlite_url: str) -> None:
    result = await run(migrated_sqlite_url, "db", "check")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"database is at {HEAD} (head) and matches the models\n"


async def test_db_check_lists_differences_from_the_models(migrated_sqlite_url: str) -> None:
    async with engine_for(migrated_sqlite_url) as engine, engine.begin() as connection:
        await connection.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    result = await run(migrated_sqlite_url, "db", "check")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: the database differs from the models (1 differences): add a migration",
        "  remove_table stray",
    ]


async def test_db_downgrade_asks_first_and_keeps_the_database_on_no(
    migrated_sqlite_url: str,
) -> None:
    result = await run(migrated_sqlite_url, "db", "downgrade", FIRST_REVISION, stdin="n\n")
    assert result.exit_code == 1
    assert "Aborted!" in result.stderr
    assert (await run(migrated_sqlite_url, "db", "current")).stdout == f"{HEAD} (head)\n"


async def test_db_downgrade_with_yes_migrates_down(migrated_sqlite_url: str) -> None:
    result = await run(migrated_sqlite_url, "db", "downgrade", FIRST_REVISION, "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{FIRST_REVISION} (not at head; head is {HEAD})\n"


async def test_installed_command_works_from_any_directory(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    command = Path(sys.executable).with_name("gql-blog")
    assert command.is_file(), f"{command} is not installed"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = await asyncio.to_thread(
        subprocess.run,
        [str(command), "db", "current"],
        cwd=elsewhere,
        env=os.environ | {"GQL_BLOG_DATABASE_URL": migrated_sqlite_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{HEAD} (head)\n", "")


# serve's readiness check


async def test_serve_check_refuses_a_database_behind_head(sqlite_url: str) -> None:
    await upgrade(sqlite_url, FIRST_REVISION)
    with pytest.raises(click.ClickException) as raised:
        await cli.ensure_database_ready(Settings(database_url=sqlite_url))
    assert raised.value.format_message() == (
        f"database is not at the latest migration (at {FIRST_REVISION}, head is {HEAD}): "
        "run gql-blog db upgrade"
    )


async def test_serve_check_accepts_a_database_at_head(migrated_sqlite_url: str) -> None:
    await cli.ensure_database_ready(Settings(database_url=migrated_sqlite_url))


async def test_serve_refuses_an_unmigrated_database_before_starting(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def start_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started on an unmigrated database")

    monkeypatch.setattr(cli.uvicorn, "run", start_server)
    result = await run(sqlite_url, "serve")
    assert error_line(result).endswith(": run gql-blog db upgrade")


async def test_serve_refuses_a_bad_trusted_documents_file_before_starting(
    migrated_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def start_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started without its allow-list")

    monkeypatch.setattr(cli.uvicorn, "run", start_server)
    missing = tmp_path / "persisted-documents.json"
    result = await run(migrated_sqlite_url, "serve", GQL_BLOG_TRUSTED_DOCUMENTS=str(missing))
    assert error_line(result).startswith(
        f"Error: GQL_BLOG_TRUSTED_DOCUMENTS: cannot read {missing}: "
    )


async def test_serve_with_two_workers_adds_up_their_metrics(migrated_sqlite_url: str) -> None:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *(str(GQL_BLOG), "serve", "--workers", "2", "--port", str(port)),
        env=serve_environment(migrated_sqlite_url),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(started_workers(server, 2), 60)
        requests = 8
        for _ in range(requests):  # a new connection each: the workers share them out
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                response = await http.post(
                    "/graphql", json={"query": "query Counted { viewer { id } }"}
                )
                assert response.status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            text = (await http.get("/metrics")).text
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 60)
    # Each worker answers its first sight of the document on the executor, the rest planned.
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gql_blog_graphql_operations_total"
        and sample.labels["operation"] == "Counted"
        and sample.labels["outcome"] == "success"
    )
    assert counted == requests


# one-line failures


@pytest.mark.parametrize(
    "args",
    [
        ["db", "current"],
        ["db", "upgrade"],
        ["db", "check"],
        ["db", "downgrade", "base", "--yes"],
        ["serve"],
        ["seed", "--users", "1"],
        ["create-admin", "root", "--email", "root@example.com", "--password", "pw"],
    ],
    ids=["current", "upgrade", "check", "downgrade", "serve", "seed", "create-admin"],
)
async def test_unreachable_database_is_one_line_without_the_password(args: list[str]) -> None:
    result = await run(UNREACHABLE_URL, *args)
    line = error_line(result)
    assert line.startswith(
        "Error: cannot reach the database at postgresql+asyncpg://gql:***@127.0.0.1:1/blog: "
    )
    assert "secret" not in result.output


async def test_bad_pool_size_names_the_variable(migrated_sqlite_url: str) -> None:
    result = await run(migrated_sqlite_url, "db", "current", GQL_BLOG_POOL_SIZE="lots")
    assert error_line(result) == (
        "Error: GQL_BLOG_POOL_SIZE: expected a whole number >= 1, got 'lots'"
    )


async def test_unsupported_database_url_names_the_variable() -> None:
    result = await run("oracle://scott@db/blog", "db", "upgrade")
    assert error_line(result).startswith("Error: GQL_BLOG_DATABASE_URL: unsupported database")


async def test_commands_on_a_missing_sqlite_file_leave_no_file_behind(
    sqlite_url: str, tmp_path: Path
) -> None:
    for args in (["db", "current"], ["seed", "--users", "1"], ["db", "check"]):
        result = await run(sqlite_url, *args)
        assert error_line(result) == (
            f"Error: no database at {tmp_path / 'blog.db'}: run gql-blog db upgrade"
        )
    assert not (tmp_path / "blog.db").exists()


async def test_failed_migration_names_the_database(migrated_sqlite_url: str) -> None:
    result = await run(migrated_sqlite_url, "db", "upgrade", "nonsense")
    assert error_line(result).startswith(
        f"Error: migrating {migrated_sqlite_url} to nonsense failed: "
    )


# create-admin


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_create_admin_creates_an_admin_account(dialect: str, tmp_path: Path) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url)
        result = await run(
            url,
            "create-admin",
            "root",
            "--email",
            "Root@Example.com",
            "--password",
            "s3cret-enough",
        )
        rows = await fetch(url, select(models.User))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "root is an admin.\n"
    [user] = rows
    assert (user.username, user.email, user.is_admin, user.is_active) == (
        "root",
        "root@example.com",
        True,
        True,
    )
    assert auth.verify_password(user.password_hash, "s3cret-enough")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_create_admin_promotes_an_existing_user(dialect: str, tmp_path: Path) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url)
        async with engine_for(url) as engine, engine.begin() as connection:
            await connection.execute(
                insert(models.User).values(
                    username="alice",
                    email="alice@example.com",
                    password_hash=auth.hash_password("old password"),
                )
            )
        result = await run(
            url,
            "create-admin",
            "alice",
            "--email",
            "other@example.com",
            "--password",
            "new password",
        )
        rows = await fetch(url, select(models.User))
    assert result.exit_code == 0, result.stderr
    [user] = rows
    assert (user.username, user.email, user.is_admin) == ("alice", "alice@example.com", True)
    assert auth.verify_password(user.password_hash, "new password")
    assert not auth.verify_password(user.password_hash, "old password")


async def test_create_admin_promotes_without_an_email_and_audits_it(
    migrated_sqlite_url: str,
) -> None:
    async with engine_for(migrated_sqlite_url) as engine, engine.begin() as connection:
        await connection.execute(
            insert(models.User).values(username="alice", email="a@example.com", password_hash="x")
        )

    result = await run(migrated_sqlite_url, "create-admin", "alice", "--password", "new password")

    assert result.exit_code == 0, result.stderr
    entries = await fetch(
        migrated_sqlite_url, select(models.AuditLog.action, models.AuditLog.changes)
    )
    assert entries == [
        ("UPDATE", {"isAdmin": [False, True], "password": "changed"}),
    ]


async def test_create_admin_audits_the_new_account(migrated_sqlite_url: str) -> None:
    result = await run(
        migrated_sqlite_url,
        "create-admin",
        "root",
        "--email",
        "root@example.com",
        "--password",
        "long-enough",
    )

    assert result.exit_code == 0, result.stderr
    [(action, entity_type, actor_id, changes)] = await fetch(
        migrated_sqlite_url,
        select(
            models.AuditLog.action,
            models.AuditLog.entity_type,
            models.AuditLog.actor_id,
            models.AuditLog.changes,
        ),
    )
    assert (action, entity_type, actor_id) == ("CREATE", "User", None)
    assert changes["username"] == "root"
    assert changes["isAdmin"] is True


async def test_create_admin_of_a_new_user_without_an_email_is_one_line(
    migrated_sqlite_url: str,
) -> None:
    result = await run(migrated_sqlite_url, "create-admin", "root", "--password", "long-enough")

    assert error_line(result) == ("Error: there is no user root yet: give --email to create it")
    assert await fetch(migrated_sqlite_url, select(models.User.id)) == []


async def test_create_admin_prompts_twice_for_a_hidden_password(migrated_sqlite_url: str) -> None:
    result = await run(
        migrated_sqlite_url,
        "create-admin",
        "root",
        "--email",
        "root@example.com",
        stdin="typed secret\ntyped secret\n",
    )
    assert result.exit_code == 0, result.stderr
    assert "typed secret" not in result.output
    [(password_hash,)] = await fetch(migrated_sqlite_url, select(models.User.password_hash))
    assert auth.verify_password(password_hash, "typed secret")


async def test_create_admin_rejects_an_invalid_email_in_one_line(
    migrated_sqlite_url: str,
) -> None:
    result = await run(
        migrated_sqlite_url,
        "create-admin",
        "root",
        "--email",
        "nowhere",
        "--password",
        "long-enough",
    )
    assert error_line(result) == "Error: email must contain one '@' with text on both sides"
    assert await fetch(migrated_sqlite_url, select(models.User.id)) == []


async def test_create_admin_refuses_a_short_password_in_one_line(
    migrated_sqlite_url: str,
) -> None:
    result = await run(
        migrated_sqlite_url,
        "create-admin",
        "root",
        "--email",
        "root@example.com",
        "--password",
        "pw",
    )
    assert error_line(result) == "Error: password must be 8 to 256 characters"
    assert await fetch(migrated_sqlite_url, select(models.User.id)) == []


# seed: the module, on every dialect, inside the test's rolled-back transaction


async def seeded_names(connection: AsyncConnection) -> tuple[list[str], list[str]]:
    usernames = await connection.scalars(select(models.User.username).order_by(models.User.id))
    titles = await connection.scalars(select(models.Post.title).order_by(models.Post.id))
    return list(usernames), list(titles)


async def count_rows(connection: AsyncConnection, stmt: Executable) -> int:
    return int((await connection.execute(stmt)).scalar_one())


async def test_seed_creates_the_planned_rows(connection: AsyncConnection) -> None:
    counts = await seed.seed_database(connection, SMALL_PLAN)
    stored = seed.SeedCounts(
        users=await count_rows(connection, select(func.count(models.User.id))),
        posts=await count_rows(connection, select(func.count(models.Post.id))),
        drafts=await count_rows(
            connection, select(func.count()).where(models.Post.published.is_(False))
        ),
        comments=await count_rows(connection, select(func.count(models.Comment.id))),
        tags=await count_rows(connection, select(func.count(models.Tag.id))),
        post_tags=await count_rows(connection, select(func.count()).select_from(models.post_tags)),
        demo_username=await connection.scalar(
            select(models.User.username).order_by(models.User.id).limit(1)
        ),
    )
    assert counts == stored
    assert (counts.users, counts.posts, counts.comments, counts.tags) == (40, 80, 80, 40)
    assert 0 < counts.drafts < 40
    assert counts.post_tags > 0


async def test_seed_users_look_real(connection: AsyncConnection) -> None:
    await seed.seed_database(connection, SMALL_PLAN)
    users = (await connection.execute(select(models.User))).all()
    assert any(user.first_name is None or user.last_name is None for user in users)
    assert any(user.age is None for user in users)
    assert any(user.bio for user in users)
    assert len({user.password_hash for user in users}) == 1
    assert auth.verify_password(users[0].password_hash, seed.DEMO_PASSWORD)


async def test_seed_names_its_first_user_predictably_and_that_user_signs_in(
    connection: AsyncConnection,
) -> None:
    first_id = int(await connection.scalar(select(func.coalesce(func.max(models.User.id), 0))) or 0)
    counts = await seed.seed_database(connection, SMALL_PLAN)

    assert counts.demo_username == f"demo{first_id + 1}"
    async with AsyncSession(bind=connection) as session:
        user = await auth.authenticate(
            session, username=counts.demo_username, password=seed.DEMO_PASSWORD
        )
    assert user is not None


async def test_seed_usernames_follow_the_username_rule(connection: AsyncConnection) -> None:
    await seed.seed_database(connection, SMALL_PLAN)
    usernames = (await connection.execute(select(models.User.username))).scalars().all()
    assert len(usernames) == SMALL_PLAN.users
    assert [name for name in usernames if not models.USERNAME_PATTERN.fullmatch(name)] == []


async def test_seed_with_the_same_seed_repeats_names_and_titles(
    connection: AsyncConnection,
) -> None:
    runs = []
    for _ in range(2):
        savepoint = await connection.begin_nested()
        await seed.seed_database(connection, SMALL_PLAN)
        runs.append(await seeded_names(connection))
        await savepoint.rollback()
    await seed.seed_database(connection, seed.SeedPlan(users=40, posts_per_user=2, random_seed=8))
    other = await seeded_names(connection)
    assert runs[0] == runs[1]
    assert len(runs[0][0]) == 40
    assert other[1] != runs[0][1]


async def test_seed_adds_to_a_database_that_already_has_rows(connection: AsyncConnection) -> None:
    first = await seed.seed_database(connection, SMALL_PLAN)
    second = await seed.seed_database(connection, SMALL_PLAN)
    usernames, titles = await seeded_names(connection)
    assert (first.tags, second.tags) == (len(seed.TAGS), 0)
    assert len(usernames) == len(set(usernames)) == 80
    assert len(titles) == 160


async def test_rows_inserted_after_seeding_get_fresh_ids(connection: AsyncConnection) -> None:
    await seed.seed_database(connection, SMALL_PLAN)
    # On PostgreSQL this needs the sequences moved past the seeded ids.
    result = await connection.execute(
        insert(models.User).values(username="late", email="late@example.com", password_hash="x")
    )
    highest = await connection.scalar(select(func.max(models.User.id)))
    assert result.inserted_primary_key is not None
    assert result.inserted_primary_key[0] == highest


# seed: the command


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_seed_command_adds_the_requested_rows(dialect: str, tmp_path: Path) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await upgrade(url)
        result = await run(
            url, "seed", "--users", "3", "--posts-per-user", "4", "--comments-per-post", "2"
        )
        [(users, posts, comments)] = await fetch(
            url,
            select(
                select(func.count(models.User.id)).scalar_subquery(),
                select(func.count(models.Post.id)).scalar_subquery(),
                select(func.count(models.Comment.id)).scalar_subquery(),
            ),
        )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Added 3 users, 12 posts (")
    assert result.stdout.splitlines()[-1].startswith(
        "Sign in as 'demo1' with password 'demo-password'"
    )
    assert (users, posts, comments) == (3, 12, 24)


async def test_seed_command_refuses_an_unmigrated_database(sqlite_url: str) -> None:
    result = await run(sqlite_url, "seed", "--users", "1")
    assert error_line(result).endswith(": run gql-blog db upgrade")


async def test_seed_command_rejects_negative_counts(migrated_sqlite_url: str) -> None:
    result = await run(migrated_sqlite_url, "seed", "--users", "-1")
    assert result.exit_code == 2
    assert "--users" in result.stderr


# export-schema


def test_export_schema_prints_the_sdl_with_one_final_newline() -> None:
    result = CliRunner().invoke(cli.main, ["export-schema"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == str(schema) + "\n"


def test_export_schema_to_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "no such folder" / "schema.graphql"
    result = CliRunner().invoke(cli.main, ["export-schema", "--output", str(target)])
    assert error_line(result) == f"Error: cannot write {target}: No such file or directory"


def test_export_schema_writes_the_output_file(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"
    result = CliRunner().invoke(cli.main, ["export-schema", "--output", str(output)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert output.read_text(encoding="utf-8") == str(schema) + "\n"


# serve's port check


def _serve_on_taken_port(
    host: str, port: int, database_url: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GQL_BLOG), "serve", "--host", host, "--port", str(port)],
        env=serve_environment(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_serve_on_a_port_in_use_says_so_in_one_line(migrated_sqlite_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = await asyncio.to_thread(_serve_on_taken_port, "127.0.0.1", port, migrated_sqlite_url)

    assert done.returncode == 1
    assert done.stderr == (
        f"Error: port {port} on 127.0.0.1 is already in use; choose another with --port "
        "(make serve PORT=...)\n"
    )


async def test_serve_on_an_address_not_of_this_machine_says_so_in_one_line(
    migrated_sqlite_url: str,
) -> None:
    port = free_port()
    # 192.0.2.0/24 is TEST-NET-1: no interface here has it, so nothing can listen on it.
    done = await asyncio.to_thread(_serve_on_taken_port, "192.0.2.1", port, migrated_sqlite_url)

    assert done.returncode == 1
    assert done.stderr == (
        f"Error: cannot listen on 192.0.2.1 port {port}: Cannot assign requested address\n"
    )


# every command validates every GQL_BLOG_* variable


# Every command of gql-blog by its words, with arguments it could run with: serve on an
# address no interface has, so that it fails at once, rather than serving, if it ran at all.
COMMANDS = [
    (("serve",), ["--host", "192.0.2.1"]),
    (("db", "upgrade"), []),
    (("db", "downgrade"), ["base", "--yes"]),
    (("db", "current"), []),
    (("db", "check"), []),
    (("seed",), ["--users", "1"]),
    (("create-admin",), ["someone", "--email", "someone@example.com"]),
    (("export-schema",), []),
]
COMMAND_LINES = [[*words, *args] for words, args in COMMANDS]


def _command_words(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _command_words(command, (*prefix, name))
        else:
            found.add((*prefix, name))
    return found


def test_the_commands_tried_are_every_command() -> None:
    assert {words for words, _ in COMMANDS} == _command_words(cli.main)


@pytest.mark.parametrize("args", COMMAND_LINES, ids=" ".join)
@pytest.mark.parametrize(
    ("variable", "raw", "line"),
    [
        ("GQL_BLOG_POOL_SIZE", "abc", "Error: GQL_BLOG_POOL_SIZE: expected a whole number >= 1"),
        (
            "GQL_BLOG_POOL_SIZEE",
            "5",
            "Error: GQL_BLOG_POOL_SIZEE: no such setting (did you mean GQL_BLOG_POOL_SIZE?).",
        ),
    ],
    ids=["bad-value", "misspelled-name"],
)
def test_every_command_refuses_a_bad_variable_before_doing_anything(
    migrated_sqlite_url: str, args: list[str], variable: str, raw: str, line: str
) -> None:
    env = {"GQL_BLOG_DATABASE_URL": migrated_sqlite_url, variable: raw}
    result = CliRunner().invoke(cli.main, args, env=env, input="password1\npassword1\n")

    assert error_line(result).startswith(line)
    assert result.stdout == ""


@pytest.mark.parametrize("args", COMMAND_LINES, ids=" ".join)
def test_every_commands_help_shows_despite_a_misspelled_variable(args: list[str]) -> None:
    result = CliRunner().invoke(cli.main, [*args, "--help"], env={"GQL_BLOG_POOL_SIZEE": "5"})

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")


async def test_seed_gives_slugs_publishing_times_threads_and_edits(
    connection: AsyncConnection,
) -> None:
    plan = seed.SeedPlan(users=20, posts_per_user=3, comments_per_post=6, random_seed=7)
    await seed.seed_database(connection, plan)
    await seed.seed_database(connection, plan)  # the same titles again: slugs stay unique

    posts = (await connection.execute(select(models.Post.__table__))).all()
    comments = (await connection.execute(select(models.Comment.__table__))).all()
    by_id = {comment.id: comment for comment in comments}

    slugs_seen = [post.slug for post in posts]
    assert len(set(slugs_seen)) == len(posts) == 120
    assert all(slugs.is_valid(slug) for slug in slugs_seen)
    assert any(slug.endswith("-2") for slug in slugs_seen)
    assert all((post.published_at is None) == (not post.published) for post in posts)
    assert all(post.published_at >= post.created_at for post in posts if post.published)
    replies = [comment for comment in comments if comment.parent_id is not None]
    assert 0 < len(replies) < len(comments)
    for reply in replies:
        parent = by_id[reply.parent_id]
        assert parent.post_id == reply.post_id
        assert parent.created_at <= reply.created_at
    assert any(by_id[reply.parent_id].parent_id is not None for reply in replies)  # threads
    edited = [comment for comment in comments if comment.edited_at is not None]
    assert 0 < len(edited) < len(comments)
    assert all(comment.edited_at >= comment.created_at for comment in edited)
