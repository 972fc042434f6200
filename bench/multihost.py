"""gql_blog on several hosts: network namespaces joined by a bridge, one PostgreSQL primary with
a streaming replica behind PgBouncer, two application hosts, HAProxy, and a client host.

    db      10.77.N.10  PostgreSQL 15 primary (5432), streaming replica (5433, pg_basebackup -R),
                        PgBouncer in transaction mode for each (6432 → primary, 6433 → replica)
    app1    10.77.N.21  gql-blog serve --workers W on :8000 (PgBouncer, replica, LISTEN direct)
    app2    10.77.N.22  the same
    lb      10.77.N.30  HAProxy with deploy/haproxy.cfg (websockets, /readyz checks) on :8080
    client  10.77.N.50  this script's load, subscribers and checks (wrk for the throughput)

Each host is a network namespace (`ip netns`) with a veth pair into a bridge in the root
namespace (10.77.N.1, from which the database is seeded). Needs root, iproute2, PostgreSQL 15,
pgbouncer, haproxy and wrk. It runs, in order:

1. throughput: the bench's feed query (planned) through the balancer with 1 worker (app1
   alone), 2 workers (one per host) and 4 workers (two per host), wrk from the client host;
   figures only, on a shared 2-core machine;
2. with 2 x 2 workers: subscribers on app1, on app2 and through the balancer, posts written
   through the other host; an APQ hash registered through app1 runs through app2;
3. a mixed load through the balancer (writes, planned and unplanned reads, signed in and not),
   during which app1 gets SIGTERM and then one of app2's workers SIGKILL;

and checks: every acknowledged write is on the primary and on the replica; every event reached
every subscriber; reads ran on the replica (pg_stat_statements there); the APQ hash ran on the
other host; no request failed but those the killed worker was answering (app1 drains on
SIGTERM: /readyz 503 while it still serves), and HAProxy took app1 out within its check
interval (and a second of slack). `make scale-test` runs the full version;
.ci/run runs `--short` (a few minutes).
"""

import asyncio
import contextlib
import ctypes
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import click
import httpx
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench import cluster, datasets, load, pgbouncer, queries, workers

REPOSITORY: Final = Path(__file__).resolve().parent.parent
HAPROXY_CFG: Final = REPOSITORY / "deploy" / "haproxy.cfg"
GQL_BLOG: Final = Path(sys.executable).with_name("gql-blog")
HOSTS: Final = {"db": 10, "app1": 21, "app2": 22, "lb": 30, "client": 50}
APP_PORT: Final = 8000
LB_PORT: Final = 8080
PRIMARY_PORT, REPLICA_PORT = 5432, 5433
PRIMARY_BOUNCER, REPLICA_BOUNCER = 6432, 6433
CLONE_NEWNET: Final = 0x40000000
# HAProxy checks every 500 ms and needs 2 failures: a stopped host is out within a second.
CHECK_SECONDS: Final = 1.0
SLACK_SECONDS: Final = 1.0
# deploy/gql-blog.service's drain: longer than HAProxy's checks take to mark a host down.
DRAIN_SECONDS: Final = "3"
READY_SECONDS: Final = 90.0
PROTOCOL: Final = "graphql-transport-ws"
DB_SETTINGS: Final = cluster.LEAN_SETTINGS | {
    "listen_addresses": "'*'",
    "max_connections": "200",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "top",
}
SUBSCRIPTION: Final = "subscription { postPublished { title } }"
CREATE_POST: Final = """mutation($title: String!) {
  createPost(input: {title: $title, content: "Across hosts.", published: true}) {
    __typename ... on Post { title }
  }
}"""
VIEWER: Final = "query Viewer { viewer { username } }"
LATEST: Final = "query Latest { posts(first: 5) { nodes { title author { username } } } }"


@dataclass(frozen=True, slots=True)
class Sizes:
    plan: datasets.SeedPlan
    throughput_seconds: float
    load_seconds: float
    clients: int
    posts_per_host: int


FULL: Final = Sizes(
    plan=datasets.SeedPlan(users=200, posts_per_user=10, comments_per_post=5),
    throughput_seconds=15.0,
    load_seconds=30.0,
    clients=16,
    posts_per_host=10,
)
SHORT: Final = Sizes(
    plan=datasets.SeedPlan(users=20, posts_per_user=5, comments_per_post=2),
    throughput_seconds=3.0,
    load_seconds=12.0,
    clients=8,
    posts_per_host=3,
)


