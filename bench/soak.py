"""`python -m bench.soak` (`bench/soak`, `make soak`): gql_blog under sustained mixed load.

Issue #12, item 1. One run:

1. A throwaway PostgreSQL cluster pinned to the load core (bench/cluster.py), seeded
   (bench/datasets.py); sign-in tokens and ids for the workload (bench/workload.py).
2. `gql-blog serve --workers 2` pinned to the server core (the bench's pool: 20 connections per
   worker, no overflow), so events cross processes through LISTEN/NOTIFY.
3. Subscribers (bench/subscribers.py), in this process, spread evenly over the two workers:
   each has `postPublished` and `commentAdded` on 4 of the 16 posts wrk comments on. A probe
   (one published post, one comment on each of the 16) must reach every one of them before the
   load starts, so all of them listen from the first request on.
4. wrk (bench/soak.lua) on the load core, 2 threads: 80 % reads, 15 % addComment, 5 %
   createPost with new tags, for --seconds, while each worker's RSS is sampled.
5. Every event of an acknowledged write must then reach every subscriber that watches it (a
   bounded wait); /metrics gives the pool's waits; the server stops; every acknowledged write is
   looked up in the database.
6. The checks, and the figures; a full run (5 minutes or more) that passes writes them into
   bench/README.md. Any failed check exits with status 1.
"""

import asyncio
import contextlib
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import click
import httpx

from bench import cluster, datasets, load, outcome, report, scrape, servers, subscribers, workers
from bench import workload as workloads
from bench.outcome import AckedComment, AckedPost, Outcome
from bench.run import _free_port, _interrupt_on_sigterm, _say, require_tools
from gql_blog.ids import encode_global_id

SEED_PLAN: Final = datasets.SeedPlan(users=500, posts_per_user=10, comments_per_post=5)
SHAPE: Final = workloads.Shape()
WORKERS: Final = 2
WRK_THREADS: Final = 2
WATCHED_PER_SUBSCRIBER: Final = 4
POOL_HEADROOM: Final = 8
# The cluster's connections not for the pools: each worker's LISTEN, the soak's own lookups.
RESERVED_CONNECTIONS: Final = 10
PROBE_SECONDS: Final = 30.0
DELIVERY_SECONDS: Final = 60.0
STARTUP_SECONDS: Final = 60.0
REQUEST_SECONDS: Final = 30.0
# Issue #12: each worker's RSS within 10 % between minute 1 and minute 5 of a 5-minute run.
FULL_SECONDS: Final = 300
MAX_RSS_GROWTH: Final = 0.10
SCRIPT: Final = Path(__file__).resolve().parent / "soak.lua"
FOLDER: Final = report.RESULTS_DIR / "soak"
README_START: Final = "<!-- soak:start -->"
README_END: Final = "<!-- soak:end -->"


