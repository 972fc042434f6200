"""The audit listeners: one row per created, changed or deleted user, post and comment."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import audit, models, writes
from tests.factories import make_comment, make_post, make_tag, make_user

Entry = tuple[str, int, str, int | None, dict[str, Any]]


async def _entries(db: AsyncSession, *, after: int = 0) -> list[Entry]:
    """(entity type, entity id, action, actor id, changes) of rows past id `after`, oldest first."""
    log = models.AuditLog
    stmt = (
        select(log.entity_type, log.entity_id, log.action, log.actor_id, log.changes)
        .where(log.id > after)
        .order_by(log.id)
    )
    return [tuple(row) for row in (await db.execute(stmt)).all()]


async def _last_id(db: AsyncSession) -> int:
    return int(await db.scalar(select(models.AuditLog.id).order_by(models.AuditLog.id.desc())) or 0)


async def test_creating_a_user_logs_its_non_null_fields_without_secrets(db: AsyncSession) -> None:
    user = models.User(
        username="Ada", email="ada@example.test", password_hash="secret-hash", first_name="Ada"
    )
    db.add(user)
    await db.flush()

    assert await _entries(db) == [
        (
            "User",
            user.id,
            "CREATE",
            None,
            {
                "username": "Ada",
                "email": "ada@example.test",
                "firstName": "Ada",
                "isActive": True,
                "isAdmin": False,
            },
        )
    ]


async def test_a_new_user_may_be_its_own_actor(db: AsyncSession) -> None:
    user = models.User(username="ada", email="ada@example.test", password_hash="x")
    audit.act_as(db, user)
    db.add(user)
    await db.flush()

    [(_, _, _, actor_id, _)] = await _entries(db)
    assert actor_id == user.id


async def test_update_logs_only_changed_fields_as_old_new_pairs(db: AsyncSession) -> None:
    editor = await make_user(db)
    user = await make_user(db, username="ada", first_name="Ada", age=36)
    start = await _last_id(db)
    audit.act_as(db, editor.id)

    user.first_name = "Augusta"
    user.age = 36
    user.bio = "Notes on the engine."
    await db.flush()

    assert await _entries(db, after=start) == [
        (
            "User",
            user.id,
            "UPDATE",
            editor.id,
            {"firstName": ["Ada", "Augusta"], "bio": [None, "Notes on the engine."]},
        )
    ]


async def test_password_change_is_logged_as_changed(db: AsyncSession) -> None:
    user = await make_user(db)
    start = await _last_id(db)

    user.password_hash = "another-hash"
    await db.flush()

    [(_, _, action, _, changes)] = await _entries(db, after=start)
    assert (action, changes) == ("UPDATE", {"password": "changed"})


async def test_setting_fields_to_their_current_values_logs_nothing(db: AsyncSession) -> None:
    user = await make_user(db, username="ada", email="ada@example.test")
    start = await _last_id(db)

    user.email = "ADA@example.test"  # stored lower-case: the same value
    user.username = "ada"
    await db.flush()

    assert await _entries(db, after=start) == []


async def test_post_and_comment_relations_are_logged_as_row_ids(db: AsyncSession) -> None:
    author = await make_user(db)
    start = await _last_id(db)

    post = await make_post(
        db, author=author, title="Engines", content="On engines.", slug="engines"
    )
    comment = await make_comment(db, post=post, author=author, content="Nice.")

    assert await _entries(db, after=start) == [
        (
            "Post",
            post.id,
            "CREATE",
            None,
            {
                "title": "Engines",
                "content": "On engines.",
                "published": True,
                "slug": "engines",
                "author": author.id,
            },
        ),
        (
            "Comment",
            comment.id,
            "CREATE",
            None,
            {"content": "Nice.", "author": author.id, "post": post.id},
        ),
    ]


async def test_posts_and_comments_written_without_the_flush_are_logged_as_the_flush_logs_them(
    db: AsyncSession,
) -> None:
    author = await make_user(db)
    audit.act_as(db, author)
    start = await _last_id(db)
    flushed_post = await make_post(
        db, author=author, title="Engines", content="On engines.", slug="engines"
    )
    flushed = await make_comment(db, post=flushed_post, author=author, content="Nice.")
    middle = await _last_id(db)

    written_post = await writes.create_post(
        db, author=author, title="Engines", content="On engines.", published=True, tag_names=["x"]
    )
    written = await writes.add_comment(db, post=flushed_post, author=author, content="Nice.")

    renamed = {flushed_post.id: written_post.row.id, flushed.id: written.id}
    # The same title: the written post's slug is the next free one.
    assert written_post.row.slug == "engines-2"
    by_flush = [
        (kind, renamed[row_id], action, actor, changes, list(changes))
        for kind, row_id, action, actor, changes in (await _entries(db, after=start))[:2]
    ]
    by_flush[0][4]["slug"] = "engines-2"
    # Key order too: MariaDB and SQLite keep the JSON text as written.
    by_core = [(*entry, list(entry[4])) for entry in await _entries(db, after=middle)]
    assert by_core == by_flush


async def test_deleting_a_post_logs_one_entry_not_one_per_comment(db: AsyncSession) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, title="Engines", published=False, slug="engines")
    await make_comment(db, post=post, author=author)
    comments = (await db.scalars(select(models.Comment))).all()
    start = await _last_id(db)

    for comment in comments:  # as the ORM's cascade does with comments it has loaded
        await db.delete(comment)
    await db.delete(post)
    await db.flush()

    assert await _entries(db, after=start) == [
        (
            "Post",
            post.id,
            "DELETE",
            None,
            {
                "title": "Engines",
                "content": "Some words about something.",
                "published": False,
                "slug": "engines",
                "author": author.id,
            },
        )
    ]


async def test_deleting_a_comment_logs_its_fields(db: AsyncSession) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)
    comment = await make_comment(db, post=post, author=author, content="Nice.")
    start = await _last_id(db)

    await db.delete(comment)
    await db.flush()

    assert await _entries(db, after=start) == [
        (
            "Comment",
            comment.id,
            "DELETE",
            None,
            {"content": "Nice.", "author": author.id, "post": post.id},
        )
    ]


async def test_tags_are_not_audited(db: AsyncSession) -> None:
    start = await _last_id(db)

    await make_tag(db, "python")

    assert await _entries(db, after=start) == []


async def test_rolled_back_changes_leave_no_audit_row(db: AsyncSession) -> None:
    start = await _last_id(db)

    savepoint = await db.begin_nested()
    await make_user(db)
    await savepoint.rollback()

    assert await _entries(db, after=start) == []


async def test_bulk_statements_write_their_rows_with_the_helpers(db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)
    users = [await make_user(db), await make_user(db)]
    start = await _last_id(db)
    ids = [user.id for user in users]

    await db.execute(update(models.User).where(models.User.id.in_(ids)).values(is_active=False))
    changes = audit.differences(models.User, {"is_active": (True, False)})
    rows = audit.audit_rows(
        models.User,
        models.AuditAction.UPDATE,
        dict.fromkeys(ids, changes),
        actor=admin.id,
    )
    await audit.write_audit_rows(db, rows)

    assert await _entries(db, after=start) == [
        ("User", user_id, "UPDATE", admin.id, {"isActive": [True, False]}) for user_id in ids
    ]


def test_snapshot_of_a_row_skips_nulls_secrets_and_unaudited_attributes() -> None:
    values = {"id": 3, "username": "ada", "bio": None, "password_hash": "h", "username_key": "ada"}

    assert audit.snapshot(models.User, values) == {"username": "ada"}


def test_datetimes_and_enums_become_json_values() -> None:
    moment = datetime(2024, 2, 29, 12, 30, tzinfo=UTC)

    assert audit.json_value(moment) == "2024-02-29T12:30:00+00:00"
    assert audit.json_value(models.AuditAction.DELETE) == "DELETE"
    assert audit.json_value(7) == 7


async def test_changing_only_a_posts_tags_logs_them_as_an_update(db: AsyncSession) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, tags=[await make_tag(db, "python")])
    start = await _last_id(db)

    await writes.update_post(db, post, writes.PostChanges(tag_names=["sql", "python"]))

    assert await _entries(db, after=start) == [
        ("Post", post.id, "UPDATE", None, {"tags": [["python"], ["python", "sql"]]})
    ]


async def test_changing_a_posts_title_and_tags_logs_one_update(db: AsyncSession) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, title="Old", tags=[await make_tag(db, "python")])
    start = await _last_id(db)

    await writes.update_post(
        db, post, writes.PostChanges(title="New", content="Body", tag_names=["sql"])
    )

    assert await _entries(db, after=start) == [
        (
            "Post",
            post.id,
            "UPDATE",
            None,
            {
                "title": ["Old", "New"],
                "content": ["Some words about something.", "Body"],
                "tags": [["python"], ["sql"]],
            },
        )
    ]
