"""Sign-in throttling: failures per username and per client address, and how they expire."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import auth, models, throttle
from gql_blog.config import Settings
from tests.factories import make_user
from tests.graphql_client import GraphQLClient, serve_api

PASSWORD = "correct horse battery"
WINDOW_SECONDS = 600
LOGIN = """
mutation($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on Error { message }
    ... on InvalidCredentialsError { retryAfterSeconds }
  }
}
"""


@pytest.fixture
def throttled_settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        sign_in_window_seconds=WINDOW_SECONDS,
        sign_in_failures_per_username=3,
        sign_in_failures_per_address=5,
    )


@pytest.fixture
async def api(
    throttled_settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[GraphQLClient]:
    async with serve_api(throttled_settings, connection, db) as client:
        yield client


@pytest.fixture
async def ada(db: AsyncSession) -> models.User:
    user = await make_user(db, username="ada")
    user.password_hash = auth.hash_password(PASSWORD)
    await db.flush()
    return user


async def _login(api: GraphQLClient, username: str, password: str) -> dict[str, Any]:
    result = await api.query(LOGIN, {"input": {"username": username, "password": password}})
    assert result.errors is None
    login: dict[str, Any] = result.data["login"]
    return login


async def _fail(api: GraphQLClient, times: int, username: str = "ada") -> None:
    for _ in range(times):
        login = await _login(api, username, "wrong password")
        assert login["retryAfterSeconds"] is None


async def _attempt_count(db: AsyncSession) -> int:
    count: int = await db.scalar(select(func.count()).select_from(models.SignInAttempt))
    return count


async def test_sign_in_after_too_many_failures_is_refused_with_a_retry_after(
    api: GraphQLClient, ada: models.User
) -> None:
    await _fail(api, 3)

    login = await _login(api, "ADA", PASSWORD)

    assert login["__typename"] == "InvalidCredentialsError"
    assert 0 < login["retryAfterSeconds"] <= WINDOW_SECONDS
    assert login["message"] == (
        "Too many failed sign-ins for this username: "
        f"try again in {login['retryAfterSeconds']} seconds."
    )


async def test_unknown_usernames_are_throttled_alike(api: GraphQLClient) -> None:
    await _fail(api, 3, username="nobody")

    login = await _login(api, "nobody", PASSWORD)

    assert login["retryAfterSeconds"] is not None


async def test_throttle_ends_when_the_failures_leave_the_window(
    api: GraphQLClient, ada: models.User, db: AsyncSession
) -> None:
    await _fail(api, 3)
    for attempt in await db.scalars(select(models.SignInAttempt)):
        attempt.created_at -= timedelta(seconds=WINDOW_SECONDS)
    await db.flush()

    login = await _login(api, "ada", PASSWORD)

    assert login["__typename"] == "AuthPayload"


async def test_refused_attempts_do_not_extend_the_lockout(
    api: GraphQLClient, ada: models.User, db: AsyncSession
) -> None:
    await _fail(api, 3)

    for _ in range(4):
        assert (await _login(api, "ada", PASSWORD))["retryAfterSeconds"] is not None

    assert await _attempt_count(db) == 3


async def test_successful_sign_in_forgets_that_clients_failures(
    api: GraphQLClient, ada: models.User
) -> None:
    await _fail(api, 2)
    assert (await _login(api, "ada", PASSWORD))["__typename"] == "AuthPayload"
    await _fail(api, 2)

    login = await _login(api, "ada", PASSWORD)

    assert login["__typename"] == "AuthPayload"


async def test_failures_from_one_address_throttle_every_username(
    api: GraphQLClient, ada: models.User
) -> None:
    for username in ("bob", "carol", "dave", "erin", "frank"):
        await _fail(api, 1, username=username)

    login = await _login(api, "ada", PASSWORD)

    assert login["retryAfterSeconds"] is not None
    assert "for this address" in login["message"]


async def test_failures_from_another_address_leave_this_one_free(
    throttled_settings: Settings,
    connection: AsyncConnection,
    db: AsyncSession,
    ada: models.User,
) -> None:
    async with serve_api(throttled_settings, connection, db, client_address="10.0.0.9") as other:
        for username in ("bob", "carol", "dave", "erin", "frank"):
            await _fail(other, 1, username=username)
    async with serve_api(throttled_settings, connection, db, client_address="10.0.0.1") as api:
        login = await _login(api, "ada", PASSWORD)

    assert login["__typename"] == "AuthPayload"


async def test_refusals_are_counted_in_the_metrics(api: GraphQLClient, ada: models.User) -> None:
    def throttles(text: str) -> float:
        families = text_string_to_metric_families(text)
        samples = [sample for family in families for sample in family.samples]
        return sum(
            sample.value
            for sample in samples
            if sample.name == "gql_blog_sign_in_throttles_total"
            and sample.labels == {"scope": "username"}
        )

    before = throttles((await api.http.get("/metrics")).text)
    await _fail(api, 3)
    await _login(api, "ada", PASSWORD)

    assert throttles((await api.http.get("/metrics")).text) - before == 1


# --- the model, on a fake clock ----------------------------------------------------------------

OWNER_ADDRESS = "198.51.100.7"
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def model_settings(settings: Settings) -> Settings:
    """The defaults but the window, spelled out so the tests read as the README's model."""
    return dataclasses.replace(
        settings,
        sign_in_window_seconds=300,
        sign_in_failures_per_username=10,
        sign_in_failures_per_username_and_address=5,
        sign_in_failures_per_address=50,
        sign_in_known_address_seconds=30 * 24 * 3600,
    )


