"""The figures: one table per query, issue 9's must-targets, results/latest.json, the README.

Ratios are within this run only: "x floor" is a server's req/s over the floor's on the same
query, and the line under each table gives gql_blog's req/s over graphene-sqlalchemy's.
"""

import math
import os
import platform
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from bench.queries import LARGE_FEED, OWN_NAMES
from bench.servers import PLANNER_OFF

BENCH_DIR: Final = Path(__file__).resolve().parent
RESULTS_DIR: Final = BENCH_DIR / "results"
README_PATH: Final = BENCH_DIR / "README.md"
README_START: Final = "<!-- results:start -->"
README_END: Final = "<!-- results:end -->"
FLOOR: Final = "floor"
OURS: Final = "gql_blog"
GRAPHENE: Final = "graphene-sqlalchemy"
POSTGRAPHILE: Final = "postgraphile"
# Issue 16's targets: each read at least this share of PostGraphile 5 and of the floor; each
# write at least this share of PostGraphile 5's.
MIN_READ_TIMES_POSTGRAPHILE: Final = 1.0
MIN_READ_SHARE_OF_FLOOR: Final = 0.75
MIN_WRITE_TIMES_POSTGRAPHILE: Final = {"add_comment": 0.5, "create_post": 0.35}
# Issue 16: each planned read at least this many times its rate with the planner off, except
# where the database is the bottleneck (search, groups: measured, not held to it).
MIN_TIMES_PLANNER_OFF: Final = 2.0
# Issue 16: gql_blog's feed on the 10x data set at least this share of its rate on the usual.
MIN_LARGE_FEED_SHARE: Final = 0.8
DATABASE_BOUND: Final = ("search", "post_groups")
WRITES: Final = ("add_comment", "create_post")

