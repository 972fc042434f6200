"""Sign-ins under CPU pressure wait for an argon2 slot, holding no database connection, and succeed.

A real `gql-blog serve` worker with a pool of two connections, the machine's cores busy with CPU
burners: 16 clients sign in 96 times in all, and every sign-in succeeds (issue 19, point 6).
"""

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from gql_blog import auth, migrations, models
from tests.databases import DIALECTS, empty_database
from tests.scans import serve

pytestmark = pytest.mark.parametrize("dialect", DIALECTS)

CLIENTS = 16
SIGN_INS_PER_CLIENT = 6
PASSWORD = "correct horse battery"
# Two connections: a sign-in that held one while waiting for argon2 would starve the others
# past the pool's 5 s wait. The time limit is generous: on a shared, loaded 2-core machine one
# argon2 verification takes up to a second, and the 16 sign-ins queue for the slots.
SETTINGS = {
    "GQL_BLOG_POOL_SIZE": "2",
    "GQL_BLOG_MAX_OVERFLOW": "0",
    "GQL_BLOG_REQUEST_TIMEOUT_SECONDS": "60",
}
LOGIN = """mutation($input: LoginInput!) {
  login(input: $input) { __typename ... on Error { message } }
}"""


@contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    """`count` processes spinning on the CPU until the block ends."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


async def _add_users(url: str) -> None:
    password_hash = auth.hash_password(PASSWORD)
    engine = create_async_engine(url)
    users = [
        {"username": f"user{n}", "email": f"user{n}@example.test", "password_hash": password_hash}
        for n in range(CLIENTS)
    ]
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(models.User), users)
    finally:
        await engine.dispose()


async def _client(http: httpx.AsyncClient, n: int) -> list[str]:
    """One client's sign-ins, one after another, from its own address: each answer's type."""
    answers = []
    for _ in range(SIGN_INS_PER_CLIENT):
        variables = {"input": {"username": f"user{n}", "password": PASSWORD}}
        response = await http.post(
            "/graphql",
            json={"query": LOGIN, "variables": variables},
            headers={"X-Forwarded-For": f"192.0.2.{n + 1}"},
        )
        body = response.json()
        answers.append(body["data"]["login"]["__typename"] if "data" in body else response.text)
    return answers


async def test_concurrent_sign_ins_on_busy_cores_all_succeed(dialect: str, tmp_path: Path) -> None:
    async with empty_database(dialect, tmp_path) as url:
        await asyncio.to_thread(migrations.upgrade, url)
        await _add_users(url)
        async with (
            serve(dialect, url, SETTINGS) as served,
            httpx.AsyncClient(base_url=served.base_url, timeout=60) as http,
        ):
            with cpu_burners(2 * auth.argon2_slots()):
                answers = await asyncio.gather(*(_client(http, n) for n in range(CLIENTS)))

    assert [answer for client in answers for answer in client] == ["AuthPayload"] * 96
