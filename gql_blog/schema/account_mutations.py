"""The account mutations: register, login, logout and updateViewer.

Each runs in one transaction (`run_mutation`). The rules on values live in the models (and the
password's in `auth.check_password`); a broken one is a `ValidationError` naming the input field.
Usernames and e-mail addresses are unique in the database itself, so a taken one is found even
when two requests race: the unique violation becomes a `ConflictError`.

Signing in (register, login) or out (logout) applies to the rest of the request too, so the
payload's `user { email }` shows what the new viewer may see.
"""

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy.exc import IntegrityError
from strawberry import UNSET

from gql_blog import audit, auth, metrics, models, throttle, writes
from gql_blog.conflicts import conflict_field
from gql_blog.schema.context import Context
from gql_blog.schema.results import (
    AuthenticationError,
    ConflictError,
    InvalidCredentialsError,
    ValidationError,
    act_as,
    transact,
    validation_error,
)
from gql_blog.schema.types import BlogInfo, User

R = TypeVar("R")


@strawberry.type(description="A signed-in session: the bearer token to send, and its user.")
class AuthPayload:
    token: str
    user: User


AuthResult = Annotated[
    AuthPayload | ValidationError | ConflictError | InvalidCredentialsError,
    strawberry.union("AuthResult"),
]
_SignInFailure = ValidationError | ConflictError | InvalidCredentialsError
UserResult = Annotated[
    User | ValidationError | ConflictError | AuthenticationError,
    strawberry.union("UserResult"),
]


@strawberry.input(description="A new account; the username and e-mail address must be free.")
class RegisterInput:
    username: str
    email: str
    password: str
    first_name: str | None = None
    last_name: str | None = None
    age: int | None = None
    bio: str | None = None


@strawberry.input(description="A username (any case) and its password.")
class LoginInput:
    username: str
    password: str


@strawberry.input(
    description="Changes to the viewer's account: an omitted field stays as it is; null clears "
    "firstName, lastName, age or bio (and leaves email and password as they are)."
)
class UpdateViewerInput:
    email: str | None = UNSET
    first_name: str | None = UNSET
    last_name: str | None = UNSET
    age: int | None = UNSET
    bio: str | None = UNSET
    password: str | None = UNSET

    def changes(self) -> dict[str, Any]:
        """The fields given (null included), by column name; the password as given."""
        given = {name: getattr(self, name) for name in (*writes.PROFILE_FIELDS, "password")}
        return {name: value for name, value in given.items() if value is not UNSET}


@dataclass(frozen=True, slots=True)
class _SignedIn:
    user: models.User
    token: str


def _sign_in_error() -> AuthenticationError:
    return AuthenticationError(message="Sign in with an active account to do this.")


async def _flush_unique(context: Context) -> ConflictError | None:
    """Flush; a taken username or e-mail address is a `ConflictError` (other failures raise)."""
    try:
        await context.db.flush()
    except IntegrityError as error:
        field = conflict_field(error, writes.UNIQUE_USER_FIELDS)
        if field is None:
            raise
        return ConflictError(message=writes.taken_message(field), field=field)
    return None


async def _issue_token(context: Context, user: models.User) -> str:
    lifetime = timedelta(seconds=context.settings.token_lifetime_seconds)
    return await auth.issue_token(context.db.session, user, lifetime=lifetime)


async def _release_connection(context: Context) -> None:
    """End the request's read-only transaction (the viewer's lookup), so that waiting for an
    argon2 slot holds no database connection. Mutations commit in `transact`: nothing is pending."""
    session = context.db.session
    if session.in_transaction():
        await session.commit()


async def _new_account(account: RegisterInput) -> models.User | ValidationError:
    """The account to add, its values checked and its password hashed outside any transaction."""
    try:
        return await writes.new_account(dataclasses.asdict(account))
    except models.InvalidValueError as error:
        return validation_error(error)


async def _new_password_hash(
    context: Context, password: str | None
) -> str | ValidationError | None:
    """The hash of a new password (None: unchanged), computed outside any transaction."""
    if password is UNSET or password is None:
        return None
    await _release_connection(context)
    try:
        return await auth.new_password_hash(password)
    except models.InvalidValueError as error:
        return validation_error(error)


