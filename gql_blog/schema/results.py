"""Mutation results: the `Error` types (expected failures are values) and the transaction runner.

Every mutation field returns a union of its success type and these error types. One runner wraps
each mutation field in one transaction: an `Error` value or an exception rolls everything back.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import audit, engines, events, models, transactions
from gql_blog.loaders import Loaders
from gql_blog.schema.context import Context

R = TypeVar("R")


@strawberry.interface(description="An expected failure of a mutation.")
class Error:
    message: str


@strawberry.type(description="An input value breaks a rule; `field` names the input field.")
class ValidationError(Error):
    field: str | None


@strawberry.type(description="No such object, or the viewer may not see it.")
class NotFoundError(Error):
    id: strawberry.ID


@strawberry.type(description="The value is taken already (e.g. a username or an email).")
class ConflictError(Error):
    field: str | None


@strawberry.type(description="Sign in (with an active account) to do this.")
class AuthenticationError(Error):
    pass


@strawberry.type(description="The viewer may not do this.")
class ForbiddenError(Error):
    pass


@strawberry.type(
    description="Unknown username or wrong password (deliberately not told apart), or too many "
    "failed sign-ins lately: then `retryAfterSeconds` says when to try again."
)
class InvalidCredentialsError(Error):
    retry_after_seconds: int | None = None


ERROR_TYPES: list[type] = [
    ValidationError,
    NotFoundError,
    ConflictError,
    AuthenticationError,
    ForbiddenError,
    InvalidCredentialsError,
]


def validation_error(error: models.InvalidValueError) -> ValidationError:
    """A model validator's complaint as a `ValidationError` naming the GraphQL input field."""
    return ValidationError(message=error.message, field=error.input_field)


async def run_mutation(
    session: AsyncSession, body: Callable[[], Awaitable[R]], *, bus: events.EventBus
) -> R | ValidationError:
    """One mutation field, one transaction; an Error value or an exception rolls it back.

    Model validators raising `InvalidValueError` become `ValidationError` values; a unique
    violation is mapped by its callers (see `conflicts.conflict_field`), else re-raised. The
    events the writes noted go to `bus` only once the transaction committed.
    """
    try:
        return await transactions.run_write(
            session, body, bus=bus, is_refusal=lambda result: isinstance(result, Error)
        )
    except models.InvalidValueError as error:
        return validation_error(error)


def act_as(context: Context, viewer: models.User | None) -> None:
    """The request's viewer from now on, with loaders that see what that viewer may see."""
    context.viewer = viewer
    context.loaders = Loaders(
        context.db, viewer, max_filter_depth=context.settings.max_filter_depth
    )


async def transact(context: Context, body: Callable[[], Awaitable[R]]) -> R | ValidationError:
    """`run_mutation` for a request's mutation field, leaving the session fit for the next one."""
    session = context.db.session
    await engines.begin_writing(session)
    try:
        result = await run_mutation(session, body, bus=context.events)
    except Exception:
        await _after_rollback(context)
        raise
    if isinstance(result, Error):
        await _after_rollback(context)
    return result


async def _after_rollback(context: Context) -> None:
    """A rollback expired every row the session holds: reload the viewer, start fresh loaders."""
    audit.discard_tag_changes(context.db.session)
    if context.viewer is not None:
        await context.db.session.refresh(context.viewer)
    act_as(context, context.viewer)
