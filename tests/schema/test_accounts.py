"""register, login, logout and updateViewer: rules, every error type, tokens, rollback."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import auth, migrations, models
from gql_blog.config import Settings
from gql_blog.engines import create_engine
from tests.committed import CommittedApi, serve_committed_api
from tests.conftest import StatementCounter
from tests.databases import empty_database
from tests.factories import make_user
from tests.graphql_client import GraphQLClient

AUTH_RESULT = """
  __typename
  ... on AuthPayload { token user { username email firstName lastName age bio } }
  ... on Error { message }
  ... on ValidationError { field }
  ... on ConflictError { field }
"""
REGISTER = f"mutation($input: RegisterInput!) {{ register(input: $input) {{ {AUTH_RESULT} }} }}"
LOGIN = f"mutation($input: LoginInput!) {{ login(input: $input) {{ {AUTH_RESULT} }} }}"
LOGOUT = "mutation { logout }"
VIEWER = "{ viewer { username email } }"
USER_RESULT = """
  __typename
  ... on User { username email firstName lastName fullName age bio }
  ... on Error { message }
  ... on ValidationError { field }
  ... on ConflictError { field }
"""
UPDATE_VIEWER = (
    f"mutation($input: UpdateViewerInput!) {{ updateViewer(input: $input) {{ {USER_RESULT} }} }}"
)
PASSWORD = "correct horse battery"


def _account(**fields: Any) -> dict[str, Any]:
    return {"username": "ada", "email": "ada@example.test", "password": PASSWORD, **fields}


async def _table_rows(db: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read past the session's identity map."""
    return {
        name: sorted((tuple(row) for row in (await db.execute(select(table))).all()), key=repr)
        for name, table in models.Base.metadata.tables.items()
    }


async def _user_row(db: AsyncSession, username: str) -> models.User:
    stmt = (
        select(models.User)
        .where(models.User.username == username)
        .execution_options(populate_existing=True)
    )
    return (await db.scalars(stmt)).one()


async def _with_password(db: AsyncSession, password: str = PASSWORD, **fields: Any) -> models.User:
    user = await make_user(db, **fields)
    user.password_hash = auth.hash_password(password)
    await db.flush()
    return user


