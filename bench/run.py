"""`python -m bench.run` (`make bench`): gql_blog against the naive server on SQLite and PostgreSQL.

For each database: seed it (or reuse it), count each query's SQL statements per request through
every app that answers it, in process, and check that gql_blog and the naive server answer the
same data where both answer; then load each server — one uvicorn worker — with concurrent clients
and record requests per second and latency percentiles. Queries only gql_blog answers (see
`bench.queries`) get no comparison: instead their root connection must find something.
"""

import asyncio
import importlib
import os
import shlex
import sys
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Final, TypeVar

import click
from sqlalchemy.exc import DBAPIError

from bench import datasets, report
from bench.counting import AppFactory, CountedRequest, count_request
from bench.load import SERVERS, LoadResult, Server, drive, running_server
from bench.queries import QUERIES, Query
from gql_blog import db
from gql_blog.config import Settings

T = TypeVar("T")

FULL_PLAN: Final = datasets.SeedPlan(users=1_000, posts_per_user=50, comments_per_post=5)
QUICK_PLAN: Final = datasets.SeedPlan(users=100, posts_per_user=10, comments_per_post=3)
SHARED_CPU_NOTE: Final = (
    "The load generator (httpx, in the benchmark's own process), the server under test and the "
    "database share the machine's {nproc} CPUs, so the absolute figures understate what a server "
    "alone would do; the ratios are the point."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSettings:
    concurrency: int
    seconds: float
    warmup_seconds: float
    solo_seconds: float


@click.command()
@click.option("--quick", is_flag=True, help="Small data and short cells, to check the script.")
@click.option(
    "--seconds", type=click.FloatRange(min=0.1), help="Measured seconds per cell.  [10; quick: 2]"
)
@click.option(
    "--warmup", type=click.FloatRange(min=0), help="Warm-up seconds per cell.  [3; quick: 0.5]"
)
@click.option(
    "--solo",
    "solo_seconds",
    type=click.FloatRange(min=0.1),
    help="Seconds of one client alone per cell, for the latency without queueing.  [3; quick: 0.5]",
)
@click.option(
    "--concurrency", default=16, show_default=True, type=click.IntRange(min=1), help="Clients."
)
@click.option(
    "--dialect",
    "dialects",
    multiple=True,
    type=click.Choice(["sqlite", "postgresql"]),
    default=("sqlite", "postgresql"),
    show_default=True,
    help="Databases to run on (repeat the option for several).",
)
@click.option(
    "--postgres-url",
    default=datasets.DEFAULT_POSTGRES_URL,
    show_default=True,
    help="PostgreSQL database for the benchmark; emptied and reseeded when its rows differ.",
)
@click.option(
    "--readme/--no-readme",
    default=None,
    help="Write the figures into bench/README.md.  [yes; quick: no]",
)
def main(
    *,
    quick: bool,
    seconds: float | None,
    warmup: float | None,
    solo_seconds: float | None,
    concurrency: int,
    dialects: tuple[str, ...],
    postgres_url: str,
    readme: bool | None,
) -> None:
    """Benchmark gql_blog against a naive N+1 resolver set on SQLite and PostgreSQL."""
    plan = QUICK_PLAN if quick else FULL_PLAN
    load = LoadSettings(
        concurrency=concurrency,
        seconds=seconds if seconds is not None else (2.0 if quick else 10.0),
        warmup_seconds=warmup if warmup is not None else (0.5 if quick else 3.0),
        solo_seconds=solo_seconds if solo_seconds is not None else (0.5 if quick else 3.0),
    )
    _check_query_servers()
    started_at = report.now_utc()
    load_at_start = os.getloadavg()
    prepared = _prepare_all(plan, dialects=dialects, postgres_url=postgres_url)
    cells, mismatches = _run_async(_measure_all(prepared, load))
    machine = report.machine() | {
        "load_average_start": load_at_start,
        "load_average_end": os.getloadavg(),
    }
    run = report.Run(
        started_at=started_at,
        command=_command(),
        quick=quick,
        concurrency=load.concurrency,
        seconds=load.seconds,
        warmup_seconds=load.warmup_seconds,
        solo_seconds=load.solo_seconds,
        machine=machine,
        versions=report.versions()
        | {f"{ready.target.dialect} server": ready.server_version for ready in prepared},
        databases={
            ready.target.dialect: {"server_version": ready.server_version} | asdict(ready.rows)
            for ready in prepared
        },
        cells=cells,
        notes=[SHARED_CPU_NOTE.format(nproc=machine["nproc"]), *mismatches],
    )
    _publish(run, mismatches=mismatches, readme=readme if readme is not None else not quick)


def _prepare_all(
    plan: datasets.SeedPlan, *, dialects: tuple[str, ...], postgres_url: str
) -> list[datasets.Prepared]:
    targets = [
        datasets.sqlite_target(plan)
        if dialect == "sqlite"
        else datasets.postgresql_target(postgres_url)
        for dialect in dialects
    ]
    try:
        prepared = [datasets.prepare(target, plan, say=_say) for target in targets]
    except datasets.SeedError as error:
        raise click.ClickException(str(error)) from None
    except (OSError, DBAPIError) as error:
        raise click.ClickException(
            f"cannot prepare a database ({error}); use --dialect to choose the ones available"
        ) from None
    for ready in prepared:
        _say(f"{ready.target.dialect}: {'reused' if ready.reused else 'seeded'} {ready.rows}")
    return prepared


def _publish(run: report.Run, *, mismatches: list[str], readme: bool) -> None:
    """Print the tables, write latest.json, and update the README if every cell went well."""
    cells = run.cells
    click.echo(report.cells_table(cells))
    click.echo()
    click.echo(report.ratios_table(cells))
    _say(f"wrote {report.write_json(run)}")
    failed = [f"{cell.dialect} {cell.query} {cell.server}" for cell in cells if cell.errors]
    if failed or mismatches:
        raise click.ClickException(
            f"errors in {', '.join(failed) or 'no cell'}; {len(mismatches)} answers differ or "
            "are empty; "
            f"bench/README.md left as it was (server logs: {report.RESULTS_PATH.parent})"
        )
    if readme:
        _say(f"updated {report.update_readme(run)}")


async def _measure_all(
    prepared: list[datasets.Prepared], load: LoadSettings
) -> tuple[list[report.Cell], list[str]]:
    cells: list[report.Cell] = []
    mismatches: list[str] = []
    for ready in prepared:
        counted = await _count_statements(ready.target)
        mismatches += _compare_answers(ready.target.dialect, counted)
        for server in SERVERS:
            cells += await _load_server(ready.target, server, counted, load)
    return cells, mismatches


def _queries_for(server: Server) -> dict[str, Query]:
    """The queries `server` answers, in `QUERIES` order."""
    return {name: query for name, query in QUERIES.items() if server.name in query.servers}


def _check_query_servers() -> None:
    known = {server.name for server in SERVERS}
    for name, query in QUERIES.items():
        if unknown := set(query.servers) - known:
            raise click.ClickException(f"query {name} names unknown servers {sorted(unknown)}")


async def _count_statements(target: datasets.Target) -> dict[tuple[str, str], CountedRequest]:
    """Each query through each app that answers it once, in process, with the counter on."""
    settings = Settings(database_url=target.url)
    engine = db.create_engine(settings)
    sessions = db.create_sessionmaker(engine)
    counted: dict[tuple[str, str], CountedRequest] = {}
    try:
        for server in SERVERS:
            for query_name, query in _queries_for(server).items():
                result = await count_request(
                    _factory(server), settings=settings, sessions=sessions, query=query.text
                )
                if result.errors:
                    raise RuntimeError(f"{server.name} {query_name}: {result.errors}")
                counted[server.name, query_name] = result
                _say(
                    f"{target.dialect} {query_name} {server.name}: {result.statements} statements"
                    f"{_total_counts(result.data)}"
                )
    finally:
        await engine.dispose()
    return counted


def _compare_answers(dialect: str, counted: dict[tuple[str, str], CountedRequest]) -> list[str]:
    """gql_blog's answers against naive's where both answer; elsewhere, that it found something."""
    mismatches = []
    for query_name in QUERIES:
        problem = _answer_problem(
            counted.get(("gql_blog", query_name)), counted.get(("naive", query_name))
        )
        if problem:
            mismatches.append(f"{dialect} {query_name}: {problem}")
            _say(mismatches[-1])
    return mismatches


def _answer_problem(ours: CountedRequest | None, naive: CountedRequest | None) -> str | None:
    if ours is None:
        return None
    if naive is not None:
        return None if ours.data == naive.data else "gql_blog and naive answer different data"
    if _found_nothing(ours.data):
        return "gql_blog found nothing: the query no longer matches the seeded data"
    return None


def _root_connections(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        return []
    return [value for value in data.values() if isinstance(value, dict)]


def _found_nothing(data: Any) -> bool:
    """Whether an answer is empty: no root connection, or one with totalCount 0."""
    roots = _root_connections(data)
    return not roots or any(root.get("totalCount") == 0 for root in roots)


def _total_counts(data: Any) -> str:
    counts = [root["totalCount"] for root in _root_connections(data) if "totalCount" in root]
    return "".join(f", totalCount {count:,}" for count in counts)


async def _load_server(
    target: datasets.Target,
    server: Server,
    counted: dict[tuple[str, str], CountedRequest],
    load: LoadSettings,
) -> list[report.Cell]:
    cells = []
    log_path = report.RESULTS_PATH.parent / f"server-{target.dialect}-{server.name}.log"
    async with running_server(server, database_url=target.url, log_path=log_path) as base_url:
        for query_name, query in _queries_for(server).items():
            _say(f"{target.dialect} {query_name} {server.name}: loading")
            text = query.text
            await drive(base_url, text, concurrency=load.concurrency, seconds=load.warmup_seconds)
            solo = await drive(base_url, text, concurrency=1, seconds=load.solo_seconds)
            result = await drive(base_url, text, concurrency=load.concurrency, seconds=load.seconds)
            cell = _cell(target.dialect, query_name, server.name, counted, result, solo)
            _say(
                f"  {cell.requests_per_second:,.1f} req/s, p50 {cell.p50_ms:,.1f} ms, "
                f"p99 {cell.p99_ms:,.1f} ms, {cell.errors} errors"
            )
            cells.append(cell)
    return cells


def _cell(
    dialect: str,
    query_name: str,
    server_name: str,
    counted: dict[tuple[str, str], CountedRequest],
    result: LoadResult,
    solo: LoadResult,
) -> report.Cell:
    latencies = result.latencies_ms
    request = counted[server_name, query_name]
    return report.Cell(
        dialect=dialect,
        query=query_name,
        server=server_name,
        statements=request.statements,
        response_bytes=request.response_bytes,
        requests=result.requests,
        seconds=round(result.seconds, 3),
        requests_per_second=round(result.requests_per_second, 1),
        p50_ms=round(result.percentile_ms(50), 2),
        p99_ms=round(result.percentile_ms(99), 2),
        mean_ms=round(sum(latencies) / len(latencies), 2) if latencies else float("nan"),
        solo_p50_ms=round(solo.percentile_ms(50), 2),
        errors=result.errors + solo.errors,
    )


def _factory(server: Server) -> AppFactory:
    module_name, _, attribute = server.factory.partition(":")
    factory: AppFactory = getattr(importlib.import_module(module_name), attribute)
    return factory


def _command() -> str:
    python = os.path.relpath(sys.executable)
    if python.startswith(".."):
        python = sys.executable
    return shlex.join([python, "-m", "bench.run", *sys.argv[1:]])


def _say(message: str) -> None:
    click.echo(message, err=True)


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed (uvicorn's standard extra brings it), as the server does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


if __name__ == "__main__":
    main()
