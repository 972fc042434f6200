"""BAD_USER_INPUT: the request itself is wrong. The one place where the read model's own input
errors become GraphQL errors, for strawberry's executor (`schema/errors.py`) and the planner."""

from collections.abc import Collection

from graphql import GraphQLError, Node, located_error

from gql_blog.errors import (
    InvalidCursorError,
    InvalidFilterError,
    InvalidIdError,
    InvalidInputError,
    InvalidPageError,
)

BAD_USER_INPUT = "BAD_USER_INPUT"
# The read model's refusals of what a request sent: answered as BAD_USER_INPUT, never masked.
READ_INPUT_ERRORS = (InvalidIdError, InvalidPageError, InvalidCursorError, InvalidFilterError)


class UserInputError(GraphQLError):
    """The request itself is wrong: a malformed id or cursor, a bad argument or filter."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": BAD_USER_INPUT})


def user_input_error(
    error: InvalidInputError, *, nodes: Collection[Node] | None, path: list[str | int] | None
) -> GraphQLError:
    """The error a field answers when the read model refused its input, where it stands."""
    return located_error(UserInputError(str(error)), nodes, path)
