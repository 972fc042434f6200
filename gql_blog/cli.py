"""The `gql-blog` command: serve, migrate and inspect the database, seed it, add admins, export SDL.

Each command parses its arguments, calls the module that owns the work, reports and exits.
Expected failures (bad configuration, an unreachable database, migrations not at head, a bad
argument) print one line on stderr and exit with status 1; they never show a traceback.
"""

import asyncio
import errno
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn
from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_blog import (
    audit,
    auth,
    engines,
    http_protocol,
    logs,
    metrics,
    migrations,
    models,
    persisted_queries,
    seed,
)
from gql_blog.config import PROMETHEUS_MULTIPROC_DIR, ConfigError, Settings, export_to_workers
from gql_blog.outages import error_reason

T = TypeVar("T")

APP_FACTORY = "gql_blog.app:create_app"
UPGRADE_HINT = "run gql-blog db upgrade"


class Failure(click.ClickException):
    """An expected failure: `Error: <message>` on stderr, indented details below it, exit 1."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)

    def format_message(self) -> str:
        return "\n".join([self.message, *(f"  {line}" for line in self.details)])


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise Failure(str(error)) from None


def shown_url(url: str) -> str:
    """The URL as it may be printed: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def require_existing_database(settings: Settings) -> None:
    """Refuse a SQLite file that does not exist, rather than leave an empty one behind."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    if not Path(url.database).is_file():
        raise Failure(f"no database at {Path(url.database).resolve()}: {UPGRADE_HINT}")


@asynccontextmanager
async def connected_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine whose (existing) database has answered; else a `Failure` naming it."""
    require_existing_database(settings)
    async with _answering_engine(settings) as engine:
        yield engine


@asynccontextmanager
async def _answering_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine whose database has answered (SQLite creates a missing file)."""
    engine = engines.create_engine(settings)
    try:
        try:
            async with engine.connect():
                pass
        except (OSError, DBAPIError) as error:
            raise Failure(
                f"cannot reach the database at {shown_url(settings.database_url)}: "
                f"{error_reason(error)}"
            ) from None
        yield engine
    finally:
        await engine.dispose()


async def read_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(migrations.current_revision)


def head_revision() -> str:
    try:
        return migrations.head_revision()
    except migrations.MigrationError as error:
        raise Failure(str(error)) from None


async def require_head(engine: AsyncEngine) -> None:
    """Refuse a database whose migrations are not at head, saying what to run."""
    current, head = await read_revision(engine), head_revision()
    if current == head:
        return
    at = "never migrated" if current is None else f"at {current}"
    raise Failure(f"database is not at the latest migration ({at}, head is {head}): {UPGRADE_HINT}")


async def ensure_database_ready(settings: Settings) -> None:
    """What `serve` checks before starting: the database answers and is at the latest migration."""
    async with connected_engine(settings) as engine:
        await require_head(engine)


def run_async(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    """Run one command's database work; a driver error becomes one line naming the database."""
    try:
        return asyncio.run(work)
    except DBAPIError as error:
        raise Failure(
            f"database error at {shown_url(settings.database_url)}: {error_reason(error)}"
        ) from None


class _Commands(click.Group):
    """gql-blog's commands; notes whether the command line asks for a command's --help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ASKS_HELP] = bool(set(ctx.help_option_names).intersection(args))
        return super().parse_args(ctx, args)


_ASKS_HELP = "gql_blog.asks_help"


@click.group(cls=_Commands)
@click.version_option(package_name="gql-blog")
@click.pass_context
def main(context: click.Context) -> None:
    """gql_blog: a GraphQL API for a blog, on SQLite, PostgreSQL or MariaDB.

    Settings come from GQL_BLOG_* environment variables (see the README).
    """
    # Every command, even one that reads no setting, refuses a bad or unknown variable; a
    # command's --help still shows (it is where one looks for what to set).
    if not context.meta.get(_ASKS_HELP):
        load_settings()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, type=click.IntRange(0, 65535), show_default=True, help="TCP port."
)
@click.option(
    "--workers",
    default=1,
    type=click.IntRange(min=1),
    show_default=True,
    help="Worker processes; each keeps its own connection pool.",
)
@click.option("--reload", is_flag=True, help="Restart when the code changes (development only).")
@click.option(
    "--graceful-timeout",
    default=30,
    type=click.IntRange(min=1),
    show_default=True,
    help="On SIGTERM or Ctrl-C, seconds the requests in flight get to finish.",
)
def serve(host: str, port: int, workers: int, reload: bool, graceful_timeout: int) -> None:
    """Serve the API once the database is at head.

    GraphiQL is at /graphql. A database that is unreachable or behind the latest migration
    stops the command before the server starts. On shutdown, new connections are refused,
    the requests in flight finish, then the database connections close.
    """
    settings = load_settings()
    check_trusted_documents(settings)
    check_port_free(host, port)
    run_async(settings, ensure_database_ready(settings))
    with _shared_metrics(settings, workers=workers):
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            timeout_graceful_shutdown=graceful_timeout,
            # A GET's overlong URL reaches the app, which answers it as GraphQL JSON.
            http=http_protocol.BoundedUrlProtocol,
            # Longer websocket messages close with 1009 unread; up to this, those over
            # GQL_BLOG_MAX_BODY_BYTES close with 4413, which names the setting.
            ws_max_size=2 * settings.max_body_bytes,
            # uvicorn applies this once in every worker process, replacing its own logging setup.
            log_config=logs.logging_config(debug=settings.debug),
        )


def check_port_free(host: str, port: int) -> None:
    """A port that cannot be listened on stops `serve` in one line saying how to pick another
    (rather than uvicorn's log line with its errno). Bound and released at once, as uvicorn
    binds it (SO_REUSEADDR): a port another server takes in between still fails in uvicorn."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise Failure(
                f"port {port} on {host} is already in use; choose another with --port "
                "(make serve PORT=...)"
            ) from None
        reason = error.strerror or str(error)
        raise Failure(f"cannot listen on {host} port {port}: {reason}") from None


