"""Work in proportion to the document (issue 19, point 1): a named fragment is expanded once by
every analysis — limits, cost, look-ahead, planning — and the field selections it stands for are
counted (with multiplicity, never expanded) against GQL_BLOG_MAX_FIELDS.

The attack: 23 named fragments on `Post`, each spreading the next one twice, the last selecting
`id title`, under `posts(first: 1)` — about 900 bytes for 2**24 field selections. Before, each
analysis expanded every spread again: 16 s of a blocked event loop on one worker.
"""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import parse
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from gql_blog.plan.planner import Planner
from gql_blog.schema.limits import field_count
from tests.conftest import PlannedApi, StatementCounter, graphql_endpoint
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, request_sessions, serve_api, serve_app
from tests.scans import serve

LEVELS = 23


def doubling_fragments(levels: int) -> str:
    """`levels` fragments on Post, each spreading the next twice; 2**levels leaf selections."""
    fragments = [
        f"fragment F{level} on Post {{ ...F{level + 1} ...F{level + 1} }}"
        for level in range(levels - 1)
    ]
    fragments.append(f"fragment F{levels - 1} on Post {{ id title }}")
    return "query Attack { posts(first: 1) { nodes { ...F0 } } } " + " ".join(fragments)


ATTACK = doubling_fragments(LEVELS)
# posts, nodes, then `id title` once per path through the fragments.
ATTACK_FIELDS = 2 + 2 * 2 ** (LEVELS - 1)
# Far below the 16 s the attack took before; room for a loaded two-core machine.
FAST_SECONDS = 2.0


def test_fields_are_counted_with_multiplicity_without_expansion() -> None:
    assert field_count(parse(ATTACK)) == ATTACK_FIELDS
    sixty = doubling_fragments(60)  # 2**60 selections: any expansion would never finish
    assert field_count(parse(sixty)) == 2 + 2**60


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("{ viewer { id } }", 2),
        ("{ posts { nodes { id title author { username } } } }", 6),
        ("{ a: viewer { id } b: viewer { id } }", 4),
        ("{ viewer { ...U ...U } } fragment U on User { id username }", 5),
        ("{ viewer { ... on User { id } } }", 2),
    ],
    ids=["one-level", "nested", "aliases", "fragment-twice", "inline-fragment"],
)
def test_field_count_is_the_selections_after_expansion(query: str, fields: int) -> None:
    assert field_count(parse(query)) == fields


async def test_fragment_attack_is_refused_before_sql_in_milliseconds(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    started = time.perf_counter()
    with count_sql() as counted:
        result = await api.query(ATTACK)
    waited = time.perf_counter() - started

    assert result.data is None
    assert result.error_codes == ["QUERY_TOO_COMPLEX"]
    assert result.errors is not None
    assert result.errors[0]["message"] == (
        f"The query's fields ({ATTACK_FIELDS}) exceeds the maximum of 2000."
    )
    assert result.errors[0]["extensions"]["limit"] == "fields"
    assert counted.total == 0
    assert waited < FAST_SECONDS, f"the refusal took {waited:.2f} s"


async def test_field_limit_follows_the_setting(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    strict = dataclasses.replace(settings, max_fields=6)
    async with serve_api(strict, connection, db) as client:
        passing = await client.query("{ posts { nodes { id title author { id } } } }")
        refused = await client.query("{ posts { nodes { id title author { id username } } } }")
    assert passing.errors is None
    assert refused.error_codes == ["QUERY_TOO_COMPLEX"]
    assert refused.errors is not None
    assert refused.errors[0]["extensions"]["value"] == 7


@pytest.fixture
async def unlimited_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[PlannedApi]:
    """The planned app with the field limit lifted: the attack runs, through every analysis."""
    lifted = dataclasses.replace(settings, planner=True, max_fields=10**12)
    app = create_app(lifted, sessions=request_sessions(connection))
    async with serve_app(app, db) as client:
        yield PlannedApi(client, graphql_endpoint(app).planner)


async def _answer_in_time(client: GraphQLClient) -> dict[str, object]:
    started = time.perf_counter()
    result = await client.query(ATTACK)
    waited = time.perf_counter() - started
    assert result.errors is None
    assert waited < FAST_SECONDS, f"the answer took {waited:.2f} s"
    data: dict[str, object] = result.data
    return data


async def test_doubling_fragments_are_analysed_once_on_both_paths(
    unlimited_api: PlannedApi, db: AsyncSession
) -> None:
    post = await make_post(db, author=await make_user(db), title="Linear")
    planner: Planner = unlimited_api.planner
    # The generic executor (limits, cost, look-ahead), then the planner (plan building).
    generic = await _answer_in_time(unlimited_api.client)
    answered = planner.answered
    planned = await _answer_in_time(unlimited_api.client)

    assert planner.answered == answered + 1
    assert generic == planned
    assert generic == {
        "posts": {"nodes": [{"id": encode_global_id("Post", post.id), "title": "Linear"}]}
    }


async def test_served_worker_stays_responsive_while_the_attack_is_sent(
    dialect: str, database_url: str
) -> None:
    async with (
        serve(dialect, database_url, {}) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=60) as http,
    ):
        assert (await http.get("/healthz")).status_code == 200

        async def attack() -> httpx.Response:
            return await http.post("/graphql", json={"query": ATTACK})

        async def health_waits(until: "asyncio.Future[list[httpx.Response]]") -> list[float]:
            waits: list[float] = []
            while not until.done() or not waits:
                started = time.perf_counter()
                assert (await http.get("/healthz")).status_code == 200
                waits.append(time.perf_counter() - started)
            return waits

        started = time.perf_counter()
        attacks = asyncio.gather(*(attack() for _ in range(10)))
        waits = await health_waits(attacks)
        answers = await attacks
        elapsed = time.perf_counter() - started

    for answer in answers:
        assert answer.json()["errors"][0]["extensions"]["limit"] == "fields"
    assert max(waits) < 1.0, f"/healthz waited {max(waits):.2f} s beside the attack"
    assert elapsed < 10 * FAST_SECONDS, f"ten refusals took {elapsed:.2f} s"
