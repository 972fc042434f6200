"""The attack run of issue 19: every class of hostile request against one `gql-blog serve`.

On a throwaway PostgreSQL cluster (bench/cluster.py) and on SQLite, each seeded with 2,000
users, 40,000 posts and 120,000 comments (`--quick`: 100 users, 2,000 posts, 6,000 comments),
one `gql-blog serve` (one worker, default settings) is attacked class by class:

1. fragments: 23 named fragments each spreading the next twice (20 to 23 levels);
2. unpriced scans: 30 aliases of a case-insensitive substring count; twenty of them at once
   beside another client's ordinary reads; relation filters nested two and three deep, and
   the deepest the limits allow; one such count alone (priced within the cost limit);
3. a websocket fan-out round: 200 sockets x 20 subscriptions, one addComment, one createPost;
4. the sign-in lockout: wrong passwords at 2/s from a new X-Forwarded-For each time while the
   owner signs in (the attacker's loopback address is a trusted proxy, uvicorn's default);
5. the small ones: a 5,000-digit integer, a 5 MB websocket message, a 210 KB GET, 900 KB of
   comment lines, ~4,980 `__typename`.

For each it reports the time to answer, the answer (status / code), the slowest `/healthz`
meanwhile, and how long the database stayed busy after the last answer (PostgreSQL: active
statements of the app's database in pg_stat_activity; SQLite: the server process's CPU). Every
request has a client timeout, and every class a deadline: the run reports, it never hangs.
A refused attack is a good result.

    .venv/bin/python -m bench.attack [--quick] [--database sqlite|postgresql] [--output FILE]
"""

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import click
import httpx
import websockets

from bench import cluster, datasets
from gql_blog import migrations
from gql_blog.seed import DEMO_PASSWORD

GQL_BLOG = Path(sys.executable).with_name("gql-blog")
CLIENT_TIMEOUT = 60.0  # seconds, for every request
CLASS_DEADLINE = 180.0  # seconds, for every attack class
BUSY_DEADLINE = 120.0  # seconds the database may stay busy before the run stops waiting
FULL_PLAN = datasets.SeedPlan(users=2000, posts_per_user=20, comments_per_post=3)
QUICK_PLAN = datasets.SeedPlan(users=100, posts_per_user=20, comments_per_post=3)
ORDINARY = "{ postStats { count publishedCount } }"
PROTOCOL = "graphql-transport-ws"


@dataclass(frozen=True, slots=True)
class Scale:
    """How hard each class attacks (`--quick` makes every one small)."""

    plan: datasets.SeedPlan
    fragment_levels: tuple[int, ...]
    scans_at_once: int
    sockets: int
    subscriptions_per_socket: int
    sign_in_seconds: float


FULL = Scale(FULL_PLAN, (20, 21, 22, 23), 20, 200, 20, 40.0)
QUICK = Scale(QUICK_PLAN, (10, 12), 4, 10, 4, 4.0)


@dataclass(frozen=True, slots=True)
class Row:
    database: str
    attack: str
    seconds: float
    answer: str
    healthz_max: float
    busy_after: float | None


@dataclass(frozen=True, slots=True)
class Target:
    """The server under attack and how to see its database working."""

    database: str
    base_url: str
    pid: int
    busy: Callable[[], Awaitable[bool]]
    post_id: str
    owner: str


# -- measuring ------------------------------------------------------------------------------------


