"""Issue 19's sign-in attack on a real `gql-blog serve`, time compressed: the owner still gets in.

Wrong passwords for one username arrive from a new `X-Forwarded-For` each (a botnet behind a
trusted proxy: the server trusts the header from 127.0.0.1), many per window, while the owner
signs in from the address they signed in from before.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gql_blog import migrations
from tests.databases import DIALECTS, empty_database
from tests.scans import serve

pytestmark = pytest.mark.parametrize("dialect", DIALECTS)

# The attack (2 guesses a second), against a window of 4 s instead of 300 s: each
# window sees 8 guesses for a limit of 3, and the 30 s run spans several windows.
WINDOW_SECONDS = 4
PER_USERNAME = 3
ATTACK_SECONDS = 30
GUESSES_PER_SECOND = 2
OWNER_EVERY_SECONDS = 1
OWNER_ADDRESS = "198.51.100.7"
PASSWORD = "correct horse battery"
SETTINGS = {
    "GQL_BLOG_SIGN_IN_WINDOW_SECONDS": str(WINDOW_SECONDS),
    "GQL_BLOG_SIGN_IN_FAILURES_PER_USERNAME": str(PER_USERNAME),
}
REGISTER = """mutation($input: RegisterInput!) { register(input: $input) { __typename } }"""
LOGIN = """mutation($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on InvalidCredentialsError { retryAfterSeconds }
  }
}"""


async def _login(http: httpx.AsyncClient, address: str, password: str) -> dict[str, object]:
    variables = {"input": {"username": "ada", "password": password}}
    response = await http.post(
        "/graphql",
        json={"query": LOGIN, "variables": variables},
        headers={"X-Forwarded-For": address},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] is not None, response.text
    login: dict[str, object] = response.json()["data"]["login"]
    return login


async def _paced(
    every_seconds: float, until: float, attempt: Callable[[], Awaitable[None]]
) -> None:
    """Start `attempt()` every `every_seconds` until `until`, each without waiting for the last
    (an open-loop load generator: slow answers do not slow the attack down)."""
    start = time.monotonic()
    async with asyncio.TaskGroup() as attempts:
        n = 0
        while time.monotonic() < until:
            attempts.create_task(attempt())
            n += 1
            await asyncio.sleep(max(0.0, start + n * every_seconds - time.monotonic()))


async def test_the_owner_signs_in_while_rotating_addresses_guess_the_password(
    dialect: str, tmp_path: Path
) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await asyncio.to_thread(migrations.upgrade, url)
        async with (
            serve(dialect, url, SETTINGS) as served,
            httpx.AsyncClient(base_url=served.base_url, timeout=30) as http,
        ):
            account = {"username": "ada", "email": "ada@example.test", "password": PASSWORD}
            await http.post("/graphql", json={"query": REGISTER, "variables": {"input": account}})
            assert (await _login(http, OWNER_ADDRESS, PASSWORD))["__typename"] == "AuthPayload"

            owner: list[str] = []
            checked = 0
            guesses = 0

            async def guess() -> None:
                nonlocal checked, guesses
                guesses += 1
                address = f"203.0.{guesses // 250}.{guesses % 250 + 1}"
                login = await _login(http, address, "wrong password")
                assert login["__typename"] == "InvalidCredentialsError"
                checked += login["retryAfterSeconds"] is None

            async def sign_in() -> None:
                owner.append(str((await _login(http, OWNER_ADDRESS, PASSWORD))["__typename"]))

            until = time.monotonic() + ATTACK_SECONDS
            await asyncio.gather(
                _paced(1 / GUESSES_PER_SECOND, until, guess),
                _paced(OWNER_EVERY_SECONDS, until, sign_in),
            )

    assert guesses >= ATTACK_SECONDS * GUESSES_PER_SECOND * 0.9, "the attack did not run"
    assert owner.count("AuthPayload") >= 0.95 * len(owner), owner
    # At most PER_USERNAME checks per window: the windows the attack spans, plus the one it began.
    assert checked <= PER_USERNAME * (ATTACK_SECONDS // WINDOW_SECONDS + 1), (checked, guesses)
