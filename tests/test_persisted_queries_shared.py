"""Automatic persisted queries shared through the database: a hash registered on one worker runs
on every other (each with its own in-process cache), on every dialect."""

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import models, persisted_queries
from gql_blog.config import Settings
from tests.conftest import StatementCounter
from tests.factories import make_post, make_user
from tests.graphql_client import serve_api

TITLES = "query Titles { posts(first: 5) { nodes { title } } }"


def _apq(query: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "extensions": {
            "persistedQuery": {
                "version": 1,
                "sha256Hash": hashlib.sha256(TITLES.encode()).hexdigest(),
            }
        }
    }
    if query is not None:
        body["query"] = query
    return body


async def _rows(db: AsyncSession) -> list[models.PersistedQuery]:
    return list((await db.scalars(select(models.PersistedQuery))).all())


async def test_a_hash_registered_on_one_worker_runs_on_another(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    await make_post(db, author=await make_user(db), title="Hello")
    async with (
        serve_api(settings, connection, db) as first,
        serve_api(settings, connection, db) as second,
    ):
        unknown = await second.http.post("/graphql", json=_apq(None))
        assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

        registered = await first.http.post("/graphql", json=_apq(TITLES))
        assert registered.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}

        elsewhere = await second.http.post("/graphql", json=_apq(None))
        assert elsewhere.status_code == 200
        assert elsewhere.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}
        extensions = json.dumps(_apq(None)["extensions"])
        over_get = await second.http.get("/graphql", params={"extensions": extensions})
        assert over_get.json()["data"] == {"posts": {"nodes": [{"title": "Hello"}]}}


async def test_a_registration_is_one_row_and_a_bad_hash_none(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> None:
    async with serve_api(settings, connection, db) as client:
        wrong = {**_apq(None), "query": "{ __typename }"}
        refused = await client.http.post("/graphql", json=wrong)
        assert refused.status_code == 400
        assert await _rows(db) == []

        await client.http.post("/graphql", json=_apq(TITLES))
        await client.http.post("/graphql", json=_apq(TITLES))

    rows = await _rows(db)
    assert [(row.sha256, row.query) for row in rows] == [
        (hashlib.sha256(TITLES.encode()).hexdigest(), TITLES)
    ]


async def test_a_hash_in_the_cache_runs_without_looking_in_the_table(
    settings: Settings, connection: AsyncConnection, db: AsyncSession, count_sql: StatementCounter
) -> None:
    async with (
        serve_api(settings, connection, db) as first,
        serve_api(settings, connection, db) as second,
    ):
        await first.http.post("/graphql", json=_apq(TITLES))
        with count_sql() as fetched:
            await second.http.post("/graphql", json=_apq(None))
        with count_sql() as cached:
            await second.http.post("/graphql", json=_apq(None))

    def lookups(statements: list[str]) -> int:
        return sum("persisted_queries" in statement for statement in statements)

    assert lookups(fetched.statements) == 1
    assert lookups(cached.statements) == 0


async def test_registering_again_keeps_a_hash_that_pruning_would_drop(
    connection: AsyncConnection, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persisted_queries, "_REGISTRATIONS_PER_PRUNE", 1)
    sessions = persisted_queries.async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    shared = persisted_queries.SharedQueries(sessions, retention=timedelta(days=1))
    await shared.register("a" * 64, "{ a: __typename }")
    await shared.register("b" * 64, "{ b: __typename }")
    long_ago = models.utc_now() - timedelta(days=2)
    await db.execute(update(models.PersistedQuery).values(registered_at=long_ago))
    await shared.register("b" * 64, "{ b: __typename }")  # moves b; prunes a

    assert await shared.get("a" * 64) is None
    assert await shared.get("b" * 64) == "{ b: __typename }"
    assert await db.scalar(select(func.count()).select_from(models.PersistedQuery)) == 1