async def _probe_healthz(base_url: str, stop: asyncio.Event) -> float:
    """The slowest /healthz answer until `stop` (a timed-out probe counts its timeout)."""
    slowest = 0.0
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT) as http:
        while not stop.is_set():
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await http.get("/healthz")
            slowest = max(slowest, time.perf_counter() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    return slowest


async def _busy_seconds(target: Target) -> float | None:
    """How long the database keeps working for the server from now: until the start of the
    first check that finds it idle (None: still busy after the deadline)."""
    started = time.perf_counter()
    while True:
        checked = time.perf_counter()
        if not await target.busy():
            return checked - started
        if checked - started > BUSY_DEADLINE:
            return None


async def measure(target: Target, name: str, attack: Callable[[Target], Awaitable[str]]) -> Row:
    stop = asyncio.Event()
    probing = asyncio.create_task(_probe_healthz(target.base_url, stop))
    started = time.perf_counter()
    try:
        answer = await asyncio.wait_for(attack(target), CLASS_DEADLINE)
    except TimeoutError:
        answer = f"no answer within {CLASS_DEADLINE:g} s"
    except (httpx.HTTPError, OSError, websockets.WebSocketException, ValueError) as error:
        answer = f"{type(error).__name__}: {error}"[:120]
    seconds = time.perf_counter() - started
    stop.set()
    healthz_max = await probing
    busy_after = await _busy_seconds(target)
    row = Row(target.database, name, seconds, answer, healthz_max, busy_after)
    click.echo(_table_line(row), err=True)
    return row


def _outcome(response: httpx.Response) -> str:
    """`200`, or the status and the first error's code (or message)."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:60]!r}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return str(response.status_code)
    error = errors[0]
    code = (error.get("extensions") or {}).get("code") or repr(error.get("message", ""))[:60]
    return f"{response.status_code} {code}"


async def _post(target: Target, query: str, **options: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=target.base_url, timeout=CLIENT_TIMEOUT) as http:
        return await http.post("/graphql", json={"query": query}, **options)


def _tally(outcomes: list[str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{count}x {outcome}" for outcome, count in sorted(counts.items()))


# -- 1. fragments -------------------------------------------------------------------------------


def fragment_bomb(levels: int) -> str:
    fragments = [f"fragment F{n} on Post {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels - 1)]
    fragments.append(f"fragment F{levels - 1} on Post {{ id title }}")
    return "{ posts(first: 1) { nodes { ...F0 } } } " + " ".join(fragments)


def _fragments(levels: int) -> Callable[[Target], Awaitable[str]]:
    async def attack(target: Target) -> str:
        return _outcome(await _post(target, fragment_bomb(levels)))

    return attack


# -- 2. scans -------------------------------------------------------------------------------------

SCAN = (
    "{ "
    + " ".join(
        f'a{n}: posts(first: 0, where: {{content: {{contains: "zq{n}x", mode: INSENSITIVE}}}})'
        " { totalCount }"
        for n in range(30)
    )
    + " }"
)
NESTED_2 = (
    "{ posts(first: 0, where: {comments: {some: {author: {posts: {every: "
    '{content: {contains: "zqx", mode: INSENSITIVE}}}}}}}) { totalCount } }'
)
NESTED_3 = (
    "{ posts(first: 0, where: {comments: {some: {author: {posts: {every: {comments: {some: "
    '{content: {contains: "zqx", mode: INSENSITIVE}}}}}}}}}) { totalCount } }'
)

# The deepest relation filter the default limits let through (3 relations, `not`s up to the
# filter depth of 10), and one case-insensitive count (priced under the default cost limit).
DEEPEST_ALLOWED = (
    "{ posts(first: 0, where: {not: {comments: {every: {not: {author: {not: {posts: {every:"
    ' {not: {not: {content: {contains: "zqx", mode: INSENSITIVE}}}}}}}}}}}}) { totalCount } }'
)
ONE_SCAN = (
    '{ posts(first: 0, where: {content: {contains: "zqx", mode: INSENSITIVE}}) { totalCount } }'
)


def _one(query: str) -> Callable[[Target], Awaitable[str]]:
    async def attack(target: Target) -> str:
        return _outcome(await _post(target, query))

    return attack


def _scans_beside_reads(at_once: int) -> Callable[[Target], Awaitable[str]]:
    async def attack(target: Target) -> str:
        scans = asyncio.gather(*(_post(target, SCAN) for _ in range(at_once)))
        reads: list[tuple[float, str]] = []
        async with httpx.AsyncClient(base_url=target.base_url, timeout=CLIENT_TIMEOUT) as http:
            while not scans.done() or not reads:
                started = time.perf_counter()
                response = await http.post("/graphql", json={"query": ORDINARY})
                reads.append((time.perf_counter() - started, _outcome(response)))
        answers = [_outcome(response) for response in await scans]
        seconds = sorted(second for second, _ in reads)
        p99 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))]
        return f"scans: {_tally(answers)}; reads: {_tally([o for _, o in reads])}, p99 {p99:.2f} s"

    return attack


# -- 3. websocket fan-out -----------------------------------------------------------------------


async def _sign_in(target: Target, username: str, password: str, address: str) -> str | None:
    """The token of a sign-in from `address` (X-Forwarded-For), or None if refused."""
    query = (
        "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p})"
        " { __typename ... on AuthPayload { token } } }"
    )
    async with httpx.AsyncClient(base_url=target.base_url, timeout=CLIENT_TIMEOUT) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": {"u": username, "p": password}},
            headers={"X-Forwarded-For": address},
        )
    data = (response.json().get("data") or {}).get("login") or {}
    token = data.get("token")
    return token if isinstance(token, str) else None


@dataclass(slots=True)
class _Deliveries:
    due: int
    complete: asyncio.Event
    count: int = 0
    refused_sockets: int = 0

    def add(self) -> None:
        self.count += 1
        if self.count >= self.due:
            self.complete.set()


async def _subscriber(
    target: Target, count: int, delivered: _Deliveries, ready: asyncio.Event, done: asyncio.Event
) -> None:
    """One socket's subscriptions until `done`; a socket the server refuses or closes counts
    as refused (and as ready: the round goes on without it)."""
    try:
        await _subscribe(target, count, delivered, ready, done)
    except (websockets.WebSocketException, OSError, TimeoutError):
        delivered.refused_sockets += 1
    finally:
        ready.set()


async def _subscribe(
    target: Target, count: int, delivered: _Deliveries, ready: asyncio.Event, done: asyncio.Event
) -> None:
    url = target.base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[PROTOCOL], open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await asyncio.wait_for(ws.recv(), 30)
        for n in range(count):
            query = (
                f'subscription {{ commentAdded(postId: "{target.post_id}") {{ id content }} }}'
                if n % 2 == 0
                else "subscription { postPublished { id title } }"
            )
            message = {"id": str(n), "type": "subscribe", "payload": {"query": query}}
            await ws.send(json.dumps(message))
        ready.set()
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                raw = await asyncio.wait_for(ws.recv(), 0.5)
                if json.loads(raw).get("type") == "next":
                    delivered.add()


def _fan_out(sockets: int, per_socket: int) -> Callable[[Target], Awaitable[str]]:
    async def attack(target: Target) -> str:
        token = await _sign_in(target, target.owner, DEMO_PASSWORD, "198.51.100.1")
        if token is None:
            return "the owner could not sign in"
        # Half the subscriptions see the comment, the other half the post.
        delivered, done = _Deliveries(sockets * per_socket, asyncio.Event()), asyncio.Event()
        readies = [asyncio.Event() for _ in range(sockets)]
        listeners = [
            asyncio.create_task(_subscriber(target, per_socket, delivered, ready, done))
            for ready in readies
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            await asyncio.sleep(1.0)  # no message acknowledges a subscribe: let them register
            headers = {"Authorization": f"Bearer {token}"}
            comment = await _timed_post(
                target,
                'mutation($p: ID!) { addComment(input: {postId: $p, content: "attack"})'
                " { __typename } }",
                {"p": target.post_id},
                headers,
            )
            post = await _timed_post(
                target,
                'mutation { createPost(input: {title: "Attack", content: "Fan-out",'
                " published: true}) { __typename } }",
                {},
                headers,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(delivered.complete.wait(), 25)
        finally:
            done.set()
            await asyncio.gather(*listeners, return_exceptions=True)
        return (
            f"addComment {comment}, createPost {post};"
            f" {delivered.count} of {delivered.due} events within 25 s;"
            f" {delivered.refused_sockets} sockets refused or closed"
        )

    return attack


async def _timed_post(
    target: Target, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> str:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=target.base_url, timeout=CLIENT_TIMEOUT) as http:
        response = await http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    return f"{_outcome(response)} in {time.perf_counter() - started:.2f} s"


# -- 4. sign-in lockout ---------------------------------------------------------------------------


def _lockout(seconds: float) -> Callable[[Target], Awaitable[str]]:
    async def attack(target: Target) -> str:
        deadline = time.perf_counter() + seconds
        tries = {"attacker": 0, "owner": 0, "owner_in": 0}

        async def attacker() -> None:
            """Two wrong passwords a second, whatever the answers' pace."""
            sent: list[asyncio.Task[str | None]] = []
            while time.perf_counter() < deadline:
                tries["attacker"] += 1
                n = tries["attacker"]
                address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"  # a new one each time
                attempt = _sign_in(target, target.owner, "wrong-password", address)
                sent.append(asyncio.create_task(attempt))
                await asyncio.sleep(0.5)
            await asyncio.gather(*sent, return_exceptions=True)

        async def owner() -> None:
            while time.perf_counter() < deadline:
                tries["owner"] += 1
                if await _sign_in(target, target.owner, DEMO_PASSWORD, "203.0.113.7"):
                    tries["owner_in"] += 1
                await asyncio.sleep(1.0)

        await asyncio.gather(attacker(), owner())
        return (
            f"owner signed in {tries['owner_in']} of {tries['owner']};"
            f" attacker tried {tries['attacker']}"
        )

    return attack


# -- 5. the small ones ----------------------------------------------------------------------------


async def _huge_integer(target: Target) -> str:
    return _outcome(await _post(target, "{ posts(first: " + "9" * 5000 + ") { totalCount } }"))


async def _long_get(target: Target) -> str:
    """A GET whose query string is 210 KB, sent raw: httpx refuses to build such a URL."""
    query = "{ __typename }" + " " * 210_000
    host, port = target.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        path = "/graphql?query=" + urllib.parse.quote(query)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), CLIENT_TIMEOUT)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head else "no answer"
    try:
        errors = json.loads(body).get("errors") or [{}]
        code = (errors[0].get("extensions") or {}).get("code") or "no code"
    except ValueError:
        code = f"not JSON: {body[:40]!r}"
    return f"{status} {code}"


