"""Property: random `where` filters select exactly the rows the contract's rules select.

A small fixed blog (users with NULL ages and names, drafts, tags, comments) is built once per test
function; hypothesis draws filters (fields, operators and values from small pools, and/or/not,
relation quantifiers) and a viewer, and the API's answer is compared with `Evaluator`, a direct
Python reading of API.md: comparisons never match NULL, `not` is the exact complement, an empty
`in` matches nothing and an empty `notIn` everything, INSENSITIVE folds both sides, relation
filters and e-mail addresses see only what the viewer may see, `every` over no rows is true.
"""

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=30,
    deadline=None,
    database=None,
)
Where = dict[str, Any]

# (username, first name, last name, age, active, admin)
USERS = [
    ("amy", "Amy", "Ng", 25, True, False),
    ("ben", "Ben", None, None, True, False),
    ("cat", None, None, 40, False, False),
    ("dan", None, "Öz", 25, True, False),
    ("eve", "Éve", "Ω", 0, True, False),
    ("fay", "fay", "100%", 150, False, False),
    ("gus", "Gus", "a_b", None, True, False),
    ("hal", "HAL", "9000", 61, True, True),
]
# (title, content, author, published, tags)
POSTS = [
    ("Hello World", "alpha", "amy", True, ["news", "python"]),
    ("hello world", "Alpha beta", "amy", False, ["python"]),
    ("École", "gamma", "ben", True, []),
    ("ÉCOLE", "ΔELTA delta", "cat", False, ["news"]),
    ("Ωmega", "alpha", "cat", True, ["sql"]),
    ("ωMEGA", "100% sure", "dan", True, ["news", "sql"]),
    ("STRASSE", "a_b c", "eve", False, []),
    ("strasse", "axb c", "eve", True, ["python", "sql"]),
    ("100%", "back\\slash", "fay", True, ["news"]),
    ("a_b", "gamma", "gus", False, ["sql"]),
    ("back\\slash", "Alpha", "hal", True, []),
    ("Draft notes", "alpha", "amy", False, ["news", "sql"]),
]
TAGS = ["news", "python", "sql", "empty"]
# (post index, author, content)
COMMENTS = [
    (0, "ben", "Nice"),
    (0, "cat", "nice one"),
    (1, "ben", "On a draft"),
    (3, "amy", "ÉCOLE draft note"),
    (4, "amy", "Omega!"),
    (6, "gus", "100% agree"),
    (8, "eve", "a_b?"),
    (11, "dan", "Nice draft"),
]
VIEWERS = [None, "amy", "cat", "hal"]
USER_TIMES = [T0 + timedelta(days=number, microseconds=number * 1001) for number in range(8)]
POST_TIMES = [T0 + timedelta(hours=number, microseconds=number * 7) for number in range(12)]
COMMENT_TIMES = [T0 + timedelta(minutes=number) for number in range(8)]
STORED_TIMES = (
    USER_TIMES + POST_TIMES + COMMENT_TIMES
)  # anonymous, two authors of drafts, the admin

# Value pools: present values, other-case and non-ASCII variants, wildcards, near misses.
USERNAMES = ["amy", "ben", "cat", "eve", "hal", "zed", "a", "e", "", "am", "al"]
NAMES = [
    "Amy Ng",
    "amy ng",
    "Ben",
    "ben",
    "Öz",
    "öz",
    "Éve Ω",
    "éve ω",
    "fay 100%",
    "100%",
    "Gus a_b",
    "gus axb",
    "a_b",
    "HAL 9000",
    "%",
    "_",
    " ",
    "",
    "ω",
    "Ω",
    "E",
    "n",
]
EMAILS = ["amy@example.test", "AMY@EXAMPLE.TEST", "cat@example.test", "@example.test", "a", "h"]
TITLES = [
    "Hello World",
    "hello world",
    "HELLO",
    "world",
    "École",
    "école",
    "ÉCOLE",
    "Ωmega",
    "ωmega",
    "Ω",
    "ω",
    "STRASSE",
    "strasse",
    "Strasse",
    "100%",
    "100",
    "%",
    "_",
    "a_b",
    "A_B",
    "axb",
    "\\",
    "back\\slash",
    "Draft",
    "s",
    "e",
    "",
]
CONTENTS = [
    "alpha",
    "Alpha",
    "ALPHA",
    "beta",
    "gamma",
    "δelta",
    "ΔELTA",
    "100%",
    "%",
    "a_b",
    "_",
    "\\",
    "c",
    " ",
]
COMMENT_TEXTS = ["Nice", "nice", "NICE", "draft", "ÉCOLE", "école", "100%", "%", "_", "a_b", "!"]
TAG_NAMES = ["news", "NEWS", "python", "py", "sql", "empty", "s", ""]
AGES = [0, 1, 24, 25, 26, 40, 61, 150, -1]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    email: str
    first_name: str | None
    last_name: str | None
    age: int | None
    is_active: bool
    is_admin: bool
    created_at: datetime

    @property
    def full_name(self) -> str | None:
        return " ".join(name for name in (self.first_name, self.last_name) if name) or None


