"""Classic bad inputs through the real HTTP app: each gets a clear error or a typed result.

NUL bytes, strings of a megabyte, integers beyond 32 bits, Unicode look-alikes in usernames and
forged or expired tokens. None may answer 5xx, a masked internal error, a traceback or SQL.
"""

import base64
import hashlib
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import auth, models
from gql_blog.ids import encode_global_id
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, assert_clean

RESULT = "__typename ... on Error { message } ... on ValidationError { field }"
REGISTER = f"mutation($input: RegisterInput!) {{ register(input: $input) {{ {RESULT} }} }}"
LOGIN = f"mutation($input: LoginInput!) {{ login(input: $input) {{ {RESULT} }} }}"
UPDATE_VIEWER = (
    f"mutation($input: UpdateViewerInput!) {{ updateViewer(input: $input) {{ {RESULT} }} }}"
)
CREATE_POST = f"mutation($input: CreatePostInput!) {{ createPost(input: $input) {{ {RESULT} }} }}"
ADD_COMMENT = f"mutation($input: AddCommentInput!) {{ addComment(input: $input) {{ {RESULT} }} }}"
MEGABYTE = 1_000_000
# A body just under the 1 MiB limit: the string and the rest of the request.
JUST_UNDER_THE_LIMIT = 1_048_576 - 400


def _account(**fields: Any) -> dict[str, Any]:
    return {"username": "ada", "email": "ada@example.test", "password": "long enough"} | fields


async def _send(
    api: GraphQLClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str | bytes] | None = None,
) -> httpx.Response:
    response = await api.http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert_clean(response)
    return response


def _payload(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body.get("errors") is None, body
    value: dict[str, Any] = next(iter(body["data"].values()))
    return value


# --- NUL bytes ------------------------------------------------------------------------------------

NUL = "a\x00b"
NUL_CASES = {
    "register-username": (REGISTER, {"input": _account(username=NUL)}, "username"),
    "register-email": (REGISTER, {"input": _account(email="a\x00@example.test")}, "email"),
    "register-password": (REGISTER, {"input": _account(password="long\x00enough")}, "password"),
    "register-first-name": (REGISTER, {"input": _account(firstName=NUL)}, "firstName"),
    "register-bio": (REGISTER, {"input": _account(bio=NUL)}, "bio"),
    "update-viewer-bio": (UPDATE_VIEWER, {"input": {"bio": NUL}}, "bio"),
    "update-viewer-email": (UPDATE_VIEWER, {"input": {"email": "b\x00@example.test"}}, "email"),
    "update-viewer-password": (
        UPDATE_VIEWER,
        {"input": {"password": "long\x00enough"}},
        "password",
    ),
    "create-post-title": (CREATE_POST, {"input": {"title": NUL, "content": "C"}}, "title"),
    "create-post-content": (CREATE_POST, {"input": {"title": "T", "content": NUL}}, "content"),
    "create-post-tag": (
        CREATE_POST,
        {"input": {"title": "T", "content": "C", "tags": [NUL]}},
        "tags",
    ),
}


@pytest.mark.parametrize("case", list(NUL_CASES))
async def test_nul_bytes_in_a_mutation_input_are_a_validation_error(
    api: GraphQLClient, db: AsyncSession, case: str
) -> None:
    writer = await make_user(db)
    query, variables, field = NUL_CASES[case]

    response = await _send(
        api, query, variables, headers={"Authorization": f"Bearer {await api.token_for(writer)}"}
    )

    assert _payload(response)["__typename"] == "ValidationError"
    assert _payload(response)["field"] == field


async def test_a_nul_byte_in_a_comment_is_a_validation_error(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)
    variables = {"input": {"postId": encode_global_id("Post", post.id), "content": NUL}}

    response = await _send(
        api,
        ADD_COMMENT,
        variables,
        headers={"Authorization": f"Bearer {await api.token_for(author)}"},
    )

    assert _payload(response)["field"] == "content"


@pytest.mark.parametrize(
    "credentials",
    [{"username": NUL, "password": "long enough"}, {"username": "ada", "password": NUL * 4}],
    ids=["username", "password"],
)
async def test_a_nul_byte_in_login_is_invalid_credentials(
    api: GraphQLClient, credentials: dict[str, str]
) -> None:
    response = await _send(api, LOGIN, {"input": credentials})

    assert _payload(response)["__typename"] == "InvalidCredentialsError"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($n: String!) { user(username: $n) { id } }", {"n": NUL}),
        ("query($n: String!) { tag(name: $n) { id } }", {"n": NUL}),
        ("query($t: String!) { posts(where: {title: {eq: $t}}) { totalCount } }", {"t": NUL}),
        (
            "query($t: String!) { posts(where: {title: {contains: $t, mode: INSENSITIVE}}) "
            "{ totalCount } }",
            {"t": NUL},
        ),
        ("query($q: String!) { searchPosts(query: $q) { totalCount } }", {"q": NUL}),
    ],
    ids=["user", "tag", "filter-eq", "filter-contains", "search"],
)
async def test_a_nul_byte_in_a_query_argument_finds_nothing_or_is_bad_input(
    api: GraphQLClient, db: AsyncSession, query: str, variables: dict[str, str]
) -> None:
    await make_post(db, author=await make_user(db), title="a")

    response = await _send(api, query, variables)

    body = response.json()
    if body.get("errors"):
        assert [error["extensions"]["code"] for error in body["errors"]] == ["BAD_USER_INPUT"]
    else:
        assert next(iter(body["data"].values())) in (None, {"totalCount": 0})


