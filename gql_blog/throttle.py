"""Sign-in throttling that the owner of an attacked account survives.

The model follows OWASP's authentication cheat sheet: limits per account, lockouts per (account,
address), and an exemption for clients known to the account. Within any window of
`sign_in_window_seconds`, a sign-in is refused without checking its password when there were
already

- `sign_in_failures_per_address` failures from its address (whatever usernames: one address
  guessing many accounts);
- `sign_in_failures_per_username_and_address` failures at its username from its address (a
  lockout of that pair only);
- `sign_in_failures_per_username` failures at its username from any addresses, unless its
  address signed in to that username within `sign_in_known_address_seconds`: a known address
  is bound by the two limits above only.

So an attacker rotating addresses gets at most `sign_in_failures_per_username` password checks per
account per window (from addresses that never signed in to it), and the account's owner, signing
in from an address they signed in from before, is not refused because of them. A new address of
the owner's waits, like the attacker's, until the account's failures leave the window.

The attempts live in the database (`models.SignInAttempt`), so every worker process and every
machine sees the same counts. An attempt is recorded as failed before its password is verified
and marked succeeded when it is right, so attempts still being verified count too: a burst of
concurrent guesses is throttled like a sequence of them (but for the attempts that begin at the
same instant, which may all pass the check). A refused attempt is not recorded, so an attacker
who keeps guessing does not extend a lockout: the owner of a new address waits at most the window.
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.config import Settings

# Text a client address is stored as when the server does not know it.
UNKNOWN_ADDRESS = "unknown"
_ADDRESS_MAX = 64
# Expired attempts deleted by one sign-in, at most: each success clears some more.
_FORGET_AT_ONCE = 500
# What each scope of a refusal is about, as its message says it.
SUBJECTS = {
    "address": "address",
    "username_address": "username from this address",
    "username": "username",
}


@dataclass(frozen=True, slots=True)
class Throttled:
    """Too many recent failures for this `scope` (a key of `SUBJECTS`)."""

    scope: str
    retry_after_seconds: int

    @property
    def subject(self) -> str:
        return SUBJECTS[self.scope]

    def message(self) -> str:
        """The InvalidCredentialsError's message, on either execution path."""
        return (
            f"Too many failed sign-ins for this {self.subject}: "
            f"try again in {self.retry_after_seconds} seconds."
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in attempt, recorded as failed until `record_success` says it succeeded."""

    id: int
    username_digest: str
    address: str


def username_digest(username: str) -> str:
    """What an attempt stores of the username: any text a client sends fits, and none is kept."""
    folded = models.fold_username(username)
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()


def client_address(address: str | None) -> str:
    return (address or UNKNOWN_ADDRESS)[:_ADDRESS_MAX]


def _limits(
    settings: Settings, digest: str, client: str
) -> list[tuple[str, ColumnElement[bool], int]]:
    """(scope, which failures it counts, how many are allowed per window), checked in order."""
    attempt = models.SignInAttempt
    of_username, from_address = attempt.username_digest == digest, attempt.address == client
    return [
        ("address", from_address, settings.sign_in_failures_per_address),
        (
            "username_address",
            and_(of_username, from_address),
            settings.sign_in_failures_per_username_and_address,
        ),
        ("username", of_username, settings.sign_in_failures_per_username),
    ]


async def begin_attempt(
    db: AsyncSession,
    settings: Settings,
    *,
    username: str,
    address: str | None,
    now: datetime | None = None,
) -> Attempt | Throttled:
    """Refuse when too many recent attempts failed (see the module); else record this one as
    failed. `now` is the clock's time (tests pass their own)."""
    now = now or models.utc_now()
    window = timedelta(seconds=settings.sign_in_window_seconds)
    digest, client = username_digest(username), client_address(address)
    for scope, matches, maximum in _limits(settings, digest, client):
        free_at = await _free_at(db, matches, maximum=maximum, since=now - window)
        if free_at is None:
            continue
        if scope == "username" and await _is_known(db, settings, digest, client, now=now):
            continue
        wait = (free_at + window - now).total_seconds()
        return Throttled(scope, max(1, math.ceil(wait)))
    row = models.SignInAttempt(username_digest=digest, address=client, created_at=now)
    db.add(row)
    await db.flush()
    return Attempt(row.id, digest, client)


async def _free_at(
    db: AsyncSession, matches: ColumnElement[bool], *, maximum: int, since: datetime
) -> datetime | None:
    """None while fewer than `maximum` recent failures match; else when the oldest counted one was.

    Once that failure leaves the window, one more attempt is allowed.
    """
    attempt = models.SignInAttempt
    stmt = (
        select(attempt.created_at)
        .where(matches, attempt.succeeded.is_(False), attempt.created_at > since)
        .order_by(attempt.created_at.desc())
        .limit(maximum)
    )
    times = (await db.scalars(stmt)).all()
    return times[-1] if len(times) >= maximum else None


async def _is_known(
    db: AsyncSession, settings: Settings, digest: str, client: str, *, now: datetime
) -> bool:
    """Whether `client` signed in to this username lately."""
    attempt = models.SignInAttempt
    since = now - timedelta(seconds=settings.sign_in_known_address_seconds)
    known = exists().where(
        attempt.username_digest == digest,
        attempt.address == client,
        attempt.succeeded.is_(True),
        attempt.created_at > since,
    )
    return bool(await db.scalar(select(known)))


async def record_success(
    db: AsyncSession, settings: Settings, attempt: Attempt, *, now: datetime | None = None
) -> None:
    """A successful sign-in: its address is now known to the username, and the pair's failures
    are forgotten.

    The attempt stays, marked succeeded, as the pair's record; the pair's earlier attempts go
    (a newer one, still being verified, deletes this one if it succeeds too), and so do failures
    older than the window and successes older than `sign_in_known_address_seconds`.
    The rows are found by a plain read and deleted by primary key: a range delete would take
    InnoDB gap locks that deadlock with concurrent sign-ins inserting their attempts.
    """
    now = now or models.utc_now()
    table = models.SignInAttempt
    failed_before = now - timedelta(seconds=settings.sign_in_window_seconds)
    known_before = now - timedelta(seconds=settings.sign_in_known_address_seconds)
    stmt = (
        select(table.id)
        .where(
            table.id != attempt.id,
            or_(
                # Older only: a newer attempt of the pair may still be verifying its password.
                and_(
                    table.username_digest == attempt.username_digest,
                    table.address == attempt.address,
                    table.id < attempt.id,
                ),
                and_(table.succeeded.is_(False), table.created_at <= failed_before),
                table.created_at <= known_before,
            ),
        )
        .limit(_FORGET_AT_ONCE)
    )
    ids = (await db.scalars(stmt)).all()
    if ids:
        await db.execute(delete(table).where(table.id.in_(ids)))
    await db.execute(
        update(table)
        .where(table.id == attempt.id)
        .values(succeeded=True, created_at=now)
        .execution_options(synchronize_session=False)
    )
