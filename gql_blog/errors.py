"""gql_blog's own exceptions, one tree (GraphQL's errors are apart, in `schema/errors.py`):

    BlogError
    ├── ConfigError            a GQL_BLOG_* setting is missing or malformed (config.py)
    ├── MigrationError         the database is not at this version's migrations (migrations.py)
    ├── NoSuchUserError        create-admin was to promote a user who does not exist (auth.py)
    ├── InvalidInputError      a request's own input is wrong
    │   ├── InvalidValueError  a model rule refused a value: a mutation's ValidationError
    │   ├── InvalidIdError     a global id that does not decode or names no type: BAD_USER_INPUT
    │   ├── InvalidPageError   page arguments out of bounds or contradictory: BAD_USER_INPUT
    │   ├── InvalidCursorError a cursor that does not decode or belongs elsewhere: BAD_USER_INPUT
    │   └── InvalidFilterError a `where` the compiler refuses: BAD_USER_INPUT
    └── NotPlannedError        the planner declines: strawberry's executor runs the operation

Each also derives from the builtin it always was (ValueError, RuntimeError, LookupError), so
`except ValueError` around a validator still catches it.
"""


class BlogError(Exception):
    """Anything gql_blog raises on purpose."""


class ConfigError(BlogError, ValueError):
    """A setting is missing or has a value of the wrong shape; the message names the variable."""


class MigrationError(BlogError, RuntimeError):
    """The database's schema is not what this version of gql_blog expects."""


class NoSuchUserError(BlogError, LookupError):
    """`ensure_admin` was to promote a user who does not exist, and got no e-mail to create one."""


class InvalidInputError(BlogError, ValueError):
    """What a request sent is wrong; the message says what and where."""


class ForbiddenReadError(InvalidInputError):
    """The viewer may not read this at all (the audit log, for anyone but an admin): refused
    before anything else the request asks, as FORBIDDEN."""


class InvalidValueError(InvalidInputError):
    """A value breaks a model rule; `field` is the model attribute it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    @property
    def input_field(self) -> str:
        """The GraphQL input field of the attribute, as a ValidationError's `field` names it."""
        return _INPUT_FIELDS.get(self.field, self.field)


# GraphQL names of the model attributes whose names differ from them.
_INPUT_FIELDS = {
    "first_name": "firstName",
    "last_name": "lastName",
    "full_name": "fullName",
    "post_id": "postId",
    "is_active": "isActive",
    "is_admin": "isAdmin",
}


class InvalidIdError(InvalidInputError):
    """A global id that is not base64 of `Type:integer`, or names no entity type."""


class InvalidPageError(InvalidInputError):
    """Page arguments the read model refuses: negative, over the maximum, or both directions."""


class InvalidCursorError(InvalidInputError):
    """A cursor that does not decode, or was made for another ordering or filter."""


class InvalidFilterError(InvalidInputError):
    """A filter the compiler refuses; `path` says where in the `where` input it is."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"where.{path}: {message}" if path else f"where: {message}")
        self.path = path


class NotPlannedError(BlogError):
    """The planner does not cover this operation; strawberry's executor runs it."""
