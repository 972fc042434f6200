"""`python -m bench.run` (`make bench`): gql_blog beside the floor and its rivals, in one run.

1. Start a throwaway PostgreSQL 15 cluster pinned to the load core; create, migrate and seed the
   database; give one post 32 comments; create an admin with a sign-in token.
2. For each server (the floor first), pinned to the server core: ask the three queries and
   compare each normalized answer with the floor's (a mismatch stops the run before any
   timing); count SELECTs per request with pg_stat_statements; then, per query, warm up and
   measure with wrk on the load core; read the server's RSS after each measured stretch.
3. Print the tables and the must-targets, write results/latest.json and (full runs) the README.
The cluster is stopped and deleted at the end, also on failure and Ctrl-C.
"""

import asyncio
import dataclasses
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, Final

import click

from bench import cluster, datasets, load, queries, report, servers

FULL_PLAN: Final = datasets.SeedPlan(users=1_000, posts_per_user=10, comments_per_post=5)
QUICK_PLAN: Final = datasets.SeedPlan(users=100, posts_per_user=10, comments_per_post=5)
# `--large` (make bench BENCH_SCALE=large): the feed again on ten times the users and posts.
LARGE_PLAN: Final = datasets.SeedPlan(users=10_000, posts_per_user=10, comments_per_post=5)
COUNTED_REQUESTS: Final = 10
CONCURRENT_CHECKS: Final = 4
# A cell lasts long enough for every connection to finish a few requests: a server whose
# requests queue for longer than the cell would otherwise show 0 req/s.
REQUESTS_PER_CONNECTION: Final = 3
MAX_CELL_SECONDS: Final = 60.0
PACKAGES: Final = (
    "strawberry-graphql",
    "graphql-core",
    "sqlalchemy",
    "asyncpg",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "orjson",
    "aiodataloader",
    "strawberry-sqlalchemy-mapper",
)
GRAPHENE_PACKAGES: Final = (
    "graphene",
    "graphene-sqlalchemy",
    "graphql-core",
    "sqlalchemy",
    "psycopg",
)