# Issue 9's must-targets for gql_blog, on each query.
MIN_SHARE_OF_FLOOR: Final = 0.25
MIN_TIMES_GRAPHENE: Final = 10.0
MAX_P99_OVER_P50: Final = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """One server under load on one query."""

    query: str
    server: str
    selects_per_request: float
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    rss_mib: float | None
    # Shares of the timed stretch the server's core, and the core of PostgreSQL and wrk, were
    # busy (/proc/stat): which side a cell's rate is bound by.
    server_core_busy: float | None = None
    load_core_busy: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """Everything one benchmark run records."""

    started_at: str
    finished_at: str
    command: str
    quick: bool
    connections: int
    seconds: float
    warmup_seconds: float
    cores: dict[str, int]
    machine: dict[str, Any]
    versions: dict[str, str]
    data: dict[str, Any]
    cells: list[Cell]
    skipped: dict[str, str]


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    meminfo = _read("/proc/meminfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    memory_kb = re.search(r"^MemTotal:\s*(\d+) kB$", meminfo, re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "ram_gib": round(int(memory_kb.group(1)) / 1024**2, 1) if memory_kb else None,
        "os": platform.platform(),
        "load_average": os.getloadavg(),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def write_json(run: Run) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "latest.json"
    path.write_bytes(orjson.dumps(asdict(run), option=orjson.OPT_INDENT_2))
    return path


def _ratio(numerator: float, denominator: float) -> str:
    if not denominator or math.isnan(numerator) or math.isnan(denominator):
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def _selects(value: float) -> str:
    return f"{value:.0f}" if value == round(value) else f"{value:.1f}"


def _busy(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _rss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def query_table(cells: list[Cell], query: str) -> str:
    """One query's table: every server, its SELECTs, throughput, latency, RSS and x floor."""
    rows = [cell for cell in cells if cell.query == query]
    floor = next((cell for cell in rows if cell.server == FLOOR), None)
    floor_rps = floor.requests_per_second if floor else math.nan
    lines = [
        f"**{query}**",
        "",
        "| server | SELECTs / request | req/s | p50 ms | p99 ms | RSS MiB | x floor | requests "
        "| server core busy | database + wrk core busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in rows:
        if not cell.requests:
            lines.append(
                f"| {cell.server} | {_selects(cell.selects_per_request)} | 0 "
                "| n/a | n/a | n/a | n/a | 0 | n/a | n/a |"
            )
            continue
        lines.append(
            f"| {cell.server} | {_selects(cell.selects_per_request)} "
            f"| {cell.requests_per_second:,.1f} | {cell.p50_ms:,.1f} | {cell.p99_ms:,.1f} "
            f"| {_rss(cell.rss_mib)} | {_ratio(cell.requests_per_second, floor_rps)} "
            f"| {cell.requests:,} | {_busy(cell.server_core_busy)} "
            f"| {_busy(cell.load_core_busy)} |"
        )
    ours = _find(rows, OURS)
    graphene = _find(rows, GRAPHENE)
    if ours and graphene:
        lines += [
            "",
            f"gql_blog ÷ graphene-sqlalchemy (req/s): "
            f"{_ratio(ours.requests_per_second, graphene.requests_per_second)}",
        ]
    return "\n".join(lines)


def _find(cells: list[Cell], server: str) -> Cell | None:
    return next((cell for cell in cells if cell.server == server), None)


def targets(cells: list[Cell], queries: tuple[str, ...]) -> list[str]:
    """Issue 9's must-targets for gql_blog, one line per query: each figure and whether it holds."""
    lines = []
    for query in queries:
        rows = [cell for cell in cells if cell.query == query]
        ours, floor, graphene = _find(rows, OURS), _find(rows, FLOOR), _find(rows, GRAPHENE)
        if ours is None or floor is None or graphene is None:
            lines.append(f"- {query}: not measured (gql_blog, the floor and graphene all needed)")
            continue
        share = ours.requests_per_second / floor.requests_per_second
        times = ours.requests_per_second / graphene.requests_per_second
        spread = ours.p99_ms / ours.p50_ms
        checks = [
            _check(f"{share:.2f}x the floor (≥ {MIN_SHARE_OF_FLOOR})", share >= MIN_SHARE_OF_FLOOR),
            _check(
                f"{times:.2f}x graphene (≥ {MIN_TIMES_GRAPHENE:g})", times >= MIN_TIMES_GRAPHENE
            ),
            _check(f"p99 = {spread:.2f}x p50 (≤ {MAX_P99_OVER_P50:g})", spread <= MAX_P99_OVER_P50),
        ]
        lines.append(f"- {query}: " + "; ".join(checks))
    return lines


def postgraphile_targets(
    cells: list[Cell], reads: tuple[str, ...], writes: tuple[str, ...]
) -> list[str]:
    """Issue 16's targets for gql_blog, one line per operation."""
    lines = []
    for query in (*reads, *writes):
        rows = [cell for cell in cells if cell.query == query]
        ours, rival, floor = _find(rows, OURS), _find(rows, POSTGRAPHILE), _find(rows, FLOOR)
        if ours is None or rival is None or not rival.requests_per_second:
            lines.append(f"- {query}: not measured (gql_blog and PostGraphile 5 both needed)")
            continue
        times = ours.requests_per_second / rival.requests_per_second
        least = MIN_WRITE_TIMES_POSTGRAPHILE.get(query, MIN_READ_TIMES_POSTGRAPHILE)
        checks = [_check(f"{times:.2f}x PostGraphile 5 (≥ {least:g})", times >= least)]
        if query in reads and floor is not None and floor.requests_per_second:
            share = ours.requests_per_second / floor.requests_per_second
            bound = MIN_READ_SHARE_OF_FLOOR
            checks.append(_check(f"{share:.2f}x the floor (≥ {bound:g})", share >= bound))
        lines.append(f"- {query}: " + "; ".join(checks))
    return lines


def planner_table(cells: list[Cell], operations: tuple[str, ...]) -> str:
    """gql_blog with the planner on and off, per operation, with issue 16's targets: every read
    2x its rate with the planner off (search and groups, database-bound, are measured only),
    createPost 0.35x PostGraphile 5's createComment."""
    lines = [
        "**gql_blog with the planner on and off**",
        "",
        "| operation | SELECTs on / off | req/s on | req/s off | on ÷ off | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    rival_writes = _find([cell for cell in cells if cell.query == "add_comment"], POSTGRAPHILE)
    for operation in operations:
        rows = [cell for cell in cells if cell.query == operation]
        on, off = _find(rows, OURS), _find(rows, PLANNER_OFF)
        if on is None or off is None:
            continue
        lines.append(
            f"| {operation} | {_selects(on.selects_per_request)} / "
            f"{_selects(off.selects_per_request)} | {on.requests_per_second:,.1f} "
            f"| {off.requests_per_second:,.1f} "
            f"| {_ratio(on.requests_per_second, off.requests_per_second)} "
            f"| {_planner_target(operation, on, off, rival_writes)} |"
        )
    if len(lines) == 4:
        return f"(gql_blog with the planner off was not measured: no {PLANNER_OFF} cells)"
    return "\n".join(lines)


def large_feed_target(cells: list[Cell], large_feed: str) -> str | None:
    """Issue 16's target for the 10x data set: gql_blog's feed within 20 % of its usual rate;
    None when the run did not measure it."""
    usual = _find([cell for cell in cells if cell.query == "feed"], OURS)
    large = _find([cell for cell in cells if cell.query == large_feed], OURS)
    if usual is None or large is None or not usual.requests_per_second:
        return None
    share = large.requests_per_second / usual.requests_per_second
    return f"- feed on the 10x data set: {large.requests_per_second:,.1f} req/s, " + _check(
        f"{share:.2f}x its rate on the usual set (≥ {MIN_LARGE_FEED_SHARE:g})",
        share >= MIN_LARGE_FEED_SHARE,
    )


def _planner_target(operation: str, on: Cell, off: Cell, rival_writes: Cell | None) -> str:
    if operation == "create_post":
        if rival_writes is None or not rival_writes.requests_per_second:
            return "not measured (PostGraphile 5's createComment needed)"
        share = on.requests_per_second / rival_writes.requests_per_second
        least = MIN_WRITE_TIMES_POSTGRAPHILE["create_post"]
        return _check(f"{share:.2f}x PostGraphile 5's createComment (≥ {least:g})", share >= least)
    if operation in DATABASE_BOUND or operation in WRITES or not off.requests_per_second:
        return "measured"
    times = on.requests_per_second / off.requests_per_second
    return _check(f"≥ {MIN_TIMES_PLANNER_OFF:g}x", times >= MIN_TIMES_PLANNER_OFF)


def _check(text: str, holds: bool) -> str:
    return f"{text} {'holds' if holds else '**misses**'}"


def results_section(run: Run, queries: tuple[str, ...], writes: tuple[str, ...] = ()) -> str:
    """The generated part of bench/README.md."""
    info = run.machine
    load = " / ".join(f"{value:.2f}" for value in info["load_average"])
    data = run.data
    parts = [
        README_START,
        f"Run of {run.started_at} to {run.finished_at}: wrk with {run.connections} connections, "
        f"at least {run.warmup_seconds:g} s of warm-up then {run.seconds:g} s measured per cell "
        "(longer for slow cells, see above); each "
        f"server one process on core {run.cores['server']}, wrk and PostgreSQL on core "
        f"{run.cores['load']}.",
        "",
    ]
    for query in (*queries, *writes):
        parts += [query_table(run.cells, query), ""]
    parts += [planner_table(run.cells, (*queries, *writes, *OWN_NAMES)), ""]
    if line := large_feed_target(run.cells, LARGE_FEED):
        parts += [line, ""]
    parts += [
        "Issue 9's must-targets for gql_blog:",
        "",
        *targets(run.cells, queries),
        "",
        "Issue 16's targets for gql_blog:",
        "",
        *postgraphile_targets(run.cells, queries, writes),
        "",
        f"- **Command:** `{run.command}`",
        f"- **Machine:** {info['nproc']} CPUs ({info['cpu_model']}), {info['ram_gib']} GiB RAM, "
        f"{info['os']}; load average (1, 5, 15 min) at the end {load}",
        "- **Versions:** " + ", ".join(f"{name} {value}" for name, value in run.versions.items()),
        f"- **Data:** `{data['seed']}`: {data['users']:,} users, {data['posts']:,} posts "
        f"({data['published_posts']:,} published), {data['comments']:,} comments, "
        f"{data['tags']} tags, {data['post_tags']:,} post-tag links; the detail post is "
        f"{data['detail_post_id']} ({data['detail_comments']} comments)",
        *(f"- **Not measured:** {name}: {why}" for name, why in run.skipped.items()),
        README_END,
    ]
    return "\n".join(parts)


def update_readme(run: Run, queries: tuple[str, ...], writes: tuple[str, ...] = ()) -> Path:
    """Replace the generated section of bench/README.md (between its markers) with this run's."""
    section = results_section(run, queries, writes)
    inner = section.removeprefix(README_START).removesuffix(README_END)
    replace_between(README_PATH, README_START, README_END, inner)
    return README_PATH


def replace_between(path: Path, start_marker: str, end_marker: str, text: str) -> None:
    """Put `text` between the two markers of the file at `path` (both must be there)."""
    current = path.read_text(encoding="utf-8")
    start, end = current.find(start_marker), current.find(end_marker)
    if start < 0 or end < start:
        raise RuntimeError(f"{path} lacks the {start_marker} … {end_marker} markers")
    updated = current[: start + len(start_marker)] + text + current[end:]
    path.write_text(updated, encoding="utf-8")
