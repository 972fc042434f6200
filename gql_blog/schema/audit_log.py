"""The audit log as GraphQL: `AuditLogEntry` nodes and the admins-only `auditLog` connection.

The rows are written by `gql_blog.audit`; here they are read, newest first, with keyset cursors
and an `AuditLogWhere` filter. Anyone but an admin gets a top-level FORBIDDEN error (and `node`
answers null: the loaders see no audit rows for them).
"""

import enum
from datetime import datetime
from typing import Any, ClassVar, Self

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

from gql_blog import audit, models
from gql_blog.loaders import Filter, Loaders
from gql_blog.ordering import Ordering
from gql_blog.schema.connections import Connection, RootSource, connection, page_request
from gql_blog.schema.errors import ForbiddenQueryError, UserInputError
from gql_blog.schema.ids import encode_global_id
from gql_blog.schema.inputs import DateTimeFilter, StringFilter, UserWhere, plain_where
from gql_blog.schema.types import BlogInfo, Node, User
from gql_blog.where import InvalidFilterError

ENTITY = "AuditLogEntry"


@strawberry.enum(description="What happened to the entity.")
class AuditAction(enum.Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


def _global_ids(type_name: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_global_ids(type_name, item) for item in value]
    return None if value is None else encode_global_id(type_name, value)


def shown_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Stored changes as the API shows them: relations (row ids in the log) as global ids."""
    return {
        name: _global_ids(audit.RELATION_TYPES[name], value)
        if name in audit.RELATION_TYPES
        else value
        for name, value in changes.items()
    }


@strawberry.type(description="One create, update or delete of a user, post or comment.")
class AuditLogEntry(Node):
    type_name: ClassVar[str] = ENTITY
    entity_type: str = strawberry.field(description="The kind of entity: User, Post or Comment.")
    action: AuditAction
    changes: JSON | None = strawberry.field(
        description="CREATE and DELETE: {field: value}; UPDATE: {field: [old, new]}."
    )
    created_at: datetime
    entity_row_id: strawberry.Private[int]
    actor_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, row: models.AuditLog) -> Self:
        return cls(
            row_id=row.id,
            entity_type=row.entity_type,
            action=AuditAction(row.action),
            changes=JSON(shown_changes(row.changes)),
            created_at=row.created_at,
            entity_row_id=row.entity_id,
            actor_id=row.actor_id,
        )

    @strawberry.field(description="The global id of the entity (it may be deleted by now).")
    def entity_id(self) -> strawberry.ID:
        return strawberry.ID(encode_global_id(self.entity_type, self.entity_row_id))

    @strawberry.field(description="Who did it; null when nobody signed in did (or is gone).")
    async def actor(self, info: BlogInfo) -> User | None:
        if self.actor_id is None:
            return None
        row = await info.context.loaders.users.load(self.actor_id)
        return None if row is None else User.from_model(row)


@strawberry.input(description="Audit entries to match: every given condition must hold.")
class AuditLogWhere:
    entity: ClassVar[str] = ENTITY
    entity_type: StringFilter | None = UNSET
    action: AuditAction | None = UNSET
    actor: UserWhere | None = UNSET
    created_at: DateTimeFilter | None = UNSET
    and_: list["AuditLogWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["AuditLogWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "AuditLogWhere | None" = strawberry.field(default=UNSET, name="not")


def _with_action_filters(where: dict[str, Any]) -> dict[str, Any]:
    """`action: X` means `action: {eq: X}`, the shape the filter compiler reads."""
    found = dict(where)
    if "action" in found:
        found["action"] = {"eq": found["action"]}
    for key in ("and", "or"):
        if key in found:
            found[key] = [_with_action_filters(item) for item in found[key]]
    if "not" in found:
        found["not"] = _with_action_filters(found["not"])
    return found


def _compile(loaders: Loaders, where: AuditLogWhere | None) -> Filter | None:
    plain = plain_where(where)
    try:
        return loaders.where(ENTITY, None if plain is None else _with_action_filters(plain))
    except InvalidFilterError as error:
        raise UserInputError(str(error)) from None


async def audit_log_connection(
    info: BlogInfo, *, first: int | None, after: str | None, where: AuditLogWhere | None
) -> Connection[AuditLogEntry]:
    """A page of the audit log, newest first; admins only (FORBIDDEN before any SQL)."""
    context = info.context
    if context.viewer is None or not context.viewer.is_admin:
        raise ForbiddenQueryError("Only admins may read the audit log.")
    ordering = Ordering.of(ENTITY)
    compiled = _compile(context.loaders, where)
    request = page_request(
        context.settings, ordering, first=first, after=after, last=None, before=None, where=compiled
    )
    page = await context.loaders.root_page(models.AuditLog, request)
    source = RootSource(context.loaders, models.AuditLog, ordering, compiled)
    return connection(page, source, AuditLogEntry.from_model)
