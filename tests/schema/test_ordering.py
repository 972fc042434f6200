"""`orderBy` on every connection: results come in the order the contract defines.

Each expectation is computed in Python from the same rows (`contract_order`): NULLs last for ASC and
first for DESC unless `nulls` says otherwise, strings in code-point order, and the id as the final
tiebreaker running the way the last key runs (the default order's way when there is no `orderBy`).
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cmp_to_key
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

RowT = TypeVar("RowT")
# (field, direction, nulls): one item of an `orderBy` list; `nulls` None leaves it out.
Term = tuple[str, str, str | None]
Values = dict[str, Callable[[Any], Any]]

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def full_name(first: str | None, last: str | None) -> str | None:
    """The contract's fullName: both names joined by one space, either alone, or null."""
    return " ".join(name for name in (first, last) if name) or None


USER_VALUES: Values = {
    "ID": lambda user: user.id,
    "USERNAME": lambda user: user.username,
    "AGE": lambda user: user.age,
    "CREATED_AT": lambda user: user.created_at,
    "FULL_NAME": lambda user: full_name(user.first_name, user.last_name),
}
POST_VALUES: Values = {
    "ID": lambda post: post.id,
    "TITLE": lambda post: post.title,
    "CREATED_AT": lambda post: post.created_at,
    "UPDATED_AT": lambda post: post.updated_at,
}
COMMENT_VALUES: Values = {
    "ID": lambda comment: comment.id,
    "CREATED_AT": lambda comment: comment.created_at,
}
TAG_VALUES: Values = {"ID": lambda tag: tag.id, "NAME": lambda tag: tag.name}


def contract_order(
    rows: Sequence[RowT], terms: Sequence[Term], values: Values, *, default: Sequence[Term]
) -> list[RowT]:
    """`rows` sorted as the API contract orders them for `orderBy: terms`."""
    chosen = list(terms) or list(default)
    if chosen[-1][0] != "ID":
        chosen.append(("ID", chosen[-1][1], None))

    def compare(left: RowT, right: RowT) -> int:
        for field, direction, nulls in chosen:
            a, b = values[field](left), values[field](right)
            if a == b:
                continue
            descending = direction == "DESC"
            nulls_first = descending if nulls is None else nulls == "FIRST"
            if a is None or b is None:
                return (-1 if nulls_first else 1) * (1 if a is None else -1)
            return (1 if a > b else -1) * (-1 if descending else 1)
        return 0

    return sorted(rows, key=cmp_to_key(compare))


def order_by(terms: Sequence[Term]) -> list[dict[str, str]]:
    """The `orderBy` variable for `terms`."""
    return [
        {"field": field, "direction": direction} | ({"nulls": nulls} if nulls else {})
        for field, direction, nulls in terms
    ]


def global_ids(type_name: str, rows: Sequence[Any]) -> list[str]:
    return [encode_global_id(type_name, row.id) for row in rows]


def node_ids(connection: dict[str, Any]) -> list[str]:
    return [node["id"] for node in connection["nodes"]]


def single_fields(fields: Sequence[str]) -> list[Any]:
    """One parametrize case per field and direction, with ids such as `age-desc`."""
    return [
        pytest.param([(field, direction, None)], id=f"{field.lower()}-{direction.lower()}")
        for field in fields
        for direction in ("ASC", "DESC")
    ]


USER_DEFAULT: list[Term] = [("USERNAME", "ASC", None)]
POST_DEFAULT: list[Term] = [("CREATED_AT", "DESC", None)]
COMMENT_DEFAULT: list[Term] = [("CREATED_AT", "DESC", None)]
TAG_DEFAULT: list[Term] = [("NAME", "ASC", None)]

USERS = "query($orderBy: [UserOrder!]) { users(first: 100, orderBy: $orderBy) { nodes { id } } }"
POSTS = "query($orderBy: [PostOrder!]) { posts(first: 100, orderBy: $orderBy) { nodes { id } } }"
TAGS = "query($orderBy: [TagOrder!]) { tags(first: 100, orderBy: $orderBy) { nodes { id } } }"
POST_COMMENTS = """query($id: ID!, $orderBy: [CommentOrder!]) {
  post(id: $id) { comments(first: 100, orderBy: $orderBy) { nodes { id } } }
}"""


