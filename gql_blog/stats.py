"""Aggregates over users and posts: counts, ages, dates and groups, computed in SQL.

Each function runs one statement. Posts are seen through the viewer's visibility predicate, so
stats and groups never count a draft the viewer may not see.
"""

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    String,
    case,
    func,
    label,
    literal_column,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Subquery

from gql_blog import models
from gql_blog.errors import InvalidPageError
from gql_blog.read_model import Filter, filter_conditions
from gql_blog.serial_session import SerialSession
from gql_blog.visibility import visible


class CreatedMonth(FunctionElement[str]):
    """A UTC timestamp's month as `YYYY-MM`, formatted by the database."""

    type = String()
    inherit_cache = True


@compiles(CreatedMonth, "postgresql")
def _created_month_postgresql(element: CreatedMonth, compiler: Any, **kw: Any) -> str:
    # created_at is timestamptz: format it in UTC, not in the session's time zone.
    (moment,) = element.clauses
    utc = moment.op("AT TIME ZONE")(literal_column("'UTC'"))
    return str(compiler.process(func.to_char(utc, literal_column("'YYYY-MM'")), **kw))


@compiles(CreatedMonth, "mysql")
@compiles(CreatedMonth, "mariadb")
def _created_month_mysql(element: CreatedMonth, compiler: Any, **kw: Any) -> str:
    # Stored as a UTC DATETIME; literal_column doubles the '%' for the driver's paramstyle.
    (moment,) = element.clauses
    return str(compiler.process(func.date_format(moment, literal_column("'%Y-%m'")), **kw))


@compiles(CreatedMonth, "sqlite")
def _created_month_sqlite(element: CreatedMonth, compiler: Any, **kw: Any) -> str:
    # Stored as UTC text in SQLAlchemy's 'YYYY-MM-DD HH:MM:SS.ffffff' layout.
    (moment,) = element.clauses
    return str(compiler.process(func.strftime(literal_column("'%Y-%m'"), moment), **kw))


class GroupField(enum.Enum):
    AUTHOR = "AUTHOR"
    TAG = "TAG"
    PUBLISHED = "PUBLISHED"
    CREATED_MONTH = "CREATED_MONTH"


@dataclass(frozen=True, slots=True)
class UserStats:
    count: int
    average_age: float | None
    min_age: int | None
    max_age: int | None


@dataclass(frozen=True, slots=True)
class PostStats:
    count: int
    published_count: int
    first_created_at: datetime | None
    last_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class GroupKey:
    """A group's key; only the fields grouped by are set (`tag_id` is None for untagged posts)."""

    author_id: int | None = None
    tag_id: int | None = None
    published: bool | None = None
    created_month: str | None = None


@dataclass(frozen=True, slots=True)
class PostGroup:
    key: GroupKey
    count: int
    first_created_at: datetime | None
    last_created_at: datetime | None


def user_stats_statement(where: Filter | None) -> Select[Any]:
    """The statement of `user_stats`: one row, read by `user_stats_of`."""
    age = models.User.age
    aggregates: list[Any] = [
        func.count().label("count"),
        func.sum(age).label("age_sum"),
        func.count(age).label("known"),
        func.min(age).label("youngest"),
        func.max(age).label("oldest"),
    ]
    return select(*aggregates).where(*filter_conditions(where))


def user_stats_of(row: Mapping[str, Any]) -> UserStats:
    known = row["known"]
    # Sum and count, divided here: AVG's type and precision differ per dialect (MariaDB keeps
    # four decimals), and an exact sum gives the same float everywhere.
    return UserStats(
        count=int(row["count"]),
        average_age=int(row["age_sum"]) / int(known) if known else None,
        min_age=row["youngest"],
        max_age=row["oldest"],
    )


async def user_stats(db: SerialSession, where: Filter | None) -> UserStats:
    (row,) = await db.core_rows(user_stats_statement(where), {})
    return user_stats_of(row)


def post_stats_statement(*, viewer: Any, where: Filter | None) -> Select[Any]:
    """The statement of `post_stats` (the viewer a user or the planner's viewer parameter): one
    row, read by `post_stats_of`."""
    post = models.Post
    aggregates: list[Any] = [
        func.count().label("count"),
        func.count(case((post.published.is_(True), 1))).label("published"),
        func.min(post.created_at).label("first"),
        func.max(post.created_at).label("last"),
    ]
    return select(*aggregates).where(visible(post, viewer), *filter_conditions(where))


def post_stats_of(row: Mapping[str, Any]) -> PostStats:
    return PostStats(
        count=int(row["count"]),
        published_count=int(row["published"]),
        first_created_at=row["first"],
        last_created_at=row["last"],
    )


async def post_stats(
    db: SerialSession, *, viewer: models.User | None, where: Filter | None
) -> PostStats:
    (row,) = await db.core_rows(post_stats_statement(viewer=viewer, where=where), {})
    return post_stats_of(row)