async def _query_with_token(
    api: GraphQLClient, query: str, token: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await api.http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# --- register -----------------------------------------------------------------------------------


async def test_register_returns_a_token_for_the_new_user(
    api: GraphQLClient, db: AsyncSession
) -> None:
    result = await api.query(REGISTER, {"input": _account(firstName="Ada", age=36)})

    assert result.errors is None
    payload = result.data["register"]
    assert payload["__typename"] == "AuthPayload"
    assert payload["user"] == {
        "username": "ada",
        "email": "ada@example.test",
        "firstName": "Ada",
        "lastName": None,
        "age": 36,
        "bio": None,
    }
    viewer = await _query_with_token(api, VIEWER, payload["token"])
    assert viewer["data"] == {"viewer": {"username": "ada", "email": "ada@example.test"}}


async def test_register_stores_a_password_hash_not_the_password(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await api.query(REGISTER, {"input": _account()})

    user = await _user_row(db, "ada")
    assert PASSWORD not in user.password_hash
    assert auth.verify_password(user.password_hash, PASSWORD)


async def test_register_stores_email_lower_case_and_blank_names_as_null(
    api: GraphQLClient, db: AsyncSession
) -> None:
    result = await api.query(
        REGISTER,
        {"input": _account(username="AdaL", email="Ada@Example.TEST", firstName=" ", lastName="")},
    )

    assert result.errors is None
    user = await _user_row(db, "AdaL")
    assert (user.username, user.email) == ("AdaL", "ada@example.test")
    assert (user.first_name, user.last_name) == (None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "a" * 33}, "username"),
        ({"username": "ada lovelace"}, "username"),
        ({"username": "adä"}, "username"),
        ({"username": "ada\x00"}, "username"),
        ({"email": "ada.example.test"}, "email"),
        ({"email": "ada@@example.test"}, "email"),
        ({"email": "a@b@example.test"}, "email"),
        ({"email": "@example.test"}, "email"),
        ({"email": "ada@"}, "email"),
        ({"email": "a" * 242 + "@example.test"}, "email"),
        ({"email": "ada\x00@example.test"}, "email"),
        ({"password": "x" * 7}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"password": "password\x00"}, "password"),
        ({"age": -1}, "age"),
        ({"age": 151}, "age"),
        ({"bio": "x" * 2001}, "bio"),
        ({"bio": "a\x00b"}, "bio"),
        ({"firstName": "a\x00b"}, "firstName"),
        ({"lastName": "x" * 101}, "lastName"),
    ],
    ids=[
        "short-username",
        "long-username",
        "space-in-username",
        "non-ascii-username",
        "nul-username",
        "email-without-at",
        "email-with-two-ats",
        "email-with-at-in-domain",
        "email-without-local-part",
        "email-without-domain",
        "long-email",
        "nul-email",
        "short-password",
        "long-password",
        "nul-password",
        "negative-age",
        "age-over-150",
        "long-bio",
        "nul-bio",
        "nul-first-name",
        "long-last-name",
    ],
)
async def test_register_with_invalid_input_returns_validation_error(
    api: GraphQLClient, db: AsyncSession, fields: dict[str, Any], field: str
) -> None:
    result = await api.query(REGISTER, {"input": _account(**fields)})

    assert result.errors is None
    assert result.data["register"]["__typename"] == "ValidationError"
    assert result.data["register"]["field"] == field
    assert (await db.execute(select(models.User.id))).all() == []


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "abc", "password": "x" * 8, "age": 0, "bio": ""},
        {
            "username": "A" * 32,
            "email": "a" * 241 + "@example.test",
            "password": "x" * 256,
            "age": 150,
            "bio": "x" * 2000,
        },
    ],
    ids=["smallest", "largest"],
)
async def test_register_accepts_the_limits(api: GraphQLClient, fields: dict[str, Any]) -> None:
    result = await api.query(REGISTER, {"input": _account(**fields)})

    assert result.errors is None
    assert result.data["register"]["__typename"] == "AuthPayload"


@pytest.mark.parametrize("username", ["ADA", "Ada", "ada"], ids=["upper", "title", "same"])
async def test_register_with_taken_username_in_any_case_returns_conflict_error(
    api: GraphQLClient, db: AsyncSession, username: str
) -> None:
    await make_user(db, username="ada")

    result = await api.query(
        REGISTER, {"input": _account(username=username, email="other@example.test")}
    )

    assert result.errors is None
    assert result.data["register"]["__typename"] == "ConflictError"
    assert result.data["register"]["field"] == "username"