class AnswerMismatch(click.ClickException):
    """A server answered differently from the floor (or failed): nothing was timed for it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    seconds: float
    warmup_seconds: float
    connections: int
    server_core: int
    load_core: int


def require_tools() -> None:
    """Stop, saying why, when no throwaway cluster or no wrk can run here."""
    for problem in (cluster.available(), load.wrk_missing()):
        if problem:
            raise click.ClickException(problem)


def _interrupt_on_sigterm() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


@click.command()
@click.option("--quick", is_flag=True, help="Small data and 2 s cells, to check the script.")
@click.option("--seconds", type=click.FloatRange(min=1), help="Measured seconds per cell. [10]")
@click.option("--warmup", type=click.FloatRange(min=0), help="Warm-up seconds per cell. [3]")
@click.option("--connections", default=16, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--server",
    "only",
    multiple=True,
    help="Measure only these servers (repeat the option); the floor always runs.",
)
@click.option(
    "--readme/--no-readme", default=None, help="Write the tables into bench/README.md. [full: yes]"
)
@click.option(
    "--large",
    is_flag=True,
    help="Then gql_blog's feed on a 10x data set too (make bench BENCH_SCALE=large).",
)
def main(
    *,
    quick: bool,
    seconds: float | None,
    warmup: float | None,
    connections: int,
    only: tuple[str, ...],
    readme: bool | None,
    large: bool,
) -> None:
    """Benchmark gql_blog against the floor, graphene-sqlalchemy, strawberry-sqlalchemy-mapper,
    the naive server and PostGraphile 5 on a throwaway PostgreSQL cluster."""
    _interrupt_on_sigterm()
    require_tools()
    cores = sorted(os.sched_getaffinity(0))
    settings = Settings(
        seconds=seconds if seconds is not None else (2.0 if quick else 10.0),
        warmup_seconds=warmup if warmup is not None else (1.0 if quick else 3.0),
        connections=connections,
        server_core=cores[0],
        load_core=cores[1] if len(cores) > 1 else cores[0],
    )
    chosen = [
        server
        for server in servers.all_servers(Path(sys.executable))
        if not only or server.name in only or server.name == report.FLOOR
    ]
    plan = QUICK_PLAN if quick else FULL_PLAN
    started_at = report.now_utc()
    with cluster.throwaway_cluster(port=_free_port(), core=settings.load_core, say=_say) as db:
        dataset = datasets.prepare(
            db.url(datasets.DATABASE, driver="postgresql+asyncpg"), plan, say=_say
        )
        stats_url = db.url("postgres")
        cells, skipped = asyncio.run(_measure_all(chosen, dataset, settings, stats_url=stats_url))
        if large:
            large_plan = QUICK_PLAN if quick else LARGE_PLAN
            large_set = datasets.prepare(
                db.url(datasets.LARGE_DATABASE, driver="postgresql+asyncpg"), large_plan, say=_say
            )
            ours = next(server for server in chosen if server.name == report.OURS)
            cells.append(asyncio.run(_measure_large_feed(ours, large_set, settings, stats_url)))
    run = report.Run(
        started_at=started_at,
        finished_at=report.now_utc(),
        command=_command(),
        quick=quick,
        connections=settings.connections,
        seconds=settings.seconds,
        warmup_seconds=settings.warmup_seconds,
        cores={"server": settings.server_core, "load": settings.load_core},
        machine=report.machine(),
        versions=_versions(dataset),
        data=_data(dataset, plan),
        cells=cells,
        skipped=skipped,
    )
    _publish(run, readme=readme if readme is not None else not quick)


async def _measure_all(
    chosen: list[servers.Server],
    dataset: datasets.Dataset,
    settings: Settings,
    *,
    stats_url: str,
) -> tuple[list[report.Cell], dict[str, str]]:
    cells: list[report.Cell] = []
    skipped: dict[str, str] = {}
    reference: dict[str, Any] = {}
    for server in chosen:
        if why := server.missing():
            skipped[server.name] = why
            _say(f"{server.name}: skipped: {why}")
            continue
        log_path = report.RESULTS_DIR / f"server-{server.name}.log"
        async with servers.running(
            server, dataset=dataset, port=_free_port(), core=settings.server_core, log_path=log_path
        ) as live:
            requests = _requests(server.name, dataset)
            await _check_answers(server.name, live, requests, reference)
            for query, request in requests.items():
                cells.append(await _measure(server.name, query, live, request, settings, stats_url))
    return cells, skipped


async def _measure_large_feed(
    server: servers.Server, dataset: datasets.Dataset, settings: Settings, stats_url: str
) -> report.Cell:
    """gql_blog's feed on the 10x data set, cell `queries.LARGE_FEED` (issue 16: within 20 % of its
    rate on the usual data)."""
    log_path = report.RESULTS_DIR / "server-gql_blog-large.log"
    async with servers.running(
        server, dataset=dataset, port=_free_port(), core=settings.server_core, log_path=log_path
    ) as live:
        request = _requests(server.name, dataset)["feed"]
        status, body = await load.ask(live.base_url, request)
        if status != 200 or not isinstance(body, dict) or body.get("errors"):
            raise AnswerMismatch(f"{server.name} feed on the 10x data: {str(body)[:500]}")
        cell = await _measure(
            server.name, "feed", live, request, settings, stats_url, database=dataset.database
        )
    return dataclasses.replace(cell, query=queries.LARGE_FEED)


def _requests(server: str, dataset: datasets.Dataset) -> dict[str, load.Request]:
    """The server's three queries, then its writes (queries.WRITE_SETS), if it has any."""
    texts = queries.QUERY_SETS[server]
    found = {
        query: load.graphql_request(
            texts.texts[query],
            queries.variables_for(query, texts.ids, detail_post_id=dataset.detail_post_id),
            token=dataset.admin_token,
        )
        for query in queries.QUERY_NAMES
    }
    own = server in queries.OWN_SERVERS
    if own:
        for name, text in queries.OWN_READS.items():
            found[name] = _own_request(name, text, dataset)
    writes = queries.WRITE_SETS.get(server)
    if writes is not None:
        for write in queries.WRITE_NAMES:
            variables = queries.write_variables(
                writes.ids, post_id=dataset.write_post_id, admin_id=dataset.admin_id
            )
            found[write] = load.graphql_request(
                writes.texts[write], variables, token=dataset.admin_token
            )
    if own:
        for name, text in queries.OWN_WRITES.items():
            found[name] = _own_request(name, text, dataset)
    return found