@pytest.fixture
async def people(db: AsyncSession) -> list[models.User]:
    """Users with mixed-case names, NULL ages and names, and ties in every sort key."""
    specs: list[tuple[str, str | None, str | None, int | None, int]] = [
        ("alice", "Alice", "Zimmer", 30, 1),
        ("Bob", "Bob", None, None, 2),
        ("carol", None, "Carter", 30, 2),
        ("Dave", None, None, 25, 3),
        ("eve", "eve", "Adams", None, 4),
        ("Zed", "Émile", "Zola", 41, 5),
        ("frank", "Alice", "Zimmer", 25, 1),
        ("_under", "Ann", None, None, 6),
        ("gina", None, None, None, 6),
        ("HAL9000", "alice", "zimmer", 30, 7),
    ]
    return [
        await make_user(
            db, username=name, first_name=first, last_name=last, age=age, created_at=at(minute)
        )
        for name, first, last, age, minute in specs
    ]


@pytest.fixture
async def writings(db: AsyncSession) -> list[models.Post]:
    """Published posts with tied and mixed-case titles, tied creation and update times."""
    author = await make_user(db)
    specs = [("apple", 1, 5), ("Banana", 2, 2), ("apple", 2, 9), ("éclair", 3, 5)]
    specs += [("Zebra", 4, 1), ("cherry", 4, 3), ("_under", 0, 0)]
    posts = []
    for title, created, updated in specs:
        post = await make_post(db, author=author, title=title, created_at=at(created))
        post.updated_at = at(updated)
        posts.append(post)
    await db.flush()
    return posts


async def test_python_order_matches_hand_written_expectation(people: list[models.User]) -> None:
    by_name = {user.username: user for user in people}
    expected = ["Zed", "HAL9000", "carol", "alice", "Dave", "frank", "gina", "_under", "eve", "Bob"]

    ordered = contract_order(
        people, [("AGE", "DESC", "LAST"), ("CREATED_AT", "DESC", None)], USER_VALUES, default=[]
    )

    assert [user.username for user in ordered] == expected
    assert by_name["gina"].id > by_name["_under"].id  # the id tiebreaker ran DESC


async def test_usernames_sort_by_code_point(api: GraphQLClient, people: list[models.User]) -> None:
    result = await api.query("{ users(first: 100) { nodes { username } } }")

    assert result.errors is None
    assert [node["username"] for node in result.data["users"]["nodes"]] == [
        "Bob", "Dave", "HAL9000", "Zed", "_under", "alice", "carol", "eve", "frank", "gina",
    ]  # fmt: skip


async def test_full_names_sort_by_code_point_with_nulls_last(
    api: GraphQLClient, people: list[models.User]
) -> None:
    query = "{ users(orderBy: [{field: FULL_NAME, direction: ASC}]) { nodes { fullName } } }"

    result = await api.query(query)

    assert result.errors is None
    assert [node["fullName"] for node in result.data["users"]["nodes"]] == [
        "Alice Zimmer", "Alice Zimmer", "Ann", "Bob", "Carter", "alice zimmer", "eve Adams",
        "Émile Zola", None, None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "terms", single_fields(["ID", "USERNAME", "AGE", "CREATED_AT", "FULL_NAME"])
)
async def test_users_ordered_by_one_field(
    api: GraphQLClient, people: list[models.User], terms: list[Term]
) -> None:
    result = await api.query(USERS, {"orderBy": order_by(terms)})

    assert result.errors is None
    expected = contract_order(people, terms, USER_VALUES, default=USER_DEFAULT)
    assert node_ids(result.data["users"]) == global_ids("User", expected)


@pytest.mark.parametrize(
    "terms",
    [
        pytest.param([(field, direction, nulls)], id=f"{field}-{direction}-nulls-{nulls}".lower())
        for field in ("AGE", "FULL_NAME")
        for direction in ("ASC", "DESC")
        for nulls in ("FIRST", "LAST")
    ],
)
async def test_users_with_explicit_nulls_placement(
    api: GraphQLClient, people: list[models.User], terms: list[Term]
) -> None:
    result = await api.query(USERS, {"orderBy": order_by(terms)})

    assert result.errors is None
    expected = contract_order(people, terms, USER_VALUES, default=USER_DEFAULT)
    assert node_ids(result.data["users"]) == global_ids("User", expected)