# --- strings of a megabyte ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        (REGISTER, {"input": _account(username="a" * MEGABYTE)}, "username"),
        (REGISTER, {"input": _account(password="a" * MEGABYTE)}, "password"),
        (REGISTER, {"input": _account(bio="a" * MEGABYTE)}, "bio"),
        (CREATE_POST, {"input": {"title": "a" * MEGABYTE, "content": "C"}}, "title"),
        (CREATE_POST, {"input": {"title": "T", "content": "a" * JUST_UNDER_THE_LIMIT}}, "content"),
        (CREATE_POST, {"input": {"title": "T", "content": "C", "tags": ["a" * MEGABYTE]}}, "tags"),
    ],
    ids=["username", "password", "bio", "title", "content-just-under-the-body-limit", "tag"],
)
async def test_a_megabyte_string_is_a_validation_error(
    api: GraphQLClient, db: AsyncSession, query: str, variables: dict[str, Any], field: str
) -> None:
    writer = await make_user(db)

    response = await _send(
        api, query, variables, headers={"Authorization": f"Bearer {await api.token_for(writer)}"}
    )

    assert _payload(response)["__typename"] == "ValidationError"
    assert _payload(response)["field"] == field
    assert await db.scalar(select(func.count()).select_from(models.Post)) == 0


async def test_a_body_just_over_the_limit_is_413(api: GraphQLClient) -> None:
    response = await _send(api, CREATE_POST, {"input": {"title": "T", "content": "a" * 1_048_576}})

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_a_megabyte_login_is_invalid_credentials(api: GraphQLClient) -> None:
    response = await _send(api, LOGIN, {"input": {"username": "a" * MEGABYTE, "password": "pw"}})

    assert _payload(response)["__typename"] == "InvalidCredentialsError"


@pytest.mark.parametrize(
    "query",
    [
        "query($s: String!) { posts(where: {title: {contains: $s}}) { totalCount } }",
        "query($s: String!) { users(where: {username: {eq: $s, mode: INSENSITIVE}}) "
        "{ totalCount } }",
        "query($s: String!) { searchPosts(query: $s) { totalCount } }",
        "query($s: String!) { user(username: $s) { id } }",
    ],
    ids=["filter-contains", "filter-insensitive", "search", "user"],
)
async def test_a_megabyte_query_argument_is_answered(api: GraphQLClient, query: str) -> None:
    response = await _send(api, query, {"s": "a" * MEGABYTE})

    body = response.json()
    if body.get("errors"):
        assert {error["extensions"]["code"] for error in body["errors"]} == {"BAD_USER_INPUT"}
    else:
        assert next(iter(body["data"].values())) in (None, {"totalCount": 0})


# --- integers beyond 32 bits ----------------------------------------------------------------------

