"""The planned path's statements: Core selects of only the columns a plan reads.

Each function builds one statement for a whole level of a plan (every parent's keys at once), with
the viewer's visibility applied as in `gql_blog.loaders`. The keys and the viewer's id are bind
parameters (`:keys`, `:viewer_id`), so a plan node builds its statement once and every request
reuses it; on PostgreSQL the keys are one array (`= ANY(:keys)`), so one SQL text — and one
prepared statement — serves every batch size. Columns are labelled by attribute name.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, any_, bindparam, exists, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

from gql_blog import models
from gql_blog.loaders import (
    Filter,
    PageRequest,
    Relation,
    filter_conditions,
    ranked_pages,
    walked_pages,
)
from gql_blog.visibility import visible


@dataclass(frozen=True, slots=True)
class ViewerParameter:
    """Stands for the viewer in visibility predicates: its id is the `:viewer_id` parameter."""

    is_admin: bool
    id: BindParameter[int]

    @classmethod
    def of(cls, viewer: Any) -> "ViewerParameter | None":
        if viewer is None:
            return None
        return cls(viewer.is_admin, bindparam("viewer_id", type_=Integer))

    @staticmethod
    def kind(viewer: Any) -> str:
        """Which statement variant a viewer needs (the id itself is a parameter)."""
        if viewer is None:
            return "anonymous"
        return "admin" if viewer.is_admin else "user"


def key_in(column: Any, dialect: str) -> ColumnElement[bool]:
    """`column` is one of `:keys`: `= ANY(array)` on PostgreSQL, an expanding IN elsewhere."""
    if dialect == "postgresql":
        matched: ColumnElement[bool] = column == any_(bindparam("keys", type_=ARRAY(Integer)))
        return matched
    in_keys: ColumnElement[bool] = column.in_(bindparam("keys", expanding=True))
    return in_keys


def columns(model: type[models.Base], names: Iterable[str]) -> list[ColumnElement[Any]]:
    """The model's columns (or SQL hybrids, such as `full_name`) labelled by attribute name."""
    entity: Any = model
    return [getattr(entity, name).label(name) for name in names]


def rows_by_id(
    model: type[models.Base], names: Collection[str], viewer: Any, dialect: str
) -> Select[Any]:
    entity: Any = model
    return select(*columns(model, names)).where(key_in(entity.id, dialect), visible(model, viewer))


def root_page(
    model: type[models.Base], names: Collection[str], request: PageRequest, viewer: Any
) -> Select[Any]:
    return (
        select(*columns(model, names))
        .where(visible(model, viewer), *request.conditions())
        .order_by(*request.ordering.clauses(reverse=request.backward))
        .limit(request.size + 1)
    )


def root_count(model: type[models.Base], where: Filter | None, viewer: Any) -> Select[Any]:
    return (
        select(func.count().label("count"))
        .select_from(model)
        .where(visible(model, viewer), *filter_conditions(where))
    )


def root_beyond(
    model: type[models.Base],
    request: PageRequest,
    values: tuple[Any, ...],
    *,
    forward: bool,
    viewer: Any,
) -> Select[Any]:
    condition = request.ordering.at_or_beyond(values, forward=forward)
    found = exists().where(visible(model, viewer), condition, *filter_conditions(request.where))
    return select(found.label("found"))


def child_pages(
    relation: Relation,
    names: Collection[str],
    request: PageRequest,
    viewer: Any,
    dialect: str,
) -> Select[Any]:
    """One page per parent, `size + 1` rows each (the extra row answers hasNextPage)."""
    if dialect == "postgresql" and request.where is None:
        return _child_pages_lateral(relation, names, request, viewer)
    pages = walked_pages if dialect == "sqlite" else ranked_pages
    return pages(
        relation,
        columns(relation.model, names),
        request,
        viewer,
        lambda column: key_in(column, dialect),
    )


def _child_pages_lateral(
    relation: Relation, names: Collection[str], request: PageRequest, viewer: Any
) -> Select[Any]:
    """PostgreSQL: for each parent, walk the index to its first `size + 1` children and stop.

    `unnest(:keys) CROSS JOIN LATERAL (... ORDER BY ... LIMIT n + 1)` costs what the page's rows
    cost, however many children the parents have; ranking them all costs every child.
    """
    parents = (
        func.unnest(bindparam("keys", type_=ARRAY(Integer)))
        .table_valued("parent_key")
        .render_derived(name="parents")
    )
    clauses = request.ordering.clauses(reverse=request.backward)
    page = (
        relation.select_from(
            *columns(relation.model, names),
            func.row_number().over(order_by=clauses).label("pos"),
        )
        .where(
            relation.parent_key() == parents.c.parent_key,
            visible(relation.model, viewer),
            *request.conditions(),
        )
        .order_by(*clauses)
        .limit(request.size + 1)
        .lateral("page")
    )
    return (
        select(parents.c.parent_key, *(page.c[name] for name in names))
        .select_from(parents)
        .join(page, true())
        .order_by(parents.c.parent_key, page.c.pos)
    )


def child_counts(
    relation: Relation, where: Filter | None, viewer: Any, dialect: str
) -> Select[Any]:
    parent = relation.parent_key()
    return (
        relation.select_from(parent.label("parent_key"), func.count().label("count"))
        .where(key_in(parent, dialect), visible(relation.model, viewer), *filter_conditions(where))
        .group_by(parent)
    )


def children_beyond(
    relation: Relation,
    request: PageRequest,
    values: tuple[Any, ...],
    *,
    forward: bool,
    viewer: Any,
    dialect: str,
) -> Select[Any]:
    parent = relation.parent_key()
    return (
        relation.select_from(parent.label("parent_key"))
        .where(
            key_in(parent, dialect),
            visible(relation.model, viewer),
            request.ordering.at_or_beyond(values, forward=forward),
            *filter_conditions(request.where),
        )
        .distinct()
    )


def tags_of_posts(names: Collection[str], dialect: str) -> Select[Any]:
    """Each post's tags by name (a visible post's tags are visible)."""
    return (
        select(models.post_tags.c.post_id.label("parent_key"), *columns(models.Tag, names))
        .join(models.Tag, models.Tag.id == models.post_tags.c.tag_id)
        .where(key_in(models.post_tags.c.post_id, dialect))
        .order_by(models.Tag.name, models.Tag.id)
    )


def user_by_username(names: Collection[str]) -> Select[Any]:
    return select(*columns(models.User, names)).where(
        models.User.username_key == bindparam("username_key")
    )


def post_by_slug(names: Collection[str], viewer: Any) -> Select[Any]:
    return select(*columns(models.Post, names)).where(
        models.Post.slug == bindparam("slug"), visible(models.Post, viewer)
    )


def tag_by_name(names: Collection[str], viewer: Any) -> Select[Any]:
    return select(*columns(models.Tag, names)).where(
        models.Tag.name == bindparam("name"), visible(models.Tag, viewer)
    )
