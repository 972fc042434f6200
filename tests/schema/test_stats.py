"""userStats, postStats and postGroups: aggregates in SQL, checked against Python over the rows."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from tests.conftest import StatementCounter
from tests.factories import make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

USER_STATS = (
    "query($where: UserWhere) { userStats(where: $where) { count averageAge minAge maxAge } }"
)
POST_STATS = """
query($where: PostWhere) {
  postStats(where: $where) { count publishedCount firstCreatedAt lastCreatedAt }
}
"""
POST_GROUPS = """
query($groupBy: [PostGroupField!]!, $where: PostWhere, $first: Int) {
  postGroups(groupBy: $groupBy, where: $where, first: $first) {
    key { author { username } tag { name } published createdMonth }
    count
    firstCreatedAt
    lastCreatedAt
  }
}
"""
GROUP_FIELDS = ["AUTHOR", "TAG", "PUBLISHED", "CREATED_MONTH"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


# --- userStats -------------------------------------------------------------------------------


async def test_user_stats_without_users_count_zero_and_ages_are_null(api: GraphQLClient) -> None:
    result = await api.query(USER_STATS)

    assert result.errors is None
    assert result.data == {
        "userStats": {"count": 0, "averageAge": None, "minAge": None, "maxAge": None}
    }


async def test_user_stats_ignore_unknown_ages(api: GraphQLClient, db: AsyncSession) -> None:
    ages = [31, None, 20, 47, None, 20]
    for age in ages:
        await make_user(db, age=age)
    known = [age for age in ages if age is not None]

    result = await api.query(USER_STATS)

    assert result.errors is None
    stats = result.data["userStats"]
    assert stats == {
        "count": len(ages),
        "averageAge": pytest.approx(sum(known) / len(known)),
        "minAge": min(known),
        "maxAge": max(known),
    }


async def test_user_stats_average_is_a_float_with_full_precision(
    api: GraphQLClient, db: AsyncSession
) -> None:
    for age in (10, 10, 11):
        await make_user(db, age=age)

    result = await api.query("{ userStats { averageAge } }")

    assert result.errors is None
    assert result.data["userStats"]["averageAge"] == pytest.approx(31 / 3, abs=1e-12)


async def test_user_stats_with_only_unknown_ages_have_null_ages(
    api: GraphQLClient, db: AsyncSession
) -> None:
    await make_user(db)
    await make_user(db)

    result = await api.query(USER_STATS)

    assert result.errors is None
    assert result.data == {
        "userStats": {"count": 2, "averageAge": None, "minAge": None, "maxAge": None}
    }


async def test_user_stats_count_only_users_the_filter_matches(
    api: GraphQLClient, db: AsyncSession
) -> None:
    for age in (15, 25, 35, None):
        await make_user(db, age=age)

    result = await api.query(USER_STATS, {"where": {"age": {"gte": 20}}})

    assert result.errors is None
    assert result.data == {
        "userStats": {"count": 2, "averageAge": 30.0, "minAge": 25, "maxAge": 35}
    }


async def test_user_stats_with_a_too_deep_filter_is_bad_user_input(api: GraphQLClient) -> None:
    where: dict[str, Any] = {"age": {"eq": 1}}
    for _ in range(11):
        where = {"not": where}

    result = await api.query(USER_STATS, {"where": where})

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.data is None


# --- postStats -------------------------------------------------------------------------------

ROLES = ["anonymous", "other-user", "author", "admin"]


@dataclass(frozen=True, slots=True)
class Authors:
    author: models.User
    other: models.User
    admin: models.User

    def viewer(self, role: str) -> models.User | None:
        return {
            "anonymous": None,
            "other-user": self.other,
            "author": self.author,
            "admin": self.admin,
        }[role]


@pytest.fixture
async def authors(db: AsyncSession) -> Authors:
    return Authors(
        author=await make_user(db, username="writer"),
        other=await make_user(db, username="reader"),
        admin=await make_user(db, username="boss", is_admin=True),
    )


async def test_post_stats_without_posts_count_zero_and_dates_are_null(
    api: GraphQLClient,
) -> None:
    result = await api.query(POST_STATS)

    assert result.errors is None
    assert result.data == {
        "postStats": {
            "count": 0,
            "publishedCount": 0,
            "firstCreatedAt": None,
            "lastCreatedAt": None,
        }
    }


@pytest.mark.parametrize("role", ROLES)
async def test_post_stats_count_drafts_only_for_their_author_and_admins(
    api: GraphQLClient, db: AsyncSession, authors: Authors, role: str
) -> None:
    start = datetime(2025, 3, 1, 12, tzinfo=UTC)
    shapes = [(True, 5), (False, 1), (True, 3), (False, 9)]
    posts = [
        await make_post(
            db, author=authors.author, published=published, created_at=start + timedelta(days=day)
        )
        for published, day in shapes
    ]
    seen = [post for post in posts if post.published or role in ("author", "admin")]

    result = await api.query(POST_STATS, viewer=authors.viewer(role))

    assert result.errors is None
    assert result.data == {
        "postStats": {
            "count": len(seen),
            "publishedCount": sum(post.published for post in seen),
            "firstCreatedAt": _iso(min(post.created_at for post in seen)),
            "lastCreatedAt": _iso(max(post.created_at for post in seen)),
        }
    }


async def test_post_stats_count_only_posts_the_filter_matches(
    api: GraphQLClient, db: AsyncSession, authors: Authors
) -> None:
    python = await make_tag(db, "python")
    first = datetime(2024, 5, 1, tzinfo=UTC)
    await make_post(db, author=authors.author, tags=[python], created_at=first)
    await make_post(db, author=authors.author, published=False, tags=[python])
    await make_post(db, author=authors.other, tags=[python], created_at=first + timedelta(hours=1))
    await make_post(db, author=authors.other)
    where = {"tags": {"some": {"name": {"eq": "python"}}}}

    result = await api.query(POST_STATS, {"where": where})

    assert result.errors is None
    assert result.data == {
        "postStats": {
            "count": 2,
            "publishedCount": 2,
            "firstCreatedAt": _iso(first),
            "lastCreatedAt": _iso(first + timedelta(hours=1)),
        }
    }


# --- postGroups ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """A post as Python sees it, for computing the expected groups."""

    author: str
    tags: tuple[str, ...]
    published: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Blog:
    authors: Authors
    rows: list[Row]


# (author, tags, published, created_at): ties on purpose, untagged posts, a post with two tags,
# months across a year boundary, and times near midnight UTC in other zones.
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE = timezone(timedelta(hours=-5))
SHAPES: list[tuple[str, tuple[str, ...], bool, datetime]] = [
    ("writer", ("python",), True, datetime(2024, 11, 30, 23, 59, 59, tzinfo=UTC)),
    ("writer", ("python", "sql"), True, datetime(2024, 12, 1, 0, 0, tzinfo=UTC)),
    ("writer", (), True, datetime(2024, 12, 15, 8, tzinfo=UTC)),
    ("writer", ("sql",), False, datetime(2025, 1, 1, 0, 30, tzinfo=PLUS_TWO)),
    ("reader", ("python",), True, datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
    ("reader", ("news",), True, datetime(2025, 12, 31, 20, 0, tzinfo=MINUS_FIVE)),
    ("reader", (), False, datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)),
    ("boss", ("news", "python"), True, datetime(2026, 1, 2, tzinfo=UTC)),
    ("boss", (), True, datetime(2024, 12, 31, 23, 59, tzinfo=UTC)),
]


@pytest.fixture
async def blog(db: AsyncSession, authors: Authors) -> Blog:
    by_name = {user.username: user for user in (authors.author, authors.other, authors.admin)}
    tags = {name: await make_tag(db, name) for name in ("python", "sql", "news")}
    for author, tag_names, published, created_at in SHAPES:
        await make_post(
            db,
            author=by_name[author],
            tags=[tags[name] for name in tag_names],
            published=published,
            created_at=created_at,
        )
    rows = [Row(*shape) for shape in SHAPES]
    return Blog(authors=authors, rows=rows)


def _month(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def _keys(row: Row, field: str) -> list[Any]:
    """The key values one post contributes for one group field (one per tag for TAG)."""
    if field == "AUTHOR":
        return [row.author]
    if field == "TAG":
        return list(row.tags) or [None]
    if field == "PUBLISHED":
        return [row.published]
    return [_month(row.created_at)]


def _combinations(row: Row, fields: Sequence[str]) -> list[tuple[Any, ...]]:
    combos: list[tuple[Any, ...]] = [()]
    for field in fields:
        combos = [(*combo, value) for combo in combos for value in _keys(row, field)]
    return combos


def _sort_key(count: int, key: tuple[Any, ...]) -> tuple[Any, ...]:
    # A null key (untagged) sorts after every other key of its group field.
    return (-count, *((value is None, "" if value is None else value) for value in key))


def expected_groups(rows: Sequence[Row], fields: Sequence[str]) -> list[dict[str, Any]]:
    """postGroups as computed in Python: count desc, then keys asc (in groupBy order)."""
    members: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        for key in _combinations(row, fields):
            members.setdefault(key, []).append(row)
    ordered = sorted(members.items(), key=lambda item: _sort_key(len(item[1]), item[0]))
    return [_group(fields, key, group) for key, group in ordered]


def _group(fields: Sequence[str], key: tuple[Any, ...], rows: list[Row]) -> dict[str, Any]:
    named = dict(zip(fields, key, strict=True))
    author, tag = named.get("AUTHOR"), named.get("TAG")
    return {
        "key": {
            "author": None if author is None else {"username": author},
            "tag": None if tag is None else {"name": tag},
            "published": named.get("PUBLISHED"),
            "createdMonth": named.get("CREATED_MONTH"),
        },
        "count": len(rows),
        "firstCreatedAt": _iso(min(row.created_at for row in rows)),
        "lastCreatedAt": _iso(max(row.created_at for row in rows)),
    }


async def _groups(
    api: GraphQLClient, group_by: list[str], viewer: models.User | None = None, **variables: Any
) -> list[dict[str, Any]]:
    result = await api.query(POST_GROUPS, {"groupBy": group_by, **variables}, viewer=viewer)
    assert result.errors is None
    groups: list[dict[str, Any]] = result.data["postGroups"]
    return groups


@pytest.mark.parametrize("field", GROUP_FIELDS)
async def test_post_groups_by_one_field_match_python(
    api: GraphQLClient, blog: Blog, field: str
) -> None:
    groups = await _groups(api, [field], viewer=blog.authors.admin)

    assert groups == expected_groups(blog.rows, [field])


@pytest.mark.parametrize(
    "group_by",
    [["TAG", "CREATED_MONTH"], ["CREATED_MONTH", "TAG"], ["AUTHOR", "PUBLISHED"], GROUP_FIELDS],
    ids=["tag-month", "month-tag", "author-published", "all"],
)
async def test_post_groups_by_several_fields_match_python(
    api: GraphQLClient, blog: Blog, group_by: list[str]
) -> None:
    groups = await _groups(api, group_by, viewer=blog.authors.admin, first=100)

    assert groups == expected_groups(blog.rows, group_by)


async def test_posts_per_tag_per_month_use_utc_months(api: GraphQLClient, blog: Blog) -> None:
    groups = await _groups(api, ["TAG", "CREATED_MONTH"], viewer=blog.authors.admin, first=100)

    counted = {
        (group["key"]["tag"] and group["key"]["tag"]["name"], group["key"]["createdMonth"]): group[
            "count"
        ]
        for group in groups
    }
    assert counted == {
        ("python", "2024-11"): 1,
        ("python", "2024-12"): 1,
        ("sql", "2024-12"): 2,
        (None, "2024-12"): 2,
        ("python", "2025-12"): 1,
        ("news", "2026-01"): 2,
        ("python", "2026-01"): 1,
        (None, "2026-01"): 1,
    }


@pytest.mark.parametrize("role", ROLES)
async def test_post_groups_count_drafts_only_for_their_author_and_admins(
    api: GraphQLClient, blog: Blog, role: str
) -> None:
    viewer = blog.authors.viewer(role)
    seen = [
        row
        for row in blog.rows
        if row.published
        or role == "admin"
        or (viewer is not None and viewer.username == row.author)
    ]

    groups = await _groups(api, ["AUTHOR", "TAG"], viewer=viewer, first=100)

    assert groups == expected_groups(seen, ["AUTHOR", "TAG"])


async def test_post_groups_count_only_posts_the_filter_matches(
    api: GraphQLClient, blog: Blog
) -> None:
    where = {"tags": {"some": {"name": {"eq": "python"}}}}

    groups = await _groups(api, ["TAG"], viewer=blog.authors.admin, where=where)

    # Filtered on one tag, grouped by all tags of the posts it matched.
    matched = [row for row in blog.rows if "python" in row.tags]
    assert groups == expected_groups(matched, ["TAG"])


async def test_post_groups_by_author_apply_a_filter_on_the_author(
    api: GraphQLClient, blog: Blog
) -> None:
    where = {"author": {"username": {"eq": "writer"}}}

    groups = await _groups(api, ["AUTHOR", "TAG"], viewer=blog.authors.admin, where=where)

    matched = [row for row in blog.rows if row.author == "writer"]
    assert groups == expected_groups(matched, ["AUTHOR", "TAG"])


async def test_post_groups_order_ties_by_key_with_the_untagged_group_last(
    api: GraphQLClient, db: AsyncSession, authors: Authors
) -> None:
    tags = {name: await make_tag(db, name) for name in ("b", "a", "c")}
    for names in (["c"], ["c"], [], ["b"], ["a"], [], []):
        await make_post(db, author=authors.author, tags=[tags[name] for name in names])

    groups = await _groups(api, ["TAG"])

    names = [
        (group["key"]["tag"] and group["key"]["tag"]["name"], group["count"]) for group in groups
    ]
    assert names == [(None, 3), ("c", 2), ("a", 1), ("b", 1)]


async def test_post_groups_untagged_group_sorts_last_among_equal_counts(
    api: GraphQLClient, db: AsyncSession, authors: Authors
) -> None:
    zed = await make_tag(db, "zed")
    await make_post(db, author=authors.author)
    await make_post(db, author=authors.author, tags=[zed])

    groups = await _groups(api, ["TAG"])

    assert [group["key"]["tag"] for group in groups] == [{"name": "zed"}, None]


async def test_post_groups_order_ties_by_username_and_published_false_first(
    api: GraphQLClient, db: AsyncSession
) -> None:
    zed = await make_user(db, username="zed")
    amy = await make_user(db, username="Amy")
    bob = await make_user(db, username="bob")
    for author, published in ((zed, True), (bob, False), (amy, True), (bob, True)):
        await make_post(db, author=author, published=published)

    groups = await _groups(api, ["AUTHOR", "PUBLISHED"], viewer=await make_user(db, is_admin=True))

    assert [
        (group["key"]["author"]["username"], group["key"]["published"]) for group in groups
    ] == [
        ("Amy", True),
        ("bob", False),
        ("bob", True),
        ("zed", True),
    ]


async def test_post_groups_without_posts_are_empty(api: GraphQLClient) -> None:
    assert await _groups(api, ["AUTHOR"]) == []


@pytest.mark.parametrize(
    ("first", "size"), [(None, 20), (3, 3), (0, 0)], ids=["default", "three", "zero"]
)
async def test_post_groups_first_limits_the_groups(
    api: GraphQLClient, db: AsyncSession, authors: Authors, first: int | None, size: int
) -> None:
    start = datetime(2020, 1, 15, tzinfo=UTC)
    for month in range(25):
        await make_post(db, author=authors.author, created_at=start + timedelta(days=31 * month))

    groups = await _groups(api, ["CREATED_MONTH"], first=first)

    assert len(groups) == size
    assert [group["key"]["createdMonth"] for group in groups[:2]] == ["2020-01", "2020-02"][:size]


async def test_post_groups_first_above_the_maximum_is_bad_user_input(api: GraphQLClient) -> None:
    result = await api.query(POST_GROUPS, {"groupBy": ["TAG"], "first": 101})

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "`first`" in result.error_messages[0]
    assert "100" in result.error_messages[0]


async def test_post_groups_negative_first_is_bad_user_input(api: GraphQLClient) -> None:
    result = await api.query(POST_GROUPS, {"groupBy": ["TAG"], "first": -1})

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "`first`" in result.error_messages[0]


async def test_post_groups_without_group_fields_is_bad_user_input(api: GraphQLClient) -> None:
    result = await api.query(POST_GROUPS, {"groupBy": []})

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "groupBy" in result.error_messages[0]


# --- statement counts ------------------------------------------------------------------------


async def _count(
    api: GraphQLClient, count_sql: StatementCounter, query: str, variables: dict[str, Any]
) -> tuple[int, Any]:
    with count_sql() as counted:
        result = await api.query(query, variables)
    assert result.errors is None
    return counted.total, result.data


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (USER_STATS, {"where": {"age": {"gte": 1}}}),
        (POST_STATS, {"where": {"published": {"eq": True}}}),
    ],
    ids=["userStats", "postStats"],
)
async def test_stats_take_one_statement(
    api: GraphQLClient,
    blog: Blog,
    count_sql: StatementCounter,
    query: str,
    variables: dict[str, Any],
) -> None:
    total, _ = await _count(api, count_sql, query, variables)

    assert total == 1


async def test_post_groups_by_author_and_tag_take_three_statements(
    api: GraphQLClient, blog: Blog, count_sql: StatementCounter
) -> None:
    total, data = await _count(api, count_sql, POST_GROUPS, {"groupBy": ["AUTHOR", "TAG"]})

    published = [row for row in blog.rows if row.published]
    assert data["postGroups"] == expected_groups(published, ["AUTHOR", "TAG"])
    assert total == 3  # the aggregate, its authors, its tags


async def test_post_groups_by_month_take_one_statement(
    api: GraphQLClient, blog: Blog, count_sql: StatementCounter
) -> None:
    total, data = await _count(api, count_sql, POST_GROUPS, {"groupBy": ["CREATED_MONTH"]})

    assert len(data["postGroups"]) == len(
        {_month(row.created_at) for row in blog.rows if row.published}
    )
    assert total == 1


async def test_post_groups_join_authors_and_tags_to_the_groups_not_to_every_post(
    api: GraphQLClient, blog: Blog, count_sql: StatementCounter
) -> None:
    """The posts are grouped by their author's and tag's ids; usernames and tag names (which
    order the groups) are joined once per group, outside the aggregate."""
    with count_sql() as counted:
        result = await api.query(POST_GROUPS, {"groupBy": ["AUTHOR", "TAG"]})
    assert result.errors is None

    aggregate = " ".join(counted.statements[0].split())
    inner, outer = aggregate.split(") AS grouped", 1)
    assert "GROUP BY posts.user_id, group_post_tags.tag_id" in inner
    assert "group_author" not in inner
    assert "group_tag " not in inner
    assert "JOIN users AS group_author" in outer
    assert "JOIN tags AS group_tag" in outer