@dataclass(frozen=True, slots=True)
class Post:
    id: int
    title: str
    content: str
    published: bool
    created_at: datetime
    updated_at: datetime
    author_id: int
    tag_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    content: str
    created_at: datetime
    author_id: int
    post_id: int


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    name: str


@dataclass(slots=True, repr=False)
class World:
    """The fixed data set, as plain values the evaluator reads."""

    users: dict[str, User] = field(default_factory=dict)
    posts: list[Post] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    accounts: dict[str, models.User] = field(default_factory=dict)  # viewers' rows, for tokens

    def __repr__(self) -> str:  # hypothesis prints it beside a falsifying example
        return f"World({len(self.users)} users, {len(self.posts)} posts, {len(self.tags)} tags)"


@pytest.fixture
async def world(db: AsyncSession) -> World:
    """Built once per test function: hypothesis runs every example against the same rows."""
    users = {}
    for number, (username, first, last, age, active, admin) in enumerate(USERS):
        users[username] = await make_user(
            db,
            username=username,
            email=f"{username}@example.test",
            first_name=first,
            last_name=last,
            age=age,
            is_active=active,
            is_admin=admin,
            created_at=USER_TIMES[number],
        )
    tags = {name: await make_tag(db, name) for name in TAGS}
    posts = []
    for number, (title, content, author, published, tag_names) in enumerate(POSTS):
        post = await make_post(
            db,
            author=users[author],
            title=title,
            content=content,
            published=published,
            tags=[tags[name] for name in tag_names],
            created_at=POST_TIMES[number],
        )
        posts.append(post)
    for number, (index, author, content) in enumerate(COMMENTS):
        await make_comment(
            db,
            post=posts[index],
            author=users[author],
            content=content,
            created_at=COMMENT_TIMES[number],
        )
    world = await _read_world(db)
    world.accounts = users
    return world


async def _read_world(db: AsyncSession) -> World:
    """Read the rows back, so the evaluator sees exactly what the database stored."""
    world = World()
    fresh = {"populate_existing": True}
    for user in await db.scalars(select(models.User).execution_options(**fresh)):
        world.users[user.username] = User(
            user.id,
            user.username,
            user.email,
            user.first_name,
            user.last_name,
            user.age,
            user.is_active,
            user.is_admin,
            user.created_at,
        )
    links = (await db.execute(select(models.post_tags.c.post_id, models.post_tags.c.tag_id))).all()
    for post in await db.scalars(select(models.Post).execution_options(**fresh)):
        tag_ids = frozenset(tag_id for post_id, tag_id in links if post_id == post.id)
        world.posts.append(
            Post(
                post.id,
                post.title,
                post.content,
                post.published,
                post.created_at,
                post.updated_at,
                post.user_id,
                tag_ids,
            )
        )
    for comment in await db.scalars(select(models.Comment).execution_options(**fresh)):
        world.comments.append(
            Comment(
                comment.id, comment.content, comment.created_at, comment.user_id, comment.post_id
            )
        )
    world.tags = [Tag(tag.id, tag.name) for tag in await db.scalars(select(models.Tag))]
    return world