class SoakError(click.ClickException):
    """The soak could not run to its checks (the server, the subscribers or the probe failed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    seconds: int
    connections: int
    subscribers: int
    server_core: int
    load_core: int

    @property
    def is_full(self) -> bool:
        return self.seconds >= FULL_SECONDS

    @property
    def pool_size(self) -> int:
        """Connections per worker: one for each request and each subscription's delivery it
        may have at once, if it got half of each, and a few more for an uneven split (the
        kernel hands a connection to whichever worker accepts first). Checkouts then wait
        little, and never out the pool timeout (a 503)."""
        subscriptions = self.subscribers * (1 + WATCHED_PER_SUBSCRIBER)
        return -(-self.connections // WORKERS) + -(-subscriptions // WORKERS) + POOL_HEADROOM

    @property
    def read_pool_size(self) -> int:
        """The planned reads' connections per worker (PostgreSQL's read pool): one for each
        request of its half of the connections. A read holds one for a few milliseconds, so an
        uneven split only makes a few wait briefly."""
        return -(-self.connections // WORKERS)

    @property
    def rss_interval(self) -> float:
        return max(1.0, min(5.0, self.seconds / 20))


@dataclass(slots=True, kw_only=True)
class Soaked:
    """Everything the run saw, before it is judged."""

    wrk: load.WrkResult
    outcome: Outcome
    probes: Outcome
    rss: dict[int, list[tuple[float, int]]]
    server: scrape.ServerFigures
    subscribers: list[subscribers.Subscriber]
    comment_rows: dict[int, tuple[int, str]] = field(default_factory=dict)
    post_rows: dict[int, tuple[str, bool, list[str]]] = field(default_factory=dict)
    new_tags: int = 0

    @property
    def comments(self) -> list[AckedComment]:
        return self.probes.comments + self.outcome.comments

    @property
    def posts(self) -> list[AckedPost]:
        return self.probes.posts + self.outcome.posts


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    holds: bool
    detail: str


@click.command()
@click.option(
    "--seconds",
    default=FULL_SECONDS,
    show_default=True,
    type=click.IntRange(min=4),
    help="How long wrk runs; the RSS check applies from 300 s on.",
)
@click.option("--connections", default=64, show_default=True, type=click.IntRange(min=WRK_THREADS))
@click.option(
    "--subscribers",
    "subscriber_count",
    default=8,
    show_default=True,
    type=click.IntRange(min=WORKERS),
    help="Websocket subscribers, spread evenly over the two workers.",
)
@click.option(
    "--readme/--no-readme",
    default=None,
    help="Write the figures into bench/README.md. [default: for a full run that passes]",
)
def main(*, seconds: int, connections: int, subscriber_count: int, readme: bool | None) -> None:
    """gql_blog with two workers on PostgreSQL under a mixed load, with subscribers listening."""
    _interrupt_on_sigterm()
    require_tools()
    cores = sorted(os.sched_getaffinity(0))
    settings = Settings(
        seconds=seconds,
        connections=connections,
        subscribers=subscriber_count,
        server_core=cores[0],
        load_core=cores[-1],
    )
    budget = int(cluster.SETTINGS["max_connections"]) - RESERVED_CONNECTIONS
    per_worker = settings.pool_size + settings.read_pool_size
    if per_worker * WORKERS > budget:
        raise click.BadParameter(
            f"{connections} connections need {per_worker} pooled connections per worker"
            f", more than the cluster's max_connections allows ({budget} for {WORKERS} workers)",
            param_hint="--connections",
        )
    started_at = report.now_utc()
    with cluster.throwaway_cluster(port=_free_port(), core=settings.load_core, say=_say) as db:
        dataset = datasets.prepare(
            db.url(datasets.DATABASE, driver="postgresql+asyncpg"), SEED_PLAN, say=_say
        )
        # The subscribers run here, beside wrk and PostgreSQL: the server core is the server's.
        os.sched_setaffinity(0, {settings.load_core})
        soaked = asyncio.run(_soak(dataset, settings))
    checks = judge(soaked, settings)
    lines = describe(soaked, checks, settings, started_at=started_at)
    click.echo("\n".join(lines))
    failed = [check.name for check in checks if not check.holds]
    if failed:
        raise click.ClickException(
            f"the soak failed: {'; '.join(failed)} (bench/README.md left as it was)"
        )
    if readme if readme is not None else settings.is_full:
        section = "\n" + "\n".join(lines) + "\n"
        report.replace_between(report.README_PATH, README_START, README_END, section)
        _say(f"updated {report.README_PATH}")


async def _soak(dataset: datasets.Dataset, settings: Settings) -> Soaked:
    work = await workloads.prepare(dataset.url, SHAPE, folder=FOLDER)
    server = servers.gql_blog_serve(Path(sys.executable), workers=WORKERS)
    port = _free_port()
    log_path = FOLDER / "server.log"
    async with servers.running(
        server,
        dataset=dataset,
        port=port,
        core=settings.server_core,
        log_path=log_path,
        extra_environment={
            "GQL_BLOG_POOL_SIZE": str(settings.pool_size),
            "GQL_BLOG_READ_POOL_SIZE": str(settings.read_pool_size),
            # Latency is reported, not judged: a request fails only when wrk gives up on it.
            "GQL_BLOG_REQUEST_TIMEOUT_SECONDS": str(load.WRK_TIMEOUT_SECONDS),
        },
    ) as live:
        pids = await _started_workers(live, log_path)
        plan = subscribers.Plan(
            count=settings.subscribers,
            comment_posts=work.comment_posts,
            watched_per_subscriber=WATCHED_PER_SUBSCRIBER,
            tokens=work.subscriber_tokens,
        )
        address = live.base_url.removeprefix("http://")
        group = await subscribers.open_subscribers(
            address, plan, server_port=port, worker_pids=pids
        )
        _say(f"soak: {len(group.members)} subscribers, {WORKERS} workers ({pids})")
        try:
            soaked = await _load(live, work, group, pids, settings)
        finally:
            await group.close()
    await _look_up(dataset.url, soaked, run=work.run)
    return soaked


async def _load(
    live: servers.Running,
    work: workloads.Workload,
    group: subscribers.Subscribers,
    pids: list[int],
    settings: Settings,
) -> Soaked:
    probes = await _probe(live.base_url, work)
    if not await group.wait_until(_all_delivered(group, probes), seconds=PROBE_SECONDS):
        raise SoakError(
            f"the probe's events did not reach every subscriber within {PROBE_SECONDS:.0f} s: "
            f"{_problems(group.members) or 'no problem reported'}"
        )
    _say(f"soak: every subscriber listens; wrk for {settings.seconds} s")
    stop = asyncio.Event()
    sampling = asyncio.create_task(_sample_rss(pids, settings.rss_interval, stop))
    outcome_path = FOLDER / "outcome.txt"
    outcome_path.unlink(missing_ok=True)
    try:
        result = await load.run_wrk_script(
            live.base_url,
            SCRIPT,
            environment=work.environment | {"SOAK_OUTCOME": str(outcome_path)},
            core=settings.load_core,
            connections=settings.connections,
            seconds=settings.seconds,
            threads=WRK_THREADS,
        )
    finally:
        stop.set()
        rss = await sampling
    acknowledged = await asyncio.to_thread(outcome.read_outcome, outcome_path)
    everything = Outcome(
        comments=probes.comments + acknowledged.comments, posts=probes.posts + acknowledged.posts
    )
    _say(f"soak: wrk done ({result.requests:,} requests); waiting for the last events")
    # Whatever is still missing then is missing: the delivery check says how much.
    await group.wait_until(_all_delivered(group, everything), seconds=DELIVERY_SECONDS)
    async with httpx.AsyncClient(base_url=live.base_url, timeout=REQUEST_SECONDS) as client:
        metrics_text = (await client.get("/metrics")).text
    return Soaked(
        wrk=result,
        outcome=acknowledged,
        probes=probes,
        rss=rss,
        server=scrape.read_metrics(metrics_text),
        subscribers=group.members,
    )


async def _started_workers(live: servers.Running, log_path: Path) -> list[int]:
    """The workers' pids, once every one of them has started its app (its log says so)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        pids = workers.worker_pids(live.pid)
        if text.count("Application startup complete") >= WORKERS and len(pids) == WORKERS:
            return pids
        await asyncio.sleep(0.1)
    raise SoakError(f"the server's {WORKERS} workers did not all start; see {log_path}")


