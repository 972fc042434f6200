"""The audit log: each create, update and delete of a user, post or comment, in its transaction.

Importing this module installs one `after_flush` listener on every ORM `Session` (SQLAlchemy's
session events are process-wide, so the app's sessions and the tests' get it alike). At that point
the flush has run its INSERT/UPDATE/DELETE statements, new rows have their ids, and every
attribute's history still shows what changed; the listener inserts one `AuditLog` row per changed
entity on the flush's own connection, so a rolled-back mutation leaves no audit row.

The acting user comes from `session.info["actor_id"]` (see `act_as`). `changes` uses the GraphQL
field names: CREATE and DELETE `{field: value}` (non-null fields but the id and timestamps), UPDATE
`{field: [old, new]}` (changed fields only). Relations are row ids (`{"author": 7}`); the GraphQL
layer shows them as global ids. A password is never logged: a change shows as "changed".

Bulk `update()`/`delete()` statements and Core INSERTs bypass the ORM's flush: their callers write
their own rows with `write_audit_rows` (or build them with `audit_rows`), or `write_created`.
"""

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.state import InstanceState

from gql_blog import models
from gql_blog.ids import encode_global_id

# Who is writing: a user's id, or a `models.User` whose id the next flush assigns (sign-up).
ACTOR_KEY = "actor_id"
PASSWORD_CHANGED = "changed"
_SECRET = "password_hash"


@dataclass(frozen=True, slots=True)
class AuditedModel:
    """What is logged of one model: its entity name and model attribute → GraphQL field name."""

    entity_type: str
    fields: Mapping[str, str]


# Why anyone but an admin gets FORBIDDEN for `auditLog`, on either executor.
FORBIDDEN_MESSAGE = "Only admins may read the audit log."

AUDITED: dict[type[models.Base], AuditedModel] = {
    models.User: AuditedModel(
        "User",
        {
            "username": "username",
            "email": "email",
            "first_name": "firstName",
            "last_name": "lastName",
            "bio": "bio",
            "age": "age",
            "is_active": "isActive",
            "is_admin": "isAdmin",
            _SECRET: "password",
        },
    ),
    models.Post: AuditedModel(
        "Post",
        {
            "title": "title",
            "content": "content",
            "published": "published",
            "slug": "slug",
            "user_id": "author",
        },
    ),
    models.Comment: AuditedModel(
        "Comment",
        {"content": "content", "user_id": "author", "post_id": "post", "parent_id": "parent"},
    ),
}
# The GraphQL type a relation field's row id belongs to (for showing it as a global id).
RELATION_TYPES = {"author": "User", "post": "Post", "parent": "Comment"}


def _global_ids(type_name: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_global_ids(type_name, item) for item in value]
    return None if value is None else encode_global_id(type_name, value)


def shown_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Stored changes as the API shows them: relations (row ids in the log) as global ids."""
    return {
        name: _global_ids(RELATION_TYPES[name], value) if name in RELATION_TYPES else value
        for name, value in changes.items()
    }


def plain_log_where(where: Mapping[str, Any]) -> dict[str, Any]:
    """An `AuditLogWhere` as the filter compiler reads it: `action: X` means `action: {eq: X}`."""
    found = dict(where)
    if "action" in found:
        found["action"] = {"eq": found["action"]}
    for key in ("and", "or"):
        if key in found:
            found[key] = [plain_log_where(item) for item in found[key]]
    if "not" in found:
        found["not"] = plain_log_where(found["not"])
    return found


_TAG_CHANGES_KEY = "gql_blog.audit_tag_changes"
_AUDIT_TABLE = models.Base.metadata.tables[models.AuditLog.__tablename__]


def act_as(session: Session | AsyncSession, actor: models.User | int | None) -> None:
    """Record who writes in this session; a new user may be its own actor (its id comes later)."""
    session.info[ACTOR_KEY] = actor


def actor_id(session: Session | AsyncSession) -> int | None:
    actor = session.info.get(ACTOR_KEY)
    if isinstance(actor, models.User):
        return actor.id
    return actor if isinstance(actor, int) else None


def json_value(value: Any) -> Any:
    """A column value as JSON: datetimes as ISO 8601 text, enums as their value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def snapshot(model: type[models.Base], values: Mapping[str, Any]) -> dict[str, Any]:
    """CREATE/DELETE changes: the non-null audited values, by GraphQL name, secrets left out."""
    fields = AUDITED[model].fields
    return {
        fields[name]: json_value(value)
        for name, value in values.items()
        if name in fields and name != _SECRET and value is not None
    }