def _own_request(name: str, text: str, dataset: datasets.Dataset) -> load.Request:
    variables = queries.own_variables(
        name, detail_post_id=dataset.detail_post_id, seeded_before=dataset.seeded_before
    )
    return load.graphql_request(text, variables, token=dataset.admin_token)


async def _check_answers(
    server: str, live: servers.Running, requests: dict[str, load.Request], reference: dict[str, Any]
) -> None:
    """Each answer, normalized, must equal the floor's; the floor's become the reference."""
    for query, request in requests.items():
        # One request alone, then a few at once: batches must not mix concurrent requests.
        answers = [await load.ask(live.base_url, request)]
        answers += await asyncio.gather(
            *(load.ask(live.base_url, request) for _ in range(CONCURRENT_CHECKS))
        )
        for status, body in answers:
            _compare(server, query, status, body, reference)
    _say(
        f"{server}: {len(requests)} answers equal the reference's (the floor's; a write's, the "
        f"first writer's), alone and {CONCURRENT_CHECKS} at once"
    )


def _compare(server: str, query: str, status: int, body: Any, reference: dict[str, Any]) -> None:
    if status != 200 or not isinstance(body, dict) or body.get("errors") or not body.get("data"):
        raise AnswerMismatch(f"{server} {query}: status {status}, {str(body)[:500]}")
    answer = queries.normalize(server, query, body["data"])
    if server == report.FLOOR or query in (*queries.WRITE_NAMES, *queries.OWN_NAMES):
        reference.setdefault(query, answer)
    if answer != reference[query]:
        path = report.RESULTS_DIR / f"mismatch-{server}-{query}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"floor": reference[query], server: answer}, indent=1))
        raise AnswerMismatch(f"{server} {query}: the answer differs from the floor's ({path})")


async def _measure(
    server: str,
    query: str,
    live: servers.Running,
    request: load.Request,
    settings: Settings,
    stats_url: str,
    *,
    database: str = datasets.DATABASE,
) -> report.Cell:
    started = time.perf_counter()
    selects = await load.count_selects(
        live.base_url,
        request,
        stats_url=stats_url,
        database=database,
        requests=COUNTED_REQUESTS,
    )
    # One request alone takes about this long; under load a request waits for the others.
    queued = (time.perf_counter() - started) / (COUNTED_REQUESTS + 1) * settings.connections
    seconds = min(MAX_CELL_SECONDS, max(settings.seconds, queued * REQUESTS_PER_CONNECTION))
    warmup = min(MAX_CELL_SECONDS, max(settings.warmup_seconds, queued))
    body_path = report.RESULTS_DIR / f"body-{server}-{query}.json"
    common = {"body_path": body_path, "core": settings.load_core}
    if settings.warmup_seconds:
        await load.run_wrk(
            live.base_url, request, connections=settings.connections, seconds=warmup, **common
        )
        await load.drain(live.base_url, request)
    before = load.CoreTimes.now()
    result = await load.run_wrk(
        live.base_url, request, connections=settings.connections, seconds=seconds, **common
    )
    after = load.CoreTimes.now()
    await load.drain(live.base_url, request)
    rss = live.rss_kib()
    server_busy = after.busy_since(before, settings.server_core)
    load_busy = after.busy_since(before, settings.load_core)
    cell = report.Cell(
        query=query,
        server=server,
        selects_per_request=selects,
        requests=result.requests,
        errors=result.errors,
        seconds=round(result.seconds, 3),
        requests_per_second=round(result.requests_per_second, 1),
        p50_ms=round(result.p50_ms, 2),
        p99_ms=round(result.p99_ms, 2),
        mean_ms=round(result.mean_ms, 2),
        rss_mib=None if rss is None else round(rss / 1024, 1),
        server_core_busy=None if server_busy is None else round(server_busy, 3),
        load_core_busy=None if load_busy is None else round(load_busy, 3),
    )
    _say(
        f"  {server} {query}: {_format_selects(selects)} SELECTs, "
        f"{cell.requests_per_second:,.1f} req/s, p50 {cell.p50_ms:,.1f} ms, "
        f"p99 {cell.p99_ms:,.1f} ms, {cell.errors} errors, "
        f"cores busy: server {_percent(cell.server_core_busy)}, "
        f"database + wrk {_percent(cell.load_core_busy)}"
    )
    return cell


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _format_selects(value: float) -> str:
    return f"{value:g}"


