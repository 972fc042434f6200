"""Passwords (argon2id), sign-in tokens (random, stored as SHA-256 digests) and the viewer.

Tokens are never compared in Python, so there is no comparison to make constant-time: a request's
token is found by the SHA-256 digest of what it sent, in SQL (an index lookup). That lookup may
take longer the more leading bytes of a stored digest the sent digest matches, but learning that
a guess's digest shares a prefix with a stored one does not help choose the next guess (that
would take SHA-256 preimages), and the token itself (32 random bytes) is compared with nothing.
The plain token is returned once by `issue_token`, and never stored, logged or audited.
"""

import asyncio
import enum
import functools
import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    and_,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.errors import NoSuchUserError as NoSuchUserError  # re-exported: callers name it here

_hasher = PasswordHasher()
BEARER = "bearer "
# login's refusal, whether the username is unknown or the password wrong (or the user inactive).
WRONG_CREDENTIALS_MESSAGE = "Wrong username or password."
PASSWORD_LENGTH = range(8, 257)
T = TypeVar("T")


def argon2_slots() -> int:
    """How many argon2 hashes a process runs at once: one per core it may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@functools.cache
def _argon2_threads() -> ThreadPoolExecutor:
    """The threads argon2 runs in, one per slot: more at once would only slow each one down, and
    under CPU pressure a request then waits here for its turn (holding no database connection)
    instead of running into the pool's wait or the request's time limit."""
    return ThreadPoolExecutor(max_workers=argon2_slots(), thread_name_prefix="argon2")


async def in_argon2_slot(work: Callable[..., T], *args: Any) -> T:
    """Run a hash or a verification off the event loop, once a slot is free.

    A request that ends while waiting (time limit, client gone) gives its turn up.
    """
    return await asyncio.get_running_loop().run_in_executor(_argon2_threads(), work, *args)


@functools.cache
def _dummy_hash() -> str:
    """Verified when the username is unknown, so both failures take about the same time."""
    return _hasher.hash("gql_blog: no such user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; an absent hash still costs one verification."""
    try:
        matches = _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return matches and password_hash is not None


def check_password(password: str) -> None:
    """A new password is 8 to 256 characters without NUL; else `InvalidValueError("password")`."""
    if len(password) not in PASSWORD_LENGTH:
        raise models.InvalidValueError(
            "password",
            f"password must be {PASSWORD_LENGTH.start} to {PASSWORD_LENGTH.stop - 1} characters",
        )
    if "\x00" in password:
        raise models.InvalidValueError("password", "password must not contain NUL characters")


async def new_password_hash(password: str) -> str:
    """Check a new password's rules, then hash it off the event loop (argon2 takes a while)."""
    check_password(password)
    return await in_argon2_slot(hash_password, password)


async def find_user(db: AsyncSession, username: str) -> models.User | None:
    """The user with this username (any case), active or not."""
    # NUL cannot be stored (PostgreSQL refuses to bind it), so no username has one.
    if "\x00" in username:
        return None
    stmt = select(models.User).where(models.User.username_key == models.fold_username(username))
    return (await db.scalars(stmt)).one_or_none()


async def check_credentials(user: models.User | None, password: str) -> models.User | None:
    """`user` if it is active and `password` is its password, else None; no database work.

    Unknown usernames verify against a dummy hash and inactive users are verified too, so every
    failure costs one argon2 verification: the timing does not tell them apart.
    """
    password_hash = None if user is None else user.password_hash
    matches = await in_argon2_slot(verify_password, password_hash, password)
    if user is None or not matches or not user.is_active:
        return None
    return user


async def authenticate(db: AsyncSession, *, username: str, password: str) -> models.User | None:
    """The active user with this username (any case) and password, else None."""
    return await check_credentials(await find_user(db, username), password)


