"""`extensions.warnings`: a `Bearer` token that signs no one in says why, on both paths."""

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import auth
from tests.conftest import PlannedApi
from tests.factories import make_user
from tests.graphql_client import GraphQLClient

VIEWER = "{ viewer { id } }"
CREATE_POST = 'mutation { createPost(input: {title: "T", content: "C"}) { __typename } }'
SIGN_IN_AGAIN = "so this request ran signed out. Sign in again with `login`."
WARNINGS = {
    "unknown": "The Bearer token is not one this server issued (mistyped, cut short, or from "
    "another database), " + SIGN_IN_AGAIN,
    "revoked": "The Bearer token was revoked (`logout`), " + SIGN_IN_AGAIN,
    "expired": "The Bearer token has expired, " + SIGN_IN_AGAIN,
    "inactive": "The Bearer token belongs to a deactivated account, so this request ran signed "
    "out.",
}


async def _unknown(db: AsyncSession) -> str:
    return "no-such-token"


async def _revoked(db: AsyncSession) -> str:
    token = await auth.issue_token(db, await make_user(db), lifetime=timedelta(hours=1))
    assert await auth.revoke_token(db, token)
    return token


async def _expired(db: AsyncSession) -> str:
    return await auth.issue_token(db, await make_user(db), lifetime=timedelta(seconds=-1))


async def _inactive(db: AsyncSession) -> str:
    user = await make_user(db)
    token = await auth.issue_token(db, user, lifetime=timedelta(hours=1))
    user.is_active = False
    await db.flush()
    return token


TOKENS: dict[str, Callable[[AsyncSession], Awaitable[str]]] = {
    "unknown": _unknown,
    "revoked": _revoked,
    "expired": _expired,
    "inactive": _inactive,
}


@pytest.mark.parametrize("kind", list(TOKENS))
async def test_bad_bearer_token_is_answered_signed_out_with_a_warning_saying_why(
    api: GraphQLClient, db: AsyncSession, kind: str
) -> None:
    token = await TOKENS[kind](db)

    response = await api.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    assert body["data"] == {"viewer": None}
    assert body["extensions"]["warnings"] == [WARNINGS[kind]]


@pytest.mark.parametrize("kind", list(TOKENS))
async def test_planned_and_generic_answers_to_a_bad_token_are_the_same_bytes(
    planned_api: PlannedApi, db: AsyncSession, kind: str
) -> None:
    token = await TOKENS[kind](db)
    headers = {"Authorization": f"Bearer {token}"}
    http = planned_api.client.http

    generic = await http.post("/graphql", json={"query": VIEWER}, headers=headers)
    answered = planned_api.planner.answered
    planned = await http.post("/graphql", json={"query": VIEWER}, headers=headers)

    assert planned_api.planner.answered == answered + 1  # the second one was planned
    assert planned.content == generic.content
    assert planned.json()["extensions"]["warnings"] == [WARNINGS[kind]]


@pytest.mark.parametrize("kind", list(TOKENS))
async def test_bad_bearer_token_over_get_warns_alike_on_both_paths(
    planned_api: PlannedApi, db: AsyncSession, kind: str
) -> None:
    token = await TOKENS[kind](db)
    headers = {"Authorization": f"Bearer {token}"}
    http = planned_api.client.http

    generic = await http.get("/graphql", params={"query": VIEWER}, headers=headers)
    answered = planned_api.planner.answered
    planned = await http.get("/graphql", params={"query": VIEWER}, headers=headers)

    assert planned_api.planner.answered == answered + 1  # the second one was planned
    assert generic.status_code == planned.status_code == 200
    assert generic.json()["data"] == {"viewer": None}
    assert generic.json()["extensions"]["warnings"] == [WARNINGS[kind]]
    assert planned.content == generic.content


async def test_mutation_with_an_expired_token_warns_beside_its_authentication_error(
    api: GraphQLClient, db: AsyncSession
) -> None:
    token = await _expired(db)

    response = await api.http.post(
        "/graphql", json={"query": CREATE_POST}, headers={"Authorization": f"Bearer {token}"}
    )

    body = response.json()
    assert body["data"] == {"createPost": {"__typename": "AuthenticationError"}}
    assert body["extensions"]["warnings"] == [WARNINGS["expired"]]


@pytest.mark.parametrize("kind", ["unknown", "expired"])
async def test_planned_write_with_a_bad_token_warns_as_the_executor_does(
    planned_api: PlannedApi, db: AsyncSession, kind: str
) -> None:
    token = await TOKENS[kind](db)
    headers = {"Authorization": f"Bearer {token}"}
    http = planned_api.client.http

    generic = await http.post("/graphql", json={"query": CREATE_POST}, headers=headers)
    answered = planned_api.planner.answered
    planned = await http.post("/graphql", json={"query": CREATE_POST}, headers=headers)

    assert planned_api.planner.answered == answered + 1  # the second one was planned
    assert generic.json()["data"] == {"createPost": {"__typename": "AuthenticationError"}}
    assert generic.json()["extensions"]["warnings"] == [WARNINGS[kind]]
    assert planned.content == generic.content


async def test_live_token_brings_no_warning(api: GraphQLClient, db: AsyncSession) -> None:
    token = await auth.issue_token(db, await make_user(db), lifetime=timedelta(hours=1))

    response = await api.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )

    body = response.json()
    assert body["data"]["viewer"] is not None
    assert "warnings" not in (body.get("extensions") or {})


async def test_refused_token_is_logged_with_its_reason_but_never_itself(
    api: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gql_blog.schema.context"):
        await api.http.post(
            "/graphql",
            json={"query": VIEWER},
            headers={"Authorization": "Bearer s3cret-value"},
        )

    logged = [record for record in caplog.records if record.msg == "auth.token_refused"]
    assert [record.reason for record in logged] == ["unknown"]  # type: ignore[attr-defined]
    assert "s3cret" not in caplog.text
