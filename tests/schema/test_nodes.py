"""Global ids, `node`/`nodes`, the single lookups (`post`, `user`, `tag`) and `viewer`."""

import base64
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import auth, models
from gql_blog.ids import encode_global_id
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

NODE_QUERY = """query($id: ID!) { node(id: $id) {
  __typename id
  ... on User { username }
  ... on Post { title }
  ... on Comment { content }
  ... on Tag { name }
} }"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _row_of_type(db: AsyncSession, type_name: str) -> tuple[models.Base, dict[str, str]]:
    """A row of `type_name` and the type-specific field `node` should return for it."""
    author = await make_user(db, username="ada")
    post = await make_post(db, author=author, title="Engines")
    if type_name == "User":
        return author, {"username": "ada"}
    if type_name == "Post":
        return post, {"title": "Engines"}
    if type_name == "Comment":
        return await make_comment(db, post=post, author=author, content="Nice"), {"content": "Nice"}
    return await make_tag(db, "math"), {"name": "math"}


@pytest.mark.parametrize("type_name", ["User", "Post", "Comment", "Tag"])
async def test_node_returns_the_row_of_each_type(
    api: GraphQLClient, db: AsyncSession, type_name: str
) -> None:
    row, fields = await _row_of_type(db, type_name)
    global_id = encode_global_id(type_name, row.id)  # type: ignore[attr-defined]

    result = await api.query(NODE_QUERY, {"id": global_id})

    assert result.errors is None
    assert result.data == {"node": {"__typename": type_name, "id": global_id, **fields}}


async def test_nodes_keep_input_order_and_duplicates_with_null_for_missing(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author, title="Kept")
    tag = await make_tag(db, "kept")
    ids = [
        encode_global_id("Tag", tag.id),
        encode_global_id("Post", post.id),
        encode_global_id("Post", post.id + 1000),
        encode_global_id("User", author.id),
        encode_global_id("Post", post.id),
    ]

    result = await api.query(
        """query($ids: [ID!]!) { nodes(ids: $ids) {
            __typename ... on Post { title } ... on Tag { name } ... on User { username } } }""",
        {"ids": ids},
    )

    assert result.errors is None
    assert result.data == {
        "nodes": [
            {"__typename": "Tag", "name": "kept"},
            {"__typename": "Post", "title": "Kept"},
            None,
            {"__typename": "User", "username": author.username},
            {"__typename": "Post", "title": "Kept"},
        ]
    }


async def test_nodes_of_no_ids_is_an_empty_list(api: GraphQLClient) -> None:
    result = await api.query("{ nodes(ids: []) { id } }")

    assert result.errors is None
    assert result.data == {"nodes": []}


@pytest.mark.parametrize("type_name", ["User", "Post", "Comment", "Tag"])
async def test_node_of_a_missing_row_is_null(api: GraphQLClient, type_name: str) -> None:
    result = await api.query(NODE_QUERY, {"id": encode_global_id(type_name, 999_999)})

    assert result.errors is None
    assert result.data == {"node": None}


BEYOND_INTEGER_RANGE = {"int32-overflow": "Post:2147483648", "eighteen-digits": "Post:" + "9" * 18}
SINGLE_LOOKUPS = {
    "node": ("query($id: ID!) { node(id: $id) { id } }", "node"),
    "post": ("query($id: ID!) { post(id: $id) { id } }", "post"),
}


@pytest.mark.parametrize("lookup", list(SINGLE_LOOKUPS))
@pytest.mark.parametrize("raw", list(BEYOND_INTEGER_RANGE.values()), ids=list(BEYOND_INTEGER_RANGE))
async def test_id_beyond_the_integer_range_is_null(
    api: GraphQLClient, lookup: str, raw: str
) -> None:
    query, field = SINGLE_LOOKUPS[lookup]

    result = await api.query(query, {"id": _b64(raw)})

    assert result.errors is None
    assert result.data == {field: None}


async def test_nodes_with_an_id_beyond_the_integer_range_give_null_in_its_place(
    api: GraphQLClient, db: AsyncSession
) -> None:
    post = await make_post(db, author=await make_user(db))
    ids = [_b64("Post:2147483648"), encode_global_id("Post", post.id)]

    result = await api.query("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})

    assert result.errors is None
    assert result.data == {"nodes": [None, {"id": ids[1]}]}


MALFORMED_IDS = {
    "not-base64": "not base64!",
    "non-integer": _b64("Post:abc"),
    "unknown-type": _b64("Nope:1"),
    "missing-number": _b64("Post:"),
    "empty": "",
    "no-separator": _b64("Post1"),
    "negative": _b64("Post:-1"),
    "not-utf8": base64.b64encode(b"\xff\xfe:1").decode(),
    "lower-case-type": _b64("post:1"),
}
LOOKUPS = {
    "node": ("query($id: ID!) { node(id: $id) { id } }", lambda value: {"id": value}),
    "nodes": (
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        lambda value: {"ids": [_b64("Post:1"), value]},
    ),
    "post": ("query($id: ID!) { post(id: $id) { id } }", lambda value: {"id": value}),
}


@pytest.mark.parametrize("lookup", list(LOOKUPS))
@pytest.mark.parametrize("malformed", list(MALFORMED_IDS))
async def test_malformed_id_is_a_bad_user_input_error(
    api: GraphQLClient, lookup: str, malformed: str
) -> None:
    query, variables = LOOKUPS[lookup]

    result = await api.query(query, variables(MALFORMED_IDS[malformed]))

    assert result.status == 200
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid id" in result.error_messages[0]
    assert "INTERNAL_SERVER_ERROR" not in result.error_codes


@pytest.mark.parametrize("type_name", ["User", "Comment", "Tag"])
async def test_post_with_an_id_of_another_type_is_null(
    api: GraphQLClient, db: AsyncSession, type_name: str
) -> None:
    row, _ = await _row_of_type(db, type_name)

    result = await api.query(
        "query($id: ID!) { post(id: $id) { title } }",
        {"id": encode_global_id(type_name, row.id)},  # type: ignore[attr-defined]
    )

    assert result.errors is None
    assert result.data == {"post": None}


async def test_post_by_id_returns_the_post(api: GraphQLClient, db: AsyncSession) -> None:
    post = await make_post(db, author=await make_user(db), title="Found")

    result = await api.query(
        "query($id: ID!) { post(id: $id) { title } }", {"id": encode_global_id("Post", post.id)}
    )

    assert result.errors is None
    assert result.data == {"post": {"title": "Found"}}


@pytest.mark.parametrize("asked", ["AdaLovelace", "adalovelace", "ADALOVELACE"])
async def test_user_by_username_matches_ignoring_case(
    api: GraphQLClient, db: AsyncSession, asked: str
) -> None:
    await make_user(db, username="AdaLovelace")

    result = await api.query(
        "query($name: String!) { user(username: $name) { username } }", {"name": asked}
    )

    assert result.errors is None
    assert result.data == {"user": {"username": "AdaLovelace"}}


async def test_user_by_unknown_username_is_null(api: GraphQLClient, db: AsyncSession) -> None:
    await make_user(db, username="someone")

    result = await api.query('{ user(username: "nobody") { username } }')

    assert result.errors is None
    assert result.data == {"user": None}


@pytest.mark.parametrize("asked", ["python", "  Python ", "PYTHON\t"])
async def test_tag_by_name_is_trimmed_and_lower_cased(
    api: GraphQLClient, db: AsyncSession, asked: str
) -> None:
    await make_tag(db, "python")

    result = await api.query("query($name: String!) { tag(name: $name) { name } }", {"name": asked})

    assert result.errors is None
    assert result.data == {"tag": {"name": "python"}}


async def test_tag_by_unknown_name_is_null(api: GraphQLClient, db: AsyncSession) -> None:
    await make_tag(db, "python")

    result = await api.query('{ tag(name: "rust") { name } }')

    assert result.errors is None
    assert result.data == {"tag": None}


async def test_viewer_is_null_when_anonymous(api: GraphQLClient) -> None:
    result = await api.query("{ viewer { username } }")

    assert result.errors is None
    assert result.data == {"viewer": None}


async def test_viewer_is_the_signed_in_user(api: GraphQLClient, db: AsyncSession) -> None:
    user = await make_user(db, username="me_myself")

    result = await api.query("{ viewer { username email } }", viewer=user)

    assert result.errors is None
    assert result.data == {"viewer": {"username": "me_myself", "email": user.email}}


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer ", "Bearer", "Token abc"],
    ids=["garbage-token", "empty-token", "no-token", "other-scheme"],
)
async def test_invalid_bearer_token_is_anonymous(
    api: GraphQLClient, db: AsyncSession, authorization: str
) -> None:
    await make_user(db)

    response = await api.http.post(
        "/graphql",
        json={"query": "{ viewer { username } }"},
        headers={"Authorization": authorization},
    )

    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    assert body["data"] == {"viewer": None}  # a malformed header may add extensions.warnings


@pytest.mark.parametrize("state", ["expired", "revoked"])
async def test_expired_or_revoked_token_is_anonymous(
    api: GraphQLClient, db: AsyncSession, state: str
) -> None:
    user = await make_user(db)
    lifetime = timedelta(hours=-1 if state == "expired" else 1)
    token = await auth.issue_token(db, user, lifetime=lifetime)
    if state == "revoked":
        await db.execute(
            update(models.AuthToken)
            .where(models.AuthToken.token_hash == auth.token_digest(token))
            .values(revoked_at=models.utc_now())
        )

    response = await api.http.post(
        "/graphql",
        json={"query": "{ viewer { username } }"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    assert body["data"] == {"viewer": None}  # a malformed header may add extensions.warnings
