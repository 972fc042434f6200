"""Sign-in throttling: recent failed attempts per username and per client address.

The attempts live in the database (`models.SignInAttempt`), so every worker process and every
machine sees the same counts. An attempt is recorded as failed before its password is verified
and forgotten when it succeeds, so attempts still being verified count too: a burst of
concurrent guesses is throttled like a sequence of them. A refused attempt is not recorded, so an
attacker who keeps guessing does not extend the lockout: the owner waits at most the window.
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.config import Settings

# Text a client address is stored as when the server does not know it.
UNKNOWN_ADDRESS = "unknown"
_ADDRESS_MAX = 64
# Expired attempts deleted by one sign-in, at most: each success clears some more.
_FORGET_AT_ONCE = 500


@dataclass(frozen=True, slots=True)
class Throttled:
    """Too many recent failures for this `scope` ("username" or "address")."""

    scope: str
    retry_after_seconds: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in attempt, recorded as failed until `forget_failures` says it succeeded."""

    id: int
    username_digest: str
    address: str


def username_digest(username: str) -> str:
    """What an attempt stores of the username: any text a client sends fits, and none is kept."""
    folded = models.fold_username(username)
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()


def client_address(address: str | None) -> str:
    return (address or UNKNOWN_ADDRESS)[:_ADDRESS_MAX]


async def begin_attempt(
    db: AsyncSession, settings: Settings, *, username: str, address: str | None
) -> Attempt | Throttled:
    """Refuse when too many recent attempts failed; else record this one as failed."""
    now = models.utc_now()
    window = timedelta(seconds=settings.sign_in_window_seconds)
    digest, client = username_digest(username), client_address(address)
    checks = (
        (
            "username",
            models.SignInAttempt.username_digest == digest,
            settings.sign_in_failures_per_username,
        ),
        (
            "address",
            models.SignInAttempt.address == client,
            settings.sign_in_failures_per_address,
        ),
    )
    for scope, matches, maximum in checks:
        free_at = await _free_at(db, matches, maximum=maximum, since=now - window)
        if free_at is not None:
            wait = (free_at + window - now).total_seconds()
            return Throttled(scope, max(1, math.ceil(wait)))
    row = models.SignInAttempt(username_digest=digest, address=client, created_at=now)
    db.add(row)
    await db.flush()
    return Attempt(row.id, digest, client)


async def _free_at(
    db: AsyncSession, matches: ColumnElement[bool], *, maximum: int, since: datetime
) -> datetime | None:
    """None while fewer than `maximum` recent attempts match; else when the oldest counted one was.

    Once that attempt leaves the window, one more attempt is allowed.
    """
    stmt = (
        select(models.SignInAttempt.created_at)
        .where(matches, models.SignInAttempt.created_at > since)
        .order_by(models.SignInAttempt.created_at.desc())
        .limit(maximum)
    )
    times = (await db.scalars(stmt)).all()
    return times[-1] if len(times) >= maximum else None


async def forget_failures(db: AsyncSession, settings: Settings, attempt: Attempt) -> None:
    """A successful sign-in: forget this address's failed attempts at this username, its own too.

    Attempts older than the window count no more; they go too. The rows are found by a plain
    read and deleted by primary key: a range delete would take InnoDB gap locks that deadlock
    with concurrent sign-ins inserting their attempts.
    """
    cutoff = models.utc_now() - timedelta(seconds=settings.sign_in_window_seconds)
    stmt = (
        select(models.SignInAttempt.id)
        .where(
            or_(
                and_(
                    models.SignInAttempt.username_digest == attempt.username_digest,
                    models.SignInAttempt.address == attempt.address,
                ),
                models.SignInAttempt.created_at <= cutoff,
            )
        )
        .limit(_FORGET_AT_ONCE)
    )
    ids = {attempt.id, *(await db.scalars(stmt)).all()}
    await db.execute(delete(models.SignInAttempt).where(models.SignInAttempt.id.in_(ids)))
