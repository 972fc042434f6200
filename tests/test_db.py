"""Engines, sessions, the serialized request session and the SQL statement counter."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import func, literal, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from gql_blog import metrics, models
from gql_blog.config import Settings
from gql_blog.engines import create_engine, create_sessionmaker
from gql_blog.ids import encode_global_id
from gql_blog.serial_session import SerialSession
from gql_blog.statement_counts import count_statements
from tests.committed import CommittedApi, serve_committed_api
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient


async def usernames(db: AsyncSession) -> list[str]:
    return list((await db.scalars(select(models.User.username).order_by(models.User.id))).all())


# The statement counter


async def test_count_statements_counts_each_statement(db: AsyncSession) -> None:
    with count_statements() as counted:
        await db.scalar(select(literal(1)))
        await db.scalar(select(literal(2)))
        await db.scalar(select(literal(3)))
    assert counted.total == 3
    assert len(counted.statements) == 3
    assert all(statement.lstrip().upper().startswith("SELECT") for statement in counted.statements)


async def test_count_statements_ignores_savepoints_and_their_release(db: AsyncSession) -> None:
    with count_statements() as counted:
        async with db.begin_nested():
            await db.scalar(select(literal(1)))
        nested = await db.begin_nested()
        await db.scalar(select(literal(2)))
        await nested.rollback()
        await db.commit()
    assert counted.total == 2


async def test_first_statement_of_a_session_counts_one_on_every_dialect(
    engine: AsyncEngine,
) -> None:
    async with create_sessionmaker(engine)() as session:
        with count_statements() as counted:
            await session.scalar(select(literal(1)))
            await session.rollback()
    assert counted.total == 1


async def test_statements_outside_the_block_are_not_counted(db: AsyncSession) -> None:
    with count_statements() as counted:
        await db.scalar(select(literal(1)))
    await db.scalar(select(literal(2)))
    assert counted.total == 1


async def test_statements_of_tasks_started_inside_the_block_are_counted(db: AsyncSession) -> None:
    serial = SerialSession(db)
    with count_statements() as counted:
        await asyncio.gather(*(serial.scalar(select(literal(n))) for n in range(4)))
    assert counted.total == 4


async def test_outer_count_includes_the_statements_of_a_nested_count(db: AsyncSession) -> None:
    with count_statements() as outer:
        await db.scalar(select(literal(1)))
        with count_statements() as inner:
            await db.scalar(select(literal(2)))
        await db.scalar(select(literal(3)))
    assert (outer.total, inner.total) == (3, 1)


# SerialSession


@pytest.fixture
async def fresh_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session of its own on the engine, not yet holding a connection."""
    async with create_sessionmaker(engine)() as session:
        yield session


async def test_serial_session_runs_concurrent_scalars_one_at_a_time(
    fresh_session: AsyncSession,
) -> None:
    serial = SerialSession(fresh_session)
    results = await asyncio.gather(*(serial.scalars(select(literal(n))) for n in range(8)))
    assert [list(result) for result in results] == [[n] for n in range(8)]


