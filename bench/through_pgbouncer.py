"""The planned path's throughput straight to PostgreSQL and through PgBouncer (transaction mode).

One throwaway PostgreSQL 15 cluster seeded as `make bench` seeds it, Debian's PgBouncer in front
of it (deploy/pgbouncer.ini's settings, bench/pgbouncer.py), and `gql-blog serve` (one worker,
pinned to the server core) twice: first on the cluster itself, then through PgBouncer with
GQL_BLOG_PGBOUNCER=true (LISTEN on the cluster). Each of the bench's three planned queries
(feed, users → posts → comments, post detail) is checked to answer alike on both, warmed up,
then loaded by wrk; the table gives requests per second and latencies, and the ratio.

Behind PgBouncer 1.18 no prepared statement survives a transaction, so every statement is
parsed anew and each planned read runs in a read-only transaction: the ratio is that price.

    make bench-pgbouncer                       # 10 s per cell (about 2 minutes)
    .venv/bin/python -m bench.through_pgbouncer --check   # no wrk: the setup and answers only
"""

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import click

from bench import cluster, datasets, load, pgbouncer, queries, report, servers
from bench.run import QUICK_PLAN, _free_port, _requests, _say

RESULTS: Final = report.RESULTS_DIR / "pgbouncer"
GQL_BLOG: Final = "gql_blog"
# Server connections PgBouncer keeps: the worker's read pool and session pool share them.
SERVER_CONNECTIONS: Final = 20


@dataclass(frozen=True, slots=True)
class Cell:
    query: str
    route: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


@click.command()
@click.option("--seconds", default=10.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--warmup", default=3.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--connections", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--check", is_flag=True, help="Start everything and compare answers; no wrk.")
def main(*, seconds: float, warmup: float, connections: int, check: bool) -> None:
    """gql_blog's planned reads, direct and through PgBouncer in transaction mode."""
    for problem in (
        cluster.available(),
        pgbouncer.available(),
        None if check else load.wrk_missing(),
    ):
        if problem:
            raise click.ClickException(problem)
    cores = sorted(os.sched_getaffinity(0))
    server_core, load_core = cores[0], cores[-1]
    with cluster.throwaway_cluster(port=_free_port(), core=load_core, say=_say) as db:
        direct_url = db.url(datasets.DATABASE, driver="postgresql+asyncpg")
        dataset = datasets.prepare(direct_url, QUICK_PLAN, say=_say)
        with pgbouncer.throwaway_pgbouncer(
            port=_free_port(),
            server_host="127.0.0.1",
            server_port=db.port,
            say=_say,
            pool_size=SERVER_CONNECTIONS,
        ) as bouncer:
            routes = {
                "direct": {},
                "pgbouncer": {
                    "GQL_BLOG_DATABASE_URL": bouncer.url(datasets.DATABASE),
                    "GQL_BLOG_PGBOUNCER": "true",
                    "GQL_BLOG_DATABASE_LISTEN_URL": direct_url,
                },
            }
            cells = asyncio.run(
                _measure(
                    dataset,
                    routes,
                    seconds=seconds,
                    warmup=warmup,
                    connections=connections,
                    cores=(server_core, load_core),
                    check=check,
                )
            )
    if not check:
        click.echo("\n".join(table(cells, seconds=seconds, connections=connections)))


async def _measure(
    dataset: datasets.Dataset,
    routes: dict[str, dict[str, str]],
    *,
    seconds: float,
    warmup: float,
    connections: int,
    cores: tuple[int, int],
    check: bool,
) -> list[Cell]:
    server_core, load_core = cores
    server = servers.gql_blog_serve(Path(sys.executable), workers=1)
    requests = _requests(GQL_BLOG, dataset)
    reference: dict[str, object] = {}
    cells = []
    for route, environment in routes.items():
        async with servers.running(
            server,
            dataset=dataset,
            port=_free_port(),
            core=server_core,
            log_path=RESULTS / f"server-{route}.log",
            extra_environment=environment,
        ) as live:
            for query, request in requests.items():
                for _ in range(2):  # strawberry's path, then the planner's
                    status, body = await load.ask(live.base_url, request)
                    if status != 200 or not isinstance(body, dict) or body.get("errors"):
                        raise click.ClickException(f"{route} {query}: {status} {str(body)[:300]}")
                    answer = queries.normalize(GQL_BLOG, query, body["data"])
                    if reference.setdefault(query, answer) != answer:
                        raise click.ClickException(f"{route} {query}: differs from direct")
                if check:
                    continue
                common = {"body_path": RESULTS / f"body-{query}.json", "core": load_core}
                if warmup:
                    await load.run_wrk(
                        live.base_url, request, connections=connections, seconds=warmup, **common
                    )
                    await load.drain(live.base_url, request)
                result = await load.run_wrk(
                    live.base_url, request, connections=connections, seconds=seconds, **common
                )
                await load.drain(live.base_url, request)
                cells.append(
                    Cell(
                        query=query,
                        route=route,
                        requests_per_second=round(result.requests_per_second, 1),
                        p50_ms=round(result.p50_ms, 2),
                        p99_ms=round(result.p99_ms, 2),
                        errors=result.errors,
                    )
                )
                _say(f"  {route} {query}: {cells[-1]}")
        _say(f"{route}: the three answers equal the direct ones")
    return cells


def table(cells: list[Cell], *, seconds: float, connections: int) -> list[str]:
    """The Markdown table for bench/README.md: each query direct, through PgBouncer, ratio."""
    by = {(cell.query, cell.route): cell for cell in cells}
    lines = [
        f"Planned reads, one worker, wrk {connections} connections, {seconds:g} s per cell "
        f"({report.now_utc()}):",
        "",
        "| query | direct req/s | p50 / p99 ms | PgBouncer req/s | p50 / p99 ms "
        "| PgBouncer / direct |",
        "|---|---|---|---|---|---|",
    ]
    for query in queries.QUERY_NAMES:
        direct, pooled = by.get((query, "direct")), by.get((query, "pgbouncer"))
        if direct is None or pooled is None:
            continue
        ratio = pooled.requests_per_second / direct.requests_per_second
        lines.append(
            f"| {query} | {direct.requests_per_second:,.0f} | {direct.p50_ms} / {direct.p99_ms} "
            f"| {pooled.requests_per_second:,.0f} | {pooled.p50_ms} / {pooled.p99_ms} "
            f"| {ratio:.2f} |"
        )
    errors = sum(cell.errors for cell in cells)
    lines += ["", f"wrk errors: {errors}"]
    return lines


if __name__ == "__main__":
    main()