async def _probe(base_url: str, work: workloads.Workload) -> Outcome:
    """One published post and one comment on each watched post, through the API."""
    headers = {"authorization": f"Bearer {work.tokens[0]}"}
    title = work.probe_title()
    probes = Outcome()
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=REQUEST_SECONDS
    ) as client:
        post_input = {
            "title": title,
            "content": "The soak's probe.",
            "published": True,
            "tags": workloads.tags_of(title),
        }
        post = await _mutate(client, workloads.CREATE_POST, "createPost", post_input, "Post")
        probes.posts.append(outcome.acked_post(post["id"], published=True, title=title))
        for number, post_id in enumerate(work.comment_posts):
            comment_input = {
                "postId": encode_global_id("Post", post_id),
                "content": f"soak {work.run} probe {number}",
            }
            comment = await _mutate(
                client, workloads.ADD_COMMENT, "addComment", comment_input, "Comment"
            )
            probes.comments.append(
                outcome.acked_comment(comment["id"], comment["post"]["id"], comment["content"])
            )
    return probes


async def _mutate(
    client: httpx.AsyncClient, query: str, field_name: str, value: dict[str, Any], typename: str
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": {"input": value}})
    body = response.json() if response.status_code == 200 else {}
    result = (body.get("data") or {}).get(field_name) or {}
    if body.get("errors") or result.get("__typename") != typename:
        raise SoakError(
            f"the probe's {field_name} failed ({response.status_code}): {response.text}"
        )
    found: dict[str, Any] = result
    return found


def _expected(
    subscriber: subscribers.Subscriber, posts: list[AckedPost], comments: list[AckedComment]
) -> tuple[set[int], set[int]]:
    """The posts and comments whose events `subscriber` must get: every published post, and
    every comment on a post it watches."""
    watched = set(subscriber.watched.values())
    return (
        {post.id for post in posts if post.published},
        {comment.id for comment in comments if comment.post_id in watched},
    )


def _all_delivered(group: subscribers.Subscribers, acked: Outcome) -> Callable[[], bool]:
    wanted = [(member, *_expected(member, acked.posts, acked.comments)) for member in group.members]

    def done() -> bool:
        return all(
            posts <= member.posts and comments <= member.comments.keys()
            for member, posts, comments in wanted
        )

    return done


async def _sample_rss(
    pids: list[int], interval: float, stop: asyncio.Event
) -> dict[int, list[tuple[float, int]]]:
    """(seconds since the start, VmRSS KiB) of each worker, every `interval` until `stop`."""
    started = time.monotonic()
    samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in pids}
    while not stop.is_set():
        for pid in pids:
            rss = workers.rss_kib(pid)
            if rss is not None:
                samples[pid].append((time.monotonic() - started, rss))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return samples