async def test_register_with_taken_email_in_any_case_returns_conflict_error(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await make_user(db, email="ada@example.test")

    result = await api.query(REGISTER, {"input": _account(email="ADA@example.test")})

    assert result.errors is None
    assert result.data["register"]["__typename"] == "ConflictError"
    assert result.data["register"]["field"] == "email"


@pytest.mark.parametrize(
    ("taken", "account", "field"),
    [
        ({"email": "username@example.test"}, {"email": "username@example.test"}, "email"),
        ({"username": "my_email"}, {"username": "MY_EMAIL"}, "username"),
    ],
    ids=["email-naming-username", "username-naming-email"],
)
async def test_conflict_field_comes_from_the_constraint_not_the_value(
    api: GraphQLClient,
    db: AsyncSession,
    taken: dict[str, str],
    account: dict[str, str],
    field: str,
) -> None:
    await make_user(db, **taken)

    result = await api.query(REGISTER, {"input": _account(**account)})

    assert result.data["register"]["__typename"] == "ConflictError"
    assert result.data["register"]["field"] == field


async def test_failed_register_leaves_every_table_as_it_was(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await make_user(db, username="ada")
    before = await _table_rows(db)

    result = await api.query(REGISTER, {"input": _account(username="ADA")})

    assert result.data["register"]["__typename"] == "ConflictError"
    assert await _table_rows(db) == before


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[CommittedApi]:
    async with serve_committed_api(settings) as served:
        yield served


async def test_racing_registrations_differing_in_case_create_one_user(
    committed: CommittedApi,
) -> None:
    results = await asyncio.gather(
        committed.api.query(REGISTER, {"input": _account(username="ada")}),
        committed.api.query(REGISTER, {"input": _account(username="ADA", email="b@example.test")}),
    )

    kinds = sorted(result.data["register"]["__typename"] for result in results)
    assert kinds == ["AuthPayload", "ConflictError"]
    usernames = await committed.db.scalars(select(models.User.username))
    assert len(list(usernames)) == 1


CREATE_POST = 'mutation { createPost(input: {title: "Hi", content: "Words."}) { __typename } }'


async def test_concurrent_sign_ins_and_writes_all_succeed(committed: CommittedApi) -> None:
    password_hash = auth.hash_password(PASSWORD)  # one hash for all: setting up stays quick
    readers = [await make_user(committed.db) for _ in range(16)]
    writers = [await make_user(committed.db) for _ in range(16)]
    for user in readers:
        user.password_hash = password_hash
    for user in writers:
        await committed.api.token_for(user)
    await committed.db.commit()

    results = await asyncio.gather(
        *(
            committed.api.query(LOGIN, {"input": {"username": user.username, "password": PASSWORD}})
            for user in readers
        ),
        *(committed.api.query(CREATE_POST, viewer=user) for user in writers),
    )

    assert [result.errors for result in results] == [None] * 32
    kinds = [next(iter(result.data.values()))["__typename"] for result in results]
    assert kinds == ["AuthPayload"] * 16 + ["Post"] * 16


async def test_login_verifies_the_password_holding_no_write_lock(
    committed: CommittedApi, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    if settings.dialect != "sqlite":
        pytest.skip("SQLite's database-wide write lock; the other dialects lock rows")
    await _with_password(committed.db, username="ada")
    await committed.db.commit()
    verify = auth.verify_password
    probes: list[str] = []

    def verify_while_probing(password_hash: str | None, password: str) -> bool:
        # Runs in a worker thread, as the real verification does: can another writer begin now?
        path = make_url(settings.database_url).database
        probe = sqlite3.connect(str(path), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            probes.append("free")
        except sqlite3.OperationalError as error:
            probes.append(str(error))
        finally:
            probe.close()
        return verify(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", verify_while_probing)
    result = await committed.api.query(LOGIN, {"input": {"username": "ada", "password": PASSWORD}})

    assert result.data["login"]["__typename"] == "AuthPayload"
    assert probes == ["free"]


# --- login --------------------------------------------------------------------------------------


async def test_login_with_the_username_in_any_case_returns_a_working_token(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await _with_password(db, username="Ada", email="ada@example.test")

    result = await api.query(LOGIN, {"input": {"username": "aDA", "password": PASSWORD}})

    assert result.errors is None
    payload = result.data["login"]
    assert payload["__typename"] == "AuthPayload"
    assert payload["user"]["username"] == "Ada"
    assert payload["user"]["email"] == "ada@example.test"
    viewer = await _query_with_token(api, VIEWER, payload["token"])
    assert viewer["data"]["viewer"]["username"] == "Ada"


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "nobody", "password": PASSWORD},
        {"username": "ada", "password": "wrong password"},
        {"username": "ada\x00", "password": PASSWORD},
    ],
    ids=["unknown-user", "wrong-password", "nul-in-username"],
)
async def test_login_failures_return_the_same_invalid_credentials_error(
    api: GraphQLClient, db: AsyncSession, credentials: dict[str, str]
) -> None:
    await _with_password(db, username="ada")

    result = await api.query(LOGIN, {"input": credentials})

    assert result.errors is None
    assert result.data["login"] == {
        "__typename": "InvalidCredentialsError",
        "message": "Wrong username or password.",
    }


async def test_inactive_user_cannot_log_in(api: GraphQLClient, db: AsyncSession) -> None:
    await _with_password(db, username="ada", is_active=False)

    result = await api.query(LOGIN, {"input": {"username": "ada", "password": PASSWORD}})

    assert result.data["login"]["__typename"] == "InvalidCredentialsError"
    assert result.data["login"]["message"] == "Wrong username or password."


@pytest.fixture
def argon2_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes argon2 verified during the test, in order."""
    verified: list[str] = []
    original: Callable[..., bool] = PasswordHasher.verify

    def counting(self: PasswordHasher, password_hash: str | bytes, password: str | bytes) -> bool:
        verified.append(str(password_hash))
        return original(self, password_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return verified


@pytest.mark.parametrize(
    ("username", "password", "is_active"),
    [
        ("nobody", PASSWORD, True),
        ("ada", "wrong password", True),
        ("ada", PASSWORD, False),
    ],
    ids=["unknown-user", "wrong-password", "inactive-user"],
)
async def test_every_login_failure_costs_one_argon2_verification(
    api: GraphQLClient,
    db: AsyncSession,
    argon2_verifications: list[str],
    username: str,
    password: str,
    is_active: bool,
) -> None:
    await _with_password(db, username="ada", is_active=is_active)
    argon2_verifications.clear()

    result = await api.query(LOGIN, {"input": {"username": username, "password": password}})

    assert result.data["login"]["__typename"] == "InvalidCredentialsError"
    assert len(argon2_verifications) == 1
    assert argon2_verifications[0].startswith("$argon2id$")


async def test_login_token_expires_after_the_configured_lifetime(
    api: GraphQLClient, db: AsyncSession, settings: Settings
) -> None:
    user = await _with_password(db, username="ada")
    before = models.utc_now()

    await api.query(LOGIN, {"input": {"username": "ada", "password": PASSWORD}})

    expires_at = await db.scalar(
        select(models.AuthToken.expires_at).where(models.AuthToken.user_id == user.id)
    )
    lifetime = timedelta(seconds=settings.token_lifetime_seconds)
    assert before + lifetime <= expires_at <= models.utc_now() + lifetime


# --- tokens and logout --------------------------------------------------------------------------


async def test_register_login_viewer_logout_then_the_token_is_refused(
    api: GraphQLClient,
) -> None:
    registered = await api.query(REGISTER, {"input": _account()})
    assert registered.data["register"]["__typename"] == "AuthPayload"
    login = await api.query(LOGIN, {"input": {"username": "ada", "password": PASSWORD}})
    token = login.data["login"]["token"]

    signed_in = await _query_with_token(api, VIEWER, token)
    logged_out = await _query_with_token(api, LOGOUT, token)
    after = await _query_with_token(api, VIEWER, token)
    again = await _query_with_token(api, LOGOUT, token)

    assert signed_in["data"]["viewer"]["username"] == "ada"
    assert logged_out["data"] == {"logout": True}
    assert after["data"] == {"viewer": None}
    assert again["data"] == {"logout": False}


async def test_logout_revokes_only_the_token_it_was_sent_with(api: GraphQLClient) -> None:
    registered = await api.query(REGISTER, {"input": _account()})
    login = await api.query(LOGIN, {"input": {"username": "ada", "password": PASSWORD}})

    await _query_with_token(api, LOGOUT, login.data["login"]["token"])

    still = await _query_with_token(api, VIEWER, registered.data["register"]["token"])
    assert still["data"]["viewer"]["username"] == "ada"


async def test_logout_without_a_token_returns_false(api: GraphQLClient) -> None:
    result = await api.query(LOGOUT)

    assert result.errors is None
    assert result.data == {"logout": False}


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Token abc", "Bearer not-a-token", "Bearer a b c"],
    ids=["no-token", "blank-token", "other-scheme", "unknown-token", "garbage"],
)
async def test_malformed_or_unknown_token_makes_the_request_anonymous(
    api: GraphQLClient, authorization: str
) -> None:
    response = await api.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": authorization}
    )

    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    assert body["data"] == {"viewer": None}  # a malformed header may add extensions.warnings


async def test_expired_token_is_anonymous_and_cannot_write(
    api: GraphQLClient, db: AsyncSession
) -> None:
    user = await make_user(db)
    token = await auth.issue_token(db, user, lifetime=timedelta(seconds=-1))

    viewer = await _query_with_token(api, VIEWER, token)
    write = await _query_with_token(api, UPDATE_VIEWER, token, {"input": {"bio": "Hi"}})
    logout = await _query_with_token(api, LOGOUT, token)

    assert viewer["data"] == {"viewer": None}
    assert write["data"]["updateViewer"]["__typename"] == "AuthenticationError"
    assert logout["data"] == {"logout": False}


# --- updateViewer -------------------------------------------------------------------------------


async def test_update_viewer_changes_only_the_given_fields(
    api: GraphQLClient, db: AsyncSession
) -> None:
    user = await make_user(db, username="ada", first_name="Ada", last_name="Byron", age=27)

    result = await api.query(
        UPDATE_VIEWER,
        {"input": {"lastName": "Lovelace", "email": "Countess@Example.TEST", "bio": "Notes"}},
        viewer=user,
    )

    assert result.errors is None
    assert result.data["updateViewer"] == {
        "__typename": "User",
        "username": "ada",
        "email": "countess@example.test",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "fullName": "Ada Lovelace",
        "age": 27,
        "bio": "Notes",
    }
    stored = await _user_row(db, "ada")
    assert (stored.email, stored.last_name, stored.age) == ("countess@example.test", "Lovelace", 27)


async def test_update_viewer_null_clears_optional_fields_and_keeps_email(
    api: GraphQLClient, db: AsyncSession
) -> None:
    user = await make_user(db, username="ada", first_name="Ada", age=36)

    result = await api.query(
        UPDATE_VIEWER,
        {"input": {"firstName": None, "age": None, "email": None, "password": None}},
        viewer=user,
    )

    updated = result.data["updateViewer"]
    assert (updated["firstName"], updated["age"]) == (None, None)
    assert updated["email"] == user.email


async def test_update_viewer_password_replaces_the_old_one(
    api: GraphQLClient, db: AsyncSession
) -> None:
    user = await _with_password(db, username="ada")

    result = await api.query(
        UPDATE_VIEWER, {"input": {"password": "a new passphrase"}}, viewer=user
    )
    old = await api.query(LOGIN, {"input": {"username": "ada", "password": PASSWORD}})
    new = await api.query(LOGIN, {"input": {"username": "ada", "password": "a new passphrase"}})

    assert result.data["updateViewer"]["__typename"] == "User"
    assert old.data["login"]["__typename"] == "InvalidCredentialsError"
    assert new.data["login"]["__typename"] == "AuthPayload"


async def test_update_viewer_when_anonymous_returns_authentication_error(
    api: GraphQLClient,
) -> None:
    result = await api.query(UPDATE_VIEWER, {"input": {"bio": "Hi"}})

    assert result.errors is None
    assert result.data["updateViewer"]["__typename"] == "AuthenticationError"


async def test_user_deactivated_after_signing_in_cannot_update(
    api: GraphQLClient, db: AsyncSession
) -> None:
    user = await make_user(db, username="ada")
    token = await api.token_for(user)
    await db.execute(update(models.User).where(models.User.id == user.id).values(is_active=False))

    result = await _query_with_token(api, UPDATE_VIEWER, token, {"input": {"bio": "Hi"}})

    assert result["data"]["updateViewer"]["__typename"] == "AuthenticationError"
    assert (await _user_row(db, "ada")).bio is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "no-at-sign"}, "email"),
        ({"firstName": "x" * 101}, "firstName"),
        ({"age": 151}, "age"),
        ({"bio": "x" * 2001}, "bio"),
        ({"password": "short"}, "password"),
        ({"lastName": "a\x00"}, "lastName"),
    ],
    ids=["email", "first-name", "age", "bio", "password", "nul-last-name"],
)
async def test_update_viewer_with_invalid_input_returns_validation_error(
    api: GraphQLClient, db: AsyncSession, fields: dict[str, Any], field: str
) -> None:
    user = await make_user(db, username="ada")
    await api.token_for(user)
    before = await _table_rows(db)

    result = await api.query(UPDATE_VIEWER, {"input": {"bio": "changed", **fields}}, viewer=user)

    assert result.errors is None
    assert result.data["updateViewer"]["__typename"] == "ValidationError"
    assert result.data["updateViewer"]["field"] == field
    assert await _table_rows(db) == before


async def test_update_viewer_with_taken_email_returns_conflict_and_changes_nothing(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await make_user(db, email="taken@example.test")
    user = await make_user(db, username="ada")
    await api.token_for(user)
    before = await _table_rows(db)

    result = await api.query(
        UPDATE_VIEWER, {"input": {"bio": "changed", "email": "TAKEN@example.test"}}, viewer=user
    )

    assert result.errors is None
    assert result.data["updateViewer"]["__typename"] == "ConflictError"
    assert result.data["updateViewer"]["field"] == "email"
    assert await _table_rows(db) == before


async def test_mutation_after_a_failed_one_in_the_same_request_still_works(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await make_user(db, email="taken@example.test")
    user = await make_user(db, username="ada")

    result = await api.query(
        """mutation {
          failed: updateViewer(input: {email: "taken@example.test"}) { __typename }
          done: updateViewer(input: {bio: "Hello"}) { ... on User { username bio } }
        }""",
        viewer=user,
    )

    assert result.errors is None
    assert result.data == {
        "failed": {"__typename": "ConflictError"},
        "done": {"username": "ada", "bio": "Hello"},
    }


# --- migration 0004 -----------------------------------------------------------------------------


async def test_usernames_from_before_0004_are_compared_ignoring_case(
    dialect: str, tmp_path: Path
) -> None:
    users = models.User.__table__
    async with empty_database(dialect, tmp_path) as url:
        await asyncio.to_thread(migrations.upgrade, url, "0003")
        engine = create_engine(Settings(database_url=url))
        try:
            async with engine.begin() as connection:
                await connection.exec_driver_sql(
                    "INSERT INTO users (username, email, password_hash) "
                    "VALUES ('Ada', 'ada@example.test', 'x')"
                )
            await asyncio.to_thread(migrations.upgrade, url)
            async with engine.connect() as connection:
                key = await connection.scalar(select(users.c.username_key))
                duplicate = users.insert().values(
                    username="ADA", email="other@example.test", password_hash="x"
                )
                with pytest.raises(IntegrityError, match="username_key"):
                    await connection.execute(duplicate)
        finally:
            await engine.dispose()
    assert key == "ada"


# --- statements ---------------------------------------------------------------------------------


async def test_register_takes_three_statements(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    with count_sql() as counted:
        result = await api.query(REGISTER, {"input": _account()})

    assert result.data["register"]["__typename"] == "AuthPayload"
    assert counted.total == 3  # the user, its audit entry, the token


async def test_login_takes_eight_statements(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await _with_password(db, username="ada")

    with count_sql() as counted:
        result = await api.query(LOGIN, {"input": {"username": "ada", "password": PASSWORD}})

    assert result.data["login"]["__typename"] == "AuthPayload"
    # Recent failures by address, by username and address, by username; this attempt, the
    # user, the attempts to forget (and expired ones: none here), marking it succeeded, the token.
    assert counted.total == 8


async def test_update_viewer_takes_three_statements(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    user = await make_user(db)
    await api.token_for(user)

    with count_sql() as counted:
        result = await api.query(UPDATE_VIEWER, {"input": {"bio": "Hello"}}, viewer=user)

    assert result.data["updateViewer"]["__typename"] == "User"
    assert counted.total == 3  # the viewer's token, the update, its audit entry