def differences(model: type[models.Base], pairs: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """UPDATE changes: `[old, new]` per changed audited value; a new password is "changed"."""
    fields = AUDITED[model].fields
    changes: dict[str, Any] = {}
    for name, (old, new) in pairs.items():
        if name not in fields or old == new:
            continue
        if name == _SECRET:
            changes[fields[name]] = PASSWORD_CHANGED
        else:
            changes[fields[name]] = [json_value(old), json_value(new)]
    return changes


def audit_rows(
    model: type[models.Base],
    action: models.AuditAction,
    changes_by_id: Mapping[int, Mapping[str, Any]],
    *,
    actor: int | None,
) -> list[dict[str, Any]]:
    """`audit_logs` rows for entities of `model`; empty changes are skipped.

    `changes_by_id` maps a row id to its changes, already in the logged shape (see `snapshot`
    and `differences`).
    """
    entity_type = AUDITED[model].entity_type
    return [
        {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "action": action.value,
            "actor_id": actor,
            "changes": dict(changes),
            "created_at": models.utc_now(),
        }
        for entity_id, changes in changes_by_id.items()
        if changes
    ]


async def write_audit_rows(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> None:
    """Insert rows built by `audit_rows`, in the session's transaction (for bulk statements)."""
    rows = list(rows)
    if rows:
        # The table, not the model: an ORM bulk INSERT costs more and adds nothing here.
        await session.execute(insert(_AUDIT_TABLE), rows)


async def write_created(
    session: AsyncSession, model: type[models.Base], row_id: int, row: models.Base
) -> None:
    """The CREATE entry of a row inserted without the flush (by a Core INSERT), as the flush
    listener writes it for the rows it inserts."""
    await write_audit_rows(session, created_rows(model, row_id, row, actor=actor_id(session)))


def created_rows(
    model: type[models.Base], row_id: int, row: models.Base, *, actor: int | None
) -> list[dict[str, Any]]:
    """The CREATE entry of a new row (none when it holds no audited value)."""
    values = {name: getattr(row, name) for name in AUDITED[model].fields}
    return audit_rows(
        model, models.AuditAction.CREATE, {row_id: snapshot(model, values)}, actor=actor
    )


def _loaded(state: InstanceState[Any]) -> dict[str, Any]:
    # Only what the row holds in memory: reading an unloaded attribute would query mid-flush.
    return {name: state.dict[name] for name in AUDITED[state.class_].fields if name in state.dict}


def _changed_pairs(state: InstanceState[Any]) -> dict[str, tuple[Any, Any]]:
    pairs: dict[str, tuple[Any, Any]] = {}
    for name in AUDITED[state.class_].fields:
        history = state.attrs[name].history
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            pairs[name] = (old, new)
    return pairs


@dataclass(frozen=True, slots=True)
class _Entry:
    model: type[models.Base]
    entity_id: int
    action: models.AuditAction
    changes: dict[str, Any]


def _entry(row: object, action: models.AuditAction) -> _Entry:
    state: InstanceState[Any] = inspect(row)
    if action is models.AuditAction.UPDATE:
        changes = differences(state.class_, _changed_pairs(state))
    else:
        changes = snapshot(state.class_, _loaded(state))
    # New rows are not in the identity map yet (that follows this event), but have their id.
    return _Entry(state.class_, state.dict["id"], action, changes)


def _entries(session: Session) -> list[_Entry]:
    """What this flush wrote to audited rows."""
    deleted_posts = {row.id for row in session.deleted if isinstance(row, models.Post)}
    # A post's comments go with it: its one DELETE entry stands for them.
    deleted = [
        row
        for row in session.deleted
        if not (isinstance(row, models.Comment) and row.post_id in deleted_posts)
    ]
    return [
        _entry(row, action)
        for rows, action in (
            (session.new, models.AuditAction.CREATE),
            (session.dirty, models.AuditAction.UPDATE),
            (deleted, models.AuditAction.DELETE),
        )
        for row in rows
        if type(row) in AUDITED
    ]


def note_tag_change(
    session: Session | AsyncSession, post_id: int, old: Iterable[str], new: Iterable[str]
) -> None:
    """Tags live in post_tags, not in a column: the next flush's UPDATE entry of the post
    carries `{"tags": [old, new]}` (the writer makes the post dirty, see writes.update_post)."""
    session.info.setdefault(_TAG_CHANGES_KEY, {})[post_id] = [sorted(old), sorted(new)]


def discard_tag_changes(session: Session | AsyncSession) -> None:
    """The mutation rolled back: the tag changes it noted did not happen."""
    session.info.pop(_TAG_CHANGES_KEY, None)


def _with_tag_changes(session: Session, entries: list[_Entry]) -> list[_Entry]:
    pending: dict[int, list[list[str]]] = session.info.pop(_TAG_CHANGES_KEY, {})
    for entry in entries:
        tags = pending.get(entry.entity_id)
        if tags is not None and entry.model is models.Post:
            entry.changes["tags"] = tags
    return entries


def _record_flush(session: Session, flush_context: UOWTransaction) -> None:
    actor = actor_id(session)
    rows = [
        row
        for entry in _with_tag_changes(session, _entries(session))
        for row in audit_rows(
            entry.model, entry.action, {entry.entity_id: entry.changes}, actor=actor
        )
    ]
    if rows:
        session.connection().execute(insert(models.AuditLog), rows)


if not event.contains(Session, "after_flush", _record_flush):
    event.listen(Session, "after_flush", _record_flush)