async def _comment_lines(target: Target) -> str:
    return _outcome(
        await _post(target, "# a comment line of an attack\n" * 31_000 + "{ __typename }")
    )


async def _typenames(target: Target) -> str:
    return _outcome(await _post(target, "{ " + "__typename " * 4980 + "}"))


async def _huge_socket_message(target: Target) -> str:
    url = target.base_url.replace("http://", "ws://") + "/graphql"
    query = "subscription { postPublished { id } }" + " " * (5 * 1024 * 1024)
    async with websockets.connect(
        url, subprotocols=[PROTOCOL], open_timeout=30, max_size=None
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await asyncio.wait_for(ws.recv(), 30)
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        try:
            reply = await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            received = closed.rcvd
            return f"closed {received.code} {received.reason!r}" if received else "closed"
        except TimeoutError:
            return "subscribed: no refusal within 10 s"
        return f"answered {json.loads(reply).get('type')!r}"


# -- the run --------------------------------------------------------------------------------------


def attacks(scale: Scale) -> list[tuple[str, Callable[[Target], Awaitable[str]]]]:
    chosen: list[tuple[str, Callable[[Target], Awaitable[str]]]] = [
        (f"1. fragments, {levels} levels", _fragments(levels)) for levels in scale.fragment_levels
    ]
    chosen += [
        ("2. 30 aliases of contains/INSENSITIVE totalCount", _one(SCAN)),
        (
            f"2. {scale.scans_at_once} such scans at once + another client's postStats",
            _scans_beside_reads(scale.scans_at_once),
        ),
        ("2. relation filter nested 2 deep", _one(NESTED_2)),
        ("2. relation filter nested 3 deep", _one(NESTED_3)),
        ("2. deepest relation filter allowed (3 + nots)", _one(DEEPEST_ALLOWED)),
        ("2. one contains/INSENSITIVE totalCount", _one(ONE_SCAN)),
        (
            f"3. {scale.sockets} sockets x {scale.subscriptions_per_socket} subscriptions",
            _fan_out(scale.sockets, scale.subscriptions_per_socket),
        ),
        (f"4. sign-in lockout, {scale.sign_in_seconds:g} s", _lockout(scale.sign_in_seconds)),
        ("5. 5,000-digit integer", _huge_integer),
        ("5. 5 MB websocket message", _huge_socket_message),
        ("5. 210 KB GET query string", _long_get),
        ("5. 900 KB of comment lines", _comment_lines),
        ("5. 4,980 __typename", _typenames),
    ]
    return chosen


async def _attack_all(target: Target, scale: Scale) -> list[Row]:
    return [await measure(target, name, attack) for name, attack in attacks(scale)]


@contextlib.asynccontextmanager
async def serving(database: str, url: str) -> AsyncIterator[tuple[str, int]]:
    """`gql-blog serve` (one worker, default settings) on `url`; its base URL and pid."""
    port = _free_port()
    log = Path(tempfile.gettempdir()) / f"gqlb-attack-{database}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *(str(GQL_BLOG), "serve", "--port", str(port)),
            env=datasets.server_environment(url),
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            await _until_healthy(base_url, process, log)
            yield base_url, process.pid
        finally:
            if process.returncode is None:
                process.terminate()
            await asyncio.wait_for(process.wait(), 60)


async def _until_healthy(base_url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        for _ in range(600):
            if process.returncode is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"gql-blog serve did not start; see {log}")


def _postgres_busy(url: str) -> Callable[[], Awaitable[bool]]:
    plain = url.replace("+asyncpg", "")

    async def busy() -> bool:
        connection = await asyncpg.connect(plain, timeout=10)
        try:
            running = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND pid <> pg_backend_pid()"
            )
        finally:
            await connection.close()
        await asyncio.sleep(0.1)
        return bool(running)

    return busy