async def revoke_token(db: AsyncSession, token: str | None) -> bool:
    """Revoke a live token; False when there is none (absent, unknown, expired or revoked)."""
    if not token:
        return False
    now = models.utc_now()
    stmt = (
        update(models.AuthToken)
        .where(
            models.AuthToken.token_hash == token_digest(token),
            models.AuthToken.revoked_at.is_(None),
            models.AuthToken.expires_at > now,
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    result = await db.execute(stmt)
    return isinstance(result, CursorResult) and result.rowcount > 0


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization or not authorization.lower().startswith(BEARER):
        return None
    return authorization[len(BEARER) :].strip() or None


async def issue_token(db: AsyncSession, user: models.User, *, lifetime: timedelta) -> str:
    """Create a sign-in token for `user`; the plain token is returned once and never stored."""
    await db.flush()  # the user's id, and its row before the token's
    return await insert_token(db, user.id, lifetime=lifetime)


async def insert_token(db: AsyncSession, user_id: int, *, lifetime: timedelta) -> str:
    """`issue_token` for a user already written: one INSERT."""
    token = secrets.token_urlsafe(32)
    values = {
        "token_hash": token_digest(token),
        "user_id": user_id,
        "expires_at": models.utc_now() + lifetime,
    }
    table: Any = models.AuthToken.__table__  # Core: an ORM INSERT costs more, adds nothing
    await db.execute(insert(table), values)
    return token


# What a signed-in viewer is known by before any resolver runs: every readable user column.
IDENTITY_COLUMNS = (
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "full_name",
    "bio",
    "age",
    "is_active",
    "is_admin",
    "created_at",
)


def _signed_in(
    token_hash: ColumnElement[str] | str, now: ColumnElement[datetime] | datetime
) -> ColumnElement[bool]:
    """A live (unexpired, unrevoked) token of an active user: anything else reads as anonymous."""
    return and_(
        models.AuthToken.token_hash == token_hash,
        models.AuthToken.revoked_at.is_(None),
        models.AuthToken.expires_at > now,
        models.User.is_active.is_(True),
    )


def identity_statement() -> Select[Any]:
    """The user of a live token, as Core columns: parameters `token_hash` and `now`."""
    user: Any = models.User
    now = bindparam("now", type_=models.UtcDateTime())
    return (
        select(*(getattr(user, name).label(name) for name in IDENTITY_COLUMNS))
        .join(models.AuthToken, models.AuthToken.user_id == models.User.id)
        .where(_signed_in(bindparam("token_hash"), now))
    )


async def viewer_from_token(db: AsyncSession, token: str | None) -> models.User | None:
    """The active user a live token belongs to; anything else is anonymous."""
    if not token:
        return None
    stmt = (
        select(models.User)
        .join(models.AuthToken, models.AuthToken.user_id == models.User.id)
        .where(_signed_in(token_digest(token), models.utc_now()))
    )
    return (await db.scalars(stmt)).one_or_none()


async def viewers_from_tokens(db: AsyncSession, tokens: Iterable[str]) -> dict[str, models.User]:
    """The active users live tokens belong to, by token (a token signing no one in is absent),
    a few hundred tokens a statement."""
    digests = {token_digest(token): token for token in tokens}
    found: dict[str, models.User] = {}
    chunk = list(digests)
    for start in range(0, len(chunk), _TOKENS_PER_STATEMENT):
        stmt = (
            select(models.AuthToken.token_hash, models.User)
            .join(models.User, models.AuthToken.user_id == models.User.id)
            .where(models.AuthToken.token_hash.in_(chunk[start : start + _TOKENS_PER_STATEMENT]))
            .where(_signed_in(models.AuthToken.token_hash.expression, models.utc_now()))
        )
        for digest, user in await db.execute(stmt):
            found[digests[digest]] = user
    return found


_TOKENS_PER_STATEMENT = 500


class SignedOut(enum.Enum):
    """Why a token sent as `Bearer` signed no one in."""

    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"
    INACTIVE = "inactive"


def token_state_statement() -> Select[Any]:
    """A token's revocation, expiry and its user's state, as Core columns: parameter
    `token_hash`. Run only when the token signed no one in, to say why."""
    token: Any = models.AuthToken
    columns = [token.revoked_at, token.expires_at, models.User.is_active]
    return (
        select(*(column.label(column.key) for column in columns))
        .join(models.User, models.AuthToken.user_id == models.User.id)
        .where(models.AuthToken.token_hash == bindparam("token_hash"))
    )


def signed_out_reason(state: Mapping[str, Any] | None, now: datetime) -> SignedOut:
    """Why a token whose state is `state` (a `token_state_statement` row) signs no one in."""
    if state is None:
        return SignedOut.UNKNOWN
    if state["revoked_at"] is not None:
        return SignedOut.REVOKED
    if state["expires_at"] <= now:
        return SignedOut.EXPIRED
    return SignedOut.INACTIVE


async def why_signed_out(db: AsyncSession, token: str, now: datetime) -> SignedOut:
    """Why `token` signs no one in (it did not, as of `now`)."""
    result = await db.execute(token_state_statement(), {"token_hash": token_digest(token)})
    return signed_out_reason(result.mappings().one_or_none(), now)


async def ensure_admin(
    db: AsyncSession, *, username: str, email: str | None, password: str
) -> models.User:
    """Create an admin account, or promote (and re-password) an existing USERNAME.

    A new account needs `email` (`NoSuchUserError` without it). The password obeys the same
    rules as everyone's (`InvalidValueError` otherwise).
    """
    stmt = select(models.User).where(models.User.username_key == models.fold_username(username))
    user = (await db.scalars(stmt)).one_or_none()
    if user is None:
        if email is None:
            raise NoSuchUserError(username)
        user = models.User(username=username, email=email, password_hash="")
        db.add(user)
    user.password_hash = await new_password_hash(password)
    user.is_admin = True
    user.is_active = True
    await db.flush()
    return user
