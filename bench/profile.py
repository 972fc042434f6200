"""`python -m bench.profile` (`make bench-profile`): where gql_blog's CPU goes, planner off and on.

One gql_blog process (pinned to the server core) on a throwaway PostgreSQL cluster answers one
bench query under wrk; py-spy samples it for a few seconds, first with `GQL_BLOG_PLANNER=false`
(strawberry's executor for every request) and then with the planned read path. Each sample is
charged to the package of its innermost frame, so the table says how the process's time splits
between the event loop, HTTP, strawberry/graphql-core, SQLAlchemy, asyncpg and gql_blog itself.
"""

import asyncio
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Final

import click

from bench import cluster, datasets, queries, report, servers
from bench.load import graphql_request, run_wrk
from bench.run import FULL_PLAN, _free_port, _say

README_START: Final = "<!-- profile:start -->"
README_END: Final = "<!-- profile:end -->"
SAMPLE_SECONDS: Final = 8
QUERIES: Final = {"feed": queries.FEED, "deep": queries.DEEP, "detail": queries.DETAIL}
# Where a sample's innermost frame lives -> what the table calls it (first match wins).
CATEGORIES: Final = (
    ("gql_blog/plan/", "gql_blog planned path"),
    ("gql_blog/", "gql_blog (schema, loaders, app)"),
    ("strawberry/", "strawberry"),
    ("graphql/", "graphql-core"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg/", "asyncpg"),
    ("starlette/", "Starlette"),
    ("uvicorn/", "uvicorn"),
    ("asyncio/", "event loop (asyncio, uvloop)"),
    ("uvloop/", "event loop (asyncio, uvloop)"),
)


@click.command()
@click.option("--query", "names", multiple=True, default=("feed", "detail"), show_default=True)
@click.option("--readme/--no-readme", default=True, help="Write the table into the README.")
def main(*, names: tuple[str, ...], readme: bool) -> None:
    """Profile gql_blog with py-spy on each QUERY, with the planner off and on."""
    if shutil.which("py-spy", path=str(Path(sys.executable).parent)) is None:
        raise click.ClickException("py-spy is missing: `make bench-profile` installs it")
    cores = sorted(os.sched_getaffinity(0))
    with cluster.throwaway_cluster(port=_free_port(), core=cores[-1], say=_say) as db:
        dataset = datasets.prepare(
            db.url(datasets.DATABASE, driver="postgresql+asyncpg"), FULL_PLAN, say=_say
        )
        tables = [
            asyncio.run(_profile(name, dataset, cores=(cores[0], cores[-1]))) for name in names
        ]
    text = "\n\n".join(tables)
    click.echo(text)
    if readme:
        section = f"\nRun {report.now_utc()}: `python -m bench.profile`\n\n{text}\n"
        report.replace_between(report.README_PATH, README_START, README_END, section)


async def _profile(name: str, dataset: datasets.Dataset, *, cores: tuple[int, int]) -> str:
    server = next(s for s in servers.all_servers(Path(sys.executable)) if s.name == report.OURS)
    variables = queries.variables_for(name, "global", detail_post_id=dataset.detail_post_id)
    request = graphql_request(QUERIES[name], variables, token=dataset.admin_token)
    shares: dict[str, Counter[str]] = {}
    rates: dict[str, float] = {}
    for planner in ("false", "true"):
        async with servers.running(
            server,
            dataset=dataset,
            port=_free_port(),
            core=cores[0],
            log_path=report.RESULTS_DIR / f"profile-{name}-{planner}.log",
            extra_environment={"GQL_BLOG_PLANNER": planner},
        ) as running:
            body = report.RESULTS_DIR / f"profile-{name}.json"
            await run_wrk(
                running.base_url, request, body_path=body, core=cores[1], connections=16, seconds=2
            )
            load = asyncio.create_task(
                run_wrk(
                    running.base_url,
                    request,
                    body_path=body,
                    core=cores[1],
                    connections=16,
                    seconds=SAMPLE_SECONDS + 2,
                )
            )
            shares[planner] = await _sample(running.pid)
            rates[planner] = (await load).requests_per_second
    return _table(name, shares, rates)


async def _sample(pid: int) -> Counter[str]:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "samples.txt"
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "py-spy"),
            *("record", "--pid", str(pid), "--duration", str(SAMPLE_SECONDS), "--rate", "500"),
            *("--format", "raw", "--output", str(raw), "--nonblocking"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        counts: Counter[str] = Counter()
        for line in raw.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            counts[_category(stack.rsplit(";", 1)[-1])] += int(samples)
    return counts


def _category(frame: str) -> str:
    return next((label for where, label in CATEGORIES if where in frame), "other (C, stdlib)")


def _table(name: str, shares: dict[str, Counter[str]], rates: dict[str, float]) -> str:
    labels = [*dict.fromkeys(label for _, label in CATEGORIES), "other (C, stdlib)"]
    totals = {planner: sum(counts.values()) or 1 for planner, counts in shares.items()}
    rows = [
        f"| {label} | {shares['false'][label] / totals['false'] * 100:.1f} % "
        f"| {shares['true'][label] / totals['true'] * 100:.1f} % |"
        for label in labels
        if shares["false"][label] or shares["true"][label]
    ]
    return "\n".join(
        [
            f"**{name}** — samples by innermost frame (req/s while sampled: strawberry's executor "
            f"{rates['false']:.0f}, planned {rates['true']:.0f})",
            "",
            "| where the time goes | planner off | planner on |",
            "|---|---:|---:|",
            *rows,
        ]
    )


if __name__ == "__main__":
    main()
