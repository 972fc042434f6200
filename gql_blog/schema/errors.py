"""Top-level GraphQL errors with codes, and masking of unexpected failures.

Expected failures of mutations are values (the `Error` types); what reaches the top level is
either a `UserInputError` (BAD_USER_INPUT: invalid id, cursor, argument or filter; the read
model's own input errors become one in `MaskUnexpectedErrors`, see bad_input.py), a
`QueryTooComplexError` (QUERY_TOO_COMPLEX: a request over one of the limits), a database out of
reach (SERVER_BUSY: no connection came free in time; DATABASE_UNAVAILABLE), which the app answers
with a 503, or something unexpected, which `MaskUnexpectedErrors` replaces by a generic message
and an error id that the server log carries beside the traceback.
"""

import logging
import uuid
from collections.abc import Iterator

from graphql import GraphQLError, Node
from strawberry.extensions import SchemaExtension
from strawberry.types import StreamExecutionResult

from gql_blog import outages
from gql_blog.bad_input import FORBIDDEN as FORBIDDEN
from gql_blog.bad_input import READ_INPUT_ERRORS, user_input_error
from gql_blog.bad_input import ForbiddenQueryError as ForbiddenQueryError

logger = logging.getLogger(__name__)

INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
# The database could not be reached: the whole request answers 503 (see graphql_http).
OUTAGE_CODES = {
    outages.Outage.BUSY: "SERVER_BUSY",
    outages.Outage.UNAVAILABLE: "DATABASE_UNAVAILABLE",
}
_OUTAGE_MESSAGES = {
    outages.Outage.BUSY: "The server is busy: no database connection came free in time. "
    "Try again shortly.",
    outages.Outage.UNAVAILABLE: "The database is unavailable. Try again shortly.",
}


class QueryTooComplexError(GraphQLError):
    """The request is over one of the limits (depth, aliases, tokens, cost, batch, body size)."""

    def __init__(self, limit: str, *, maximum: int, value: int | str) -> None:
        super().__init__(
            f"The query's {limit} ({value}) exceeds the maximum of {maximum}.",
            extensions={
                "code": QUERY_TOO_COMPLEX,
                "limit": limit,
                "maximum": maximum,
                "value": value,
            },
        )


def _is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is None or isinstance(original, GraphQLError)


class MaskUnexpectedErrors(SchemaExtension):
    """Replace unexpected exceptions by a generic error with an id; log the detail under that id."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [self._mask(error) for error in result.errors]

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """Each result a websocket sends (a subscription's events, its failure) before it goes:
        `on_operation` sees only the last, after the socket sent it."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [self._mask(error) for error in errors]  # type: ignore[union-attr]
        yield

    def _mask(self, error: GraphQLError) -> GraphQLError:
        if _is_expected(error):
            return error
        if isinstance(error.original_error, READ_INPUT_ERRORS):
            return user_input_error(error.original_error, nodes=error.nodes, path=error.path)
        outage = outages.outage_of(error.original_error) if error.original_error else None
        if outage is not None:
            return outage_error(outage, path=error.path, nodes=error.nodes)
        error_id = new_error_id()
        logger.error(
            "graphql.unexpected_error",
            exc_info=error.original_error,
            extra={"error_id": error_id, "path": error.path},
        )
        context = self.execution_context.context
        is_debug = getattr(getattr(context, "settings", None), "debug", False)
        detail = repr(error.original_error) if is_debug else None
        return internal_error(error_id, path=error.path, nodes=error.nodes, detail=detail)


def outage_error(
    outage: outages.Outage, *, path: list[str | int] | None = None, nodes: list[Node] | None = None
) -> GraphQLError:
    """The clear error for a database out of reach (nothing to mask: no detail is in it)."""
    logger.warning("graphql.database_outage", extra={"outage": outage.value, "path": path})
    return GraphQLError(
        _OUTAGE_MESSAGES[outage], path=path, nodes=nodes, extensions={"code": OUTAGE_CODES[outage]}
    )


def new_error_id() -> str:
    """The id a masked error carries, and the server log beside its details."""
    return uuid.uuid4().hex


def internal_error(
    error_id: str,
    *,
    path: list[str | int] | None = None,
    nodes: list[Node] | None = None,
    detail: str | None = None,
) -> GraphQLError:
    """The generic error that stands for an unexpected failure (INTERNAL_SERVER_ERROR)."""
    extensions: dict[str, object] = {"code": INTERNAL_SERVER_ERROR, "errorId": error_id}
    if detail is not None:  # debug mode only
        extensions["detail"] = detail
    return GraphQLError(
        f"Internal server error (error id {error_id}).",
        path=path,
        nodes=nodes,
        extensions=extensions,
    )