@dataclass(frozen=True, slots=True)
class _Grouping:
    """One group field: the posts' column grouped by, and what the groups then join and order by.

    The posts are grouped by plain columns (the author's id, the linked tag's id, ...); the
    names ordering the groups (author, tag) are joined to the groups afterwards, one row per
    group, not to every post.
    """

    field: GroupField
    grouped: SQLColumnExpression[Any]
    # Joins the posts need before grouping (the tags' links): (target, on clause, outer).
    joins: tuple[tuple[Any, ColumnElement[bool], bool], ...] = ()

    @property
    def name(self) -> str:
        return _KEY_NAMES[self.field]

    def finish(self, stmt: Select[Any], groups: Subquery) -> tuple[Select[Any], list[Any]]:
        """Join what orders the groups to `stmt` (over `groups`); the ORDER BY terms."""
        key = groups.c[self.name]
        if self.field is GroupField.AUTHOR:
            author = aliased(models.User, name="group_author")
            return stmt.join(author, author.id == key), [author.username]
        if self.field is GroupField.TAG:
            tag = aliased(models.Tag, name="group_tag")
            # Among equal counts the untagged group comes last.
            return stmt.outerjoin(tag, tag.id == key), [key.is_(None), tag.name]
        return stmt, [key]


def _grouping(field: GroupField) -> _Grouping:
    # Own aliases, so the EXISTS of a `where` on tags never correlates with them.
    post = models.Post
    if field is GroupField.AUTHOR:
        return _Grouping(field, grouped=post.user_id)
    if field is GroupField.TAG:
        link = models.post_tags.alias("group_post_tags")
        return _Grouping(
            field, grouped=link.c.tag_id, joins=((link, link.c.post_id == post.id, True),)
        )
    if field is GroupField.PUBLISHED:
        return _Grouping(field, grouped=post.published)
    return _Grouping(field, grouped=CreatedMonth(post.created_at))


_KEY_NAMES = {
    GroupField.AUTHOR: "author_id",
    GroupField.TAG: "tag_id",
    GroupField.PUBLISHED: "published",
    GroupField.CREATED_MONTH: "created_month",
}


def _groups_statement(
    groupings: Sequence[_Grouping], conditions: Sequence[ColumnElement[bool]], limit: int
) -> Select[Any]:
    keys = [label(grouping.name, grouping.grouped) for grouping in groupings]
    inner = select(
        *keys,
        func.count().label("count"),
        func.min(models.Post.created_at).label("first_created_at"),
        func.max(models.Post.created_at).label("last_created_at"),
    ).select_from(models.Post)
    for grouping in groupings:
        for target, onclause, outer in grouping.joins:
            inner = inner.join(target, onclause, isouter=outer)
    groups = inner.where(*conditions).group_by(*(g.grouped for g in groupings)).subquery("grouped")
    stmt = select(
        *(groups.c[grouping.name] for grouping in groupings),
        groups.c["count"],
        groups.c.first_created_at,
        groups.c.last_created_at,
    ).select_from(groups)
    order_by: list[Any] = [groups.c["count"].desc()]
    for grouping in groupings:
        stmt, terms = grouping.finish(stmt, groups)
        order_by += terms
    return stmt.order_by(*order_by).limit(limit)


def groups_statement(
    *,
    viewer: Any,
    where: Filter | None,
    group_by: Sequence[GroupField],
    limit: int,
) -> Select[Any]:
    """The statement of `post_groups`: the keys (one column per distinct field), then count,
    first and last created_at."""
    groupings = [_grouping(field) for field in dict.fromkeys(group_by)]
    return _groups_statement(
        groupings, [visible(models.Post, viewer), *filter_conditions(where)], limit
    )


def group_limit(default: int, maximum: int, first: int | None) -> int:
    """How many groups `postGroups(first:)` asks for; InvalidPageError when out of bounds."""
    if first is None:
        return default
    if first < 0:
        raise InvalidPageError(f"`first` must not be negative (got {first}).")
    if first > maximum:
        raise InvalidPageError(f"`first` must be at most {maximum} (got {first}).")
    return first


def post_groups_of(
    rows: Iterable[Mapping[str, Any]], group_by: Sequence[GroupField]
) -> list[PostGroup]:
    """The groups in the rows of `groups_statement` (read by column name)."""
    names = [_KEY_NAMES[field] for field in dict.fromkeys(group_by)]
    return [
        PostGroup(
            GroupKey(**{name: row[name] for name in names}),
            int(row["count"]),
            row["first_created_at"],
            row["last_created_at"],
        )
        for row in rows
    ]


async def post_groups(
    db: SerialSession,
    *,
    viewer: models.User | None,
    where: Filter | None,
    group_by: Sequence[GroupField],
    limit: int,
) -> list[PostGroup]:
    """Visible posts grouped by `group_by` (in that order of keys): count desc, then keys asc."""
    stmt = groups_statement(viewer=viewer, where=where, group_by=group_by, limit=limit)
    return post_groups_of(await db.core_rows(stmt, {}), group_by)