@pytest.mark.parametrize(
    "terms",
    [
        pytest.param(
            [("AGE", "DESC", None), ("USERNAME", "ASC", None)], id="age-desc-username-asc"
        ),
        pytest.param(
            [("AGE", "ASC", None), ("CREATED_AT", "DESC", None)], id="age-asc-created-desc"
        ),
        pytest.param(
            [("FULL_NAME", "ASC", "FIRST"), ("CREATED_AT", "DESC", None)],
            id="full-name-asc-nulls-first-created-desc",
        ),
        pytest.param(
            [("CREATED_AT", "ASC", None), ("FULL_NAME", "DESC", "LAST")],
            id="created-asc-full-name-desc-nulls-last",
        ),
        pytest.param(
            [("AGE", "DESC", "LAST"), ("FULL_NAME", "ASC", None), ("CREATED_AT", "DESC", None)],
            id="age-desc-nulls-last-full-name-asc-created-desc",
        ),
        pytest.param([("AGE", "ASC", None), ("ID", "DESC", None)], id="age-asc-explicit-id-desc"),
    ],
)
async def test_users_ordered_by_several_keys(
    api: GraphQLClient, people: list[models.User], terms: list[Term]
) -> None:
    result = await api.query(USERS, {"orderBy": order_by(terms)})

    assert result.errors is None
    expected = contract_order(people, terms, USER_VALUES, default=USER_DEFAULT)
    assert node_ids(result.data["users"]) == global_ids("User", expected)


@pytest.mark.parametrize("terms", single_fields(["ID", "TITLE", "CREATED_AT", "UPDATED_AT"]))
async def test_posts_ordered_by_one_field(
    api: GraphQLClient, writings: list[models.Post], terms: list[Term]
) -> None:
    result = await api.query(POSTS, {"orderBy": order_by(terms)})

    assert result.errors is None
    expected = contract_order(writings, terms, POST_VALUES, default=POST_DEFAULT)
    assert node_ids(result.data["posts"]) == global_ids("Post", expected)


@pytest.mark.parametrize(
    "terms",
    [
        pytest.param(
            [("TITLE", "ASC", None), ("CREATED_AT", "DESC", None)], id="title-asc-created-desc"
        ),
        pytest.param(
            [("UPDATED_AT", "DESC", None), ("TITLE", "ASC", None)], id="updated-desc-title-asc"
        ),
        pytest.param(
            [("CREATED_AT", "ASC", None), ("TITLE", "DESC", None)], id="created-asc-title-desc"
        ),
    ],
)
async def test_posts_ordered_by_several_keys(
    api: GraphQLClient, writings: list[models.Post], terms: list[Term]
) -> None:
    result = await api.query(POSTS, {"orderBy": order_by(terms)})

    assert result.errors is None
    expected = contract_order(writings, terms, POST_VALUES, default=POST_DEFAULT)
    assert node_ids(result.data["posts"]) == global_ids("Post", expected)


@pytest.mark.parametrize("terms", single_fields(["ID", "CREATED_AT"]))
async def test_comments_ordered_by_one_field(
    api: GraphQLClient, db: AsyncSession, terms: list[Term]
) -> None:
    reader = await make_user(db)
    post, other = await make_post(db, author=reader), await make_post(db, author=reader)
    comments = [
        await make_comment(db, post=post, author=reader, created_at=at(minute))
        for minute in (3, 1, 3, 2, 5, 1)
    ]
    await make_comment(db, post=other, author=reader, created_at=at(4))

    result = await api.query(
        POST_COMMENTS, {"id": encode_global_id("Post", post.id), "orderBy": order_by(terms)}
    )

    assert result.errors is None
    expected = contract_order(comments, terms, COMMENT_VALUES, default=COMMENT_DEFAULT)
    assert node_ids(result.data["post"]["comments"]) == global_ids("Comment", expected)


@pytest.mark.parametrize("terms", single_fields(["ID", "NAME"]))
async def test_tags_ordered_by_one_field(
    api: GraphQLClient, db: AsyncSession, terms: list[Term]
) -> None:
    tags = [
        await make_tag(db, name)
        for name in ("python", "go", "c++", "émigré", "zig", "2024", "a b", "_private")
    ]

    result = await api.query(TAGS, {"orderBy": order_by(terms)})

    assert result.errors is None
    expected = contract_order(tags, terms, TAG_VALUES, default=TAG_DEFAULT)
    assert node_ids(result.data["tags"]) == global_ids("Tag", expected)


