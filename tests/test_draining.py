"""SIGTERM with GQL_BLOG_DRAIN_SECONDS: /readyz says 503 at once, every request is still served
until the drain ends, then the server stops; a second SIGTERM stops it at once.

A real `gql-blog serve` on a migrated SQLite file, real HTTP on one keep-alive connection opened
before the signal (the kind a balancer reuses). bench/multihost.py checks the same behind
HAProxy with several workers: no request fails when a host is stopped with SIGTERM.
"""

import asyncio
import signal
import time
from pathlib import Path

import httpx

from gql_blog import migrations
from tests.live import serve_process

DRAIN_SECONDS = 3.0
# A process that should stop at once may take this long (uvicorn's shutdown, the engine's).
STOP_SECONDS = 10.0


async def _migrated(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'blog.db'}"
    await asyncio.to_thread(migrations.upgrade, url)
    return url


async def _until_draining(http: httpx.AsyncClient) -> httpx.Response:
    deadline = time.monotonic() + 2.0
    while True:
        ready = await http.get("/readyz")
        if ready.status_code == 503 or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(0.02)


async def test_sigterm_drains_then_stops(tmp_path: Path) -> None:
    url = await _migrated(tmp_path)
    variables = {"GQL_BLOG_DRAIN_SECONDS": str(DRAIN_SECONDS)}
    async with serve_process(url, **variables) as (address, process, log):
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as http:
            assert (await http.get("/readyz")).json()["status"] == "ready"
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)

            ready = await _until_draining(http)
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "draining"
            assert "GQL_BLOG_DRAIN_SECONDS" in ready.json()["reason"]

            answered = 0
            while time.monotonic() - signalled < DRAIN_SECONDS - 0.5:
                response = await http.post("/graphql", json={"query": "{ posts { totalCount } }"})
                assert response.status_code == 200, response.text
                assert response.json()["data"] == {"posts": {"totalCount": 0}}
                assert (await http.get("/readyz")).status_code == 503
                answered += 1
                await asyncio.sleep(0.05)
            assert answered >= 10

        await asyncio.wait_for(process.wait(), DRAIN_SECONDS + STOP_SECONDS)
        stopped = time.monotonic() - signalled
        assert stopped >= DRAIN_SECONDS, f"stopped {stopped:.2f} s after SIGTERM"
        # uvicorn raises the signal it shut down on again once done: death by SIGTERM, no error.
        assert process.returncode in (0, -signal.SIGTERM)
        assert not any('"level":"ERROR"' in line for line in log), "".join(log)
        assert any("draining for 3 s" in line for line in log), "".join(log)


async def test_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    url = await _migrated(tmp_path)
    async with serve_process(url, GQL_BLOG_DRAIN_SECONDS="60") as (address, process, _):
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as http:
            process.send_signal(signal.SIGTERM)
            assert (await _until_draining(http)).json()["status"] == "draining"
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
        assert time.monotonic() - signalled < STOP_SECONDS


async def test_without_a_drain_sigterm_stops_at_once(tmp_path: Path) -> None:
    url = await _migrated(tmp_path)
    async with serve_process(url) as (address, process, _):
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as http:
            assert (await http.get("/readyz")).status_code == 200
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
        assert time.monotonic() - signalled < DRAIN_SECONDS