def say(message: str) -> None:
    click.echo(message, err=True)


# ---------------------------------------------------------------------------------------------
# The network


@dataclass(frozen=True, slots=True)
class Network:
    tag: str
    prefix: str  # "10.77.N."

    def ns(self, host: str) -> str:
        return f"gqlb{self.tag}-{host}"

    def ip(self, host: str) -> str:
        return f"{self.prefix}{HOSTS[host]}"

    @property
    def bridge(self) -> str:
        return f"gqb{self.tag}"

    def exec(self, host: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host), *command]


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def network() -> Iterator[Network]:
    """The namespaces, their veth pairs and the bridge; deleted at the end."""
    tag = f"{os.getpid() % 10000:04d}"
    net = Network(tag=tag, prefix=f"10.77.{os.getpid() % 200 + 20}.")
    made: list[str] = []
    try:
        _ip("link", "add", net.bridge, "type", "bridge")
        _ip("addr", "add", f"{net.prefix}1/24", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        for index, host in enumerate(HOSTS):
            namespace = net.ns(host)
            _ip("netns", "add", namespace)
            made.append(namespace)
            outside, inside = f"gq{tag}h{index}", f"gq{tag}p{index}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", net.bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "addr", "add", f"{net.ip(host)}/24", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
        say(f"network: {', '.join(f'{h} {net.ip(h)}' for h in HOSTS)} on bridge {net.bridge}")
        yield net
    finally:
        for namespace in made:
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", net.bridge], check=False, capture_output=True)
        say("network: removed")


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextlib.contextmanager
def in_namespace(net: Network, host: str) -> Iterator[None]:
    """This thread (and what it starts meanwhile: processes, threads, sockets) in `host`."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{net.ns(host)}", os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(original)
        os.close(original)
        os.close(target)


# ---------------------------------------------------------------------------------------------
# The database host


@dataclass(frozen=True, slots=True)
class Database:
    net: Network
    dataset: datasets.Dataset

    def url(self, port: int) -> str:
        return f"postgresql+asyncpg://postgres@{self.net.ip('db')}:{port}/{datasets.DATABASE}"


@contextlib.contextmanager
def database_host(net: Network, plan: datasets.SeedPlan) -> Iterator[Database]:
    with contextlib.ExitStack() as stack:
        with in_namespace(net, "db"):
            primary = stack.enter_context(
                cluster.throwaway_cluster(
                    port=PRIMARY_PORT, core=None, say=say, settings=DB_SETTINGS
                )
            )
            _allow_the_network(primary, net)
            replica = stack.enter_context(
                cluster.throwaway_replica(primary, port=REPLICA_PORT, say=say, settings=DB_SETTINGS)
            )
            for port, server_port in (
                (PRIMARY_BOUNCER, primary.port),
                (REPLICA_BOUNCER, replica.port),
            ):
                stack.enter_context(
                    pgbouncer.throwaway_pgbouncer(
                        port=port,
                        server_host="127.0.0.1",
                        server_port=server_port,
                        say=say,
                        listen_addr="0.0.0.0",
                    )
                )
        url = f"postgresql+asyncpg://postgres@{net.ip('db')}:{PRIMARY_PORT}/{datasets.DATABASE}"
        dataset = datasets.prepare(url, plan, say=say)
        asyncio.run(_execute(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        yield Database(net, dataset)


def _allow_the_network(primary: cluster.Cluster, net: Network) -> None:
    """Trust the hosts' subnet (replication too), as initdb trusts 127.0.0.1; reload."""
    data = primary.folder / "data"
    with (data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write(f"host all all {net.prefix}0/24 trust\n")
        hba.write(f"host replication all {net.prefix}0/24 trust\n")
    prefix = ["runuser", "-u", cluster.SYSTEM_USER, "--"] if os.geteuid() == 0 else []
    reload = [*prefix, str(cluster.PG_BIN / "pg_ctl"), "-D", str(data), "reload"]
    subprocess.run(reload, check=True, capture_output=True)


async def _execute(url: str, statement: str) -> Any:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(statement))
            return result.all() if result.returns_rows else []
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Application hosts and the balancer


@dataclass(slots=True)
class Hosts:
    """The running application hosts (their `gql-blog serve` masters) and HAProxy."""

    net: Network
    database: Database
    folder: Path
    apps: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    balancer: subprocess.Popen[bytes] | None = None

    def app_url(self, host: str) -> str:
        return f"http://{self.net.ip(host)}:{APP_PORT}"

    @property
    def lb_url(self) -> str:
        return f"http://{self.net.ip('lb')}:{LB_PORT}"

    def start_app(self, host: str, worker_count: int) -> None:
        environment = datasets.server_environment(
            self.database.url(PRIMARY_BOUNCER),
            GQL_BLOG_DATABASE_REPLICA_URLS=self.database.url(REPLICA_BOUNCER),
            GQL_BLOG_PGBOUNCER="true",
            GQL_BLOG_DATABASE_LISTEN_URL=self.database.url(PRIMARY_PORT),
            GQL_BLOG_DRAIN_SECONDS=DRAIN_SECONDS,
        )
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = (self.folder / f"{host}.log").open("ab")
        command = [str(GQL_BLOG), "serve", "--host", "0.0.0.0", "--port", str(APP_PORT)]
        self.apps[host] = subprocess.Popen(
            self.net.exec(host, *command, "--workers", str(worker_count)),
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_app(self, host: str, sig: int = signal.SIGTERM) -> None:
        process = self.apps.pop(host, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def start_balancer(self) -> None:
        config = HAPROXY_CFG.read_text().replace("10.77.0.", self.net.prefix)
        config = config.replace("/run/haproxy-gql-blog.sock", str(self.stats_socket))
        path = self.folder / "haproxy.cfg"
        path.write_text(config)
        log = (self.folder / "haproxy.log").open("ab")
        self.balancer = subprocess.Popen(
            self.net.exec("lb", "haproxy", "-db", "-f", str(path)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def stats_socket(self) -> Path:
        return self.folder / "haproxy.sock"

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of each application host: UP, DOWN, ..."""
        with socket.socket(socket.AF_UNIX) as stats:
            stats.settimeout(2)
            stats.connect(str(self.stats_socket))
            stats.sendall(b"show stat\n")
            raw = b""
            while chunk := stats.recv(65536):
                raw += chunk
        lines = raw.decode().splitlines()
        columns = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(columns, line.split(","), strict=False))
            if row.get("pxname") == "gql_blog_hosts" and row.get("svname") in ("app1", "app2"):
                states[row["svname"]] = row["status"]
        return states

    def stop_all(self) -> None:
        for host in list(self.apps):
            self.stop_app(host)
        if self.balancer is not None and self.balancer.poll() is None:
            self.balancer.terminate()
            self.balancer.wait(30)


async def wait_for_hosts(hosts: Hosts, expected: dict[str, str]) -> None:
    """Until every running host is ready (replica usable) and HAProxy sees `expected`."""
    deadline = time.monotonic() + READY_SECONDS
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            ready = True
            for host in hosts.apps:
                try:
                    answer = (await http.get(f"{hosts.app_url(host)}/readyz")).json()
                except (httpx.HTTPError, ValueError):
                    ready = False
                    continue
                replicas = answer.get("replicas", [])
                ready &= answer.get("status") == "ready" and all(r["usable"] for r in replicas)
            if ready and await asyncio.to_thread(hosts.server_states) == expected:
                return
            await asyncio.sleep(0.2)
    raise click.ClickException(f"the hosts did not become ready: {hosts.server_states()}")


# ---------------------------------------------------------------------------------------------
# Checks


@dataclass(slots=True)
class Report:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    throughput: list[tuple[str, float, float, int]] = field(default_factory=list)

    def check(self, name: str, holds: bool, detail: str) -> None:
        self.checks.append((name, holds, detail))
        say(f"{'PASS' if holds else 'FAIL'} {name}: {detail}")

    def lines(self) -> list[str]:
        out = ["| workers behind HAProxy | feed req/s | p99 ms | errors |", "|---|---|---|---|"]
        out += [
            f"| {label} | {rps:,.0f} | {p99:,.1f} | {errors} |"
            for label, rps, p99, errors in self.throughput
        ]
        out.append("")
        out += [
            f"- {'PASS' if holds else 'FAIL'} {name}: {detail}"
            for name, holds, detail in self.checks
        ]
        return out


async def measure_throughput(hosts: Hosts, report: Report, sizes: Sizes, core: int) -> None:
    request = load.graphql_request(queries.FEED, {}, token=hosts.database.dataset.admin_token)
    for label, layout in (
        ("1 (app1 x 1)", {"app1": 1}),
        ("2 (app1 x 1, app2 x 1)", {"app1": 1, "app2": 1}),
        ("4 (app1 x 2, app2 x 2)", {"app1": 2, "app2": 2}),
    ):
        for host in list(hosts.apps):
            hosts.stop_app(host)
        for host, count in layout.items():
            hosts.start_app(host, count)
        expected = {"app1": "UP", "app2": "UP" if "app2" in layout else "DOWN"}
        await wait_for_hosts(hosts, expected)
        common = {"body_path": hosts.folder / "feed.json", "core": core, "connections": 32}
        await load.run_wrk(hosts.lb_url, request, seconds=1, **common)  # warm: plans, pools
        result = await load.run_wrk(
            hosts.lb_url, request, seconds=sizes.throughput_seconds, **common
        )
        report.throughput.append((label, result.requests_per_second, result.p99_ms, result.errors))
        say(f"throughput with {label} workers: {result.requests_per_second:,.0f} req/s")


class Subscriber:
    """One graphql-transport-ws client recording the titles it is sent."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.titles: list[str] = []
        self.problems: list[str] = []
        self._reading: asyncio.Task[None] | None = None
        self._socket: Any = None

    async def open(self) -> None:
        self._socket = await websockets.connect(self.url, subprotocols=[PROTOCOL])  # type: ignore[list-item]
        await self._socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await asyncio.wait_for(self._socket.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        payload = {"query": SUBSCRIPTION}
        await self._socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._socket:
                message = json.loads(raw)
                if message["type"] == "ping":
                    await self._socket.send(json.dumps({"type": "pong"}))
                elif message["type"] == "next":
                    self.titles.append(message["payload"]["data"]["postPublished"]["title"])
                else:
                    self.problems.append(str(message)[:200])
        except websockets.ConnectionClosed as closed:
            self.problems.append(f"closed: {closed}")

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reading is not None:
            await self._reading


async def _poll(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether `condition` came true within `seconds` (looked at every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


async def _open_subscriptions(http: httpx.AsyncClient, url: str) -> float:
    text_ = (await http.get(f"{url}/metrics")).text
    for line in text_.splitlines():
        if line.startswith("gql_blog_open_subscriptions "):
            return float(line.split()[1])
    return 0.0


async def _graphql(http: httpx.AsyncClient, url: str, body: Any, token: str | None = None) -> Any:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    response = await http.post(f"{url}/graphql", json=body, headers=headers)
    response.raise_for_status()
    return response.json()


async def check_events_and_apq(hosts: Hosts, report: Report, sizes: Sizes) -> None:
    token = hosts.database.dataset.admin_token
    subscribers = [
        Subscriber("app1", f"ws://{hosts.net.ip('app1')}:{APP_PORT}/graphql"),
        Subscriber("app2", f"ws://{hosts.net.ip('app2')}:{APP_PORT}/graphql"),
        Subscriber("balancer", f"ws://{hosts.net.ip('lb')}:{LB_PORT}/graphql"),
    ]
    async with httpx.AsyncClient(timeout=30) as http:
        for subscriber in subscribers:
            await subscriber.open()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = [await _open_subscriptions(http, hosts.app_url(h)) for h in ("app1", "app2")]
            if sum(counts) >= len(subscribers):
                break
            await asyncio.sleep(0.1)
        run = uuid.uuid4().hex[:6]
        titles = []
        for writer in ("app2", "app1"):  # written through the other host than app1's subscriber
            for number in range(sizes.posts_per_host):
                title = f"event {run} via {writer} {number}"
                body = {"query": CREATE_POST, "variables": {"title": title}}
                answer = await _graphql(http, hosts.app_url(writer), body, token)
                assert answer["data"]["createPost"]["title"] == title, answer
                titles.append(title)
        await _poll(lambda: all(set(titles) <= set(s.titles) for s in subscribers), 15)
        for subscriber in subscribers:
            await subscriber.close()
        missing = {s.name: len(set(titles) - set(s.titles)) for s in subscribers}
        report.check(
            "every event reaches every subscriber",
            not any(missing.values()),
            f"{len(titles)} posts written through app2 and app1, subscribers on app1, app2 and "
            f"the balancer; missing per subscriber: {missing}",
        )

        query = f"query Apq{run} {{ posts(first: 3) {{ nodes {{ title }} }} }}"
        digest = hashlib.sha256(query.encode()).hexdigest()
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        await _graphql(http, hosts.app_url("app1"), {"query": query, "extensions": extensions})
        elsewhere = await _graphql(http, hosts.app_url("app2"), {"extensions": extensions})
        report.check(
            "an APQ hash registered through app1 runs through app2",
            "data" in elsewhere and "errors" not in elsewhere,
            f"hash {digest[:12]}…: {str(elsewhere)[:120]}",
        )


@dataclass(slots=True)
class Answer:
    kind: str
    started: float
    finished: float
    ok: bool
    title: str | None = None
    detail: str = ""


async def _client(
    url: str, token: str, name: str, answers: list["Answer"], stopping: asyncio.Event
) -> None:
    """One client of the mixed load: a write in five, reads signed in, until `stopping`."""
    async with httpx.AsyncClient(timeout=30) as http:
        step = 0
        while not stopping.is_set():
            step += 1
            kind, body, title = _mixed_request(name, step)
            started = time.monotonic()
            try:
                response = await http.post(
                    f"{url}/graphql", json=body, headers={"authorization": f"Bearer {token}"}
                )
                answer = response.json() if response.status_code == 200 else None
                ok = answer is not None and "errors" not in answer
                detail = "" if ok else f"{response.status_code} {response.text[:120]}"
            except (httpx.HTTPError, ValueError) as error:
                ok, detail = False, f"{type(error).__name__}: {error}"
            answers.append(Answer(kind, started, time.monotonic(), ok, title, detail))


def _mixed_request(name: str, step: int) -> tuple[str, Any, str | None]:
    if step % 5 == 0:
        title = f"load {name} {step}"
        return "write", {"query": CREATE_POST, "variables": {"title": title}}, title
    if step % 5 == 1:
        return "viewer", {"query": VIEWER}, None
    if step % 5 == 2:
        return "latest", {"query": LATEST}, None
    return "feed", {"query": queries.FEED}, None


async def mixed_load(hosts: Hosts, report: Report, sizes: Sizes) -> None:
    token = hosts.database.dataset.admin_token
    answers: list[Answer] = []
    stopping = asyncio.Event()
    run = uuid.uuid4().hex[:6]

    states: list[tuple[float, dict[str, str]]] = []

    async def watch_balancer() -> None:
        while not stopping.is_set():
            states.append((time.monotonic(), await asyncio.to_thread(hosts.server_states)))
            await asyncio.sleep(0.1)

    tasks = [
        asyncio.create_task(_client(hosts.lb_url, token, f"{run} {n}", answers, stopping))
        for n in range(sizes.clients)
    ]
    watching = asyncio.create_task(watch_balancer())
    third = sizes.load_seconds / 3
    await asyncio.sleep(third)
    app1 = hosts.apps["app1"]
    sigterm_at = time.monotonic()
    app1.send_signal(signal.SIGTERM)
    say("load: SIGTERM to app1")
    await asyncio.sleep(third)
    victim = workers.worker_pids(hosts.apps["app2"].pid)[0]
    sigkill_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    say(f"load: SIGKILL to app2's worker {victim}")
    await asyncio.sleep(third)
    stopping.set()
    await asyncio.gather(*tasks)
    await watching
    await asyncio.to_thread(app1.wait, 30)
    hosts.apps.pop("app1", None)

    window = CHECK_SECONDS + SLACK_SECONDS
    failed = [a for a in answers if not a.ok]
    # A drained host loses no request; a killed worker loses those it was answering, no more.
    outside = [a for a in failed if not sigkill_at <= a.finished <= sigkill_at + window]
    report.check(
        "no request failed but those a killed worker was answering",
        not outside,
        f"{len(answers):,} requests, {len(failed)} failed within {window:g} s of the SIGKILL "
        f"(an app2 worker), {len(outside)} otherwise (app1 drained {DRAIN_SECONDS} s on SIGTERM)"
        + "".join(
            f"; {a.kind} failed {a.finished - sigterm_at:+.2f} s from the SIGTERM, "
            f"{a.finished - sigkill_at:+.2f} s from the SIGKILL: {a.detail}"
            for a in outside[:3]
        ),
    )
    down_at = next(
        (at for at, state in states if at >= sigterm_at and state.get("app1") != "UP"), None
    )
    moved = down_at is not None and down_at - sigterm_at <= window
    report.check(
        "HAProxy moved the load within its check interval",
        moved,
        "app1 out of the balancer "
        + ("never" if down_at is None else f"{down_at - sigterm_at:.2f} s after its SIGTERM")
        + f" (checks every 0.5 s, 2 failures; allowed {window:g} s)",
    )
    acknowledged = [a.title for a in answers if a.ok and a.title is not None]
    await check_writes(hosts, report, acknowledged)


async def check_writes(hosts: Hosts, report: Report, titles: list[str]) -> None:
    primary_url = hosts.database.url(PRIMARY_PORT)
    replica_url = hosts.database.url(REPLICA_PORT)
    position = (await _execute(primary_url, "SELECT pg_current_wal_lsn()::text"))[0][0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replayed = await _execute(
            replica_url, f"SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn"
        )
        if replayed[0][0]:
            break
        await asyncio.sleep(0.2)
    found = {}
    for name, url in (("primary", primary_url), ("replica", replica_url)):
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text("SELECT title FROM posts WHERE title = ANY(:titles)"), {"titles": titles}
                )
                found[name] = {row[0] for row in rows}
        finally:
            await engine.dispose()
    missing = {name: len(set(titles) - rows) for name, rows in found.items()}
    report.check(
        "every acknowledged write is on the primary and on the replica",
        bool(titles) and not any(missing.values()),
        f"{len(titles)} acknowledged posts; missing: {missing}",
    )
    select_calls = (
        "SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s "
        "JOIN pg_database d ON d.oid = s.dbid "
        f"WHERE d.datname = '{datasets.DATABASE}' AND s.query ~* '^\\s*select' "
        "AND s.query ~* 'from posts'"
    )
    on_replica = (await _execute(replica_url, select_calls))[0][0]
    on_primary = (await _execute(primary_url, select_calls))[0][0]
    report.check(
        "reads ran on the replica",
        on_replica > 0 and on_replica > on_primary,
        f"SELECTs from posts in pg_stat_statements: replica {on_replica:,}, primary {on_primary:,}",
    )


async def run_checks(hosts: Hosts, sizes: Sizes, core: int, *, throughput: bool) -> Report:
    report = Report()
    hosts.start_balancer()
    if throughput:
        await measure_throughput(hosts, report, sizes, core)  # ends with 2 x 2 workers
    else:
        for host in ("app1", "app2"):
            hosts.start_app(host, 2)
        await wait_for_hosts(hosts, {"app1": "UP", "app2": "UP"})
    await _execute(hosts.database.url(REPLICA_PORT), "SELECT pg_stat_statements_reset()")
    await _execute(hosts.database.url(PRIMARY_PORT), "SELECT pg_stat_statements_reset()")
    await check_events_and_apq(hosts, report, sizes)
    await mixed_load(hosts, report, sizes)
    return report


@click.command()
@click.option("--short", is_flag=True, help="Little data and short phases (CI, a few minutes).")
@click.option(
    "--throughput/--no-throughput", default=True, help="Measure with 1, 2 and 4 workers (wrk)."
)
def main(*, short: bool, throughput: bool) -> None:
    """The multi-host run: checks and throughput with 1, 2 and 4 workers behind HAProxy."""
    if os.geteuid() != 0:
        raise click.ClickException("the multi-host run needs root (ip netns)")
    wrk = load.wrk_missing() if throughput else None
    for problem in (cluster.available(DB_SETTINGS), pgbouncer.available(), wrk):
        if problem:
            raise click.ClickException(problem)
    sizes = SHORT if short else FULL
    core = sorted(os.sched_getaffinity(0))[-1]
    folder = Path(tempfile.mkdtemp(prefix="gqlb-multihost-"))
    say(f"multihost: logs in {folder}")
    with network() as net, database_host(net, sizes.plan) as database:
        hosts = Hosts(net, database, folder)
        try:
            with in_namespace(net, "client"):
                report = asyncio.run(run_checks(hosts, sizes, core, throughput=throughput))
        finally:
            hosts.stop_all()
    click.echo("\n".join(report.lines()))
    failed = [name for name, holds, _ in report.checks if not holds]
    if failed:
        raise click.ClickException(
            f"the multi-host run failed: {'; '.join(failed)} (logs in {folder})"
        )


if __name__ == "__main__":
    main()
