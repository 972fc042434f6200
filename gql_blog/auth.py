"""Passwords (argon2id), sign-in tokens (random, stored as SHA-256 digests) and the viewer."""

import functools
import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models

_hasher = PasswordHasher()
BEARER = "bearer "


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
    db: AsyncSession, *, username: str, email: str, password: str
) -> models.User:
    """Create an admin account, or promote (and re-password) an existing USERNAME."""
    user = (
        await db.scalars(select(models.User).where(models.User.username == username))
    ).one_or_none()
    if user is None:
        user = models.User(username=username, email=email, password_hash="")
        db.add(user)
    user.password_hash = hash_password(password)
    user.is_admin = True
    user.is_active = True
    await db.flush()
    return user