def _process_busy(pid: int) -> Callable[[], Awaitable[bool]]:
    """SQLite works inside the server's process: busy while it uses a tenth of a core."""

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def busy() -> bool:
        before = cpu()
        await asyncio.sleep(0.3)
        return cpu() - before > 0.03

    return busy


async def _run_against(database: str, url: str, scale: Scale) -> list[Row]:
    async with serving(database, url) as (base_url, pid):
        busy = _postgres_busy(url) if database == "postgresql" else _process_busy(pid)
        probe = Target(database, base_url, pid, busy, "", "")
        listing = await _post(probe, "{ users(first: 1) { nodes { username } } }")
        owner = listing.json()["data"]["users"]["nodes"][0]["username"]
        posts = await _post(probe, "{ posts(first: 1) { nodes { id } } }")
        post_id = posts.json()["data"]["posts"]["nodes"][0]["id"]
        target = Target(database, base_url, pid, busy, post_id, owner)
        return await _attack_all(target, scale)


def _on_postgresql(scale: Scale) -> list[Row]:
    with cluster.throwaway_cluster(port=_free_port(), core=None, say=_say) as db:
        dataset = datasets.prepare(
            db.url(datasets.DATABASE, driver="postgresql+asyncpg"), scale.plan, say=_say
        )
        return asyncio.run(_run_against("postgresql", dataset.url, scale))


