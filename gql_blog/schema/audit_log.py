"""The audit log as GraphQL: the admins-only `auditLog` connection of `AuditLogEntry` nodes.

The rows are written by `gql_blog.audit`; here they are read, newest first, with keyset cursors
and an `AuditLogWhere` filter. Anyone but an admin gets a top-level FORBIDDEN error (and `node`
answers null: the loaders see no audit rows for them).
"""

from typing import ClassVar

import strawberry
from strawberry import UNSET

from gql_blog import audit, models
from gql_blog.arguments import page_request, plain_where
from gql_blog.loaders import Loaders
from gql_blog.ordering import Ordering
from gql_blog.read_model import Filter
from gql_blog.schema.connections import Connection, RootSource, connection
from gql_blog.schema.errors import ForbiddenQueryError
from gql_blog.schema.inputs import DateTimeFilter, StringFilter, UserWhere
from gql_blog.schema.types import AuditAction, AuditLogEntry, BlogInfo

ENTITY = AuditLogEntry.type_name


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


def _compile(loaders: Loaders, where: AuditLogWhere | None) -> Filter | None:
    plain = plain_where(where)
    return loaders.where(ENTITY, None if plain is None else audit.plain_log_where(plain))


async def audit_log_connection(
    info: BlogInfo, *, first: int | None, after: str | None, where: AuditLogWhere | None
) -> Connection[AuditLogEntry]:
    """A page of the audit log, newest first; admins only (FORBIDDEN before any SQL)."""
    context = info.context
    if context.viewer is None or not context.viewer.is_admin:
        raise ForbiddenQueryError(audit.FORBIDDEN_MESSAGE)
    ordering = Ordering.of(ENTITY)
    compiled = _compile(context.loaders, where)
    request = page_request(
        context.settings, ordering, first=first, after=after, last=None, before=None, where=compiled
    )
    page = await context.loaders.root_page(models.AuditLog, request)
    source = RootSource(context.loaders, models.AuditLog, ordering, compiled)
    return connection(page, source, AuditLogEntry.from_model)