def check_trusted_documents(settings: Settings) -> None:
    """A bad allow-list file stops `serve` in one line, before any worker fails on it."""
    if settings.trusted_documents is None:
        return
    try:
        persisted_queries.load_trusted_documents(settings.trusted_documents)
    except ConfigError as error:
        raise Failure(str(error)) from None


@contextmanager
def _shared_metrics(settings: Settings, *, workers: int) -> Iterator[None]:
    """With several worker processes, a folder where they add up their metrics.

    A folder given by PROMETHEUS_MULTIPROC_DIR is emptied of an earlier run's values; else
    several workers get a temporary one, removed when the server stops.
    """
    if settings.prometheus_multiproc_dir is not None:
        metrics.clear_directory(settings.prometheus_multiproc_dir)
        yield
        return
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="gql-blog-metrics-") as directory:
        export_to_workers(PROMETHEUS_MULTIPROC_DIR, directory)
        yield


@main.group("db")
def database() -> None:
    """Migrate and inspect the database schema."""


@database.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate up to REVISION (default: head)."""
    settings = load_settings()
    run_async(settings, _reachable(settings))
    _migrate(migrations.upgrade, settings, revision)
    click.echo(run_async(settings, _revision_report(settings)))


@database.command()
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask before dropping tables and data.")
def downgrade(revision: str, yes: bool) -> None:
    """Migrate down to REVISION; destroys data.

    "base" drops every table. Asks first unless --yes is given.
    """
    settings = load_settings()
    run_async(settings, _existing(settings))
    if not yes:
        click.confirm(
            f"Downgrade {shown_url(settings.database_url)} to {revision}? "
            "Tables and columns added after it are dropped with their data.",
            abort=True,
            err=True,
        )
    _migrate(migrations.downgrade, settings, revision)
    click.echo(run_async(settings, _revision_report(settings)))


@database.command()
def current() -> None:
    """Print the database's revision and whether it is head."""
    settings = load_settings()
    click.echo(run_async(settings, _revision_report(settings)))


@database.command()
def check() -> None:
    """Fail unless the database is at head and matches the models.

    The differences Alembic's autogenerate finds are listed on stderr.
    """
    settings = load_settings()
    differences = run_async(settings, _schema_differences(settings))
    if differences:
        raise Failure(
            f"the database differs from the models ({len(differences)} differences): "
            "add a migration",
            details=[_describe(difference) for difference in differences],
        )
    click.echo(f"database is at {head_revision()} (head) and matches the models")


async def _reachable(settings: Settings) -> None:
    async with _answering_engine(settings):
        pass


async def _existing(settings: Settings) -> None:
    async with connected_engine(settings):
        pass


def _migrate(step: Callable[[str, str], None], settings: Settings, revision: str) -> None:
    where = shown_url(settings.database_url)
    try:
        step(settings.database_url, revision)
    except CommandError as error:
        raise Failure(f"migrating {where} to {revision} failed: {error}") from None
    except (OSError, DBAPIError) as error:
        raise Failure(f"migrating {where} to {revision} failed: {error_reason(error)}") from None


async def _revision_report(settings: Settings) -> str:
    async with connected_engine(settings) as engine:
        current = await read_revision(engine)
    head = head_revision()
    if current == head:
        return f"{current} (head)"
    return f"{current or 'none'} (not at head; head is {head})"


async def _schema_differences(settings: Settings) -> list[object]:
    async with connected_engine(settings) as engine:
        await require_head(engine)
        async with engine.connect() as connection:
            return await connection.run_sync(migrations.schema_differences)


