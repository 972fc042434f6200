"""The figures: machine and versions, the tables, results/latest.json and bench/README.md."""

import os
import platform
import re
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import orjson

BENCH_DIR: Final = Path(__file__).resolve().parent
RESULTS_PATH: Final = BENCH_DIR / "results" / "latest.json"
README_PATH: Final = BENCH_DIR / "README.md"
README_START: Final = "<!-- results:start -->"
README_END: Final = "<!-- results:end -->"
MISSING: Final = "—"  # a server that does not answer the query
PACKAGES: Final = (
    "sqlalchemy",
    "strawberry-graphql",
    "graphql-core",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiodataloader",
    "aiosqlite",
    "asyncpg",
    "orjson",
    "httpx",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """One server answering one query on one database: statements per request and load figures."""

    dialect: str
    query: str
    server: str
    statements: int
    response_bytes: int
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    solo_p50_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """Everything one benchmark run records."""

    started_at: str
    command: str
    quick: bool
    concurrency: int
    seconds: float
    warmup_seconds: float
    solo_seconds: float
    machine: dict[str, Any]
    versions: dict[str, str]
    databases: dict[str, dict[str, Any]]
    cells: list[Cell]
    notes: list[str]


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo")
    meminfo = _read("/proc/meminfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    memory_kb = re.search(r"^MemTotal:\s*(\d+) kB$", meminfo, re.MULTILINE)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "ram_gib": round(int(memory_kb.group(1)) / 1024**2, 1) if memory_kb else None,
        "os": platform.platform(),
    }


def versions() -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "sqlite (python's sqlite3)": sqlite3.sqlite_version,
    }
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def write_json(run: Run) -> Path:
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_bytes(orjson.dumps(asdict(run), option=orjson.OPT_INDENT_2))
    return RESULTS_PATH


def cells_table(cells: list[Cell]) -> str:
    """Every cell, as a Markdown table; "—" rows for a server that does not answer a query."""
    by_key = {(cell.dialect, cell.query, cell.server): cell for cell in cells}
    lines = [
        "| database | query | server | SQL statements / request | req/s | p50 ms | p99 ms "
        "| requests | errors | p50 ms, 1 client |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dialect, server, query in _grid(cells):
        cell = by_key.get((dialect, query, server))
        if cell is None:
            lines.append(_row(dialect, query, server, *[MISSING] * 7))
            continue
        lines.append(
            f"| {cell.dialect} | {cell.query} | {cell.server} | {cell.statements} "
            f"| {cell.requests_per_second:,.1f} | {cell.p50_ms:,.1f} | {cell.p99_ms:,.1f} "
            f"| {cell.requests:,} | {cell.errors} | {cell.solo_p50_ms:,.1f} |"
        )
    return "\n".join(lines)


def ratios_table(cells: list[Cell]) -> str:
    """gql_blog against naive for each database and query; "—" where naive does not answer."""
    by_key = {(cell.dialect, cell.query, cell.server): cell for cell in cells}
    lines = [
        "| database | query | statements gql_blog / naive | req/s gql_blog ÷ naive "
        "| p50 naive ÷ gql_blog | p99 naive ÷ gql_blog | 1-client p50 naive ÷ gql_blog |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    pairs = dict.fromkeys((cell.dialect, cell.query) for cell in cells)
    for dialect, query in pairs:
        ours = by_key.get((dialect, query, "gql_blog"))
        naive = by_key.get((dialect, query, "naive"))
        if ours is None or naive is None:
            statements = [
                MISSING if cell is None else str(cell.statements) for cell in (ours, naive)
            ]
            lines.append(_row(dialect, query, " / ".join(statements), *[MISSING] * 4))
            continue
        lines.append(
            f"| {dialect} | {query} | {ours.statements} / {naive.statements} "
            f"| {_ratio(ours.requests_per_second, naive.requests_per_second)} "
            f"| {_ratio(naive.p50_ms, ours.p50_ms)} | {_ratio(naive.p99_ms, ours.p99_ms)} "
            f"| {_ratio(naive.solo_p50_ms, ours.solo_p50_ms)} |"
        )
    return "\n".join(lines)


def _row(*values: str) -> str:
    return f"| {' | '.join(values)} |"


def _grid(cells: list[Cell]) -> list[tuple[str, str, str]]:
    """Every (database, server, query) the cells name, each in the order first seen."""
    dialects = dict.fromkeys(cell.dialect for cell in cells)
    servers = dict.fromkeys(cell.server for cell in cells)
    queries = dict.fromkeys(cell.query for cell in cells)
    return [
        (dialect, server, query) for dialect in dialects for server in servers for query in queries
    ]


def _loads(averages: list[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in averages)


def _ratio(numerator: float, denominator: float) -> str:
    if not denominator or denominator != denominator or numerator != numerator:
        return "n/a"
    return f"{numerator / denominator:.1f}x"


def results_section(run: Run) -> str:
    """The generated part of bench/README.md: figures, machine, versions, data and command."""
    machine_line = (
        f"{run.machine['nproc']} CPUs ({run.machine['cpu_model']}), "
        f"{run.machine['ram_gib']} GiB RAM, {run.machine['os']}; load average (1, 5, 15 min) "
        f"{_loads(run.machine['load_average_start'])} at the start, "
        f"{_loads(run.machine['load_average_end'])} at the end"
    )
    version_line = ", ".join(f"{name} {version}" for name, version in run.versions.items())
    database_lines = [
        f"- **{dialect}** {info['server_version']}: {info['users']:,} users, {info['posts']:,} "
        f"posts ({info['published_posts']:,} published), {info['comments']:,} comments, "
        f"{info['tags']} tags, {info['post_tags']:,} post-tag links"
        for dialect, info in run.databases.items()
    ]
    parts = [
        README_START,
        f"Run of {run.started_at}: {run.concurrency} concurrent clients for {run.seconds:g} s per "
        f"cell after {run.warmup_seconds:g} s of warm-up and {run.solo_seconds:g} s of one "
        "client alone; one uvicorn worker per server.",
        "",
        cells_table(run.cells),
        "",
        ratios_table(run.cells),
        "",
        f"- **Command:** `{run.command}`",
        f"- **Machine:** {machine_line}",
        f"- **Versions:** {version_line}",
        *database_lines,
        *(f"- {note}" for note in run.notes),
        README_END,
    ]
    return "\n".join(parts)


def update_readme(run: Run) -> Path:
    """Replace the generated section of bench/README.md (between its markers) with this run's."""
    current = README_PATH.read_text(encoding="utf-8")
    start, end = current.find(README_START), current.find(README_END)
    if start < 0 or end < start:
        raise RuntimeError(f"{README_PATH} lacks the {README_START} … {README_END} markers")
    updated = current[:start] + results_section(run) + current[end + len(README_END) :]
    README_PATH.write_text(updated, encoding="utf-8")
    return README_PATH