def _publish(run: report.Run, *, readme: bool) -> None:
    for query in (*queries.QUERY_NAMES, *queries.WRITE_NAMES):
        click.echo(report.query_table(run.cells, query))
        click.echo()
    click.echo("Issue 9's must-targets for gql_blog:")
    for line in report.targets(run.cells, queries.QUERY_NAMES):
        click.echo(line)
    click.echo("Issue 16's targets for gql_blog:")
    for line in report.postgraphile_targets(run.cells, queries.QUERY_NAMES, queries.WRITE_NAMES):
        click.echo(line)
    click.echo()
    click.echo(report.planner_table(run.cells, (*queries.QUERY_NAMES, *queries.OWN_NAMES)))
    if line := report.large_feed_target(run.cells, queries.LARGE_FEED):
        click.echo(line)
    _say(f"wrote {report.write_json(run)}")
    failed = [f"{cell.server} {cell.query}" for cell in run.cells if cell.errors]
    if failed:
        raise click.ClickException(
            f"requests failed under load in {', '.join(failed)}; bench/README.md left as it was"
        )
    if readme:
        _say(f"updated {report.update_readme(run, queries.QUERY_NAMES, queries.WRITE_NAMES)}")


def _versions(dataset: datasets.Dataset) -> dict[str, str]:
    found = {"python": sys.version.split()[0], "postgresql": dataset.server_version}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found |= _graphene_versions()
    found["node"] = _output([str(servers.NODE), "--version"]).lstrip("v") or "not installed"
    found["postgraphile"] = _package_version(servers.POSTGRAPHILE_DIR / "node_modules/postgraphile")
    banner = _output(["wrk", "-v"]).split()
    found["wrk"] = banner[1] if len(banner) > 1 else "not installed"
    return found


def _graphene_versions() -> dict[str, str]:
    script = (
        "import json, sys; from importlib import metadata;"
        "print(json.dumps({p: metadata.version(p) for p in sys.argv[1:]}))"
    )
    text = _output([str(servers.GRAPHENE_PYTHON), "-c", script, *GRAPHENE_PACKAGES])
    if not text:
        return {"graphene-sqlalchemy": "not installed"}
    return {f"{name} (graphene venv)": version for name, version in json.loads(text).items()}


def _package_version(folder: Path) -> str:
    try:
        return str(json.loads((folder / "package.json").read_text())["version"])
    except (OSError, KeyError, ValueError):
        return "not installed"


def _output(command: list[str]) -> str:
    """The first line a command prints (wrk -v exits 1 after its banner), or ""."""
    try:
        finished = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (finished.stdout + finished.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _data(dataset: datasets.Dataset, plan: datasets.SeedPlan) -> dict[str, Any]:
    return {
        "seed": plan.command(),
        "users": dataset.users,
        "posts": dataset.posts,
        "published_posts": dataset.published_posts,
        "comments": dataset.comments,
        "tags": dataset.tags,
        "post_tags": dataset.post_tags,
        "detail_post_id": dataset.detail_post_id,
        "detail_comments": datasets.DETAIL_COMMENTS,
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _command() -> str:
    python = os.path.relpath(sys.executable)
    if python.startswith(".."):
        python = sys.executable
    return shlex.join([python, "-m", "bench.run", *sys.argv[1:]])


def _say(message: str) -> None:
    click.echo(message, err=True)


if __name__ == "__main__":
    main()
