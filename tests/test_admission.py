"""Expensive work from one client cannot starve everyone: while twenty expensive scans arrive at
once, another client's ordinary reads keep answering, fast (issue 19, point 3).

A real `gql-blog serve` process (one worker) on a database seeded so that one scan takes
seconds; expensive requests (the default threshold) take turns, two at a time, ten more queued.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gql_blog.admission import ExpensiveRequests, ServerBusyError
from gql_blog.config import ConfigError, Settings
from tests.databases import DIALECTS
from tests.scans import ORDINARY, Served, scan, serve_seeded

CLIENT_TIMEOUT_SECONDS = 60
EXPENSIVE_AT_ONCE = 20
# 30 aliases of `first: 100` over 30,000 posts: priced by the rows they read (30 case-insensitive
# scans of every post, twice: the page and the count), far over the default expensive cost.
EXPENSIVE_SCAN = scan(first=100)
ADMISSION = {
    "GQL_BLOG_MAX_EXPENSIVE_REQUESTS": "2",
    "GQL_BLOG_EXPENSIVE_QUEUE_SIZE": "10",
    "GQL_BLOG_REQUEST_TIMEOUT_SECONDS": "5",
}
# Generous for a loaded two-core machine; before admission, ordinary reads waited for a pool
# connection until SERVER_BUSY (5 s) or their time limit.
P99_BOUND_SECONDS = 1.0


@pytest.fixture(scope="module", params=DIALECTS)
async def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    tmp_dir = tmp_path_factory.mktemp("admission")
    async with serve_seeded(str(request.param), tmp_dir, ADMISSION) as served:
        yield served


async def _expensive(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": EXPENSIVE_SCAN}, timeout=CLIENT_TIMEOUT_SECONDS
    )


async def _ordinary_reads(http: httpx.AsyncClient, until: asyncio.Future[object]) -> list[float]:
    """Read, one request after another, until `until` is done; each read's seconds."""
    seconds: list[float] = []
    while not until.done() or not seconds:
        started = time.perf_counter()
        response = await http.post(
            "/graphql", json={"query": ORDINARY}, timeout=CLIENT_TIMEOUT_SECONDS
        )
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]["users"]["nodes"]) == 3
    return seconds


def _p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_ordinary_reads_answer_fast_beside_twenty_expensive_requests(
    served: Served,
) -> None:
    async with (
        httpx.AsyncClient(base_url=served.base_url) as attacker,
        httpx.AsyncClient(base_url=served.base_url) as reader,
    ):
        warm = await reader.post("/graphql", json={"query": ORDINARY})
        assert warm.status_code == 200, warm.text
        attack = asyncio.gather(*(_expensive(attacker) for _ in range(EXPENSIVE_AT_ONCE)))
        reads = await _ordinary_reads(reader, attack)
        answers = await attack

    codes = [
        "OK" if r.status_code == 200 else r.json()["errors"][0]["extensions"]["code"]
        for r in answers
    ]
    assert set(codes) <= {"OK", "SERVER_BUSY", "REQUEST_TIMEOUT"}, codes
    assert _p99(reads) < P99_BOUND_SECONDS, f"p99 {_p99(reads):.2f} s over {len(reads)} reads"
    assert "SERVER_BUSY" in codes, "twenty expensive requests at once all got a turn"


async def _hold_turn(
    turns: ExpensiveRequests, cost: int, entered: asyncio.Event, leave: asyncio.Event
) -> None:
    async with turns.admitted(cost):
        entered.set()
        await leave.wait()


@pytest.fixture
def turns() -> ExpensiveRequests:
    settings = Settings(
        expensive_cost=100,
        max_expensive_requests=1,
        expensive_queue_size=1,
        pool_timeout_seconds=0.2,
    )
    return ExpensiveRequests(settings)


async def _all_turns_taken(turns: ExpensiveRequests) -> tuple[asyncio.Task[None], asyncio.Event]:
    entered, leave = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_turn(turns, 100, entered, leave))
    await asyncio.wait_for(entered.wait(), 5)
    return holder, leave


async def test_a_cheap_request_never_waits_for_a_turn(turns: ExpensiveRequests) -> None:
    holder, leave = await _all_turns_taken(turns)
    async with asyncio.timeout(1), turns.admitted(99):
        pass
    leave.set()
    await holder


async def test_an_expensive_request_beyond_the_queue_is_refused_at_once(
    turns: ExpensiveRequests,
) -> None:
    holder, leave = await _all_turns_taken(turns)
    queued = asyncio.create_task(_hold_turn(turns, 500, asyncio.Event(), asyncio.Event()))
    await asyncio.sleep(0)  # it joins the queue
    started = time.perf_counter()
    with pytest.raises(ServerBusyError, match="queue"):
        async with turns.admitted(100):
            pass
    assert time.perf_counter() - started < 0.1
    leave.set()
    await holder
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)


async def test_a_queued_expensive_request_waits_the_pool_timeout_at_most(
    turns: ExpensiveRequests,
) -> None:
    holder, leave = await _all_turns_taken(turns)
    with pytest.raises(ServerBusyError, match="in time"):
        async with asyncio.timeout(5), turns.admitted(100):
            pass
    leave.set()
    await holder


async def test_a_queued_expensive_request_runs_once_a_turn_is_free(
    turns: ExpensiveRequests,
) -> None:
    holder, leave = await _all_turns_taken(turns)
    entered = asyncio.Event()
    queued = asyncio.create_task(_hold_turn(turns, 100, entered, asyncio.Event()))
    await asyncio.sleep(0)
    assert not entered.is_set()
    leave.set()
    await holder
    await asyncio.wait_for(entered.wait(), 1)
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "value"),
    [
        ("GQL_BLOG_EXPENSIVE_COST", "2500", "expensive_cost", 2500),
        ("GQL_BLOG_MAX_EXPENSIVE_REQUESTS", "4", "max_expensive_requests", 4),
        ("GQL_BLOG_EXPENSIVE_QUEUE_SIZE", "0", "expensive_queue_size", 0),
    ],
    ids=["threshold", "turns", "no-queue"],
)
def test_admission_settings_are_read(variable: str, raw: str, attribute: str, value: int) -> None:
    assert getattr(Settings.from_env({variable: raw}), attribute) == value


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("GQL_BLOG_EXPENSIVE_COST", "0"),
        ("GQL_BLOG_MAX_EXPENSIVE_REQUESTS", "0"),
        ("GQL_BLOG_EXPENSIVE_QUEUE_SIZE", "-1"),
    ],
    ids=["threshold-zero", "no-turns", "queue-negative"],
)
def test_bad_admission_setting_is_refused_naming_it(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: raw})
