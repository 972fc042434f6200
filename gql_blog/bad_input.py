"""BAD_USER_INPUT (the request itself is wrong) and FORBIDDEN (the viewer may not read it): the
one place where the read model's refusals become GraphQL errors, for strawberry's executor
(`schema/errors.py`) and the planner."""

from collections.abc import Collection

from graphql import GraphQLError, Node, located_error

from gql_blog.errors import (
    ForbiddenReadError,
    InvalidCursorError,
    InvalidFilterError,
    InvalidIdError,
    InvalidInputError,
    InvalidPageError,
)

BAD_USER_INPUT = "BAD_USER_INPUT"
FORBIDDEN = "FORBIDDEN"
# The read model's refusals of what a request sent: answered as BAD_USER_INPUT, never masked.
READ_INPUT_ERRORS = (InvalidIdError, InvalidPageError, InvalidCursorError, InvalidFilterError)


class UserInputError(GraphQLError):
    """The request itself is wrong: a malformed id or cursor, a bad argument or filter."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": BAD_USER_INPUT})


class ForbiddenQueryError(GraphQLError):
    """The viewer may not read this at all (a top-level error, unlike a mutation's value)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": FORBIDDEN})


def user_input_error(
    error: InvalidInputError, *, nodes: Collection[Node] | None, path: list[str | int] | None
) -> GraphQLError:
    """The error a field answers when the read model refused its input (or the viewer: FORBIDDEN),
    where it stands."""
    if isinstance(error, ForbiddenReadError):
        return located_error(ForbiddenQueryError(str(error)), nodes, path)
    return located_error(UserInputError(str(error)), nodes, path)
