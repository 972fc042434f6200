"""deactivateUsers and deletePosts: admins only, one UPDATE or DELETE, audited, filter-driven."""

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import await_only

from gql_blog import models
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from tests.committed import CommittedApi, serve_committed_api
from tests.conftest import StatementCounter
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

RESULT = """__typename ... on BulkUpdated { affected } ... on Error { message }"""
DEACTIVATE_USERS = (
    f"""mutation($where: UserWhere!) {{ deactivateUsers(where: $where) {{ {RESULT} }} }}"""
)
DELETE_POSTS = f"""mutation($where: PostWhere!) {{ deletePosts(where: $where) {{ {RESULT} }} }}"""
SPAMMERS = {"username": {"startsWith": "spam"}}
OLD_POSTS = {"tags": {"some": {"name": {"eq": "old"}}}}


def _statements(statements: list[str], verb: str) -> list[str]:
    return [statement for statement in statements if statement.lstrip().upper().startswith(verb)]


async def _active_by_username(db: AsyncSession) -> dict[str, bool]:
    rows = await db.execute(select(models.User.username, models.User.is_active))
    return {row.username: row.is_active for row in rows.all()}


async def _post_titles(db: AsyncSession) -> list[str]:
    return list(await db.scalars(select(models.Post.title).order_by(models.Post.title)))


async def _audit_entries(
    db: AsyncSession, entity_type: str, action: models.AuditAction
) -> list[tuple[Any, ...]]:
    """The audit rows of one kind (the factories' rows have their CREATE entries too)."""
    stmt = (
        select(
            models.AuditLog.entity_id,
            models.AuditLog.action,
            models.AuditLog.actor_id,
            models.AuditLog.changes,
        )
        .where(models.AuditLog.entity_type == entity_type, models.AuditLog.action == action)
        .order_by(models.AuditLog.entity_id)
    )
    return [tuple(row) for row in (await db.execute(stmt)).all()]


# --- deactivateUsers ----------------------------------------------------------------------------


