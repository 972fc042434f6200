"""Log lines: one JSON object per record, the event name and its fields side by side."""

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import engines, migrations, models
from gql_blog.config import Settings
from gql_blog.logs import JsonFormatter
from tests.graphql_client import serve_api
from tests.live import GQL_BLOG, free_port, serve_environment, started_workers


def test_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "gql_blog.app",
            "levelname": "INFO",
            "msg": "graphql.request",
            "request_id": "r1",
            "statements": 3,
        }
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry.pop("time").endswith("+00:00")
    assert entry == {
        "level": "INFO",
        "logger": "gql_blog.app",
        "event": "graphql.request",
        "request_id": "r1",
        "statements": 3,
    }


# --- secrets stay out of logs, errors and the audit log -------------------------------------------

PASSWORDS = ("Correct-Horse-Battery-1", "Tr0ub4dor-and-3-changed", "Wrong-Guess-Password-9")
AUTH = "__typename ... on AuthPayload { token } ... on Error { message }"
SESSION_OF_MUTATIONS: list[tuple[str, dict[str, Any], str | None]] = [
    # (query, variables, which token signs it: "register", "login" or None)
    (
        f"mutation($input: RegisterInput!) {{ register(input: $input) {{ {AUTH} }} }}",
        {"input": {"username": "ada", "email": "ada@example.test", "password": PASSWORDS[0]}},
        None,
    ),
    (
        f"mutation($input: LoginInput!) {{ login(input: $input) {{ {AUTH} }} }}",
        {"input": {"username": "ada", "password": PASSWORDS[2]}},
        None,
    ),
    (
        f"mutation($input: LoginInput!) {{ login(input: $input) {{ {AUTH} }} }}",
        {"input": {"username": "ADA", "password": PASSWORDS[0]}},
        None,
    ),
    (
        "mutation($input: UpdateViewerInput!) { updateViewer(input: $input) { __typename } }",
        {"input": {"password": PASSWORDS[1], "bio": "Hello"}},
        "login",
    ),
    (
        "mutation($input: UpdateViewerInput!) { updateViewer(input: $input) { __typename } }",
        {"input": {"password": "short"}},
        "login",
    ),
    (
        'mutation { createPost(input: {title: "Hi", content: "There", published: true}) '
        "{ __typename ... on Post { id } } }",
        {},
        "login",
    ),
    ("mutation { logout }", {}, "register"),
    ("{ viewer { username } }", {}, "register"),
    (
        # The password inline in the document, of an account that exists: a ConflictError.
        f'mutation {{ register(input: {{username: "ada", email: "x@y.z", '
        f'password: "{PASSWORDS[0]}"}}) {{ {AUTH} }} }}',
        {},
        None,
    ),
    ("{ viewer { username } auditLog { totalCount } }", {}, "login"),
    (
        "mutation($input: LoginInput!) { login(input: $input) { __typename } }",
        {"input": {"username": "ada", "password": 12345678}},
        None,
    ),
]


async def test_a_session_of_mutations_never_logs_or_audits_a_password_or_token(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    loud = dataclasses.replace(settings, debug=True, echo_sql=True)
    loud_engine = engines.create_engine(loud)  # echoes every statement with its parameters
    responses: list[str] = []
    tokens: dict[str, str] = {}
    try:
        async with loud_engine.connect() as connection:
            transaction = await connection.begin()
            session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
            async with session, serve_api(loud, connection, session) as api:
                for query, variables, signer in SESSION_OF_MUTATIONS:
                    headers = {"Authorization": f"Bearer {tokens[signer]}"} if signer else {}
                    response = await api.http.post(
                        "/graphql", json={"query": query, "variables": variables}, headers=headers
                    )
                    payload = next(iter((response.json().get("data") or {}).values()), None)
                    if isinstance(payload, dict) and "token" in payload:
                        tokens.setdefault(next(iter(response.json()["data"])), payload["token"])
                    else:
                        responses.append(response.text)
                await api.http.post(  # not a bearer header: ignored, and its value not logged
                    "/graphql",
                    json={"query": "{ viewer { id } }"},
                    headers={"Authorization": f"Token {tokens['login']}"},
                )
                audit_rows = (await session.execute(select(models.AuditLog.changes))).all()
            await transaction.rollback()
    finally:
        await loud_engine.dispose()

    assert set(tokens) == {"register", "login"}
    logged = caplog.text + "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "INSERT INTO auth_tokens" in logged  # the statements were logged, parameters and all
    audited = orjson.dumps([row.changes for row in audit_rows]).decode()
    assert '"password":"changed"' in audited
    for secret in (*PASSWORDS, *tokens.values()):
        assert secret not in logged
        assert secret not in audited
    for secret in (*PASSWORDS, *tokens.values()):
        assert all(secret not in text for text in responses)


async def test_served_readiness_and_stop_log_no_library_chatter(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'blog.sqlite'}"
    await asyncio.to_thread(migrations.upgrade, database_url)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *(str(GQL_BLOG), "serve", "--port", str(port)),
        env=serve_environment(database_url),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(started_workers(server, 1), 60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(2):
                assert (await http.get("/readyz")).status_code == 200
            assert (await http.post("/graphql", json={"query": "{ viewer { id } }"})).is_success
    finally:
        server.terminate()
        _, stderr = await asyncio.wait_for(server.communicate(), 60)

    events = [json.loads(line) for line in stderr.decode().splitlines()]
    assert events[-1]["event"].startswith("Finished server process"), events  # stopped cleanly
    assert [event for event in events if event["logger"].startswith("alembic")] == []
    assert [event for event in events if "Pool" in event["event"]] == []
    assert [event["event"] for event in events if event["logger"].startswith("gql_blog")] == [
        "graphql.request"
    ]
