"""Issue 19's sign-in attack in real time: does the owner get in, and how many guesses are checked?

One `gql-blog serve` (one worker, default settings: a 300 s window, 10 failures per username) on
a new SQLite file, or on an empty database given by `--database-url` (migrated here). For
`--minutes` (10), wrong passwords for the owner's username arrive at 2 a second, each from a new
`X-Forwarded-For` (the loopback address is a trusted proxy, uvicorn's default), while the owner
signs in every 5 seconds from the address they signed in from once before the attack. It prints
the owner's success rate (the target: at least 95 %), the attacker's password checks (answers
without `retryAfterSeconds`) in total and the most surely within one 300 s window of the
server's clock (sent and answered within it; the model's bound:
`GQL_BLOG_SIGN_IN_FAILURES_PER_USERNAME`, 10), and the answers' slowest time.

    .venv/bin/python -m bench.sign_in_attack [--minutes 10] [--database-url URL]
"""

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from bench.attack import serving
from gql_blog import migrations

WINDOW_SECONDS = 300
GUESSES_PER_SECOND = 2
OWNER_EVERY_SECONDS = 5
OWNER_ADDRESS = "198.51.100.7"
USERNAME = "owner"
PASSWORD = "correct horse battery"
LOGIN = """mutation($input: LoginInput!) {
  login(input: $input) { __typename ... on InvalidCredentialsError { retryAfterSeconds } }
}"""
REGISTER = "mutation($input: RegisterInput!) { register(input: $input) { __typename } }"


async def _login(http: httpx.AsyncClient, password: str, address: str) -> tuple[str, bool, float]:
    """(answer type, whether the password was checked, seconds to answer)."""
    started = time.perf_counter()
    variables = {"input": {"username": USERNAME, "password": password}}
    response = await http.post(
        "/graphql",
        json={"query": LOGIN, "variables": variables},
        headers={"X-Forwarded-For": address},
    )
    elapsed = time.perf_counter() - started
    login = ((response.json().get("data") or {}).get("login")) or {}
    kind = login.get("__typename") or f"HTTP {response.status_code}"
    return kind, "retryAfterSeconds" in login and login["retryAfterSeconds"] is None, elapsed


async def _attack(base_url: str, seconds: float) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        account = {"username": USERNAME, "email": "owner@example.test", "password": PASSWORD}
        await http.post("/graphql", json={"query": REGISTER, "variables": {"input": account}})
        first, _, _ = await _login(http, PASSWORD, OWNER_ADDRESS)
        assert first == "AuthPayload", first
        start = time.perf_counter()
        checked: list[tuple[float, float]] = []  # (sent, answered): the server checked between
        owner: list[str] = []
        slowest = 0.0

        async def guess(n: int) -> None:
            nonlocal slowest
            address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
            sent = time.perf_counter() - start
            _, was_checked, elapsed = await _login(http, "wrong password", address)
            slowest = max(slowest, elapsed)
            if was_checked:
                checked.append((sent, sent + elapsed))

        async def sign_in() -> None:
            nonlocal slowest
            kind, _, elapsed = await _login(http, PASSWORD, OWNER_ADDRESS)
            slowest = max(slowest, elapsed)
            owner.append(kind)

        async with asyncio.TaskGroup() as load:
            ticks = int(seconds * GUESSES_PER_SECOND)
            for n in range(ticks):
                load.create_task(guess(n))
                if n % (OWNER_EVERY_SECONDS * GUESSES_PER_SECOND) == 0:
                    load.create_task(sign_in())
                await asyncio.sleep(
                    max(0.0, start + (n + 1) / GUESSES_PER_SECOND - time.perf_counter())
                )
    # The checks surely within one window of the server's clock: the server checks a guess
    # between its sending and its answer, so count those sent and answered within one window
    # (timing the answers alone would move a slow answer's check into a later window).
    most = max(
        (
            sum(1 for sent, answered in checked if end - WINDOW_SECONDS <= sent and answered <= end)
            for _, end in checked
        ),
        default=0,
    )
    succeeded = owner.count("AuthPayload")
    return (
        f"owner signed in {succeeded} of {len(owner)} ({100 * succeeded / len(owner):.1f} %); "
        f"attacker sent {ticks} guesses, {len(checked)} checked, at most {most} in any "
        f"{WINDOW_SECONDS} s window; slowest answer {slowest:.2f} s"
    )


async def main(minutes: float, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="gqlb-sign-in-") as directory:
        url = database_url or f"sqlite+aiosqlite:///{Path(directory) / 'blog.sqlite'}"
        await asyncio.to_thread(migrations.upgrade, url)
        async with serving("sign-in", url) as (base_url, _):
            print(await _attack(base_url, minutes * 60))  # noqa: T201 (a command's report)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="How long the attack runs.")
    parser.add_argument("--database-url", help="An empty database to migrate and serve.")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.minutes, arguments.database_url))