# --- the evaluator: API.md's rules, read directly -----------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda value, operand: value == operand,
    "ne": lambda value, operand: value != operand,
    "in": lambda value, operand: value in operand,
    "notIn": lambda value, operand: value not in operand,
    "lt": lambda value, operand: value < operand,
    "lte": lambda value, operand: value <= operand,
    "gt": lambda value, operand: value > operand,
    "gte": lambda value, operand: value >= operand,
    "contains": lambda value, operand: operand in value,
    "startsWith": lambda value, operand: value.startswith(operand),
    "endsWith": lambda value, operand: value.endswith(operand),
}


def _operand(raw: Any, kind: str) -> Any:
    if kind != "datetime":
        return raw
    if isinstance(raw, list):
        return [datetime.fromisoformat(item) for item in raw]
    return datetime.fromisoformat(raw)


def _fold(value: Any, insensitive: bool) -> Any:
    if isinstance(value, list):
        return [_fold(item, insensitive) for item in value]
    return value.lower() if insensitive and isinstance(value, str) else value


def _operator_holds(name: str, operand: Any, value: Any) -> bool:
    if name == "isNull":
        return (value is None) is operand
    if name in ("in", "notIn") and not operand:
        return name == "notIn"  # an empty notIn matches every row, NULLs included
    if value is None:
        return False  # comparisons never match NULL
    return bool(_COMPARE[name](value, operand))


def scalar_holds(operators: dict[str, Any], value: Any, kind: str) -> bool:
    """Every operator of one field filter holds for `value`."""
    insensitive = operators.get("mode") == "INSENSITIVE"
    return all(
        _operator_holds(
            name,
            operand if name == "isNull" else _fold(_operand(operand, kind), insensitive),
            _fold(value, insensitive),
        )
        for name, operand in operators.items()
        if name != "mode"
    )


