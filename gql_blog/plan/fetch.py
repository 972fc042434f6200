"""The planned path's statements: Core selects of only the columns a plan reads.

Each function builds one statement for a whole level of a plan (every parent's keys at once), with
the viewer's visibility applied as in `gql_blog.loaders`. Rows come back as Core rows whose
attributes are named as the model's (`row.user_id`), so orderings and cursors read them alike.
"""

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.sql import Select

from gql_blog import models
from gql_blog.loaders import Filter, PageRequest, Relation, filter_conditions
from gql_blog.visibility import visible


def columns(model: type[models.Base], names: Iterable[str]) -> list[ColumnElement[Any]]:
    """The model's columns (or SQL hybrids, such as `full_name`) labelled by attribute name."""
    entity: Any = model
    return [getattr(entity, name).label(name) for name in names]


def rows_by_id(
    model: type[models.Base], names: Collection[str], ids: Sequence[int], viewer: Any
) -> Select[Any]:
    entity: Any = model
    return select(*columns(model, names)).where(entity.id.in_(ids), visible(model, viewer))


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
        select(func.count())
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
    return select(
        exists().where(visible(model, viewer), condition, *filter_conditions(request.where))
    )


def child_pages(
    relation: Relation,
    names: Collection[str],
    parent_ids: Sequence[int],
    request: PageRequest,
    viewer: Any,
) -> Select[Any]:
    """One page per parent: rank the children's ids per parent, keep `size + 1` of each."""
    parent = relation.parent_key()
    model: Any = relation.model
    position = func.row_number().over(
        partition_by=parent, order_by=request.ordering.clauses(reverse=request.backward)
    )
    # Rank ids only: sorting narrow rows, not whole posts, keeps the window in memory.
    ranked = (
        relation.select_from(
            model.id.label("row_id"), parent.label("parent_key"), position.label("pos")
        )
        .where(parent.in_(parent_ids), visible(relation.model, viewer), *request.conditions())
        .subquery()
    )
    return (
        select(ranked.c.parent_key, *columns(relation.model, names))
        .join(ranked, model.id == ranked.c.row_id)
        .where(ranked.c.pos <= request.size + 1)
        .order_by(ranked.c.parent_key, ranked.c.pos)
    )


def child_counts(
    relation: Relation, parent_ids: Sequence[int], where: Filter | None, viewer: Any
) -> Select[Any]:
    parent = relation.parent_key()
    return (
        relation.select_from(parent.label("parent_key"), func.count().label("count"))
        .where(parent.in_(parent_ids), visible(relation.model, viewer), *filter_conditions(where))
        .group_by(parent)
    )


def children_beyond(
    relation: Relation,
    parent_ids: Sequence[int],
    request: PageRequest,
    values: tuple[Any, ...],
    *,
    forward: bool,
    viewer: Any,
) -> Select[Any]:
    parent = relation.parent_key()
    return (
        relation.select_from(parent.label("parent_key"))
        .where(
            parent.in_(parent_ids),
            visible(relation.model, viewer),
            request.ordering.at_or_beyond(values, forward=forward),
            *filter_conditions(request.where),
        )
        .distinct()
    )


def tags_of_posts(names: Collection[str], post_ids: Sequence[int]) -> Select[Any]:
    """Each post's tags by name (a visible post's tags are visible)."""
    return (
        select(models.post_tags.c.post_id.label("parent_key"), *columns(models.Tag, names))
        .join(models.Tag, models.Tag.id == models.post_tags.c.tag_id)
        .where(models.post_tags.c.post_id.in_(post_ids))
        .order_by(models.Tag.name, models.Tag.id)
    )


def user_by_username(names: Collection[str], username: str) -> Select[Any]:
    return select(*columns(models.User, names)).where(
        models.User.username_key == models.fold_username(username)
    )


def tag_by_name(names: Collection[str], name: str, viewer: Any) -> Select[Any]:
    return select(*columns(models.Tag, names)).where(
        models.Tag.name == name.strip().lower(), visible(models.Tag, viewer)
    )
