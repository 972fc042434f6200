"""A worker killed with SIGKILL mid-mutation: its transaction is gone whole, none of it stays.

`gql-blog serve` runs as a subprocess on the run's database of each dialect; it echoes its SQL,
so the test kills it while the mutation's statements are going out (no sleeps: it waits for the
log line). Then a new server starts on the same database, and the tables show that every change
has its audit row and every audit row its change.
"""

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import auth, models
from tests.committed import empty_tables
from tests.factories import make_post, make_user

IMPORT_POSTS = """mutation($inputs: [CreatePostInput!]!) {
  importPosts(inputs: $inputs) { created }
}"""
DELETE_POSTS = "mutation { deletePosts(where: {}) { __typename } }"
CREATE_POST = 'mutation { createPost(input: {title: "After", content: "C"}) { __typename } }'
ITEMS = 300
STARTED = b"Uvicorn running on"  # logged once the socket listens


@dataclass(slots=True)
class Server:
    process: asyncio.subprocess.Process
    url: str

    async def wait_for_line(self, needle: bytes, *, times: int = 1) -> None:
        """Read the server's log until `needle` has appeared `times` times."""
        assert self.process.stderr is not None
        seen = 0
        while seen < times:
            line = await self.process.stderr.readline()
            assert line, f"the server exited before logging {needle!r} {times} times"
            seen += line.count(needle)

    async def drain(self) -> None:
        assert self.process.stderr is not None
        while await self.process.stderr.readline():
            pass


@pytest.fixture
async def cleaned(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The run's database, emptied after the test (the servers commit)."""
    try:
        yield engine
    finally:
        await empty_tables(engine)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _serve(database_url: str, **env: str) -> AsyncIterator[Server]:
    """`gql-blog serve` on a free port, once its app has started; killed at the end."""
    port = _free_port()
    command = Path(sys.executable).with_name("gql-blog")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("GQL_BLOG_")}
    process = await asyncio.create_subprocess_exec(
        *(str(command), "serve", "--port", str(port)),
        env=environ | {"GQL_BLOG_DATABASE_URL": database_url} | env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        await asyncio.wait_for(server.wait_for_line(STARTED), 60)
        yield server
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 30)


async def _kill_during(
    server: Server, body: dict[str, Any], token: str, needle: bytes, times: int
) -> None:
    """Send the request; SIGKILL the server once its log shows `needle` `times` times."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        request = asyncio.ensure_future(
            http.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
        )
        await asyncio.wait_for(server.wait_for_line(needle, times=times), 30)
        server.process.send_signal(signal.SIGKILL)
        with suppress(httpx.TransportError):  # the answer died with the server, most likely
            await asyncio.wait_for(request, 30)
    await asyncio.wait_for(server.process.wait(), 30)


async def _serves_normally(database_url: str, token: str) -> None:
    """A new server on the same database reads and writes as ever."""
    async with (
        _serve(database_url) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        draining = asyncio.ensure_future(server.drain())  # its log must not fill the pipe
        read = await http.post("/graphql", json={"query": "{ posts { totalCount } }"})
        written = await http.post(
            "/graphql",
            json={"query": CREATE_POST},
            headers={"Authorization": f"Bearer {token}"},
        )
        draining.cancel()
    assert read.status_code == 200
    assert "errors" not in read.json()
    assert written.status_code == 200
    assert written.json()["data"] == {"createPost": {"__typename": "Post"}}


async def _admin_token(engine: AsyncEngine) -> tuple[models.User, str]:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        admin = await make_user(session, username="root", is_admin=True)
        token = await auth.issue_token(session, admin, lifetime=timedelta(hours=1))
        await session.commit()
    return admin, token


async def _audited_ids(engine: AsyncEngine, action: models.AuditAction) -> set[int]:
    stmt = select(models.AuditLog.entity_id).where(
        models.AuditLog.entity_type == "Post", models.AuditLog.action == action
    )
    async with engine.connect() as connection:
        return set((await connection.scalars(stmt)).all())


async def _post_ids(engine: AsyncEngine, *, excluding: Iterable[str] = ()) -> set[int]:
    stmt = select(models.Post.id).where(models.Post.title.not_in(list(excluding)))
    async with engine.connect() as connection:
        return set((await connection.scalars(stmt)).all())


async def test_a_worker_killed_mid_import_leaves_no_item_and_no_audit_row(
    cleaned: AsyncEngine, database_url: str
) -> None:
    _, token = await _admin_token(cleaned)
    inputs = [{"title": f"Item {n}", "content": "Text.", "tags": [f"t{n}"]} for n in range(ITEMS)]
    body = {"query": IMPORT_POSTS, "variables": {"inputs": inputs}}

    async with _serve(
        database_url, GQL_BLOG_ECHO_SQL="true", GQL_BLOG_MAX_IMPORT_POSTS=str(ITEMS)
    ) as server:
        # MariaDB inserts a post with INSERT IGNORE (a concurrent writer may hold its slug).
        await _kill_during(server, body, token, b" INTO posts ", times=20)

    posts = await _post_ids(cleaned)
    assert posts == await _audited_ids(cleaned, models.AuditAction.CREATE)
    assert len(posts) in (0, ITEMS)  # all or nothing: the import is one transaction
    async with cleaned.connect() as connection:
        tags = await connection.scalar(select(func.count()).select_from(models.Tag))
    assert tags in (0, ITEMS)
    await _serves_normally(database_url, token)


async def test_a_worker_killed_mid_delete_posts_leaves_every_change_with_its_audit_row(
    cleaned: AsyncEngine, database_url: str
) -> None:
    admin, token = await _admin_token(cleaned)
    async with AsyncSession(cleaned) as session:
        for n in range(ITEMS):
            await make_post(session, author=admin, title=f"Doomed {n}")
        await session.commit()
    before = await _post_ids(cleaned)

    async with _serve(database_url, GQL_BLOG_ECHO_SQL="true") as server:
        await _kill_during(server, {"query": DELETE_POSTS}, token, b"DELETE FROM posts", times=1)

    remaining = await _post_ids(cleaned)
    deleted = await _audited_ids(cleaned, models.AuditAction.DELETE)
    assert remaining in (before, set())  # one statement, one transaction
    assert deleted == before - remaining
    await _serves_normally(database_url, token)
    assert await _post_ids(cleaned, excluding=["After"]) == remaining