@dataclass(frozen=True, slots=True)
class Evaluator:
    world: World
    viewer: User | None

    def post_visible(self, post: Post) -> bool:
        if post.published or self.viewer is None:
            return post.published
        return self.viewer.is_admin or post.author_id == self.viewer.id

    def comment_visible(self, comment: Comment) -> bool:
        return self.post_visible(self._post(comment.post_id))

    def email_visible(self, user: User) -> bool:
        return self.viewer is not None and (self.viewer.is_admin or self.viewer.id == user.id)

    def _post(self, post_id: int) -> Post:
        return next(post for post in self.world.posts if post.id == post_id)

    def _user(self, user_id: int) -> User:
        return next(user for user in self.world.users.values() if user.id == user_id)

    def _id_operators(self, operators: dict[str, Any], entity: str) -> dict[str, Any]:
        """Global ids as row ids; an id of another type is -1, which no row has."""

        def row_id(value: str) -> int:
            type_name, _, row = base64.b64decode(value).decode().partition(":")
            return int(row) if type_name == entity else -1

        return {
            name: [row_id(item) for item in value] if isinstance(value, list) else row_id(value)
            for name, value in operators.items()
        }

    def _logical(self, key: str, value: Any, row: Any, match: Callable[[Where, Any], bool]) -> bool:
        if key == "and":
            return all(match(item, row) for item in value)
        if key == "or":
            return any(match(item, row) for item in value)
        return not match(value, row)

    @staticmethod
    def _quantified(
        quantifiers: dict[str, Where], rows: list[Any], match: Callable[..., bool]
    ) -> bool:
        checks = {
            "some": lambda where: any(match(where, row) for row in rows),
            "none": lambda where: not any(match(where, row) for row in rows),
            "every": lambda where: all(match(where, row) for row in rows),
        }
        return all(checks[name](where) for name, where in quantifiers.items())

    def user_matches(self, where: Where, user: User) -> bool:
        return all(self._user_clause(key, value, user) for key, value in where.items())

    def _user_clause(self, key: str, value: Any, user: User) -> bool:
        if key in ("and", "or", "not"):
            return self._logical(key, value, user, self.user_matches)
        if key == "posts":
            posts = [p for p in self.world.posts if p.author_id == user.id and self.post_visible(p)]
            return self._quantified(value, posts, self.post_matches)
        if key == "comments":
            comments = [
                c for c in self.world.comments if c.author_id == user.id and self.comment_visible(c)
            ]
            return self._quantified(value, comments, self.comment_matches)
        if key == "id":
            return scalar_holds(self._id_operators(value, "User"), user.id, "id")
        if key == "email":
            return self.email_visible(user) and scalar_holds(value, user.email, "string")
        attribute, kind = USER_FIELDS[key]
        return scalar_holds(value, getattr(user, attribute), kind)

    def post_matches(self, where: Where, post: Post) -> bool:
        return all(self._post_clause(key, value, post) for key, value in where.items())

    def _post_clause(self, key: str, value: Any, post: Post) -> bool:
        if key in ("and", "or", "not"):
            return self._logical(key, value, post, self.post_matches)
        if key == "author":
            return self.user_matches(value, self._user(post.author_id))
        if key == "tags":
            tags = [tag for tag in self.world.tags if tag.id in post.tag_ids]
            return self._quantified(value, tags, self.tag_matches)
        if key == "comments":
            comments = [
                c for c in self.world.comments if c.post_id == post.id and self.comment_visible(c)
            ]
            return self._quantified(value, comments, self.comment_matches)
        if key == "id":
            return scalar_holds(self._id_operators(value, "Post"), post.id, "id")
        attribute, kind = POST_FIELDS[key]
        return scalar_holds(value, getattr(post, attribute), kind)

    def comment_matches(self, where: Where, comment: Comment) -> bool:
        return all(self._comment_clause(key, value, comment) for key, value in where.items())

    def _comment_clause(self, key: str, value: Any, comment: Comment) -> bool:
        if key in ("and", "or", "not"):
            return self._logical(key, value, comment, self.comment_matches)
        if key == "author":
            return self.user_matches(value, self._user(comment.author_id))
        if key == "post":
            post = self._post(comment.post_id)
            return self.post_visible(post) and self.post_matches(value, post)
        attribute, kind = COMMENT_FIELDS[key]
        return scalar_holds(value, getattr(comment, attribute), kind)

    def tag_matches(self, where: Where, tag: Tag) -> bool:
        return all(self._tag_clause(key, value, tag) for key, value in where.items())

    def _tag_clause(self, key: str, value: Any, tag: Tag) -> bool:
        if key in ("and", "or", "not"):
            return self._logical(key, value, tag, self.tag_matches)
        if key == "posts":
            posts = [p for p in self.world.posts if tag.id in p.tag_ids and self.post_visible(p)]
            return self._quantified(value, posts, self.post_matches)
        return scalar_holds(value, tag.name, "string")


USER_FIELDS = {
    "username": ("username", "string"),
    "fullName": ("full_name", "string"),
    "age": ("age", "int"),
    "isActive": ("is_active", "bool"),
    "createdAt": ("created_at", "datetime"),
}
POST_FIELDS = {
    "title": ("title", "string"),
    "content": ("content", "string"),
    "published": ("published", "bool"),
    "createdAt": ("created_at", "datetime"),
    "updatedAt": ("updated_at", "datetime"),
}
COMMENT_FIELDS = {"content": ("content", "string"), "createdAt": ("created_at", "datetime")}


# --- strategies ---------------------------------------------------------------------------------

STRING_OPERATORS = ["eq", "ne", "in", "notIn", "contains", "startsWith", "endsWith", "isNull"]
ORDERED_OPERATORS = ["eq", "ne", "in", "notIn", "lt", "lte", "gt", "gte", "isNull"]


def _operators(names: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Where]:
    """Mostly one operator of a field filter, sometimes two, each with a value."""

    @st.composite
    def build(draw: st.DrawFn) -> Where:
        count = draw(st.sampled_from([1, 1, 1, 2]))
        chosen = draw(st.lists(st.sampled_from(names), min_size=count, max_size=count, unique=True))
        operators: Where = {}
        for name in chosen:
            if name == "isNull":
                operators[name] = draw(st.booleans())
            elif name in ("in", "notIn"):
                operators[name] = draw(st.lists(values, max_size=3))
            else:
                operators[name] = draw(values)
        return operators

    return build()


