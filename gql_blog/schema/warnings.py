"""`extensions.warnings`: what a client should know about its request, e.g. an ignored header."""

from typing import Any

from strawberry.extensions import SchemaExtension

from gql_blog import auth

_SIGN_IN_AGAIN = "so this request ran signed out. Sign in again with `login`."
# Why a `Bearer` token signed no one in; both execution paths answer with these words.
_SIGNED_OUT = {
    auth.SignedOut.UNKNOWN: "The Bearer token is not one this server issued (mistyped, cut "
    "short, or from another database), " + _SIGN_IN_AGAIN,
    auth.SignedOut.REVOKED: "The Bearer token was revoked (`logout`), " + _SIGN_IN_AGAIN,
    auth.SignedOut.EXPIRED: "The Bearer token has expired, " + _SIGN_IN_AGAIN,
    auth.SignedOut.INACTIVE: "The Bearer token belongs to a deactivated account, so this "
    "request ran signed out.",
}


def signed_out_warning(reason: auth.SignedOut) -> str:
    """The warning for a `Bearer` token that signed no one in, saying why."""
    return _SIGNED_OUT[reason]


class RequestWarnings(SchemaExtension):
    """Adds the context's warnings to the response (once per operation, not per field)."""

    def get_results(self) -> dict[str, Any]:
        warnings = getattr(self.execution_context.context, "warnings", None)
        return {"warnings": list(warnings)} if warnings else {}