BIG = 2**31
HUGE = 2**70


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($n: Int) { posts(first: $n) { totalCount } }", {"n": BIG}),
        ("{ posts(first: 3000000000) { totalCount } }", {}),
        ("query($n: Int) { users(where: {age: {gt: $n}}) { totalCount } }", {"n": HUGE}),
        ("{ users(where: {age: {in: [1, 99999999999999]}}) { totalCount } }", {}),
        (REGISTER, {"input": _account(age=BIG)}),
        ("query($n: Int) { posts(first: $n) { totalCount } }", {"n": 1.5}),
    ],
    ids=[
        "first-variable",
        "first-literal",
        "age-filter",
        "age-in-literal",
        "register-age",
        "float",
    ],
)
async def test_an_integer_beyond_32_bits_is_a_clear_error(
    api: GraphQLClient, query: str, variables: dict[str, Any]
) -> None:
    response = await _send(api, query, variables)

    errors = response.json()["errors"]
    assert len(errors) == 1
    assert "Int cannot represent" in errors[0]["message"]


@pytest.mark.parametrize("row_id", [BIG, 10**18 - 1], ids=["2^31", "18-digits"])
async def test_ids_beyond_32_bits_name_no_row(
    api: GraphQLClient, db: AsyncSession, row_id: int
) -> None:
    admin = await make_user(db, is_admin=True)
    post_id = encode_global_id("Post", row_id)
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {await api.token_for(admin)}"}

    read = await _send(
        api,
        "query($id: ID!) { node(id: $id) { id } post(id: $id) { id } nodes(ids: [$id]) { id } "
        "posts(where: {id: {in: [$id]}}) { totalCount } }",
        {"id": post_id},
    )
    deleted = await _send(
        api,
        "mutation($id: ID!) { deletePost(id: $id) { __typename } }",
        {"id": post_id},
        headers=headers,
    )
    commented = await _send(
        api, ADD_COMMENT, {"input": {"postId": post_id, "content": "Hi"}}, headers=headers
    )
    bulk = await _send(
        api,
        "mutation($id: ID!) { deletePosts(where: {id: {eq: $id}}) "
        "{ ... on BulkUpdated { affected } } }",
        {"id": post_id},
        headers=headers,
    )

    assert read.json() == {
        "data": {"node": None, "post": None, "nodes": [None], "posts": {"totalCount": 0}},
        "extensions": read.json()["extensions"],
    }
    assert _payload(deleted) == {"__typename": "NotFoundError"}
    assert _payload(commented)["__typename"] == "NotFoundError"
    assert _payload(bulk) == {"affected": 0}


async def test_an_audit_log_id_beyond_32_bits_names_no_row(
    api: GraphQLClient, db: AsyncSession
) -> None:
    """Audit log ids are BIGINT: the by-id statement binds the keys as such on every database."""
    admin = await make_user(db, is_admin=True)
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {await api.token_for(admin)}"}
    audit_id = encode_global_id("AuditLogEntry", BIG)

    read = await _send(
        api,
        "query($id: ID!) { node(id: $id) { id } nodes(ids: [$id]) { id } }",
        {"id": audit_id},
        headers=headers,
    )

    assert read.json()["data"] == {"node": None, "nodes": [None]}
    assert "errors" not in read.json()


@pytest.mark.parametrize("row_id", [10**18, 2**63, HUGE], ids=["19-digits", "2^63", "2^70"])
async def test_ids_beyond_18_digits_are_invalid_ids(api: GraphQLClient, row_id: int) -> None:
    response = await _send(
        api, "query($id: ID!) { node(id: $id) { id } }", {"id": encode_global_id("Post", row_id)}
    )

    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"]
    assert "invalid id" in errors[0]["message"]


# --- Unicode look-alikes and normalisation in usernames ------------------------------------------


@pytest.mark.parametrize(
    "username",
    [
        "\uff41\uff44\uff41",  # "ada" in full-width letters
        "Jose\u0301",  # José, decomposed (NFD)
        "Jos\u00e9",  # José, composed (NFC)
        "\u0430da",  # a Cyrillic small a first
        "\u212aelvin",  # KELVIN SIGN, which lower-cases to k
        "\u017fam",  # LATIN SMALL LETTER LONG S, which upper-cases to S
        "ada\n",
        "ada\u200b",  # a zero-width space
        "\u0661\u0662\u0663",  # Arabic-Indic digits
    ],
    ids=[
        "full-width",
        "nfd",
        "nfc",
        "cyrillic",
        "kelvin",
        "long-s",
        "newline",
        "zero-width",
        "digits",
    ],
)
async def test_a_username_outside_ascii_letters_digits_and_underscore_is_refused(
    api: GraphQLClient, db: AsyncSession, username: str
) -> None:
    response = await _send(api, REGISTER, {"input": _account(username=username)})

    assert _payload(response)["__typename"] == "ValidationError"
    assert _payload(response)["field"] == "username"
    assert await db.scalar(select(func.count()).select_from(models.User)) == 0


