"""Passwords (argon2id), sign-in tokens (random, stored as SHA-256 digests) and the viewer."""

import asyncio
import functools
import hashlib
import secrets
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CursorResult, Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.errors import NoSuchUserError as NoSuchUserError  # re-exported: callers name it here

_hasher = PasswordHasher()
BEARER = "bearer "
PASSWORD_LENGTH = range(8, 257)


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
    return await asyncio.to_thread(hash_password, password)


async def authenticate(db: AsyncSession, *, username: str, password: str) -> models.User | None:
    """The active user with this username (any case) and password, else None.

    Unknown usernames verify against a dummy hash and inactive users are verified too, so every
    failure costs one argon2 verification: the timing does not tell them apart.
    """
    user = None
    # NUL cannot be stored (PostgreSQL refuses to bind it), so no username has one.
    if "\x00" not in username:
        stmt = select(models.User).where(models.User.username_key == models.fold_username(username))
        user = (await db.scalars(stmt)).one_or_none()
    password_hash = None if user is None else user.password_hash
    matches = await asyncio.to_thread(verify_password, password_hash, password)
    if user is None or not matches or not user.is_active:
        return None
    return user


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
    token = secrets.token_urlsafe(32)
    db.add(
        models.AuthToken(
            token_hash=token_digest(token),
            user_id=user.id,
            expires_at=models.utc_now() + lifetime,
        )
    )
    await db.flush()
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


def identity_statement() -> Select[Any]:
    """The user of a live token, as Core columns: parameters `token_hash` and `now`."""
    user: Any = models.User
    return (
        select(*(getattr(user, name).label(name) for name in IDENTITY_COLUMNS))
        .join(models.AuthToken, models.AuthToken.user_id == models.User.id)
        .where(
            models.AuthToken.token_hash == bindparam("token_hash"),
            models.AuthToken.revoked_at.is_(None),
            models.AuthToken.expires_at > bindparam("now", type_=models.UtcDateTime()),
        )
    )


async def viewer_from_token(db: AsyncSession, token: str | None) -> models.User | None:
    """The user a live (unexpired, unrevoked) token belongs to; anything else is anonymous."""
    if not token:
        return None
    stmt = (
        select(models.User)
        .join(models.AuthToken, models.AuthToken.user_id == models.User.id)
        .where(
            models.AuthToken.token_hash == token_digest(token),
            models.AuthToken.revoked_at.is_(None),
            models.AuthToken.expires_at > models.utc_now(),
        )
    )
    return (await db.scalars(stmt)).one_or_none()


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