async def _look_up(database_url: str, soaked: Soaked, *, run: str) -> None:
    """The rows of every acknowledged or delivered write, as the database has them now."""
    comment_ids = {comment.id for comment in soaked.comments}
    post_ids = {post.id for post in soaked.posts}
    for member in soaked.subscribers:
        comment_ids |= member.comments.keys()
        post_ids |= member.posts
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        comments = await connection.fetch(
            "select id, post_id, content from comments where id = any($1::int[])",
            sorted(comment_ids),
        )
        posts = await connection.fetch(
            "select p.id, p.title, p.published,"
            " coalesce(array_agg(t.name order by t.name) filter (where t.id is not null), '{}')"
            " as tags from posts p left join post_tags pt on pt.post_id = p.id"
            " left join tags t on t.id = pt.tag_id where p.id = any($1::int[]) group by p.id",
            sorted(post_ids),
        )
        soaked.new_tags = await connection.fetchval(
            "select count(*) from tags where starts_with(name, $1)", f"{run}-"
        )
    finally:
        await connection.close()
    soaked.comment_rows = {row["id"]: (row["post_id"], row["content"]) for row in comments}
    soaked.post_rows = {
        row["id"]: (row["title"], row["published"], list(row["tags"])) for row in posts
    }


def rss_growth(samples: list[tuple[float, int]], seconds: float) -> tuple[float, float, float]:
    """The median RSS (KiB) in the first and in the last fifth of the run, and the growth."""
    window = seconds / 5
    first = [rss for at, rss in samples if at < window]
    last = [rss for at, rss in samples if at >= seconds - window]
    if not first or not last:
        raise ValueError(f"too few RSS samples ({len(samples)}) for a {seconds:.0f} s run")
    start, end = statistics.median(first), statistics.median(last)
    return start, end, end / start - 1


def _problems(members: list[subscribers.Subscriber]) -> str:
    return "; ".join(
        f"subscriber {member.number}: {problem}"
        for member in members
        for problem in member.problems[:3]
    )


