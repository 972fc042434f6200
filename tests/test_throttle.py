"""Sign-in throttling: failures per username and per client address, and how they expire."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import auth, models
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