def _on_sqlite(scale: Scale) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="gqlb-attack-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/attack.sqlite"
        migrations.upgrade(url)
        _say(f"sqlite: {scale.plan.command()}")
        seeded = subprocess.run(
            [str(GQL_BLOG), "seed", *scale.plan.cli_arguments()],
            env=datasets.server_environment(url),
            check=False,
            capture_output=True,
            text=True,
        )
        if seeded.returncode != 0:
            raise click.ClickException(f"gql-blog seed failed:\n{seeded.stderr}")
        return asyncio.run(_run_against("sqlite", url, scale))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _say(message: str) -> None:
    click.echo(message, err=True)


def _seconds(value: float | None) -> str:
    return f"> {BUSY_DEADLINE:g}" if value is None else f"{value:.2f}"


def _table_line(row: Row) -> str:
    answer = row.answer.replace("|", "\\|")
    return (
        f"| {row.database} | {row.attack} | {row.seconds:.2f} | {answer} |"
        f" {row.healthz_max:.2f} | {_seconds(row.busy_after)} |"
    )


def table(rows: list[Row]) -> str:
    header = (
        "| database | attack | time to answer (s) | answer | /healthz max (s) |"
        " database busy after (s) |\n|---|---|---|---|---|---|\n"
    )
    return header + "\n".join(_table_line(row) for row in rows) + "\n"


@click.command()
@click.option("--quick", is_flag=True, help="Small data and small attacks: checks the script.")
@click.option(
    "--database",
    "databases",
    type=click.Choice(["sqlite", "postgresql"]),
    multiple=True,
    help="Attack only this database (repeatable); default both.",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write here.")
def main(quick: bool, databases: tuple[str, ...], output: Path | None) -> None:
    """Attack one gql-blog serve per database with every class of issue 19; print a table."""
    scale = QUICK if quick else FULL
    rows: list[Row] = []
    for database in databases or ("sqlite", "postgresql"):
        if database == "postgresql" and (missing := cluster.available()) is not None:
            _say(f"postgresql skipped: {missing}")
            continue
        rows += _on_postgresql(scale) if database == "postgresql" else _on_sqlite(scale)
    text = table(rows)
    click.echo(text)
    if output is not None:
        output.write_text(text)


if __name__ == "__main__":
    main()