@pytest.mark.parametrize(
    "second",
    ["ADA", "Ada", "\uff41\uff44\uff41", "\uff21\uff24\uff21"],
    ids=["upper", "title", "full-width", "full-width-upper"],
)
async def test_two_spellings_of_one_username_cannot_both_register(
    api: GraphQLClient, db: AsyncSession, second: str
) -> None:
    first = await _send(api, REGISTER, {"input": _account(username="ada")})
    again = await _send(
        api, REGISTER, {"input": _account(username=second, email="other@example.test")}
    )

    assert _payload(first)["__typename"] == "AuthPayload"
    assert _payload(again)["__typename"] in ("ConflictError", "ValidationError")
    assert list(await db.scalars(select(models.User.username))) == ["ada"]


@pytest.mark.parametrize(
    "spelling",
    ["\uff41\uff44\uff41", "ad\u0430", "ada "],
    ids=["full-width", "cyrillic", "trailing-space"],
)
async def test_a_look_alike_username_does_not_sign_in(api: GraphQLClient, spelling: str) -> None:
    await _send(api, REGISTER, {"input": _account(username="ada")})

    response = await _send(api, LOGIN, {"input": {"username": spelling, "password": "long enough"}})

    assert _payload(response)["__typename"] == "InvalidCredentialsError"


# --- expired and forged tokens ------------------------------------------------------------------

WRITE_AND_READ = (
    'mutation { createPost(input: {title: "T", content: "C"}) { __typename } }',
    "{ viewer { id } }",
)


def _forged(kind: str, real: str) -> str:
    return {
        "random": secrets.token_urlsafe(32),
        "real-with-one-character-changed": real[:-1] + ("A" if real[-1] != "A" else "B"),
        "real-truncated": real[:-1],
        "real-twice": real + real,
        "the-stored-digest": hashlib.sha256(real.encode()).hexdigest(),
        "base64-of-a-user-id": base64.b64encode(b"User:1").decode(),
        "a-jwt": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIiwiYWRtaW4iOnRydWV9.",
        "ten-kilobytes": "a" * 10_000,
        "sql": "' OR '1'='1",
        "latin-1": "caf\u00e9",
    }[kind]


FORGERIES = [
    "random",
    "real-with-one-character-changed",
    "real-truncated",
    "real-twice",
    "the-stored-digest",
    "base64-of-a-user-id",
    "a-jwt",
    "ten-kilobytes",
    "sql",
    "latin-1",
]


@pytest.mark.parametrize("kind", FORGERIES)
async def test_a_forged_token_is_anonymous_and_cannot_write(
    api: GraphQLClient, db: AsyncSession, kind: str
) -> None:
    admin = await make_user(db, is_admin=True)
    forged = _forged(kind, await api.token_for(admin))
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {forged}".encode("latin-1")}

    written, read = [await _send(api, query, headers=headers) for query in WRITE_AND_READ]

    assert _payload(written) == {"__typename": "AuthenticationError"}
    assert read.json()["data"] == {"viewer": None}


@pytest.mark.parametrize("state", ["expired", "revoked"])
async def test_an_expired_or_revoked_token_is_anonymous_and_cannot_write(
    api: GraphQLClient, db: AsyncSession, state: str
) -> None:
    user = await make_user(db)
    lifetime = timedelta(seconds=-1) if state == "expired" else timedelta(hours=1)
    token = await auth.issue_token(db, user, lifetime=lifetime)
    if state == "revoked":
        assert await auth.revoke_token(db, token)
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {token}"}

    written, read = [await _send(api, query, headers=headers) for query in WRITE_AND_READ]

    assert _payload(written) == {"__typename": "AuthenticationError"}
    assert read.json()["data"] == {"viewer": None}