def judge(soaked: Soaked, settings: Settings) -> list[Check]:
    """Every check of issue #12's soak, each with what it found."""
    return [
        _no_failed_requests(soaked),
        _only_expected_typed_results(soaked),
        _writes_present(soaked),
        _events_delivered(soaked),
        _subscribers_healthy(soaked),
        _rss_steady(soaked, settings),
    ]


def _no_failed_requests(soaked: Soaked) -> Check:
    failed = sum(soaked.outcome.failed.values())
    detail = f"{soaked.wrk.errors} socket errors, timeouts or non-2xx; {failed} bad answers"
    if soaked.outcome.failed:
        detail += f" ({dict(soaked.outcome.failed)}; e.g. {soaked.outcome.samples[:2]})"
    timeouts = soaked.server.pool.timeouts
    return Check(
        "0 failed requests",
        soaked.wrk.errors == 0 and failed == 0 and timeouts == 0,
        f"{detail}; {timeouts} pool timeouts",
    )


def _only_expected_typed_results(soaked: Soaked) -> Check:
    blank_sent = soaked.outcome.sent["blank_comment"]
    blank_answered = soaked.outcome.answered["blank_comment"]
    answered = sum(soaked.outcome.answered.values()) + sum(soaked.outcome.failed.values())
    return Check(
        "0 errors but the expected typed results",
        blank_answered <= blank_sent and answered == soaked.wrk.requests,
        f"{blank_answered} ValidationErrors for {blank_sent} blank comments sent; "
        f"{answered:,} answers sorted of {soaked.wrk.requests:,} wrk counted",
    )


def _writes_present(soaked: Soaked) -> Check:
    comments = [
        comment
        for comment in soaked.comments
        if soaked.comment_rows.get(comment.id) == (comment.post_id, comment.content)
    ]
    posts = [
        post
        for post in soaked.posts
        if soaked.post_rows.get(post.id)
        == (post.title, post.published, workloads.tags_of(post.title))
    ]
    missing = [c.id for c in soaked.comments if c not in comments]
    missing += [p.id for p in soaked.posts if p not in posts]
    return Check(
        "every acknowledged write is in the database",
        not missing,
        f"comments {len(comments):,} of {len(soaked.comments):,}, posts with their two new tags "
        f"{len(posts):,} of {len(soaked.posts):,}"
        + (f"; missing {missing[:10]}" if missing else ""),
    )


def deliveries(soaked: Soaked) -> tuple[int, int, int, list[str]]:
    """Events due, due and delivered, delivered beyond those due, and what should not be."""
    due = delivered = extra = 0
    wrong: list[str] = []
    drafts = {post.id for post in soaked.posts if not post.published}
    for member in soaked.subscribers:
        posts, comments = _expected(member, soaked.posts, soaked.comments)
        due += len(posts) + len(comments)
        delivered += len(posts & member.posts) + len(comments & member.comments.keys())
        extra += len(member.posts - posts) + len(member.comments.keys() - comments)
        wrong += [f"draft {post_id}" for post_id in member.posts & drafts]
        wrong += [
            f"post {post_id}"
            for post_id in member.posts
            if soaked.post_rows.get(post_id, ("", False))[1] is not True
        ]
        wrong += [
            f"comment {comment_id}"
            for comment_id, post_id in member.comments.items()
            if soaked.comment_rows.get(comment_id, (None,))[0] != post_id
        ]
    return due, delivered, extra, wrong


def _events_delivered(soaked: Soaked) -> Check:
    due, delivered, extra, wrong = deliveries(soaked)
    detail = (
        f"{delivered:,} of {due:,} deliveries due ({len(soaked.subscribers)} subscribers); "
        f"{extra:,} more for writes still in flight when wrk stopped"
    )
    if wrong:
        detail += f"; {len(wrong)} that no one should have got: {wrong[:10]}"
    return Check(
        "every event reached every subscriber watching it", delivered == due and not wrong, detail
    )