async def test_deactivate_users_deactivates_the_matching_users_in_one_update(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    admin = await make_user(db, username="admin", is_admin=True)
    await make_user(db, username="spam1")
    await make_user(db, username="spam2")
    await make_user(db, username="spam3", is_active=False)
    await make_user(db, username="alice")
    await api.token_for(admin)

    with count_sql() as counted:
        result = await api.query(DEACTIVATE_USERS, {"where": SPAMMERS}, viewer=admin)

    assert result.errors is None
    assert result.data == {"deactivateUsers": {"__typename": "BulkUpdated", "affected": 2}}
    assert len(_statements(counted.statements, "UPDATE")) == 1
    assert _statements(counted.statements, "DELETE") == []
    assert await _active_by_username(db) == {
        "admin": True,
        "spam1": False,
        "spam2": False,
        "spam3": False,
        "alice": True,
    }


async def test_deactivate_users_logs_one_update_per_deactivated_user(
    api: GraphQLClient, db: AsyncSession
) -> None:
    admin = await make_user(db, is_admin=True)
    spammers = [await make_user(db, username=f"spam{index}") for index in range(2)]
    await make_user(db, username="spam_asleep", is_active=False)

    result = await api.query(DEACTIVATE_USERS, {"where": SPAMMERS}, viewer=admin)

    assert result.errors is None
    assert await _audit_entries(db, "User", models.AuditAction.UPDATE) == [
        (user.id, "UPDATE", admin.id, {"isActive": [True, False]}) for user in spammers
    ]


async def test_a_deactivated_user_can_no_longer_write(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)
    spammer = await make_user(db, username="spammer")
    await api.token_for(spammer)

    result = await api.query(DEACTIVATE_USERS, {"where": SPAMMERS}, viewer=admin)
    assert result.errors is None
    written = await api.query(
        'mutation { createPost(input: {title: "Buy", content: "Now"}) { __typename } }',
        viewer=spammer,
    )

    assert written.errors is None
    assert written.data == {"createPost": {"__typename": "AuthenticationError"}}


async def test_deactivate_users_matching_nobody_affects_nothing(
    api: GraphQLClient, db: AsyncSession
) -> None:
    admin = await make_user(db, username="admin", is_admin=True)

    result = await api.query(DEACTIVATE_USERS, {"where": SPAMMERS}, viewer=admin)

    assert result.errors is None
    assert result.data == {"deactivateUsers": {"__typename": "BulkUpdated", "affected": 0}}
    assert await _active_by_username(db) == {"admin": True}


# --- deletePosts --------------------------------------------------------------------------------


async def test_delete_posts_deletes_the_matching_posts_with_comments_and_links_in_one_delete(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    admin = await make_user(db, is_admin=True)
    author = await make_user(db)
    old, kept = await make_tag(db, "old"), await make_tag(db, "kept")
    doomed = [
        await make_post(db, author=author, title="Old post", tags=[old, kept]),
        await make_post(db, author=author, title="Old draft", tags=[old], published=False),
    ]
    survivor = await make_post(db, author=author, title="Kept post", tags=[kept])
    for post in [*doomed, survivor]:
        await make_comment(db, post=post, author=author)
    await api.token_for(admin)

    with count_sql() as counted:
        result = await api.query(DELETE_POSTS, {"where": OLD_POSTS}, viewer=admin)

    assert result.errors is None
    assert result.data == {"deletePosts": {"__typename": "BulkUpdated", "affected": 2}}
    assert len(_statements(counted.statements, "DELETE")) == 1
    assert _statements(counted.statements, "UPDATE") == []
    assert await _post_titles(db) == ["Kept post"]
    comments = await db.scalars(select(models.Comment.post_id))
    assert list(comments) == [survivor.id]
    links = (await db.execute(select(models.post_tags))).all()
    assert [tuple(link) for link in links] == [(survivor.id, kept.id)]
    tags = await db.scalars(select(models.Tag.name).order_by(models.Tag.name))
    assert list(tags) == ["kept", "old"]


async def test_delete_posts_logs_one_delete_per_post(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)
    author = await make_user(db)
    post = await make_post(
        db,
        author=author,
        title="Old",
        content="Words.",
        tags=[await make_tag(db, "old")],
        slug="old",
    )
    await make_comment(db, post=post, author=author)

    result = await api.query(DELETE_POSTS, {"where": OLD_POSTS}, viewer=admin)

    assert result.errors is None
    fields = {"title": "Old", "content": "Words.", "published": True, "slug": "old"}
    assert await _audit_entries(db, "Post", models.AuditAction.DELETE) == [
        (post.id, "DELETE", admin.id, {**fields, "author": author.id})
    ]
    assert await _audit_entries(db, "Comment", models.AuditAction.DELETE) == []


async def test_delete_posts_by_id(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)
    author = await make_user(db)
    doomed = await make_post(db, author=author, title="Doomed")
    await make_post(db, author=author, title="Kept")

    result = await api.query(
        DELETE_POSTS,
        {"where": {"id": {"in": [encode_global_id("Post", doomed.id)]}}},
        viewer=admin,
    )

    assert result.errors is None
    assert result.data["deletePosts"]["affected"] == 1
    assert await _post_titles(db) == ["Kept"]


@pytest.mark.parametrize(
    ("mutation", "where"),
    [
        (DELETE_POSTS, {"id": {"eq": "not-an-id"}}),
        (DEACTIVATE_USERS, {"id": {"in": ["User:1"]}}),
    ],
    ids=["deletePosts", "deactivateUsers"],
)
async def test_a_malformed_id_in_the_filter_is_bad_user_input(
    api: GraphQLClient, db: AsyncSession, mutation: str, where: dict[str, Any]
) -> None:
    admin = await make_user(db, username="admin", is_admin=True)
    await make_post(db, author=admin, title="Kept")

    result = await api.query(mutation, {"where": where}, viewer=admin)

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid id" in result.error_messages[0]
    assert await _post_titles(db) == ["Kept"]
    assert await _active_by_username(db) == {"admin": True}


# --- authorization matrix -------------------------------------------------------------------------

ROLES = {
    "anonymous": ({}, "AuthenticationError"),
    "inactive-user": ({"is_active": False}, "AuthenticationError"),
    "inactive-admin": ({"is_active": False, "is_admin": True}, "AuthenticationError"),
    "user": ({}, "ForbiddenError"),
    "admin": ({"is_admin": True}, "BulkUpdated"),
}
BULK = {
    "deactivateUsers": (DEACTIVATE_USERS, {"username": {"eq": "victim"}}),
    "deletePosts": (DELETE_POSTS, {"title": {"eq": "Victim"}}),
}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("mutation", list(BULK))
async def test_who_may_run_bulk_operations(
    api: GraphQLClient, db: AsyncSession, mutation: str, role: str
) -> None:
    victim = await make_user(db, username="victim")
    await make_post(db, author=victim, title="Victim")
    user_fields, typename = ROLES[role]
    viewer = None if role == "anonymous" else await make_user(db, username="caller", **user_fields)
    query, where = BULK[mutation]

    result = await api.query(query, {"where": where}, viewer=viewer)

    assert result.errors is None
    assert result.data[mutation]["__typename"] == typename
    changed = typename == "BulkUpdated"
    assert await _post_titles(db) == ([] if changed and mutation == "deletePosts" else ["Victim"])
    active = await _active_by_username(db)
    assert active["victim"] is not (changed and mutation == "deactivateUsers")


async def test_bulk_filters_may_read_the_table_they_change(
    api: GraphQLClient, db: AsyncSession
) -> None:
    admin = await make_user(db, username="admin", is_admin=True)
    spammer = await make_user(db, username="spammer")
    await make_user(db, username="reader")
    await make_post(db, author=spammer, title="Buy now")
    await make_post(db, author=spammer, title="Also spam")
    await make_post(db, author=admin, title="Welcome")
    spam_author = {"author": {"posts": {"some": {"title": {"eq": "Buy now"}}}}}
    writes_spam = {"posts": {"some": {"author": {"posts": {"some": {"title": {"eq": "Buy now"}}}}}}}

    deleted = await api.query(DELETE_POSTS, {"where": spam_author}, viewer=admin)
    await make_post(db, author=spammer, title="Buy now")
    deactivated = await api.query(DEACTIVATE_USERS, {"where": writes_spam}, viewer=admin)

    assert deleted.errors is None
    assert deleted.data["deletePosts"]["affected"] == 2
    assert deactivated.errors is None
    assert deactivated.data["deactivateUsers"]["affected"] == 1
    assert await _post_titles(db) == ["Buy now", "Welcome"]
    assert await _active_by_username(db) == {"admin": True, "spammer": False, "reader": True}


# --- concurrent writers (PostgreSQL, real commits) ------------------------------------------------


@pytest.fixture
async def committed(settings: Settings, dialect: str) -> AsyncIterator[CommittedApi]:
    if dialect != "postgresql":
        # Elsewhere the intruding writer would wait for the bulk statement's locks (MariaDB's
        # next-key locks, SQLite's one writer), so the race cannot happen there.
        pytest.skip("the READ COMMITTED race is PostgreSQL's")
    async with serve_committed_api(settings) as served:
        yield served


@contextmanager
def _just_before(prefix: str, intrude: Callable[[], Coroutine[Any, Any, None]]) -> Iterator[None]:
    """Run `intrude` (once, to its commit) right before the first statement starting `prefix`.

    The listener runs in the requesting session's greenlet, so `await_only` holds that statement
    back while another connection writes: the moment between a lock and the bulk statement.
    """
    pending = [intrude]

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if pending and statement.lstrip().upper().startswith(prefix):
            await_only(pending.pop()())

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", before)
    assert not pending, f"no statement started with {prefix!r}"


async def test_a_post_committed_just_before_delete_posts_is_deleted_with_its_audit_row(
    committed: CommittedApi, engine: AsyncEngine
) -> None:
    admin = await make_user(committed.db, is_admin=True)
    author = await make_user(committed.db)
    early = [await make_post(committed.db, author=author, title=f"Spam {n}") for n in range(2)]
    await make_post(committed.db, author=author, title="Kept")
    await committed.api.token_for(admin)
    await committed.db.commit()
    late_ids: list[int] = []

    async def post_late() -> None:
        async with engine.begin() as connection:
            row = models.Post.__table__.c
            stmt = insert(models.Post).values(title="Spam late", content="Buy.", user_id=author.id)
            late_ids.append((await connection.execute(stmt.returning(row.id))).scalar_one())

    with _just_before("DELETE FROM POSTS", post_late):
        result = await committed.api.query(
            DELETE_POSTS, {"where": {"title": {"startsWith": "Spam"}}}, viewer=admin
        )

    assert result.errors is None
    assert await _post_titles(committed.db) == ["Kept"]
    logged = {
        row[0] for row in await _audit_entries(committed.db, "Post", models.AuditAction.DELETE)
    }
    assert logged == {post.id for post in early} | set(late_ids)
    assert result.data["deletePosts"]["affected"] == 3


async def test_a_user_committed_just_before_deactivate_users_is_logged_if_deactivated(
    committed: CommittedApi, engine: AsyncEngine
) -> None:
    admin = await make_user(committed.db, username="admin", is_admin=True)
    for n in range(2):
        await make_user(committed.db, username=f"spam{n}")
    await committed.api.token_for(admin)
    await committed.db.commit()

    async def sign_up_late() -> None:
        async with AsyncSession(engine) as session:
            await make_user(session, username="spam_late")
            await session.commit()

    with _just_before("UPDATE USERS", sign_up_late):
        result = await committed.api.query(DEACTIVATE_USERS, {"where": SPAMMERS}, viewer=admin)

    assert result.errors is None
    active = await _active_by_username(committed.db)
    deactivated = {name for name, is_active in active.items() if not is_active}
    logged = await _audit_entries(committed.db, "User", models.AuditAction.UPDATE)
    ids = {user.id: user.username for user in await committed.db.scalars(select(models.User))}
    assert {ids[row[0]] for row in logged} == deactivated
    assert deactivated == {"spam0", "spam1", "spam_late"}
    assert result.data["deactivateUsers"]["affected"] == 3
