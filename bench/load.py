"""Requests to a running server: one answer, SELECTs per request, and load from wrk.

- `ask`: one request, its status and parsed body (the answers compared before timing).
- `count_selects`: pg_stat_statements is reset, N requests are sent one after another, and the
  calls of SELECT statements in the bench's database are summed and divided by N. The counting
  connection reads from the `postgres` database, so its own statements are not counted.
- `run_wrk`: wrk (pinned to the load core) posts the body over 16 keep-alive connections for a
  fixed time; `bench/wrk.lua` prints its counts and latency percentiles as one JSON line.
"""

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import orjson

WRK_SCRIPT: Final = Path(__file__).resolve().parent / "wrk.lua"
REQUEST_TIMEOUT_SECONDS: Final = 30.0
# wrk counts a request unanswered after this long as a timeout (an error).
WRK_TIMEOUT_SECONDS: Final = 60
DRAIN_TIMEOUT_SECONDS: Final = 120.0
_RESULT_PREFIX: Final = "BENCH_RESULT "
_SELECTS: Final = """
    select coalesce(sum(s.calls), 0)::bigint as selects, count(*) as texts
    from pg_stat_statements s join pg_database d on d.oid = s.dbid
    where d.datname = $1 and s.query ~* '^\\s*(select|with)\\M'
"""


class LoadError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True, slots=True)
class Request:
    """What is posted: the JSON body and the headers (the admin's bearer token)."""

    body: bytes
    headers: dict[str, str]


def graphql_request(text: str, variables: dict[str, Any], *, token: str) -> Request:
    body = orjson.dumps({"query": text, "variables": variables})
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    return Request(body=body, headers=headers)


async def ask(base_url: str, request: Request) -> tuple[int, Any]:
    """Post once; the status and the parsed body (None when it is not JSON)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        response = await client.post("/graphql", content=request.body, headers=request.headers)
    try:
        return response.status_code, orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.status_code, None


async def drain(base_url: str, request: Request) -> None:
    """One more request, answered after (or with) what wrk left in flight when it stopped.

    wrk's last connections close with requests still queued in the server, which finishes them
    anyway; without this the next stretch would start behind them (and, for a server with a
    blocking pool, with more requests in progress than connections).
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=DRAIN_TIMEOUT_SECONDS) as client:
        await client.post("/graphql", content=request.body, headers=request.headers)


@dataclass(frozen=True, slots=True)
class CoreTimes:
    """One moment of /proc/stat's busy and total jiffies per core."""

    busy: dict[int, int]
    total: dict[int, int]

    @classmethod
    def now(cls) -> "CoreTimes":
        busy: dict[int, int] = {}
        total: dict[int, int] = {}
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                # user nice system idle iowait irq softirq steal (guest time is in user).
                ticks = [int(value) for value in fields[:8]]
                core = int(name[3:])
                total[core] = sum(ticks)
                busy[core] = total[core] - ticks[3] - ticks[4]
        return cls(busy, total)

    def busy_since(self, earlier: "CoreTimes", core: int) -> float | None:
        """The share of `core`'s time spent busy between `earlier` and this moment (0..1)."""
        elapsed = self.total.get(core, 0) - earlier.total.get(core, 0)
        if elapsed <= 0:
            return None
        return (self.busy[core] - earlier.busy[core]) / elapsed


async def count_selects(
    base_url: str, request: Request, *, stats_url: str, database: str, requests: int
) -> float:
    """SELECT statements per request, from pg_stat_statements over `requests` requests."""
    connection = await asyncpg.connect(stats_url)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            # One request first, so prepared statements and caches are in place.
            await client.post("/graphql", content=request.body, headers=request.headers)
            await connection.execute("select pg_stat_statements_reset()")
            for _ in range(requests):
                await client.post("/graphql", content=request.body, headers=request.headers)
        row = await connection.fetchrow(_SELECTS, database)
    finally:
        await connection.close()
    return int(row["selects"]) / requests


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def wrk_missing() -> str | None:
    if shutil.which("wrk") is None:
        return "wrk is not installed (`make bench` installs it: apt-get install wrk)"
    return None


async def run_wrk(
    base_url: str,
    request: Request,
    *,
    body_path: Path,
    core: int,
    connections: int,
    seconds: float,
) -> WrkResult:
    """wrk on `core` for `seconds` with `connections` connections (one thread), one body."""
    await asyncio.to_thread(_write, body_path, request.body)
    environment = {
        "BENCH_BODY": str(body_path),
        "BENCH_AUTHORIZATION": request.headers.get("authorization", ""),
    }
    return await run_wrk_script(
        base_url,
        WRK_SCRIPT,
        environment=environment,
        core=core,
        connections=connections,
        seconds=seconds,
    )


async def run_wrk_script(
    base_url: str,
    script: Path,
    *,
    environment: dict[str, str],
    core: int,
    connections: int,
    seconds: float,
    threads: int = 1,
) -> WrkResult:
    """wrk with `script` (which prints the BENCH_RESULT line) on `core` for `seconds`."""
    command = [
        *("taskset", "-c", str(core), "wrk", "-t", str(threads), "-c", str(connections)),
        *("-d", f"{seconds:.0f}s", "--timeout", f"{WRK_TIMEOUT_SECONDS}s"),
        *("-s", str(script), f"{base_url}/graphql"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        env={**environment, "PATH": "/usr/local/bin:/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), seconds + 30)
    text = output.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith(_RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        raise LoadError(f"wrk failed ({process.returncode}):\n{text}")
    found = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    errors = sum(
        found[key]
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return WrkResult(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        errors=errors,
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        mean_ms=found["mean_us"] / 1000,
    )
