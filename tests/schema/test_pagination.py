"""Keyset pagination: walking connections both ways, pageInfo, totalCount, and argument errors."""

import base64
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gql_blog import models
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from tests.conftest import StatementCounter
from tests.factories import make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient, GraphQLResult
from tests.schema.test_ordering import (
    POST_DEFAULT,
    POST_VALUES,
    USER_DEFAULT,
    USER_VALUES,
    Term,
    at,
    contract_order,
    global_ids,
    order_by,
)

Connection = dict[str, Any]
Extract = Callable[[Any], Connection]

PAGE = """
  edges { cursor node { id } }
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
"""
ARGS = "first: $first, after: $after, last: $last, before: $before, orderBy: $orderBy"
VARS = "$first: Int, $after: String, $last: Int, $before: String"
USERS = f"query({VARS}, $orderBy: [UserOrder!]) {{ users({ARGS}) {{ {PAGE} totalCount }} }}"
POSTS = f"query({VARS}, $orderBy: [PostOrder!]) {{ posts({ARGS}) {{ {PAGE} totalCount }} }}"
TAGS = f"query({VARS}, $orderBy: [TagOrder!]) {{ tags({ARGS}) {{ {PAGE} totalCount }} }}"
USER_POSTS = f"""query({VARS}, $orderBy: [PostOrder!], $username: String!) {{
  user(username: $username) {{ posts({ARGS}) {{ {PAGE} totalCount }} }}
}}"""
EMPTY_PAGE = {
    "edges": [],
    "pageInfo": {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    },
    "totalCount": 0,
}


def users_of(data: Any) -> Connection:
    connection: Connection = data["users"]
    return connection


def posts_of(data: Any) -> Connection:
    connection: Connection = data["posts"]
    return connection


def user_posts_of(data: Any) -> Connection:
    connection: Connection = data["user"]["posts"]
    return connection


def edge_ids(connection: Connection) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


def flags(connection: Connection) -> tuple[bool, bool]:
    """(hasPreviousPage, hasNextPage)."""
    info = connection["pageInfo"]
    return info["hasPreviousPage"], info["hasNextPage"]


async def walk(
    api: GraphQLClient,
    query: str,
    extract: Extract,
    *,
    size: int,
    forward: bool,
    variables: dict[str, Any] | None = None,
    viewer: models.User | None = None,
) -> list[Connection]:
    """Every page of a connection, following endCursor forward or startCursor backward."""
    pages: list[Connection] = []
    cursor = None
    for _ in range(40):
        arguments = (
            {"first": size, "after": cursor} if forward else {"last": size, "before": cursor}
        )
        result = await api.query(query, (variables or {}) | arguments, viewer=viewer)
        assert result.errors is None
        page = extract(result.data)
        pages.append(page)
        info = page["pageInfo"]
        if not (info["hasNextPage"] if forward else info["hasPreviousPage"]):
            return pages
        cursor = info["endCursor"] if forward else info["startCursor"]
    raise AssertionError("the walk never reached the end of the connection")


def walked_ids(pages: Sequence[Connection], *, forward: bool) -> list[str]:
    """The ids of every page, in connection order."""
    in_order = pages if forward else list(reversed(pages))
    return [node_id for page in in_order for node_id in edge_ids(page)]


def expected_flags(count: int, *, forward: bool) -> list[tuple[bool, bool]]:
    """(hasPreviousPage, hasNextPage) of each page of a walk, in the order they were fetched."""
    if forward:
        return [(index > 0, index < count - 1) for index in range(count)]
    return [(index < count - 1, index > 0) for index in range(count)]