async def _register(context: Context, user: models.User) -> _SignedIn | ConflictError:
    session = context.db.session
    audit.act_as(session, user)  # the new user signs itself up
    session.add(user)
    conflict = await _flush_unique(context)
    if conflict is not None:
        return conflict
    return _SignedIn(user, await _issue_token(context, user))


def _throttled(refusal: throttle.Throttled) -> InvalidCredentialsError:
    metrics.count_sign_in_throttle(refusal.scope)
    return InvalidCredentialsError(
        message=refusal.message(), retry_after_seconds=refusal.retry_after_seconds
    )


@dataclass(frozen=True, slots=True)
class _Started:
    attempt: throttle.Attempt
    user: models.User | None


async def _start_login(context: Context, credentials: LoginInput) -> _Started | throttle.Throttled:
    """Throttle, record the attempt and find the user, in one short transaction."""
    attempt = await throttle.begin_attempt(
        context.db.session,
        context.settings,
        username=credentials.username,
        address=context.client_address,
    )
    if isinstance(attempt, throttle.Throttled):
        return attempt
    return _Started(attempt, await auth.find_user(context.db.session, credentials.username))


async def _login(context: Context, credentials: LoginInput) -> AuthResult:
    """Throttle, verify the password, then issue the token: two short transactions.

    The password is verified between them, holding no lock and no database connection: argon2
    takes a while (longer still while it waits for a slot), and on SQLite a writing transaction
    holds the whole database's write lock.
    """
    started = await transact(context, lambda: _start_login(context, credentials))
    if isinstance(started, throttle.Throttled):
        return _throttled(started)
    if not isinstance(started, _Started):
        return started
    user = await auth.check_credentials(started.user, credentials.password)
    if user is None:
        return InvalidCredentialsError(message=auth.WRONG_CREDENTIALS_MESSAGE)
    attempt = started.attempt
    return _signed_in(context, await transact(context, lambda: _welcome(context, user, attempt)))


async def _welcome(context: Context, user: models.User, attempt: throttle.Attempt) -> _SignedIn:
    await throttle.record_success(context.db.session, context.settings, attempt)
    return _SignedIn(user, await _issue_token(context, user))


async def _update_viewer(
    context: Context, viewer: models.User, changes: UpdateViewerInput, password_hash: str | None
) -> User | ConflictError:
    for name in writes.PROFILE_FIELDS:
        value = getattr(changes, name)
        if value is UNSET or (value is None and name in writes.REQUIRED_PROFILE_FIELDS):
            continue
        setattr(viewer, name, value)
    if password_hash is not None:
        viewer.password_hash = password_hash
    conflict = await _flush_unique(context)
    if conflict is not None:
        return conflict
    return User.from_model(viewer)


def _signed_in(context: Context, result: _SignedIn | _SignInFailure) -> AuthResult:
    if not isinstance(result, _SignedIn):
        return result
    act_as(context, result.user)
    return AuthPayload(token=result.token, user=User.from_model(result.user))


@strawberry.type
class AccountMutation:
    @strawberry.mutation(description="Create an account and sign in to it.")
    async def register(self, info: BlogInfo, input: RegisterInput) -> AuthResult:
        context = info.context
        await _release_connection(context)
        user = await _new_account(input)
        if isinstance(user, ValidationError):
            return user
        result = await transact(context, lambda: _register(context, user))
        return _signed_in(context, result)

    @strawberry.mutation(
        description="Sign in; an unknown username and a wrong password fail alike."
    )
    async def login(self, info: BlogInfo, input: LoginInput) -> AuthResult:
        return await _login(info.context, input)

    @strawberry.mutation(
        description="Revoke the token this request was sent with; false when it had no live one."
    )
    async def logout(self, info: BlogInfo) -> bool:
        context = info.context
        revoked = await transact(
            context, lambda: auth.revoke_token(context.db.session, context.token)
        )
        if revoked is not True:
            return False
        act_as(context, None)
        return True

    @strawberry.mutation(description="Change the signed-in user's account.")
    async def update_viewer(self, info: BlogInfo, input: UpdateViewerInput) -> UserResult:
        context = info.context
        viewer = context.viewer
        if viewer is None or not viewer.is_active:
            return _sign_in_error()
        password_hash = await _new_password_hash(context, input.password)
        if isinstance(password_hash, ValidationError):
            return password_hash
        audit.act_as(context.db.session, viewer)
        return await transact(
            context, lambda: _update_viewer(context, viewer, input, password_hash)
        )