def string_filter(pool: list[str]) -> st.SearchStrategy[Where]:
    mode = st.sampled_from([None, "DEFAULT", "INSENSITIVE", "INSENSITIVE"])
    return st.tuples(_operators(STRING_OPERATORS, st.sampled_from(pool)), mode).map(
        lambda pair: pair[0] if pair[1] is None else {**pair[0], "mode": pair[1]}
    )


def int_filter() -> st.SearchStrategy[Where]:
    return _operators(ORDERED_OPERATORS, st.sampled_from(AGES))


def bool_filter() -> st.SearchStrategy[Where]:
    return _operators(["eq", "ne", "isNull"], st.booleans())


OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


@st.composite
def datetime_value(draw: st.DrawFn) -> str:
    """A stored time exactly, or a microsecond or a minute either side, in some offset."""
    stored = draw(st.sampled_from(STORED_TIMES))
    nudge = timedelta(microseconds=draw(st.sampled_from([0, 0, -1, 1, -60_000_000, 60_000_000])))
    return (stored + nudge).astimezone(draw(st.sampled_from(OFFSETS))).isoformat()


def datetime_filter() -> st.SearchStrategy[Where]:
    return _operators(ORDERED_OPERATORS, datetime_value())


def id_filter(entity: str) -> st.SearchStrategy[Where]:
    other = "Post" if entity == "User" else "User"
    refs = st.one_of(
        st.tuples(st.just(entity), st.integers(0, 11)),
        st.tuples(st.just(other), st.integers(0, 3)),
    ).map(lambda ref: f"{ref[0]}#{ref[1]}")
    return _operators(["eq", "ne", "in", "notIn"], refs)


def to_many(inner: st.SearchStrategy[Where]) -> st.SearchStrategy[Where]:
    return st.dictionaries(
        st.sampled_from(["some", "none", "every"]), inner, min_size=1, max_size=2
    )


def _where(
    leaves: dict[str, st.SearchStrategy[Any]],
    nested: Callable[[int], dict[str, st.SearchStrategy[Any]]],
    depth: int,
    recurse: Callable[[int], st.SearchStrategy[Where]],
) -> st.SearchStrategy[Where]:
    """A field condition, or (while depth lasts) not/and/or, two keys side by side, a relation."""
    leaf = st.sampled_from(sorted(leaves)).flatmap(
        lambda key: leaves[key].map(lambda operators: {key: operators})
    )
    if depth == 0:
        return leaf
    inner = recurse(depth - 1)
    relations = [
        strategy.map(lambda value, key=key: {key: value})
        for key, strategy in sorted(nested(depth - 1).items())
    ]
    return st.one_of(
        leaf,
        leaf,
        inner.map(lambda where: {"not": where}),
        st.lists(inner, max_size=3).map(lambda items: {"and": items}),
        st.lists(inner, max_size=3).map(lambda items: {"or": items}),
        st.tuples(leaf, inner).map(lambda pair: {**pair[1], **pair[0]}),
        *relations,
    )


def user_where(depth: int) -> st.SearchStrategy[Where]:
    leaves = {
        "id": id_filter("User"),
        "username": string_filter(USERNAMES),
        "email": string_filter(EMAILS),
        "fullName": string_filter(NAMES),
        "age": int_filter(),
        "isActive": bool_filter(),
        "createdAt": datetime_filter(),
    }
    return _where(
        leaves,
        lambda below: {
            "posts": to_many(post_where(below)),
            "comments": to_many(comment_where(below)),
        },
        depth,
        user_where,
    )


def post_where(depth: int) -> st.SearchStrategy[Where]:
    leaves = {
        "id": id_filter("Post"),
        "title": string_filter(TITLES),
        "content": string_filter(CONTENTS),
        "published": bool_filter(),
        "createdAt": datetime_filter(),
        "updatedAt": datetime_filter(),
    }
    return _where(
        leaves,
        lambda below: {
            "author": user_where(below),
            "tags": to_many(tag_where(below)),
            "comments": to_many(comment_where(below)),
        },
        depth,
        post_where,
    )