@pytest.mark.parametrize(
    "variables",
    [pytest.param({}, id="no-order-by"), pytest.param({"orderBy": []}, id="empty-list")],
)
async def test_users_default_to_username_ascending(
    api: GraphQLClient, people: list[models.User], variables: dict[str, Any]
) -> None:
    result = await api.query(USERS, variables)

    assert result.errors is None
    expected = sorted(people, key=lambda user: user.username)
    assert node_ids(result.data["users"]) == global_ids("User", expected)


async def test_posts_default_to_newest_first_with_id_descending_among_ties(
    api: GraphQLClient, writings: list[models.Post]
) -> None:
    result = await api.query(POSTS)

    assert result.errors is None
    expected = sorted(writings, key=lambda post: (post.created_at, post.id), reverse=True)
    assert node_ids(result.data["posts"]) == global_ids("Post", expected)


async def test_tags_default_to_name_ascending(api: GraphQLClient, db: AsyncSession) -> None:
    tags = [await make_tag(db, name) for name in ("rust", "ada", "émigré", "c", "_x", "2d")]

    result = await api.query(TAGS)

    assert result.errors is None
    expected = sorted(tags, key=lambda tag: tag.name)
    assert node_ids(result.data["tags"]) == global_ids("Tag", expected)


async def test_comments_default_to_newest_first_with_id_descending_among_ties(
    api: GraphQLClient, db: AsyncSession
) -> None:
    reader = await make_user(db)
    post = await make_post(db, author=reader)
    comments = [
        await make_comment(db, post=post, author=reader, created_at=at(minute))
        for minute in (2, 4, 2, 1, 4)
    ]

    result = await api.query(POST_COMMENTS, {"id": encode_global_id("Post", post.id)})

    assert result.errors is None
    expected = sorted(comments, key=lambda comment: (comment.created_at, comment.id), reverse=True)
    assert node_ids(result.data["post"]["comments"]) == global_ids("Comment", expected)


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_user_posts_ordered_by_title_for_each_user(
    api: GraphQLClient, db: AsyncSession, direction: str
) -> None:
    alice, bob = await make_user(db, username="alice"), await make_user(db, username="bob")
    posts = {
        "alice": [await make_post(db, author=alice, title=title) for title in ("b", "A", "b", "é")],
        "bob": [await make_post(db, author=bob, title=title) for title in ("z", "B", "a")],
    }
    query = """query($orderBy: [PostOrder!]) {
      users { nodes { username posts(orderBy: $orderBy) { nodes { id } } } }
    }"""

    result = await api.query(query, {"orderBy": order_by([("TITLE", direction, None)])})

    assert result.errors is None
    terms: list[Term] = [("TITLE", direction, None)]
    assert {
        node["username"]: node_ids(node["posts"]) for node in result.data["users"]["nodes"]
    } == {
        username: global_ids("Post", contract_order(rows, terms, POST_VALUES, default=[]))
        for username, rows in posts.items()
    }


async def test_post_comments_ordered_by_created_at_ascending_for_each_post(
    api: GraphQLClient, db: AsyncSession
) -> None:
    reader = await make_user(db)
    first, second = await make_post(db, author=reader), await make_post(db, author=reader)
    comments = {
        first: [
            await make_comment(db, post=first, author=reader, created_at=at(minute))
            for minute in (5, 1, 3, 1)
        ],
        second: [
            await make_comment(db, post=second, author=reader, created_at=at(minute))
            for minute in (2, 2, 0)
        ],
    }
    query = """{ posts { nodes { id comments(orderBy: [{field: CREATED_AT, direction: ASC}]) {
      nodes { id } } } } }"""

    result = await api.query(query)

    assert result.errors is None
    assert {node["id"]: node_ids(node["comments"]) for node in result.data["posts"]["nodes"]} == {
        encode_global_id("Post", post.id): global_ids(
            "Comment", sorted(rows, key=lambda comment: (comment.created_at, comment.id))
        )
        for post, rows in comments.items()
    }