class _CountedSessions(async_sessionmaker[AsyncSession]):
    """A session factory that remembers the sessions it made."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, expire_on_commit=False)
        self.opened: list[AsyncSession] = []

    def __call__(self, **local_kw: Any) -> AsyncSession:
        session = super().__call__(**local_kw)
        self.opened.append(session)
        return session


async def test_an_on_demand_serial_session_opens_its_session_when_first_used(
    engine: AsyncEngine,
) -> None:
    sessions = _CountedSessions(engine)
    serial = SerialSession(sessions=sessions)
    assert serial.dialect.name == engine.dialect.name
    assert sessions.opened == []  # neither building it nor asking its dialect opens a session

    assert await serial.scalar(select(literal(7))) == 7
    assert await serial.scalar(select(literal(8))) == 8
    assert len(sessions.opened) == 1
    assert sessions.opened[0].in_transaction()
    await serial.close()
    assert not sessions.opened[0].in_transaction()  # closed: its transaction ended


async def test_an_on_demand_serial_session_never_used_opens_none(engine: AsyncEngine) -> None:
    sessions = _CountedSessions(engine)
    serial = SerialSession(sessions=sessions)
    await serial.drain()
    await serial.close()
    assert sessions.opened == []


async def test_a_serial_session_takes_a_session_or_a_factory(engine: AsyncEngine) -> None:
    factory = create_sessionmaker(engine)
    with pytest.raises(TypeError, match="a session or a session factory"):
        SerialSession()
    async with factory() as session:
        with pytest.raises(TypeError, match="a session or a session factory"):
            SerialSession(session, sessions=factory)
        await SerialSession(session).close()  # a given session is its owner's to close
        assert session.is_active


async def test_serial_session_runs_concurrent_mixed_calls(db: AsyncSession) -> None:
    user = await make_user(db)
    serial = SerialSession(db)
    scalar, rows, scalars = await asyncio.gather(
        serial.scalar(select(models.User.username).where(models.User.id == user.id)),
        serial.rows(select(models.User.id, models.User.email)),
        serial.scalars(select(models.User.id)),
    )
    assert scalar == user.username
    assert [tuple(row) for row in rows] == [(user.id, user.email)]
    assert list(scalars) == [user.id]


# The pool's checkout metrics


def _sample(name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def test_each_checkout_from_the_pool_is_timed(engine: AsyncEngine) -> None:
    before = _sample("gql_blog_db_pool_checkout_seconds_count")

    for _ in range(3):
        async with engine.connect() as connection:
            await connection.scalar(select(literal(1)))

    assert _sample("gql_blog_db_pool_checkout_seconds_count") - before == 3


async def test_a_checkout_finding_no_free_connection_counts_as_a_pool_timeout(
    database_url: str,
) -> None:
    settings = Settings(
        database_url=database_url, pool_size=1, max_overflow=0, pool_timeout_seconds=0.2
    )
    engine = create_engine(settings)
    timeouts = _sample("gql_blog_db_pool_timeouts_total")
    waited = _sample("gql_blog_db_pool_checkout_seconds_sum")
    try:
        async with engine.connect():
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                await engine.connect()
    finally:
        await engine.dispose()

    assert _sample("gql_blog_db_pool_timeouts_total") - timeouts == 1
    # The one that got its connection at once, and the one that waited out the timeout.
    assert _sample("gql_blog_db_pool_checkout_seconds_sum") - waited >= 0.2


# SQLite specifics: one shared in-memory database, foreign keys, savepoints.


async def sqlite_engine(url: str) -> AsyncEngine:
    engine = create_engine(Settings(database_url=url))
    async with engine.begin() as connection:
        await connection.run_sync(models.Base.metadata.create_all)
    return engine


@pytest.fixture
async def memory_engine() -> AsyncIterator[AsyncEngine]:
    engine = await sqlite_engine("sqlite+aiosqlite://")
    yield engine
    await engine.dispose()


@pytest.fixture
async def file_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await sqlite_engine(f"sqlite+aiosqlite:///{tmp_path / 'blog.sqlite'}")
    yield engine
    await engine.dispose()


@pytest.fixture(params=["memory", "file"])
async def any_sqlite_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    url = {"memory": "sqlite+aiosqlite://", "file": f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite'}"}
    engine = await sqlite_engine(url[request.param])
    yield engine
    await engine.dispose()


async def test_sqlite_memory_database_is_shared_by_sessions_of_one_engine(
    memory_engine: AsyncEngine,
) -> None:
    sessions = create_sessionmaker(memory_engine)
    async with sessions() as writer:
        await make_user(writer, username="ada")
        await writer.commit()
    async with sessions() as reader:
        assert await usernames(reader) == ["ada"]


async def test_sqlite_connections_have_foreign_keys_on(any_sqlite_engine: AsyncEngine) -> None:
    async with any_sqlite_engine.connect() as connection:
        assert await connection.scalar(text("PRAGMA foreign_keys")) == 1


async def test_sqlite_released_savepoint_is_undone_by_the_outer_rollback(
    file_engine: AsyncEngine,
) -> None:
    async with create_sessionmaker(file_engine)() as session:
        async with session.begin_nested():
            await make_user(session, username="ada")
        await session.rollback()
        assert await usernames(session) == []


async def test_sqlite_rolled_back_savepoint_keeps_the_outer_work(file_engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(file_engine)
    async with sessions() as session:
        await make_user(session, username="ada")
        nested = await session.begin_nested()
        await make_user(session, username="bob")
        await nested.rollback()
        await session.commit()
    async with sessions() as session:
        assert await usernames(session) == ["ada"]


# Savepoints on every dialect (as importPosts uses them)


async def test_rolled_back_savepoint_discards_only_its_own_rows(db: AsyncSession) -> None:
    await make_user(db, username="ada")
    nested = await db.begin_nested()
    await make_user(db, username="bob")
    await nested.rollback()
    assert await usernames(db) == ["ada"]


async def test_failed_statement_in_savepoint_leaves_the_transaction_usable(
    db: AsyncSession,
) -> None:
    await make_user(db, username="ada")
    with pytest.raises(IntegrityError):
        async with db.begin_nested():
            await make_user(db, username="ada")
    await make_user(db, username="bob")
    assert await usernames(db) == ["ada", "bob"]


async def test_outer_rollback_undoes_a_released_savepoint(connection: AsyncConnection) -> None:
    nested = await connection.begin_nested()
    await connection.execute(
        models.User.__table__.insert().values(
            username="ada", email="ada@example.test", password_hash="x"
        )
    )
    await nested.commit()
    await connection.rollback()
    assert await connection.scalar(select(models.User.id)) is None


# Concurrent writers (real commits, a connection per request)

WRITERS = 16
_POST = "__typename ... on Post { id } ... on Error { message }"
_WRITES = {
    "create": f'mutation($t: String!) {{ createPost(input: {{title: $t, content: "C", '
    f'tags: ["shared", $t]}}) {{ {_POST} }} }}',
    "comment": 'mutation($p: ID!) { addComment(input: {postId: $p, content: "Hi"}) '
    "{ __typename } }",
    "bio": "mutation($t: String!) { updateViewer(input: {bio: $t}) { __typename } }",
    "import": 'mutation($t: String!) { importPosts(inputs: [{title: $t, content: "A"}, '
    '{title: "", content: "refused"}, {title: $t, content: "B", tags: ["shared"]}]) '
    "{ created } }",
    "update": f"mutation($p: ID!, $t: String!) {{ updatePost(id: $p, input: {{title: $t, "
    f'tags: ["shared"]}}) {{ {_POST} }} }}',
    "publish": f"mutation($p: ID!) {{ publishPost(id: $p) {{ {_POST} }} }}",
    "delete": "mutation($p: ID!) { deletePost(id: $p) { __typename } }",
}


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[CommittedApi]:
    async with serve_committed_api(settings) as served:
        yield served


async def _write_a_while(
    api: GraphQLClient, writer: models.User, shared: str, number: int
) -> list[object]:
    """One writer's mixed mutations, each answered before the next is sent."""
    title = f"Writer {number}"
    answers = []

    async def send(name: str, **variables: str) -> Any:
        result = await api.query(_WRITES[name], variables, viewer=writer)
        answers.append((name, result.status, result.errors))
        return result.data

    created = await send("create", t=title)
    mine = created["createPost"]["id"]
    await send("comment", p=shared)
    await send("bio", t=title)
    await send("import", t=title)
    await send("update", p=mine, t=title + "!")
    await send("publish", p=mine)
    await send("comment", p=mine)
    await send("delete", p=mine)
    return answers


async def test_sixteen_concurrent_writers_of_mixed_mutations_all_succeed(
    committed: CommittedApi,
) -> None:
    writers = [await make_user(committed.db) for _ in range(WRITERS)]
    shared = await make_post(committed.db, author=writers[0], title="Shared")
    for writer in writers:
        await committed.api.token_for(writer)
    await committed.db.commit()
    shared_id = encode_global_id("Post", shared.id)

    answers = await asyncio.gather(
        *(
            _write_a_while(committed.api, writer, shared_id, number)
            for number, writer in enumerate(writers)
        )
    )

    failed = [answer for each in answers for answer in each if answer[1:] != (200, None)]
    assert failed == []
    count = await committed.db.scalar(select(func.count()).select_from(models.Post))
    assert count == 1 + 2 * WRITERS  # the shared post and each writer's two imported ones
    comments = await committed.db.scalar(select(func.count()).select_from(models.Comment))
    assert comments == WRITERS  # on the shared post; those on deleted posts went with them
