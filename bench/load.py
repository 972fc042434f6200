"""Concurrent load on one uvicorn worker: start the server, drive it with httpx, measure latencies.

The server runs in a subprocess on a free loopback port; the load comes from this process.
Every loop here is bounded by a deadline.
"""

import asyncio
import contextlib
import math
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import orjson

from bench.datasets import server_environment

HOST: Final = "127.0.0.1"
STARTUP_SECONDS: Final = 30.0
SHUTDOWN_SECONDS: Final = 10.0
REQUEST_TIMEOUT_SECONDS: Final = 60.0
_REPOSITORY: Final = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Server:
    """A server under test: its name in the results and its ASGI app factory."""

    name: str
    factory: str


SERVERS: Final = (
    Server("gql_blog", "gql_blog.app:create_app"),
    Server("naive", "bench.naive:create_app"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """What one measured stretch of load produced."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile of the successful requests' latencies."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(percent / 100 * len(ordered)))
        return ordered[rank - 1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_server(
    server: Server, *, database_url: str, log_path: Path
) -> AsyncIterator[str]:
    """Run `server` under uvicorn (one worker) until the block ends; yields its base URL."""
    port = free_port()
    command = [
        sys.executable,
        *("-m", "uvicorn", "--factory", server.factory),
        *("--host", HOST, "--port", str(port), "--workers", "1"),
        *("--no-access-log", "--log-level", "warning"),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=_REPOSITORY,
            env=server_environment(database_url),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            base_url = f"http://{HOST}:{port}"
            await _wait_until_ready(base_url, process, log_path)
            yield base_url
        finally:
            await _stop(process)


async def _wait_until_ready(
    base_url: str, process: asyncio.subprocess.Process, log_path: Path
) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-2000:]
    raise RuntimeError(f"server at {base_url} did not start; its log ends with:\n{tail}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


async def drive(base_url: str, query: str, *, concurrency: int, seconds: float) -> LoadResult:
    """`concurrency` clients post `query` back to back until `seconds` have passed."""
    payload = orjson.dumps({"query": query})
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0

    async def client_loop(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post("/graphql", content=payload, headers=headers)
            except httpx.HTTPError:
                errors += 1
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or b'"errors"' in response.content:
                errors += 1
                continue
            latencies.append(elapsed_ms)

    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(client_loop(client, deadline) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(
        requests=len(latencies), errors=errors, seconds=elapsed, latencies_ms=tuple(latencies)
    )