def cursor_payload(cursor: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def make_cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


@contextmanager
def executed_sql(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every (statement, parameters) the engine runs inside the block."""
    executed: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        executed.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield executed
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def assert_bad_input(result: GraphQLResult, *words: str) -> None:
    """One BAD_USER_INPUT error whose message contains each of `words` as a word."""
    assert result.error_codes == ["BAD_USER_INPUT"], result.errors
    message = result.error_messages[0]
    for word in words:
        assert re.search(rf"\b{re.escape(word)}\b", message), message


@pytest.fixture
async def crowd(db: AsyncSession) -> list[models.User]:
    """Users with NULL and tied ages, tied and NULL full names, and tied creation times."""
    specs: list[tuple[int | None, str | None, str | None]] = [
        (30, "Ann", "Lee"),
        (None, None, None),
        (30, "Ann", "Lee"),
        (25, "bo", None),
        (None, None, "Zed"),
        (41, "Émile", "Zola"),
        (25, "Ann", "Lee"),
        (None, None, None),
        (30, "Carl", None),
        (30, "ann", "lee"),
        (18, "Ann", "Lee"),
        (None, None, "Abe"),
    ]
    return [
        await make_user(db, age=age, first_name=first, last_name=last, created_at=at(index // 2))
        for index, (age, first, last) in enumerate(specs)
    ]


@pytest.fixture
async def author(db: AsyncSession) -> models.User:
    return await make_user(db, username="author")


@pytest.fixture
async def stream(db: AsyncSession, author: models.User) -> list[models.Post]:
    """Seven published posts and three drafts, with tied creation times and titles."""
    specs = [(1, "b", True), (2, "a", True), (2, "c", False), (2, "b", True), (3, "a", True)]
    specs += [(4, "d", False), (4, "a", True), (0, "e", True), (5, "b", False), (5, "f", True)]
    return [
        await make_post(db, author=author, title=title, published=published, created_at=at(minute))
        for minute, title, published in specs
    ]


USER_ORDERINGS = [
    pytest.param([], id="default"),
    pytest.param([("AGE", "ASC", None)], id="age-asc"),
    pytest.param([("AGE", "DESC", None)], id="age-desc"),
    pytest.param([("AGE", "ASC", "FIRST")], id="age-asc-nulls-first"),
    pytest.param([("AGE", "DESC", "LAST"), ("FULL_NAME", "ASC", None)], id="age-desc-full-name"),
    pytest.param([("FULL_NAME", "ASC", None), ("AGE", "DESC", None)], id="full-name-age-desc"),
    pytest.param(
        [("FULL_NAME", "DESC", "LAST"), ("CREATED_AT", "ASC", None)], id="full-name-desc-created"
    ),
    pytest.param([("CREATED_AT", "ASC", None)], id="created-asc-ties"),
]
POST_ORDERINGS = [
    pytest.param([], id="default"),
    pytest.param([("CREATED_AT", "ASC", None)], id="created-asc"),
    pytest.param([("TITLE", "ASC", None)], id="title-asc"),
    pytest.param([("TITLE", "DESC", None), ("CREATED_AT", "ASC", None)], id="title-desc-created"),
]
DIRECTIONS = [pytest.param(True, id="forward"), pytest.param(False, id="backward")]


@pytest.mark.parametrize("size", [1, 5])
@pytest.mark.parametrize("forward", DIRECTIONS)
@pytest.mark.parametrize("terms", USER_ORDERINGS)
async def test_walking_users_gives_every_row_once_in_order(
    api: GraphQLClient, crowd: list[models.User], terms: list[Term], forward: bool, size: int
) -> None:
    pages = await walk(
        api, USERS, users_of, size=size, forward=forward, variables={"orderBy": order_by(terms)}
    )

    expected = contract_order(crowd, terms, USER_VALUES, default=USER_DEFAULT)
    assert walked_ids(pages, forward=forward) == global_ids("User", expected)


@pytest.mark.parametrize("forward", DIRECTIONS)
@pytest.mark.parametrize("terms", POST_ORDERINGS)
async def test_walking_posts_gives_every_visible_row_once_in_order(
    api: GraphQLClient, stream: list[models.Post], terms: list[Term], forward: bool
) -> None:
    pages = await walk(
        api, POSTS, posts_of, size=2, forward=forward, variables={"orderBy": order_by(terms)}
    )

    published = [post for post in stream if post.published]
    expected = contract_order(published, terms, POST_VALUES, default=POST_DEFAULT)
    assert walked_ids(pages, forward=forward) == global_ids("Post", expected)


@pytest.mark.parametrize("forward", DIRECTIONS)
async def test_walking_posts_as_their_author_includes_drafts(
    api: GraphQLClient, stream: list[models.Post], author: models.User, forward: bool
) -> None:
    pages = await walk(api, POSTS, posts_of, size=3, forward=forward, viewer=author)

    expected = contract_order(stream, [], POST_VALUES, default=POST_DEFAULT)
    assert walked_ids(pages, forward=forward) == global_ids("Post", expected)


@pytest.mark.parametrize("forward", DIRECTIONS)
@pytest.mark.parametrize("terms", POST_ORDERINGS)
async def test_walking_user_posts_gives_every_row_once_in_order(
    api: GraphQLClient,
    db: AsyncSession,
    stream: list[models.Post],
    terms: list[Term],
    forward: bool,
) -> None:
    other = await make_user(db)
    for minute in (0, 2, 4):
        await make_post(db, author=other, created_at=at(minute))
    variables = {"orderBy": order_by(terms), "username": "author"}

    pages = await walk(api, USER_POSTS, user_posts_of, size=2, forward=forward, variables=variables)

    published = [post for post in stream if post.published]
    expected = contract_order(published, terms, POST_VALUES, default=POST_DEFAULT)
    assert walked_ids(pages, forward=forward) == global_ids("Post", expected)


@pytest.mark.parametrize("forward", DIRECTIONS)
async def test_page_flags_on_first_middle_and_last_page(
    api: GraphQLClient, crowd: list[models.User], forward: bool
) -> None:
    pages = await walk(api, USERS, users_of, size=5, forward=forward)

    assert [len(page["edges"]) for page in pages] == [5, 5, 2]
    assert [flags(page) for page in pages] == expected_flags(3, forward=forward)


@pytest.mark.parametrize("forward", DIRECTIONS)
async def test_nested_page_flags_on_first_middle_and_last_page(
    api: GraphQLClient, stream: list[models.Post], forward: bool
) -> None:
    pages = await walk(
        api, USER_POSTS, user_posts_of, size=3, forward=forward, variables={"username": "author"}
    )

    assert [len(page["edges"]) for page in pages] == [3, 3, 1]
    assert [flags(page) for page in pages] == expected_flags(3, forward=forward)


@pytest.mark.parametrize(
    ("query", "extract", "variables"),
    [
        pytest.param(USERS, users_of, {}, id="users"),
        pytest.param(
            USERS, users_of, {"orderBy": order_by([("AGE", "DESC", None)])}, id="users-by-age"
        ),
        pytest.param(USER_POSTS, user_posts_of, {"username": "author"}, id="user-posts"),
    ],
)
@pytest.mark.parametrize("forward", DIRECTIONS)
async def test_start_and_end_cursors_are_the_first_and_last_edge_cursors(
    api: GraphQLClient,
    crowd: list[models.User],
    stream: list[models.Post],
    query: str,
    extract: Extract,
    variables: dict[str, Any],
    forward: bool,
) -> None:
    pages = await walk(api, query, extract, size=3, forward=forward, variables=variables)

    assert len(pages) > 1
    for page in pages:
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]


async def test_page_after_the_last_cursor_is_empty_with_a_previous_page(
    api: GraphQLClient, stream: list[models.Post]
) -> None:
    last_page = (await walk(api, POSTS, posts_of, size=10, forward=True))[-1]

    result = await api.query(POSTS, {"first": 3, "after": last_page["pageInfo"]["endCursor"]})

    assert result.errors is None
    assert result.data["posts"]["edges"] == []
    assert result.data["posts"]["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "startCursor": None,
        "endCursor": None,
    }


async def test_page_before_the_first_cursor_is_empty_with_a_next_page(
    api: GraphQLClient, stream: list[models.Post]
) -> None:
    first_page = (await walk(api, POSTS, posts_of, size=10, forward=False))[-1]

    result = await api.query(POSTS, {"last": 3, "before": first_page["pageInfo"]["startCursor"]})

    assert result.errors is None
    assert result.data["posts"]["edges"] == []
    assert flags(result.data["posts"]) == (False, True)


async def test_has_previous_page_is_false_when_no_row_precedes_the_after_cursor(
    api: GraphQLClient, db: AsyncSession, stream: list[models.Post]
) -> None:
    first = await api.query(POSTS, {"first": 1})
    assert first.errors is None
    await db.execute(delete(models.Post).where(models.Post.id == stream[-1].id))

    result = await api.query(
        POSTS, {"first": 2, "after": first.data["posts"]["pageInfo"]["endCursor"]}
    )

    assert result.errors is None
    assert len(result.data["posts"]["edges"]) == 2
    assert flags(result.data["posts"]) == (False, True)


async def test_after_and_before_bound_a_window(
    api: GraphQLClient, crowd: list[models.User]
) -> None:
    everyone = await api.query(USERS, {"first": 12})
    assert everyone.errors is None
    cursors = [edge["cursor"] for edge in everyone.data["users"]["edges"]]
    ids = edge_ids(everyone.data["users"])

    result = await api.query(USERS, {"first": 10, "after": cursors[2], "before": cursors[7]})

    assert result.errors is None
    assert edge_ids(result.data["users"]) == ids[3:7]
    assert flags(result.data["users"]) == (True, True)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(USERS, id="users"),
        pytest.param(POSTS, id="posts"),
        pytest.param(TAGS, id="tags"),
    ],
)
async def test_empty_connection_has_null_cursors_and_false_flags(
    api: GraphQLClient, query: str
) -> None:
    result = await api.query(query, {"first": 5})

    assert result.errors is None
    assert next(iter(result.data.values())) == EMPTY_PAGE


async def test_empty_nested_connection_has_null_cursors_and_false_flags(
    api: GraphQLClient, author: models.User
) -> None:
    result = await api.query(USER_POSTS, {"username": "author", "first": 5})

    assert result.errors is None
    assert result.data["user"]["posts"] == EMPTY_PAGE


async def test_only_drafts_look_empty_to_anonymous_viewers(
    api: GraphQLClient, db: AsyncSession, author: models.User
) -> None:
    await make_post(db, author=author, published=False)

    result = await api.query(POSTS, {"first": 5})

    assert result.errors is None
    assert result.data["posts"] == EMPTY_PAGE


@pytest.mark.parametrize(
    ("query", "extract", "variables"),
    [
        pytest.param(POSTS, posts_of, {}, id="posts"),
        pytest.param(USER_POSTS, user_posts_of, {"username": "author"}, id="user-posts"),
    ],
)
async def test_first_zero_gives_no_edges_and_says_more_follow(
    api: GraphQLClient,
    stream: list[models.Post],
    query: str,
    extract: Extract,
    variables: dict[str, Any],
) -> None:
    result = await api.query(query, variables | {"first": 0})

    assert result.errors is None
    assert extract(result.data) == {
        "edges": [],
        "pageInfo": {
            "hasNextPage": True,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "totalCount": 7,
    }


async def test_last_zero_gives_no_edges_and_says_more_precede(
    api: GraphQLClient, stream: list[models.Post]
) -> None:
    result = await api.query(POSTS, {"last": 0})

    assert result.errors is None
    assert result.data["posts"]["edges"] == []
    assert flags(result.data["posts"]) == (True, False)


async def test_first_zero_on_an_empty_connection_has_no_next_page(api: GraphQLClient) -> None:
    result = await api.query(POSTS, {"first": 0})

    assert result.errors is None
    assert result.data["posts"] == EMPTY_PAGE


async def test_default_page_size_applies_without_first_or_last(
    api: GraphQLClient, db: AsyncSession, settings: Settings
) -> None:
    for _ in range(settings.default_page_size + 3):
        await make_tag(db)

    result = await api.query(TAGS)

    assert result.errors is None
    assert len(result.data["tags"]["edges"]) == settings.default_page_size
    assert flags(result.data["tags"]) == (False, True)


async def test_first_equal_to_the_maximum_is_allowed(
    api: GraphQLClient, crowd: list[models.User], settings: Settings
) -> None:
    result = await api.query(USERS, {"first": settings.max_page_size})

    assert result.errors is None
    assert len(result.data["users"]["edges"]) == len(crowd)


async def test_two_users_posts_are_paged_independently_in_one_query(
    api: GraphQLClient, db: AsyncSession
) -> None:
    alice, bob = await make_user(db, username="alice"), await make_user(db, username="bob")
    posts = {
        "alice": [await make_post(db, author=alice, created_at=at(m)) for m in (1, 3, 3, 5, 2)],
        "bob": [await make_post(db, author=bob, created_at=at(m)) for m in (4, 2, 4)],
    }
    query = f"""query($alice: String, $bob: String) {{
      alice: user(username: "alice") {{ posts(first: 2, after: $alice) {{ {PAGE} }} }}
      bob: user(username: "bob") {{ posts(first: 2, after: $bob) {{ {PAGE} }} }}
    }}"""
    cursors: dict[str, str | None] = {"alice": None, "bob": None}
    seen: dict[str, list[list[str]]] = {"alice": [], "bob": []}
    done: set[str] = set()

    while done != set(cursors) and len(seen["alice"]) < 5:
        result = await api.query(query, cursors)
        assert result.errors is None
        for name in set(cursors) - done:
            page = result.data[name]["posts"]
            seen[name].append(edge_ids(page))
            if page["pageInfo"]["hasNextPage"]:
                cursors[name] = page["pageInfo"]["endCursor"]
            else:
                done.add(name)

    assert seen == {
        name: [
            global_ids("Post", page)
            for page in _chunks(contract_order(rows, [], POST_VALUES, default=POST_DEFAULT), 2)
        ]
        for name, rows in posts.items()
    }


def _chunks(rows: Sequence[models.Post], size: int) -> list[Sequence[models.Post]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


NESTED = """query($after: String) { users { nodes { username posts(first: 2, after: $after) {
  edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage } } } } }"""


@pytest.mark.parametrize("authors", [1, 4])
async def test_nested_first_pages_take_two_statements_whatever_the_user_count(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, authors: int
) -> None:
    for number in range(authors):
        user = await make_user(db)
        for minute in range(3 + number):
            await make_post(db, author=user, created_at=at(minute))

    with count_sql() as counted:
        result = await api.query(NESTED)

    assert result.errors is None
    for node in result.data["users"]["nodes"]:
        assert len(node["posts"]["edges"]) == 2
        assert flags(node["posts"]) == (False, True)
    assert counted.total == 2  # the users page, then one page of posts per user in one statement


@pytest.mark.parametrize("authors", [1, 4])
async def test_nested_pages_after_a_cursor_take_three_statements_whatever_the_user_count(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, authors: int
) -> None:
    for number in range(authors):
        # Named in creation order: the first user's posts have the lowest ids.
        user = await make_user(db, username=f"writer{number}")
        for minute in range(4):
            await make_post(db, author=user, created_at=at(minute))
    first = await api.query(NESTED)
    assert first.errors is None
    after = first.data["users"]["nodes"][0]["posts"]["edges"][-1]["cursor"]

    with count_sql() as counted:
        result = await api.query(NESTED, {"after": after})

    assert result.errors is None
    assert [flags(node["posts"]) for node in result.data["users"]["nodes"]] == [
        (True, False)
    ] * authors
    assert counted.total == 3  # users, the posts pages, whether rows precede them (all batched)


@pytest.mark.parametrize(
    ("query", "extract", "variables"),
    [
        pytest.param(POSTS, posts_of, {}, id="posts"),
        pytest.param(USER_POSTS, user_posts_of, {"username": "author"}, id="user-posts"),
    ],
)
async def test_page_after_a_cursor_is_a_keyset_query_without_offset(
    api: GraphQLClient,
    engine: AsyncEngine,
    stream: list[models.Post],
    query: str,
    extract: Extract,
    variables: dict[str, Any],
) -> None:
    first = await api.query(query, variables | {"first": 2})
    assert first.errors is None
    after = extract(first.data)["pageInfo"]["endCursor"]

    with executed_sql(engine) as executed:
        result = await api.query(query, variables | {"first": 2, "after": after})

    assert result.errors is None
    assert len(extract(result.data)["edges"]) == 2
    assert executed
    for statement, parameters in executed:
        if re.search(r"\bOFFSET\b", statement, re.IGNORECASE):
            # SQLAlchemy's SQLite dialect always appends `LIMIT ? OFFSET ?` (in the per-parent
            # page walk, to its subquery, whose OFFSET is still the last parameter); it must
            # skip nothing.
            assert engine.dialect.name == "sqlite", statement
            offsets = re.findall(r"\bOFFSET\b", statement, re.IGNORECASE)
            assert statement.count("LIMIT ? OFFSET ?") == len(offsets) == 1, statement
            assert re.fullmatch(r"[^?]*\bOFFSET \?[^?]*", statement.split("LIMIT ?")[-1])
            assert parameters[-1] == 0, statement


@pytest.mark.parametrize(
    ("viewer_name", "visible"),
    [
        pytest.param(None, 7, id="anonymous"),
        pytest.param("author", 10, id="author"),
        pytest.param("reader", 7, id="other-user"),
        pytest.param("admin", 10, id="admin"),
    ],
)
async def test_total_count_counts_the_rows_the_viewer_may_see(
    api: GraphQLClient,
    db: AsyncSession,
    author: models.User,
    stream: list[models.Post],
    viewer_name: str | None,
    visible: int,
) -> None:
    viewers = {
        "author": author,
        "reader": await make_user(db),
        "admin": await make_user(db, is_admin=True),
    }
    viewer = viewers[viewer_name] if viewer_name else None
    query = """query { posts(first: 1) { totalCount }
      user(username: "author") { posts(first: 1) { totalCount } } }"""

    result = await api.query(query, viewer=viewer)

    assert result.errors is None
    assert result.data == {
        "posts": {"totalCount": visible},
        "user": {"posts": {"totalCount": visible}},
    }


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{ posts(first: 2) { edges { cursor } %s } }", id="posts"),
        pytest.param(
            '{ user(username: "author") { posts(first: 2) { edges { cursor } %s } } }',
            id="user-posts",
        ),
    ],
)
async def test_total_count_runs_one_statement_only_when_selected(
    api: GraphQLClient,
    stream: list[models.Post],
    count_sql: StatementCounter,
    template: str,
    dialect: str,
) -> None:
    with count_sql() as without:
        plain = await api.query(template % "")
    with count_sql() as counting:
        counted = await api.query(template % "totalCount")

    assert plain.errors is None
    assert counted.errors is None
    # On PostgreSQL, a user's posts and their count are read beside the user, in its statement.
    beside = dialect == "postgresql" and "user(" in template
    assert counting.total == without.total + (0 if beside else 1)
    assert [sql for sql in counting.statements if re.search(r"\bcount\(", sql, re.I)]
    assert not [sql for sql in without.statements if re.search(r"\bcount\(", sql, re.I)]


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        pytest.param({"first": -1}, ["first"], id="negative-first"),
        pytest.param({"last": -3}, ["last"], id="negative-last"),
        pytest.param({"first": 2, "last": 2}, ["first", "last"], id="first-with-last"),
        pytest.param({"after": "garbage!"}, ["after", "invalid cursor"], id="garbage-after"),
        pytest.param({"before": "Zm9vYmFy"}, ["before", "invalid cursor"], id="garbage-before"),
    ],
)
async def test_bad_page_arguments_are_errors_naming_the_argument(
    api: GraphQLClient, crowd: list[models.User], arguments: dict[str, Any], words: list[str]
) -> None:
    result = await api.query(USERS, arguments)

    assert_bad_input(result, *words)
    assert result.data is None


@pytest.mark.parametrize("argument", ["first", "last"])
async def test_page_size_above_the_maximum_is_an_error_naming_argument_limit_and_value(
    api: GraphQLClient, crowd: list[models.User], settings: Settings, argument: str
) -> None:
    too_many = settings.max_page_size + 1

    result = await api.query(USERS, {argument: too_many})

    assert_bad_input(result, argument, str(settings.max_page_size), str(too_many))
    assert result.data is None


async def test_first_above_maximum_on_a_nested_connection_is_an_error(
    api: GraphQLClient, stream: list[models.Post], settings: Settings
) -> None:
    too_many = settings.max_page_size + 1

    result = await api.query(USER_POSTS, {"username": "author", "first": too_many})

    assert_bad_input(result, "first", str(settings.max_page_size), str(too_many))


async def test_negative_last_on_a_nested_connection_is_an_error(
    api: GraphQLClient, stream: list[models.Post]
) -> None:
    result = await api.query(USER_POSTS, {"username": "author", "last": -1})

    assert_bad_input(result, "last")


@pytest.mark.parametrize(
    ("made_with", "used_with"),
    [
        pytest.param([("AGE", "ASC", None)], [("AGE", "DESC", None)], id="other-direction"),
        pytest.param([("AGE", "ASC", None)], [("AGE", "ASC", "FIRST")], id="other-nulls"),
        pytest.param([], [("CREATED_AT", "ASC", None)], id="default-then-explicit"),
        pytest.param(
            [("AGE", "ASC", None)],
            [("AGE", "ASC", None), ("USERNAME", "ASC", None)],
            id="extra-key",
        ),
    ],
)
async def test_cursor_reused_with_another_ordering_is_invalid(
    api: GraphQLClient, crowd: list[models.User], made_with: list[Term], used_with: list[Term]
) -> None:
    first = await api.query(USERS, {"first": 2, "orderBy": order_by(made_with)})
    assert first.errors is None
    cursor = first.data["users"]["pageInfo"]["endCursor"]

    result = await api.query(USERS, {"first": 2, "after": cursor, "orderBy": order_by(used_with)})

    assert_bad_input(result, "after", "invalid cursor")


async def test_users_cursor_used_on_posts_is_invalid(
    api: GraphQLClient, crowd: list[models.User], stream: list[models.Post]
) -> None:
    first = await api.query(USERS, {"first": 2})
    assert first.errors is None

    result = await api.query(
        POSTS, {"last": 2, "before": first.data["users"]["pageInfo"]["endCursor"]}
    )

    assert_bad_input(result, "before", "invalid cursor")


async def test_nested_cursor_reused_with_another_ordering_is_invalid(
    api: GraphQLClient, stream: list[models.Post]
) -> None:
    variables = {"username": "author", "first": 2}
    first = await api.query(USER_POSTS, variables | {"orderBy": order_by([("TITLE", "ASC", None)])})
    assert first.errors is None

    cursor = first.data["user"]["posts"]["pageInfo"]["endCursor"]
    result = await api.query(USER_POSTS, variables | {"after": cursor})

    assert_bad_input(result, "after", "invalid cursor")


TAMPERED_USERS = [
    pytest.param(lambda fingerprint: "not a list", id="json-string"),
    pytest.param(lambda fingerprint: {"fingerprint": fingerprint}, id="json-object"),
    pytest.param(lambda fingerprint: [fingerprint], id="one-element"),
    pytest.param(lambda fingerprint: [fingerprint, "ab"], id="values-a-string"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1"]], id="too-few-values"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1", 1, 2]], id="too-many-values"),
    pytest.param(lambda fingerprint: [fingerprint, [5, 1]], id="number-for-username"),
    pytest.param(lambda fingerprint: [fingerprint, [None, 1]], id="null-username"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1", "1"]], id="string-for-id"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1", 1.5]], id="float-id"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1", True]], id="boolean-id"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1", None]], id="null-id"),
    pytest.param(lambda fingerprint: [fingerprint, [["a"], {"b": 1}]], id="nested-values"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1", 2**63 - 1]], id="huge-id"),
    pytest.param(lambda fingerprint: [fingerprint, ["user1", -(2**63)]], id="huge-negative-id"),
    pytest.param(lambda fingerprint: [fingerprint, ["a\u0000b", 1]], id="nul-in-username"),
    pytest.param(lambda fingerprint: [1234, ["user1", 1]], id="number-fingerprint"),
]


@pytest.mark.parametrize("tamper", TAMPERED_USERS)
async def test_tampered_users_cursor_is_invalid_not_a_crash(
    api: GraphQLClient, crowd: list[models.User], tamper: Callable[[str], Any]
) -> None:
    genuine = await api.query(USERS, {"first": 1})
    assert genuine.errors is None
    fingerprint, _ = cursor_payload(genuine.data["users"]["pageInfo"]["endCursor"])

    result = await api.query(USERS, {"first": 2, "after": make_cursor(tamper(fingerprint))})

    assert_bad_input(result, "after", "invalid cursor")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("yesterday", id="not-a-date"),
        pytest.param("2024-03-01T12:00:00", id="naive-date"),
        pytest.param(1709294400, id="number-for-date"),
        pytest.param(None, id="null-date"),
        pytest.param("0001-01-01T00:00:00+05:00", id="date-below-range-in-utc"),
        pytest.param("9999-12-31T23:59:59-05:00", id="date-above-range-in-utc"),
    ],
)
async def test_tampered_posts_cursor_is_invalid_not_a_crash(
    api: GraphQLClient, stream: list[models.Post], value: Any
) -> None:
    genuine = await api.query(POSTS, {"first": 1})
    assert genuine.errors is None
    fingerprint, (_, post_id) = cursor_payload(genuine.data["posts"]["pageInfo"]["endCursor"])

    result = await api.query(
        POSTS, {"first": 2, "after": make_cursor([fingerprint, [value, post_id]])}
    )

    assert_bad_input(result, "after", "invalid cursor")


@pytest.mark.parametrize(
    "age",
    [
        pytest.param("thirty", id="string-age"),
        pytest.param(30.5, id="float-age"),
        pytest.param(2**40, id="huge-age"),
    ],
)
async def test_tampered_nullable_key_in_cursor_is_invalid_not_a_crash(
    api: GraphQLClient, crowd: list[models.User], age: Any
) -> None:
    variables = {"first": 1, "orderBy": order_by([("AGE", "ASC", None)])}
    genuine = await api.query(USERS, variables)
    assert genuine.errors is None
    fingerprint, (_, user_id) = cursor_payload(genuine.data["users"]["pageInfo"]["endCursor"])

    result = await api.query(
        USERS, variables | {"after": make_cursor([fingerprint, [age, user_id]])}
    )

    assert_bad_input(result, "after", "invalid cursor")


async def test_cursor_with_a_null_nullable_key_is_accepted(
    api: GraphQLClient, crowd: list[models.User]
) -> None:
    variables = {"first": 20, "orderBy": order_by([("AGE", "ASC", None)])}
    everyone = await api.query(USERS, variables)
    assert everyone.errors is None
    ids = edge_ids(everyone.data["users"])
    fingerprint, _ = cursor_payload(everyone.data["users"]["pageInfo"]["endCursor"])
    null_ages = [user for user in crowd if user.age is None]
    lowest = min(null_ages, key=lambda user: user.id)

    result = await api.query(
        USERS, variables | {"after": make_cursor([fingerprint, [None, lowest.id]])}
    )

    assert result.errors is None
    assert (
        edge_ids(result.data["users"]) == ids[ids.index(encode_global_id("User", lowest.id)) + 1 :]
    )
