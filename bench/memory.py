"""`python -m bench.memory` (`make bench-memory`): gql_blog's memory under a long mixed load.

One gql_blog process (pinned to the server core) on a throwaway PostgreSQL cluster answers the
three bench queries in turn, and every tenth request a document it has never seen (so its
document, plan and cost caches keep filling). Its resident set size is read after 10,000
requests and again after 100,000: issue 9 asks that the second be within 10 % of the first,
which holds only if every cache is bounded. The figures go into bench/README.md.
"""

import asyncio
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import click
import orjson

from bench import cluster, datasets, queries, report, servers
from bench.load import WrkResult, graphql_request, run_wrk_script
from bench.run import FULL_PLAN, _free_port, _say

MEMORY_SCRIPT: Final = Path(__file__).resolve().parent / "memory.lua"
README_START: Final = "<!-- memory:start -->"
README_END: Final = "<!-- memory:end -->"
SEGMENT_SECONDS: Final = 5.0
MAX_RSS_GROWTH: Final = 0.10


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    requests: int
    rss_mib: float


@click.command()
@click.option("--first", default=10_000, show_default=True, help="Requests before the first RSS.")
@click.option("--total", default=100_000, show_default=True, help="Requests before the second.")
@click.option("--readme/--no-readme", default=True, help="Write the figures into the README.")
def main(*, first: int, total: int, readme: bool) -> None:
    """gql_blog's RSS after FIRST and after TOTAL requests of a mixed load."""
    cores = sorted(os.sched_getaffinity(0))
    server_core, load_core = cores[0], cores[-1]
    with cluster.throwaway_cluster(port=_free_port(), core=load_core, say=_say) as db:
        dataset = datasets.prepare(
            db.url(datasets.DATABASE, driver="postgresql+asyncpg"), FULL_PLAN, say=_say
        )
        checkpoints, errors = asyncio.run(
            _soak(dataset, first=first, total=total, cores=(server_core, load_core))
        )
    growth = checkpoints[1].rss_mib / checkpoints[0].rss_mib - 1
    lines = [
        f"Run {report.now_utc()}: `{shlex.join(['python', '-m', 'bench.memory', *sys.argv[1:]])}`"
        f" on {os.cpu_count()} cores; gql_blog pinned to core {server_core}, wrk (16 "
        f"connections) and PostgreSQL to core {load_core}.",
        "",
        "| requests | gql_blog RSS MiB |",
        "|---:|---:|",
        *(f"| {point.requests:,} | {point.rss_mib:.1f} |" for point in checkpoints),
        "",
        f"Growth from the first to the second: {growth * 100:+.1f} % (issue 9: at most "
        f"{MAX_RSS_GROWTH * 100:.0f} %) — {'holds' if growth <= MAX_RSS_GROWTH else 'misses'}."
        f" Failed requests: {errors}.",
    ]
    click.echo("\n".join(lines))
    if readme:
        section = "\n" + "\n".join(lines) + "\n"
        report.replace_between(report.README_PATH, README_START, README_END, section)


async def _soak(
    dataset: datasets.Dataset, *, first: int, total: int, cores: tuple[int, int]
) -> tuple[list[Checkpoint], int]:
    server = next(s for s in servers.all_servers(Path(sys.executable)) if s.name == report.OURS)
    bodies = _bodies(dataset)
    log_path = report.RESULTS_DIR / "memory-server.log"
    async with servers.running(
        server, dataset=dataset, port=_free_port(), core=cores[0], log_path=log_path
    ) as running:
        done, errors, checkpoints = 0, 0, []
        for target in (first, total):
            while done < target:
                result = await _segment(running.base_url, bodies, dataset, core=cores[1])
                done += result.requests
                errors += result.errors
            rss = running.rss_kib()
            if rss is None:
                raise click.ClickException("gql_blog's process is gone")
            checkpoints.append(Checkpoint(requests=done, rss_mib=rss / 1024))
            _say(f"after {done:,} requests: RSS {rss / 1024:.1f} MiB")
    return checkpoints, errors


def _bodies(dataset: datasets.Dataset) -> dict[str, Path]:
    paths = {}
    for name, text, variables in (
        ("FEED", queries.FEED, {}),
        ("DEEP", queries.DEEP, {}),
        ("DETAIL", queries.DETAIL, {"id": queries.post_global_id(dataset.detail_post_id)}),
    ):
        path = report.RESULTS_DIR / f"memory-{name.lower()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({"query": text, "variables": variables}))
        paths[f"BENCH_{name}"] = path
    return paths


async def _segment(
    base_url: str, bodies: dict[str, Path], dataset: datasets.Dataset, *, core: int
) -> WrkResult:
    request = graphql_request("", {}, token=dataset.admin_token)
    return await run_wrk_script(
        base_url,
        MEMORY_SCRIPT,
        environment={
            **{name: str(path) for name, path in bodies.items()},
            "BENCH_AUTHORIZATION": request.headers.get("authorization", ""),
        },
        core=core,
        connections=16,
        seconds=SEGMENT_SECONDS,
    )


if __name__ == "__main__":
    main()