def _describe(difference: object) -> str:
    """One autogenerate difference, e.g. `add_column users nickname`."""
    if isinstance(difference, list):
        return "; ".join(_describe(item) for item in difference)
    if not isinstance(difference, tuple) or not difference:
        return str(difference)
    return " ".join(_subject(item) for item in difference if item is not None)


def _subject(item: object) -> str:
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else str(item)


@main.command("create-admin")
@click.argument("username")
@click.option("--email", help="E-mail address: needed only when the account is new.")
@click.password_option(help="Password for the account; prompted (hidden, twice) when omitted.")
def create_admin(username: str, email: str | None, password: str) -> None:
    """Create an admin, or promote an existing USERNAME.

    An existing account keeps its e-mail address and gets the new password. The audit log
    records the change (with no actor: it came from the command line).
    """
    settings = load_settings()
    if not password.strip():
        raise Failure("the password must not be blank")
    run_async(settings, _ensure_admin(settings, username=username, email=email, password=password))
    click.echo(f"{username} is an admin.")


async def _ensure_admin(
    settings: Settings, *, username: str, email: str | None, password: str
) -> None:
    async with connected_engine(settings) as engine:
        await require_head(engine)
        try:
            async with engines.create_sessionmaker(engine).begin() as session:
                audit.act_as(session, None)
                await auth.ensure_admin(session, username=username, email=email, password=password)
        except auth.NoSuchUserError:
            raise Failure(f"there is no user {username} yet: give --email to create it") from None
        except models.InvalidValueError as error:
            raise Failure(error.message) from None
        except IntegrityError:
            raise Failure(
                f"cannot create {username}: another account already uses that e-mail address"
            ) from None


@main.command("seed")
@click.option(
    "--users", default=100, type=click.IntRange(min=0), show_default=True, help="Users to add."
)
@click.option(
    "--posts-per-user",
    default=10,
    type=click.IntRange(min=0),
    show_default=True,
    help="Posts by each user.",
)
@click.option(
    "--comments-per-post",
    default=2,
    type=click.IntRange(min=0),
    show_default=True,
    help="Comments on every post, by random seeded users.",
)
@click.option(
    "--seed",
    "random_seed",
    default=42,
    show_default=True,
    help="Random seed: the same seed gives the same data on an empty database.",
)
def seed_command(users: int, posts_per_user: int, comments_per_post: int, random_seed: int) -> None:
    """Add deterministic demo data.

    Users, posts (about 15% drafts), comments and tags, in one transaction. Every seeded user's
    password is "demo-password".
    """
    settings = load_settings()
    plan = seed.SeedPlan(
        users=users,
        posts_per_user=posts_per_user,
        comments_per_post=comments_per_post,
        random_seed=random_seed,
    )
    # Checked before the progress bar starts, so a failure stays one line on stderr.
    run_async(settings, ensure_database_ready(settings))
    started = time.perf_counter()
    with click.progressbar(length=plan.rows, label="Seeding", file=sys.stderr) as bar:
        counts = run_async(settings, _seed(settings, plan, on_progress=bar.update))
    elapsed = time.perf_counter() - started
    click.echo(
        f"Added {counts.users} users, {counts.posts} posts ({counts.drafts} drafts), "
        f"{counts.comments} comments, {counts.post_tags} post tags and {counts.tags} new tags "
        f"in {elapsed:.1f}s. Seeded users sign in with the password {seed.DEMO_PASSWORD!r}."
    )
    if counts.demo_username is not None:
        click.echo(
            f"Sign in as {counts.demo_username!r} with password {seed.DEMO_PASSWORD!r} "
            "(the login mutation; GraphiQL's example shows it)."
        )


async def _seed(
    settings: Settings, plan: seed.SeedPlan, *, on_progress: Callable[[int], None]
) -> seed.SeedCounts:
    async with connected_engine(settings) as engine:
        try:
            async with engine.begin() as connection:
                return await seed.seed_database(connection, plan, on_progress=on_progress)
        except IntegrityError as error:
            raise Failure(f"seeding failed, nothing was added: {error_reason(error)}") from None


@main.command("export-schema")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the SDL to this file instead of stdout.",
)
def export_schema(output: Path | None) -> None:
    """Print the GraphQL schema as SDL.

    `make schema` writes it to schema.graphql.
    """
    # Imported here: the database commands need not load strawberry and every resolver module.
    from gql_blog.schema import schema

    sdl = str(schema).rstrip("\n") + "\n"
    if output is None:
        click.echo(sdl, nl=False)
        return
    try:
        output.write_text(sdl, encoding="utf-8")
    except OSError as error:
        raise Failure(f"cannot write {output}: {error.strerror or error}") from None


if __name__ == "__main__":
    main()