def _subscribers_healthy(soaked: Soaked) -> Check:
    problems = _problems(soaked.subscribers)
    return Check(
        "no subscription ended or failed",
        not problems,
        problems or f"{soaked.server.open_subscriptions} subscriptions open at the end",
    )


def _rss_steady(soaked: Soaked, settings: Settings) -> Check:
    name = f"each worker's RSS within {MAX_RSS_GROWTH * 100:.0f} % from the first to the last fifth"
    growths = [rss_growth(samples, settings.seconds)[2] for samples in soaked.rss.values()]
    detail = ", ".join(f"{growth * 100:+.1f} %" for growth in growths)
    if not settings.is_full:
        return Check(name, True, f"{detail} (not checked: shorter than {FULL_SECONDS} s)")
    return Check(name, all(growth <= MAX_RSS_GROWTH for growth in growths), detail)


def describe(
    soaked: Soaked, checks: list[Check], settings: Settings, *, started_at: str
) -> list[str]:
    """The figures and the checks, as bench/README.md shows them."""
    command = shlex.join(["bench/soak", *sys.argv[1:]])
    load_average = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"Run of {started_at} to {report.now_utc()}: `{command}` on {os.cpu_count()} cores. "
        f"gql_blog with {WORKERS} workers on core {settings.server_core}; wrk "
        f"({WRK_THREADS} threads, {settings.connections} connections), PostgreSQL and the "
        f"{settings.subscribers} subscribers on core {settings.load_core}. Data: "
        f"`{SEED_PLAN.command()}`. Load average at the end: {load_average}.",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in _figures(soaked, settings)),
        "",
        *(f"- {'holds' if c.holds else 'FAILS'}: {c.name} — {c.detail}" for c in checks),
    ]


def _figures(soaked: Soaked, settings: Settings) -> list[tuple[str, str]]:
    wrk, answered = soaked.wrk, soaked.outcome.answered
    pool = soaked.server.pool
    due, delivered, extra, _ = deliveries(soaked)
    published = sum(post.published for post in soaked.outcome.posts)
    drafts = len(soaked.outcome.posts) - published
    return [
        ("requests", f"{wrk.requests:,} in {wrk.seconds:.1f} s: {wrk.requests_per_second:,.1f}/s"),
        ("latency p50 / p99 (all kinds)", f"{wrk.p50_ms:,.1f} / {wrk.p99_ms:,.1f} ms"),
        (
            "reads: feed / post detail / user page",
            f"{answered['feed']:,} / {answered['detail']:,} / {answered['user']:,}",
        ),
        (
            "addComment: comments / blank (ValidationError)",
            f"{answered['comment']:,} / {answered['blank_comment']:,}",
        ),
        (
            "createPost: published / drafts, each with 2 new tags",
            f"{published:,} / {drafts:,} ({soaked.new_tags:,} new tags in the database)",
        ),
        (
            "failed requests",
            f"{wrk.errors + sum(soaked.outcome.failed.values())}",
        ),
        (
            "acknowledged writes in the database",
            _writes_present(soaked).detail,
        ),
        (
            "events delivered / due",
            f"{delivered:,} / {due:,} (+{extra:,} from writes in flight at the end)",
        ),
        (
            "pool checkouts: waited > 1 ms / > 10 ms",
            f"{pool.checkouts:,}: {pool.slower_than(0.001):,} / {pool.slower_than(0.01):,}; "
            f"mean wait {pool.mean_seconds * 1000:.2f} ms, 99 % within "
            f"{pool.quantile_bound(0.99) * 1000:g} ms; {pool.timeouts} timeouts",
        ),
        *(
            (f"worker {number} RSS, first → last fifth", _rss_text(samples, settings))
            for number, samples in enumerate(soaked.rss.values(), start=1)
        ),
    ]


def _rss_text(samples: list[tuple[float, int]], settings: Settings) -> str:
    start, end, growth = rss_growth(samples, settings.seconds)
    return f"{start / 1024:.1f} → {end / 1024:.1f} MiB ({growth * 100:+.1f} %)"


if __name__ == "__main__":
    main()