def comment_where(depth: int) -> st.SearchStrategy[Where]:
    leaves = {"content": string_filter(COMMENT_TEXTS), "createdAt": datetime_filter()}
    return _where(
        leaves,
        lambda below: {"author": user_where(below), "post": post_where(below)},
        depth,
        comment_where,
    )


def tag_where(depth: int) -> st.SearchStrategy[Where]:
    return _where(
        {"name": string_filter(TAG_NAMES)},
        lambda below: {"posts": to_many(post_where(below))},
        depth,
        tag_where,
    )


def _resolve_ids(where: Any, world: World) -> Any:
    """Replace the strategies' "Type#index" references by real global ids (and remember them)."""
    if isinstance(where, dict):
        return {key: _resolve_ids(value, world) for key, value in where.items()}
    if isinstance(where, list):
        return [_resolve_ids(item, world) for item in where]
    if isinstance(where, str) and where[:5] in ("User#", "Post#"):
        entity, index = where.split("#")
        rows: list[Any] = (
            sorted(world.users.values(), key=lambda user: user.id)
            if entity == "User"
            else sorted(world.posts, key=lambda post: post.id)
        )
        return encode_global_id(entity, rows[int(index) % len(rows)].id)
    return where


async def _matched_ids(
    api: GraphQLClient, world: World, entity: str, where: Where, viewer: str | None
) -> set[str]:
    field_name, type_name = {"User": ("users", "UserWhere"), "Post": ("posts", "PostWhere")}[entity]
    query = f"""query($where: {type_name}) {{
      {field_name}(where: $where, first: 100) {{ totalCount nodes {{ id }} }} }}"""
    account = None if viewer is None else world.accounts[viewer]
    result = await api.query(query, {"where": where}, viewer=account)
    assert result.errors is None, (where, result.errors)
    connection = result.data[field_name]
    found = {node["id"] for node in connection["nodes"]}
    assert connection["totalCount"] == len(found)
    return found


def _share(matched: int, total: int) -> str:
    """How much a filter kept (see --hypothesis-show-statistics): filters should discriminate."""
    return "matched none" if not matched else "matched all" if matched == total else "matched some"


def _expected(world: World, entity: str, where: Where, viewer: str | None) -> set[str]:
    """The global ids of the rows the contract says `where` selects for `viewer`."""
    user = None if viewer is None else world.users[viewer]
    # An inactive user's token reads as anonymous (cat is inactive).
    evaluator = Evaluator(world, user if user is not None and user.is_active else None)
    if entity == "Post":
        return {
            encode_global_id("Post", post.id)
            for post in world.posts
            if evaluator.post_visible(post) and evaluator.post_matches(where, post)
        }
    return {
        encode_global_id("User", user.id)
        for user in world.users.values()
        if evaluator.user_matches(where, user)
    }


async def _check(
    api: GraphQLClient, world: World, entity: str, drawn: Where, viewer: str | None
) -> None:
    """The filter and its negation each select what the evaluator selects."""
    where = _resolve_ids(drawn, world)
    note(f"viewer: {viewer or 'anonymous'}; where: {where!r}")
    expected = _expected(world, entity, where, viewer)
    total = len(world.posts) if entity == "Post" else len(world.users)
    event(_share(len(expected), total))
    assert await _matched_ids(api, world, entity, where, viewer) == expected
    negated = {"not": where}
    assert await _matched_ids(api, world, entity, negated, viewer) == _expected(
        world, entity, negated, viewer
    )


@PROPERTY_SETTINGS
@given(drawn=post_where(3), viewer=st.sampled_from(VIEWERS))
async def test_post_filters_select_exactly_what_the_contract_says(
    api: GraphQLClient, world: World, drawn: Where, viewer: str | None
) -> None:
    await _check(api, world, "Post", drawn, viewer)


@PROPERTY_SETTINGS
@given(drawn=user_where(3), viewer=st.sampled_from(VIEWERS))
async def test_user_filters_select_exactly_what_the_contract_says(
    api: GraphQLClient, world: World, drawn: Where, viewer: str | None
) -> None:
    await _check(api, world, "User", drawn, viewer)
