"""Typed `where` filters on scalar fields: every operator, NULLs, case, wildcards, logic, paging."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient, GraphQLResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)

USERS = """query($where: UserWhere) {
  users(where: $where, first: 100) { totalCount nodes { username } }
}"""
POSTS = """query($where: PostWhere) {
  posts(where: $where, first: 100, orderBy: [{field: TITLE, direction: ASC}]) {
    totalCount nodes { title }
  }
}"""
EVERYONE = ["ann", "bob", "cyd", "dee"]


@dataclass(frozen=True, slots=True)
class People:
    """Four users; fullName "Ann Lee", "Bob" (first name only), null (no names), "Dee"."""

    ann: models.User
    bob: models.User
    cyd: models.User
    dee: models.User
    post: models.Post

    def id(self, username: str) -> str:
        user: models.User = getattr(self, username)
        return encode_global_id("User", user.id)


@pytest.fixture
async def people(db: AsyncSession) -> People:
    ann = await make_user(
        db, username="ann", first_name="Ann", last_name="Lee", age=30, created_at=T0
    )
    bob = await make_user(db, username="bob", first_name="Bob", created_at=T0 + timedelta(hours=1))
    cyd = await make_user(
        db, username="cyd", age=17, is_active=False, created_at=T0 + timedelta(hours=2)
    )
    dee = await make_user(
        db,
        username="dee",
        last_name="Dee",
        age=65,
        created_at=T0 + timedelta(hours=3, microseconds=123456),
    )
    post = await make_post(db, author=ann)
    return People(ann=ann, bob=bob, cyd=cyd, dee=dee, post=post)


def expect_ok(result: GraphQLResult) -> Any:
    assert result.errors is None, result.errors
    return result.data


async def usernames(
    api: GraphQLClient, where: dict[str, Any] | None, viewer: models.User | None = None
) -> list[str]:
    """The users `where` matches, in the default order; totalCount must agree with the page."""
    data = expect_ok(await api.query(USERS, {"where": where}, viewer=viewer))
    names = [node["username"] for node in data["users"]["nodes"]]
    assert data["users"]["totalCount"] == len(names)
    return names


async def titles(
    api: GraphQLClient, where: dict[str, Any] | None, viewer: models.User | None = None
) -> list[str]:
    """The posts `where` matches, by title; totalCount must agree with the page."""
    data = expect_ok(await api.query(POSTS, {"where": where}, viewer=viewer))
    found = [node["title"] for node in data["posts"]["nodes"]]
    assert data["posts"]["totalCount"] == len(found)
    return found


def expect_bad_input(result: GraphQLResult, *fragments: str) -> str:
    assert result.data is None or all(value is None for value in result.data.values())
    assert result.error_codes == ["BAD_USER_INPUT"], result.errors
    message = result.error_messages[0]
    for fragment in fragments:
        assert fragment in message
    return message


# --- IntFilter (age; bob's age is NULL) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("operators", "expected"),
    [
        pytest.param({"eq": 30}, ["ann"], id="eq"),
        pytest.param({"ne": 30}, ["cyd", "dee"], id="ne-skips-null"),
        pytest.param({"in": [17, 30, 99]}, ["ann", "cyd"], id="in"),
        pytest.param({"notIn": [17]}, ["ann", "dee"], id="notIn-skips-null"),
        pytest.param({"lt": 30}, ["cyd"], id="lt"),
        pytest.param({"lte": 30}, ["ann", "cyd"], id="lte"),
        pytest.param({"gt": 30}, ["dee"], id="gt"),
        pytest.param({"gte": 17}, ["ann", "cyd", "dee"], id="gte"),
        pytest.param({"gt": 17, "lt": 65}, ["ann"], id="range"),
        pytest.param({"isNull": True}, ["bob"], id="isNull-true"),
        pytest.param({"isNull": False}, ["ann", "cyd", "dee"], id="isNull-false"),
    ],
)
async def test_int_filter_on_age(
    api: GraphQLClient, people: People, operators: dict[str, Any], expected: list[str]
) -> None:
    assert await usernames(api, {"age": operators}) == expected


# --- StringFilter (fullName: "Ann Lee", "Bob", null, "Dee") -----------------------------------


@pytest.mark.parametrize(
    ("operators", "expected"),
    [
        pytest.param({"eq": "Ann Lee"}, ["ann"], id="eq-first-and-last"),
        pytest.param({"eq": "Bob"}, ["bob"], id="eq-first-name-only"),
        pytest.param({"eq": "Dee"}, ["dee"], id="eq-last-name-only"),
        pytest.param({"eq": "ann lee"}, [], id="eq-is-case-sensitive"),
        pytest.param({"ne": "Bob"}, ["ann", "dee"], id="ne-skips-null"),
        pytest.param({"in": ["Bob", "Dee", "Nobody"]}, ["bob", "dee"], id="in"),
        pytest.param({"notIn": ["Bob"]}, ["ann", "dee"], id="notIn-skips-null"),
        pytest.param({"contains": "n L"}, ["ann"], id="contains-across-the-space"),
        pytest.param({"contains": "e"}, ["ann", "dee"], id="contains"),
        pytest.param({"contains": "E"}, [], id="contains-is-case-sensitive"),
        pytest.param({"startsWith": "B"}, ["bob"], id="startsWith"),
        pytest.param({"startsWith": "b"}, [], id="startsWith-is-case-sensitive"),
        pytest.param({"endsWith": "ee"}, ["ann", "dee"], id="endsWith"),
        pytest.param({"endsWith": "EE"}, [], id="endsWith-is-case-sensitive"),
        pytest.param({"isNull": True}, ["cyd"], id="isNull-true"),
        pytest.param({"isNull": False}, ["ann", "bob", "dee"], id="isNull-false"),
        pytest.param({"eq": "ann lee", "mode": "INSENSITIVE"}, ["ann"], id="eq-insensitive"),
        pytest.param({"ne": "BOB", "mode": "INSENSITIVE"}, ["ann", "dee"], id="ne-insensitive"),
        pytest.param({"in": ["bob", "DEE"], "mode": "INSENSITIVE"}, ["bob", "dee"], id="in-ci"),
        pytest.param({"notIn": ["bob"], "mode": "INSENSITIVE"}, ["ann", "dee"], id="notIn-ci"),
        pytest.param({"contains": "E", "mode": "INSENSITIVE"}, ["ann", "dee"], id="contains-ci"),
        pytest.param({"startsWith": "b", "mode": "INSENSITIVE"}, ["bob"], id="startsWith-ci"),
        pytest.param({"endsWith": "EE", "mode": "INSENSITIVE"}, ["ann", "dee"], id="endsWith-ci"),
        pytest.param({"eq": "Bob", "mode": "DEFAULT"}, ["bob"], id="eq-default-mode"),
        pytest.param({"isNull": True, "mode": "INSENSITIVE"}, ["cyd"], id="isNull-ignores-mode"),
        pytest.param({"startsWith": "A", "endsWith": "e"}, ["ann"], id="two-operators-and"),
    ],
)
async def test_string_filter_on_full_name(
    api: GraphQLClient, people: People, operators: dict[str, Any], expected: list[str]
) -> None:
    assert await usernames(api, {"fullName": operators}) == expected


async def test_string_filter_on_username(api: GraphQLClient, people: People) -> None:
    assert await usernames(api, {"username": {"in": ["bob", "dee"]}}) == ["bob", "dee"]


# --- DateTimeFilter (createdAt: T0, +1h, +2h, +3h and 123456 µs) ------------------------------


@pytest.mark.parametrize(
    ("operators", "expected"),
    [
        pytest.param({"eq": "2024-01-01T00:00:00+00:00"}, ["ann"], id="eq"),
        pytest.param({"eq": "2024-01-01T02:00:00+02:00"}, ["ann"], id="eq-another-offset"),
        pytest.param({"eq": "2023-12-31T19:00:00-05:00"}, ["ann"], id="eq-negative-offset"),
        pytest.param({"eq": "2024-01-01T00:00:00Z"}, ["ann"], id="eq-zulu"),
        pytest.param({"eq": "2024-01-01T03:00:00.123456Z"}, ["dee"], id="eq-microseconds"),
        pytest.param({"eq": "2024-01-01T03:00:00.123457Z"}, [], id="eq-one-microsecond-off"),
        pytest.param({"ne": "2024-01-01T00:00:00Z"}, ["bob", "cyd", "dee"], id="ne"),
        pytest.param(
            {"in": ["2024-01-01T00:00:00Z", "2024-01-01T04:00:00+02:00"]},
            ["ann", "cyd"],
            id="in",
        ),
        pytest.param({"notIn": ["2024-01-01T01:00:00Z"]}, ["ann", "cyd", "dee"], id="notIn"),
        pytest.param({"lt": "2024-01-01T01:00:00Z"}, ["ann"], id="lt"),
        pytest.param({"lte": "2024-01-01T01:00:00Z"}, ["ann", "bob"], id="lte"),
        pytest.param({"gt": "2024-01-01T03:00:00Z"}, ["dee"], id="gt-microseconds-count"),
        pytest.param({"gte": "2024-01-01T03:00:00.123456Z"}, ["dee"], id="gte"),
        pytest.param({"gt": "2024-01-01T03:00:00.123456Z"}, [], id="gt-excludes-equal"),
        pytest.param(
            {"gte": "2024-01-01T03:00:00+02:00", "lt": "2024-01-01T02:00:00Z"},
            ["bob"],
            id="range-with-offsets",
        ),
        pytest.param({"isNull": True}, [], id="isNull-true"),
        pytest.param({"isNull": False}, EVERYONE, id="isNull-false"),
    ],
)
async def test_datetime_filter_on_created_at(
    api: GraphQLClient, people: People, operators: dict[str, Any], expected: list[str]
) -> None:
    assert await usernames(api, {"createdAt": operators}) == expected


async def test_datetime_without_an_offset_is_bad_user_input(
    api: GraphQLClient, people: People
) -> None:
    result = await api.query(USERS, {"where": {"createdAt": {"lt": "2024-01-01T00:00:00"}}})

    expect_bad_input(result, "where.createdAt.lt", "offset")


async def test_datetime_that_does_not_parse_is_a_variable_error(
    api: GraphQLClient, people: People
) -> None:
    result = await api.query(USERS, {"where": {"createdAt": {"in": ["yesterday"]}}})

    assert result.data is None
    assert "INTERNAL_SERVER_ERROR" not in result.error_codes
    assert "DateTime" in result.error_messages[0]


# --- BooleanFilter (isActive: cyd is inactive) --------------------------------------------------


@pytest.mark.parametrize(
    ("operators", "expected"),
    [
        pytest.param({"eq": True}, ["ann", "bob", "dee"], id="eq-true"),
        pytest.param({"eq": False}, ["cyd"], id="eq-false"),
        pytest.param({"ne": True}, ["cyd"], id="ne-true"),
        pytest.param({"ne": False}, ["ann", "bob", "dee"], id="ne-false"),
        pytest.param({"isNull": True}, [], id="isNull-true"),
        pytest.param({"isNull": False}, EVERYONE, id="isNull-false"),
    ],
)
async def test_boolean_filter_on_is_active(
    api: GraphQLClient, people: People, operators: dict[str, Any], expected: list[str]
) -> None:
    assert await usernames(api, {"isActive": operators}) == expected


# --- IDFilter -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operators", "expected"),
    [
        pytest.param({"eq": "ann"}, ["ann"], id="eq"),
        pytest.param({"ne": "ann"}, ["bob", "cyd", "dee"], id="ne"),
        pytest.param({"in": ["ann", "cyd"]}, ["ann", "cyd"], id="in"),
        pytest.param({"notIn": ["ann", "cyd"]}, ["bob", "dee"], id="notIn"),
        pytest.param({"eq": "post"}, [], id="eq-a-post-id-matches-no-user"),
        pytest.param({"in": ["post", "bob"]}, ["bob"], id="in-ignores-a-post-id"),
        pytest.param({"ne": "post"}, EVERYONE, id="ne-a-post-id-is-every-user"),
        pytest.param({"notIn": ["post"]}, EVERYONE, id="notIn-a-post-id-is-every-user"),
        pytest.param({"eq": "missing"}, [], id="eq-an-id-no-row-has"),
    ],
)
async def test_id_filter(
    api: GraphQLClient, people: People, operators: dict[str, Any], expected: list[str]
) -> None:
    def global_id(name: str) -> str:
        if name == "post":
            return encode_global_id("Post", people.post.id)
        if name == "missing":
            return encode_global_id("User", 999_999)
        return people.id(name)

    where = {
        operator: [global_id(name) for name in value]
        if isinstance(value, list)
        else global_id(value)
        for operator, value in operators.items()
    }
    assert await usernames(api, {"id": where}) == expected


@pytest.mark.parametrize(
    "operators",
    [
        pytest.param({"eq": "not-an-id"}, id="eq-not-base64"),
        pytest.param({"eq": encode_global_id("Planet", 1)}, id="eq-unknown-type"),
        pytest.param({"eq": "VXNlcjphYmM="}, id="eq-not-an-integer"),  # "User:abc"
        pytest.param({"in": ["not-an-id"]}, id="in"),
        pytest.param({"notIn": ["not-an-id"]}, id="notIn"),
        pytest.param({"ne": "not-an-id"}, id="ne"),
    ],
)
async def test_malformed_id_in_filter_is_invalid_id(
    api: GraphQLClient, people: People, operators: dict[str, Any]
) -> None:
    result = await api.query(USERS, {"where": {"id": operators}})

    expect_bad_input(result, "invalid id")


# --- every field of the other types is wired -----------------------------------------------------


async def test_post_scalar_fields_filter(api: GraphQLClient, db: AsyncSession) -> None:
    author = await make_user(db)
    old = await make_post(db, author=author, title="Old", content="alpha beta", created_at=T0)
    await make_post(
        db, author=author, title="New", content="gamma", created_at=T0 + timedelta(days=1)
    )
    await make_post(db, author=author, title="Hidden draft", published=False)
    old_id = encode_global_id("Post", old.id)

    assert await titles(api, {"title": {"eq": "New"}}) == ["New"]
    assert await titles(api, {"content": {"contains": "beta"}}) == ["Old"]
    assert await titles(api, {"published": {"eq": True}}) == ["New", "Old"]
    assert await titles(api, {"published": {"eq": False}}) == []
    assert await titles(api, {"published": {"eq": False}}, viewer=author) == ["Hidden draft"]
    assert await titles(api, {"createdAt": {"gt": "2024-01-01T12:00:00Z"}}) == ["New"]
    assert await titles(api, {"updatedAt": {"lt": "2024-01-01T12:00:00Z"}}) == ["Old"]
    assert await titles(api, {"id": {"eq": old_id}}) == ["Old"]


async def test_tag_name_filter(api: GraphQLClient, db: AsyncSession) -> None:
    for name in ("python", "pytest", "rust"):
        await make_tag(db, name)

    result = await api.query(
        'query { tags(where: {name: {startsWith: "py"}}) { totalCount nodes { name } } }'
    )

    assert expect_ok(result) == {
        "tags": {"totalCount": 2, "nodes": [{"name": "pytest"}, {"name": "python"}]}
    }


async def test_comment_content_and_created_at_filter(api: GraphQLClient, db: AsyncSession) -> None:
    author = await make_user(db)
    post = await make_post(db, author=author)
    await make_comment(db, post=post, author=author, content="First!", created_at=T0)
    await make_comment(
        db, post=post, author=author, content="Late reply", created_at=T0 + timedelta(days=2)
    )

    result = await api.query(
        """query($id: ID!, $where: CommentWhere) { post(id: $id) {
            comments(where: $where) { totalCount nodes { content } } } }""",
        {
            "id": encode_global_id("Post", post.id),
            "where": {"content": {"endsWith": "!"}, "createdAt": {"lt": "2024-01-02T00:00:00Z"}},
        },
    )

    assert expect_ok(result) == {
        "post": {"comments": {"totalCount": 1, "nodes": [{"content": "First!"}]}}
    }


# --- and / or / not ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param({}, EVERYONE, id="empty-filter"),
        pytest.param(
            {"and": [{"age": {"gte": 17}}, {"age": {"lte": 30}}]}, ["ann", "cyd"], id="and"
        ),
        pytest.param({"and": []}, EVERYONE, id="empty-and"),
        pytest.param(
            {"or": [{"age": {"eq": 17}}, {"fullName": {"eq": "Bob"}}]}, ["bob", "cyd"], id="or"
        ),
        pytest.param({"or": []}, [], id="empty-or"),
        pytest.param({"not": {"age": {"gt": 20}}}, ["bob", "cyd"], id="not-includes-null"),
        pytest.param({"not": {}}, [], id="not-empty"),
        pytest.param({"not": {"not": {"age": {"gt": 20}}}}, ["ann", "dee"], id="not-not"),
        pytest.param(
            {"age": {"gte": 17}, "or": [{"isActive": {"eq": False}}, {"fullName": {"eq": "Dee"}}]},
            ["cyd", "dee"],
            id="fields-and-or-together",
        ),
        pytest.param(
            {
                "or": [
                    {"and": [{"age": {"isNull": False}}, {"fullName": {"isNull": True}}]},
                    {"not": {"or": [{"age": {"lt": 60}}, {"age": {"isNull": True}}]}},
                ]
            },
            ["cyd", "dee"],
            id="nested-or-and-not",
        ),
        pytest.param(
            {"not": {"and": [{"isActive": {"eq": True}}, {"fullName": {"contains": "e"}}]}},
            ["bob", "cyd"],
            id="not-and",
        ),
        pytest.param(
            {"not": {"or": [{"username": {"eq": "ann"}}, {"age": {"isNull": True}}]}},
            ["cyd", "dee"],
            id="not-or",
        ),
    ],
)
async def test_logical_combinations(
    api: GraphQLClient, people: People, where: dict[str, Any], expected: list[str]
) -> None:
    assert await usernames(api, where) == expected


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param({"age": {"gt": 20}}, id="age-gt"),
        pytest.param({"age": {"ne": 30}}, id="age-ne"),
        pytest.param({"age": {"notIn": [17, 65]}}, id="age-notIn"),
        pytest.param({"age": {"isNull": True}}, id="age-isNull"),
        pytest.param({"fullName": {"contains": "e"}}, id="fullName-contains"),
        pytest.param({"fullName": {"ne": "Bob"}}, id="fullName-ne"),
        pytest.param({"fullName": {"eq": "BOB", "mode": "INSENSITIVE"}}, id="fullName-eq-ci"),
        pytest.param({"fullName": {"notIn": ["Dee"], "mode": "INSENSITIVE"}}, id="fullName-ci"),
        pytest.param({"or": [{"age": {"lt": 20}}, {"fullName": {"endsWith": "e"}}]}, id="or"),
        pytest.param({"and": [{"age": {"lt": 40}}, {"fullName": {"isNull": False}}]}, id="and"),
    ],
)
async def test_not_returns_exactly_the_complement_nulls_included(
    api: GraphQLClient, people: People, inner: dict[str, Any]
) -> None:
    matched = await usernames(api, inner)
    complement = await usernames(api, {"not": inner})

    assert set(matched).isdisjoint(complement)
    assert sorted(matched + complement) == EVERYONE


# --- case-insensitive matching beyond ASCII ---------------------------------------------------

UNICODE_TITLES = [
    "École d'été",
    "ÉCOLE D'ÉTÉ",
    "Äpfel",
    "äpfel",
    "ΩMEGA",
    "ωmega",
    "STRASSE",
    "strasse",
]


@pytest.mark.parametrize(
    ("operators", "expected"),
    [
        pytest.param({"eq": "äpfel"}, ["äpfel"], id="eq-default-a-umlaut"),
        pytest.param({"eq": "äpfel", "mode": "INSENSITIVE"}, ["Äpfel", "äpfel"], id="eq-ä"),
        pytest.param({"eq": "ÄPFEL", "mode": "INSENSITIVE"}, ["Äpfel", "äpfel"], id="eq-Ä"),
        pytest.param({"eq": "strasse"}, ["strasse"], id="eq-default-strasse"),
        pytest.param({"eq": "Strasse", "mode": "INSENSITIVE"}, ["STRASSE", "strasse"], id="eq-ss"),
        pytest.param({"contains": "été"}, ["École d'été"], id="contains-default-é"),
        pytest.param(
            {"contains": "été", "mode": "INSENSITIVE"},
            ["ÉCOLE D'ÉTÉ", "École d'été"],
            id="contains-é",
        ),
        pytest.param(
            {"startsWith": "éc", "mode": "INSENSITIVE"},
            ["ÉCOLE D'ÉTÉ", "École d'été"],
            id="startsWith-é",
        ),
        pytest.param({"startsWith": "ω"}, ["ωmega"], id="startsWith-default-omega"),
        pytest.param({"startsWith": "ω", "mode": "INSENSITIVE"}, ["ΩMEGA", "ωmega"], id="ω"),
        pytest.param({"endsWith": "Ga", "mode": "INSENSITIVE"}, ["ΩMEGA", "ωmega"], id="endsWith"),
        pytest.param({"in": ["Ωmega"], "mode": "INSENSITIVE"}, ["ΩMEGA", "ωmega"], id="in-Ω"),
        pytest.param({"in": ["Ωmega"]}, [], id="in-default-Ω"),
        pytest.param(
            {"notIn": ["strasse", "äpfel"], "mode": "INSENSITIVE"},
            ["ÉCOLE D'ÉTÉ", "École d'été", "ΩMEGA", "ωmega"],
            id="notIn",
        ),
        pytest.param(
            {"ne": "STRASSE", "mode": "INSENSITIVE"},
            ["ÉCOLE D'ÉTÉ", "École d'été", "Äpfel", "äpfel", "ΩMEGA", "ωmega"],
            id="ne",
        ),
    ],
)
async def test_insensitive_mode_folds_non_ascii_letters_on_every_database(
    api: GraphQLClient, db: AsyncSession, operators: dict[str, Any], expected: list[str]
) -> None:
    author = await make_user(db)
    for title in UNICODE_TITLES:
        await make_post(db, author=author, title=title)

    found = await titles(api, {"title": operators})

    assert sorted(found) == sorted(expected)


# --- LIKE wildcards in user text ---------------------------------------------------------------

WILDCARD_TITLES = ["100%", "1000", "a_b", "axb", "back\\slash", "backslash", "a/b", "A_B"]


@pytest.mark.parametrize(
    ("operators", "expected"),
    [
        pytest.param({"contains": "%"}, ["100%"], id="contains-percent"),
        pytest.param({"contains": "0%"}, ["100%"], id="contains-digit-percent"),
        pytest.param({"startsWith": "100%"}, ["100%"], id="startsWith-percent"),
        pytest.param({"endsWith": "0%"}, ["100%"], id="endsWith-percent"),
        pytest.param({"contains": "_"}, ["A_B", "a_b"], id="contains-underscore"),
        pytest.param({"endsWith": "_b"}, ["a_b"], id="endsWith-underscore"),
        pytest.param({"startsWith": "a_"}, ["a_b"], id="startsWith-underscore"),
        pytest.param({"contains": "\\"}, ["back\\slash"], id="contains-backslash"),
        pytest.param({"contains": "k\\s"}, ["back\\slash"], id="contains-backslash-inside"),
        pytest.param({"endsWith": "\\slash"}, ["back\\slash"], id="endsWith-backslash"),
        pytest.param({"contains": "/"}, ["a/b"], id="contains-slash"),
        pytest.param({"contains": "%%"}, [], id="contains-double-percent"),
        pytest.param(
            {"contains": "a_", "mode": "INSENSITIVE"}, ["A_B", "a_b"], id="contains-underscore-ci"
        ),
        pytest.param({"in": ["a_b", "100%"]}, ["100%", "a_b"], id="in-is-literal"),
    ],
)
async def test_wildcards_in_user_text_match_themselves(
    api: GraphQLClient, db: AsyncSession, operators: dict[str, Any], expected: list[str]
) -> None:
    author = await make_user(db)
    for title in WILDCARD_TITLES:
        await make_post(db, author=author, title=title)

    found = await titles(api, {"title": operators})

    assert sorted(found) == sorted(expected)


# --- empty lists --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param({"age": {"in": []}}, [], id="int-in"),
        pytest.param({"age": {"notIn": []}}, EVERYONE, id="int-notIn-includes-null"),
        pytest.param({"fullName": {"in": []}}, [], id="string-in"),
        pytest.param({"fullName": {"notIn": []}}, EVERYONE, id="string-notIn-includes-null"),
        pytest.param(
            {"fullName": {"notIn": [], "mode": "INSENSITIVE"}}, EVERYONE, id="string-notIn-ci"
        ),
        pytest.param({"createdAt": {"in": []}}, [], id="datetime-in"),
        pytest.param({"createdAt": {"notIn": []}}, EVERYONE, id="datetime-notIn"),
        pytest.param({"id": {"in": []}}, [], id="id-in"),
        pytest.param({"id": {"notIn": []}}, EVERYONE, id="id-notIn"),
        pytest.param({"not": {"age": {"in": []}}}, EVERYONE, id="not-empty-in"),
        pytest.param({"not": {"age": {"notIn": []}}}, [], id="not-empty-notIn"),
    ],
)
async def test_empty_in_matches_nothing_and_empty_not_in_everything(
    api: GraphQLClient, people: People, where: dict[str, Any], expected: list[str]
) -> None:
    assert await usernames(api, where) == expected


# --- refused filters ------------------------------------------------------------------------------


def nested_not(levels: int) -> dict[str, Any]:
    """A filter `levels` deep: `not` wrapped around `not` ... around an age condition."""
    where: dict[str, Any] = {"age": {"isNull": False}}
    for _ in range(levels - 1):
        where = {"not": where}
    return where


async def test_filter_ten_levels_deep_is_accepted(api: GraphQLClient, people: People) -> None:
    # Nine `not`s: an odd count negates the condition.
    assert await usernames(api, nested_not(10)) == ["bob"]


async def test_filter_eleven_levels_deep_is_refused_naming_the_path(
    api: GraphQLClient, people: People
) -> None:
    result = await api.query(USERS, {"where": nested_not(11)})

    path = ".".join(["where", *["not"] * 10])
    expect_bad_input(result, path, "10")


async def test_deep_filter_through_relations_is_refused_naming_the_path(
    api: GraphQLClient, people: People
) -> None:
    where: dict[str, Any] = {"title": {"eq": "x"}}
    for _ in range(5):
        where = {"author": {"posts": {"some": where}}}

    result = await api.query(POSTS, {"where": where})

    expect_bad_input(result, "where.author.posts.some.author.posts.some.author.posts.some")


async def test_deep_filter_through_and_is_refused_naming_the_path(
    api: GraphQLClient, people: People
) -> None:
    where: dict[str, Any] = {"age": {"eq": 1}}
    for _ in range(10):
        where = {"and": [{"age": {"isNull": False}}, where]}

    result = await api.query(USERS, {"where": where})

    expect_bad_input(result, "where.and[1].and[1]")


@pytest.mark.parametrize(
    ("where", "path"),
    [
        pytest.param({"age": {"eq": None}}, "where.age.eq", id="int-eq"),
        pytest.param({"age": {"lt": None}}, "where.age.lt", id="int-lt"),
        pytest.param({"fullName": {"eq": None}}, "where.fullName.eq", id="string-eq"),
        pytest.param({"fullName": {"contains": None}}, "where.fullName.contains", id="contains"),
        pytest.param({"createdAt": {"eq": None}}, "where.createdAt.eq", id="datetime-eq"),
        pytest.param({"isActive": {"eq": None}}, "where.isActive.eq", id="boolean-eq"),
        pytest.param({"id": {"eq": None}}, "where.id.eq", id="id-eq"),
        pytest.param({"age": {"in": None}}, "where.age.in", id="int-in"),
        pytest.param({"age": {"isNull": None}}, "where.age.isNull", id="isNull"),
        pytest.param({"not": {"age": {"ne": None}}}, "where.not.age.ne", id="nested"),
    ],
)
async def test_null_operand_is_a_clear_bad_user_input_error(
    api: GraphQLClient, people: People, where: dict[str, Any], path: str
) -> None:
    result = await api.query(USERS, {"where": where})

    expect_bad_input(result, path, "isNull")


async def test_eq_null_written_in_the_query_is_a_clear_error(
    api: GraphQLClient, people: People
) -> None:
    result = await api.query("{ users(where: {age: {eq: null}}) { totalCount } }")

    expect_bad_input(result, "where.age.eq", "isNull")


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({"age": None}, id="field"),
        pytest.param({"posts": None}, id="to-many"),
        pytest.param({"posts": {"some": None}}, id="quantifier"),
        pytest.param({"not": None}, id="not"),
        pytest.param({"and": None}, id="and"),
        pytest.param({"comments": {"some": {"post": None}}}, id="to-one"),
    ],
)
async def test_null_in_place_of_a_condition_is_bad_user_input(
    api: GraphQLClient, people: People, where: dict[str, Any]
) -> None:
    result = await api.query(USERS, {"where": where})

    expect_bad_input(result, "null")


# --- filters and cursors ------------------------------------------------------------------------

PAGED_POSTS = """query(
  $where: PostWhere, $first: Int, $after: String, $last: Int, $before: String
) {
  posts(where: $where, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { title } }
    pageInfo { hasNextPage hasPreviousPage endCursor startCursor }
  }
}"""
KEEP = {"title": {"startsWith": "keep"}}


@pytest.fixture
async def stream(db: AsyncSession) -> list[str]:
    """Eleven posts a minute apart, every other one titled keep-N; the kept titles, newest first."""
    author = await make_user(db)
    kept = []
    for minute in range(11):
        title = f"keep-{minute}" if minute % 2 == 0 else f"skip-{minute}"
        await make_post(db, author=author, title=title, created_at=T0 + timedelta(minutes=minute))
        if minute % 2 == 0:
            kept.append(title)
    return kept[::-1]


async def test_paging_forward_through_a_filtered_connection_visits_exactly_the_matches(
    api: GraphQLClient, stream: list[str]
) -> None:
    seen: list[str] = []
    after = None
    for _ in range(10):
        data = expect_ok(await api.query(PAGED_POSTS, {"where": KEEP, "first": 2, "after": after}))
        connection = data["posts"]
        assert connection["totalCount"] == len(stream)
        seen += [edge["node"]["title"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == stream


async def test_paging_backward_through_a_filtered_connection_visits_exactly_the_matches(
    api: GraphQLClient, stream: list[str]
) -> None:
    seen: list[str] = []
    before = None
    for _ in range(10):
        data = expect_ok(await api.query(PAGED_POSTS, {"where": KEEP, "last": 2, "before": before}))
        connection = data["posts"]
        assert connection["totalCount"] == len(stream)
        seen = [edge["node"]["title"] for edge in connection["edges"]] + seen
        if not connection["pageInfo"]["hasPreviousPage"]:
            break
        before = connection["pageInfo"]["startCursor"]

    assert seen == stream


async def test_paging_a_filtered_nested_connection_visits_exactly_the_matches(
    api: GraphQLClient, db: AsyncSession, stream: list[str]
) -> None:
    other = await make_user(db, username="other")
    await make_post(db, author=other, title="keep-other")
    query = """query($after: String, $where: PostWhere) { users(where: {posts: {some: {}}}) {
      nodes { posts(first: 2, after: $after, where: $where) {
        totalCount edges { cursor node { title } } pageInfo { hasNextPage endCursor } } } } }"""
    seen: list[str] = []
    after = None
    for _ in range(10):
        data = expect_ok(await api.query(query, {"where": KEEP, "after": after}))
        # Users by username: "other" sorts before the stream's author ("userN").
        connection = data["users"]["nodes"][1]["posts"]
        assert connection["totalCount"] == len(stream)
        seen += [edge["node"]["title"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == stream


async def test_total_count_respects_the_filter(api: GraphQLClient, stream: list[str]) -> None:
    data = expect_ok(await api.query(PAGED_POSTS, {"where": KEEP, "first": 1}))

    assert data["posts"]["totalCount"] == 6
    assert len(data["posts"]["edges"]) == 1
    assert data["posts"]["pageInfo"]["hasNextPage"] is True


async def _first_cursor(api: GraphQLClient, where: dict[str, Any] | None) -> str:
    data = expect_ok(await api.query(PAGED_POSTS, {"where": where, "first": 2}))
    cursor: str = data["posts"]["pageInfo"]["endCursor"]
    return cursor


@pytest.mark.parametrize(
    ("made_with", "used_with"),
    [
        pytest.param(KEEP, {"title": {"startsWith": "skip"}}, id="another-filter"),
        pytest.param(None, KEEP, id="unfiltered-to-filtered"),
        pytest.param(KEEP, None, id="filtered-to-unfiltered"),
        pytest.param(KEEP, {"title": {"startsWith": "keep", "mode": "INSENSITIVE"}}, id="mode"),
        pytest.param(KEEP, {"not": KEEP}, id="negated"),
    ],
)
async def test_cursor_made_under_one_filter_is_invalid_under_another(
    api: GraphQLClient,
    stream: list[str],
    made_with: dict[str, Any] | None,
    used_with: dict[str, Any] | None,
) -> None:
    cursor = await _first_cursor(api, made_with)

    result = await api.query(PAGED_POSTS, {"where": used_with, "first": 2, "after": cursor})

    expect_bad_input(result, "invalid cursor")


async def test_cursor_is_accepted_by_the_same_filter_written_in_another_order(
    api: GraphQLClient, stream: list[str]
) -> None:
    cursor = await _first_cursor(api, {"title": {"startsWith": "keep"}, "published": {"eq": True}})
    reordered = {"published": {"eq": True}, "title": {"startsWith": "keep"}}

    result = await api.query(PAGED_POSTS, {"where": reordered, "first": 2, "after": cursor})

    data = expect_ok(result)
    assert [edge["node"]["title"] for edge in data["posts"]["edges"]] == stream[2:4]
    literal = await api.query(
        """query($after: String) { posts(first: 2, after: $after,
          where: {published: {eq: true}, title: {startsWith: "keep"}}) {
          edges { node { title } } } }""",
        {"after": cursor},
    )
    assert expect_ok(literal)["posts"]["edges"] == [
        {"node": edge["node"]} for edge in data["posts"]["edges"]
    ]


async def test_in_list_longer_than_the_limit_is_bad_user_input(api: GraphQLClient) -> None:
    result = await api.query(
        "query($ages: [Int!]) { users(where: {age: {in: $ages}}) { totalCount } }",
        {"ages": list(range(1001))},
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "at most 1000 values" in result.error_messages[0]