async def _sign_in(
    db: AsyncSession, settings: Settings, at: datetime, *, address: str, correct: bool
) -> bool | None:
    """One attempt at "ada" at `at`: None when refused, else whether the password was right."""
    attempt = await throttle.begin_attempt(db, settings, username="ada", address=address, now=at)
    if isinstance(attempt, throttle.Throttled):
        return None
    if correct:
        await throttle.record_success(db, settings, attempt, now=at)
    return correct


def _rotating_address(n: int) -> str:
    return f"203.0.{n // 250 % 250}.{n % 250 + 1}"


async def test_owner_signs_in_from_a_known_address_through_ten_minutes_of_rotating_guesses(
    db: AsyncSession, model_settings: Settings
) -> None:
    assert await _sign_in(db, model_settings, START, address=OWNER_ADDRESS, correct=True)
    checked: list[datetime] = []
    owner: list[bool | None] = []
    for step in range(1200):  # 2 guesses a second, each from another address
        at = START + timedelta(minutes=1, seconds=step / 2)
        if await _sign_in(db, model_settings, at, address=_rotating_address(step), correct=False):
            raise AssertionError("a wrong password succeeded")
        if (await _attempt_outcome(db, at)) is not None:
            checked.append(at)
        if step % 20 == 0:  # the owner, every ten seconds
            owner.append(
                await _sign_in(db, model_settings, at, address=OWNER_ADDRESS, correct=True)
            )

    assert owner == [True] * 60
    window = timedelta(seconds=300)
    most_in_a_window = max(sum(1 for t in checked if s - window < t <= s) for s in checked)
    assert most_in_a_window == 10
    assert len(checked) == 20  # ten per window: the first ten, then one as each leaves it


async def _attempt_outcome(db: AsyncSession, at: datetime) -> int | None:
    """The id of the failed attempt recorded at `at`, if it was not refused."""
    attempt = models.SignInAttempt
    stmt = select(attempt.id).where(attempt.created_at == at, attempt.succeeded.is_(False))
    return await db.scalar(stmt)


async def _guess(db: AsyncSession, settings: Settings, at: datetime, times: int) -> None:
    for n in range(times):
        await _sign_in(db, settings, at, address=_rotating_address(n), correct=False)


async def test_a_new_address_waits_while_the_account_is_guessed_at(
    db: AsyncSession, model_settings: Settings
) -> None:
    await _guess(db, model_settings, START, 10)

    refused = await throttle.begin_attempt(
        db, model_settings, username="ADA", address="192.0.2.1", now=START
    )

    assert refused == throttle.Throttled("username", 300)


async def test_a_known_address_is_locked_out_by_its_own_failures_only(
    db: AsyncSession, model_settings: Settings
) -> None:
    await _sign_in(db, model_settings, START, address=OWNER_ADDRESS, correct=True)
    await _sign_in(db, model_settings, START, address="192.0.2.2", correct=True)
    later = START + timedelta(seconds=10)
    for _ in range(5):
        await _sign_in(db, model_settings, later, address=OWNER_ADDRESS, correct=False)

    refused = await throttle.begin_attempt(
        db, model_settings, username="ada", address=OWNER_ADDRESS, now=later
    )

    assert refused == throttle.Throttled("username_address", 300)
    assert await _sign_in(db, model_settings, later, address="192.0.2.2", correct=True)


@pytest.mark.parametrize(
    ("since_success", "outcome"),
    [(timedelta(seconds=-1), True), (timedelta(seconds=1), None)],
    ids=["within-the-period", "after-the-period"],
)
async def test_an_address_stays_known_for_the_known_address_period(
    db: AsyncSession, model_settings: Settings, since_success: timedelta, outcome: bool | None
) -> None:
    await _sign_in(db, model_settings, START, address=OWNER_ADDRESS, correct=True)
    period = timedelta(seconds=model_settings.sign_in_known_address_seconds)
    at = START + period + since_success
    await _guess(db, model_settings, at, 10)

    assert await _sign_in(db, model_settings, at, address=OWNER_ADDRESS, correct=True) is outcome


async def test_a_success_forgets_that_pairs_failures_and_the_expired_attempts(
    db: AsyncSession, model_settings: Settings
) -> None:
    await _guess(db, model_settings, START, 3)
    for _ in range(4):
        await _sign_in(db, model_settings, START, address=OWNER_ADDRESS, correct=False)
    later = START + timedelta(seconds=301)

    await _sign_in(db, model_settings, later, address=OWNER_ADDRESS, correct=True)

    rows = (
        await db.execute(select(models.SignInAttempt.address, models.SignInAttempt.succeeded))
    ).all()
    assert [tuple(row) for row in rows] == [(OWNER_ADDRESS, True)]


async def test_overlapping_successes_of_one_address_leave_it_known(
    db: AsyncSession, model_settings: Settings
) -> None:
    first, second = [
        await throttle.begin_attempt(
            db, model_settings, username="ada", address=OWNER_ADDRESS, now=START
        )
        for _ in range(2)
    ]
    assert isinstance(first, throttle.Attempt)
    assert isinstance(second, throttle.Attempt)
    await throttle.record_success(db, model_settings, second, now=START)
    await throttle.record_success(db, model_settings, first, now=START)
    await _guess(db, model_settings, START, 10)

    assert await _sign_in(db, model_settings, START, address=OWNER_ADDRESS, correct=True)
