"""Mutation results: the `Error` types (expected failures are values) and the transaction runner.

Every mutation field returns a union of its success type and these error types. One runner wraps
each mutation field in one transaction: an `Error` value or an exception rolls everything back.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models

R = TypeVar("R")


@strawberry.interface(description="An expected failure of a mutation.")
class Error:
    message: str


@strawberry.type(description="An input value breaks a rule; `field` names the input field.")
class ValidationError(Error):
    field: str | None


@strawberry.type(description="No such object, or the viewer may not see it.")
class NotFoundError(Error):
    id: strawberry.ID | None


@strawberry.type(description="The value is taken already (e.g. a username or an email).")
class ConflictError(Error):
    field: str | None


@strawberry.type(description="Sign in (with an active account) to do this.")
class AuthenticationError(Error):
    pass


@strawberry.type(description="The viewer may not do this.")
class ForbiddenError(Error):
    pass


@strawberry.type(description="Unknown username or wrong password (deliberately not told apart).")
class InvalidCredentialsError(Error):
    pass


ERROR_TYPES: list[type] = [
    ValidationError,
    NotFoundError,
    ConflictError,
    AuthenticationError,
    ForbiddenError,
    InvalidCredentialsError,
]

# GraphQL names of model attributes, for ValidationError.field.
GRAPHQL_FIELD_NAMES = {
    "first_name": "firstName",
    "last_name": "lastName",
    "full_name": "fullName",
    "post_id": "postId",
    "is_active": "isActive",
    "is_admin": "isAdmin",
}


def graphql_field_name(attribute: str) -> str:
    return GRAPHQL_FIELD_NAMES.get(attribute, attribute)


def validation_error(error: models.InvalidValueError) -> ValidationError:
    """A model validator's complaint as a `ValidationError` naming the GraphQL input field."""
    return ValidationError(message=error.message, field=graphql_field_name(error.field))


async def run_mutation(session: AsyncSession, body: Callable[[], Awaitable[R]]) -> R | Error:
    """One mutation field, one transaction; an Error value or an exception rolls it back.

    Model validators raising `InvalidValueError` become `ValidationError` values; a unique
    violation is mapped by `on_conflict` callers (see `conflict_field`), else re-raised.
    """
    try:
        result: R | Error = await body()
    except models.InvalidValueError as error:
        await session.rollback()
        return validation_error(error)
    except BaseException:
        await session.rollback()
        raise
    if isinstance(result, Error):
        await session.rollback()
    else:
        await session.commit()
    return result


def conflict_field(error: IntegrityError, fields: dict[str, str]) -> str | None:
    """Which GraphQL input field a unique violation is about, from the constraint or column name.

    `fields` maps a substring of the database's message (constraint, index or column name, e.g.
    "username") to the GraphQL field name; None when the violation is not one of them.
    """
    text = str(error.orig).lower()
    for needle, field in fields.items():
        if needle in text:
            return field
    return None
