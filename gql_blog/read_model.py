"""The read model, below both executors: page requests and pages, compiled filters, the to-many
relations, and the one set of statement builders that strawberry's loaders (`gql_blog.loaders`)
and the planned path (`gql_blog.plan.run`) both execute.

A builder selects what its caller reads: the ORM entity (`ENTITY`; the loaders keep the rows as
objects) or named columns labelled by attribute name (the planner reads mappings). Every builder
applies the viewer's visibility predicate, so pages, counts and `node` agree. The viewer is a user
row, or a `ViewerParameter` whose id is the `:viewer_id` parameter.

Keys are the `:keys` parameter (`key_in`): `= ANY(array)` on PostgreSQL, so one SQL text (and
one prepared statement) serves every batch size, and an expanding IN elsewhere. The planner builds
a statement once per shape and binds the keys per request (`keys=None`); the loaders pass theirs
to the builder, which binds them into the statement.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    SQLColumnExpression,
    and_,
    any_,
    bindparam,
    exists,
    func,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql import FromClause, Select, Subquery, operators
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.util import ClauseAdapter

from gql_blog import models
from gql_blog.entities import CONTENT_MODELS
from gql_blog.ordering import Ordering, OrderTerm
from gql_blog.visibility import Viewer, can_see_emails, visible
from gql_blog.where import WhereCompiler, canonical_where

# Stays under every dialect's bind-parameter limit (SQLite's is the smallest, 32,766).
MAX_BATCH = 1000

# What a statement selects: the ORM entity (`ENTITY`), or these columns, labelled by name.
Names = Collection[str] | None
ENTITY: Names = None
# The keys a statement is for; None: bound at execution as the `:keys` parameter.
Keys = Sequence[Any] | None


# --- paging ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled `where`; equal (as a loader key) when its canonical text is."""

    key: str
    predicate: ColumnElement[bool] = field(compare=False, hash=False)


def filter_conditions(where: Filter | None) -> list[ColumnElement[bool]]:
    return [] if where is None else [where.predicate]


def compile_where(
    viewer: Viewer | None, entity: str, plain: Mapping[str, Any] | None, *, max_depth: int
) -> Filter | None:
    """Compile a plain `where` for this viewer (visibility inside every relation filter)."""
    compiler = WhereCompiler(
        visible=lambda name: visible(CONTENT_MODELS[name], viewer),
        can_see_email=lambda: can_see_emails(viewer),
        max_depth=max_depth,
    )
    predicate = compiler.compile(entity, plain)
    if predicate is None:
        return None
    return Filter(key=canonical_where(plain), predicate=predicate)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One connection's page arguments, decoded; hashable so it can key a loader."""

    ordering: Ordering
    size: int
    backward: bool = False
    after: tuple[Any, ...] | None = None
    before: tuple[Any, ...] | None = None
    where: Filter | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The filter and the cursors' keyset conditions (cursor values as bind parameters)."""
        found = filter_conditions(self.where)
        if self.after is not None:
            found.append(self.ordering.beyond(self.after, forward=True, name="after"))
        if self.before is not None:
            found.append(self.ordering.beyond(self.before, forward=False, name="before"))
        return found

    def cursor_parameters(self) -> dict[str, Any]:
        """Values for the cursors' bind parameters in `conditions()`."""
        found: dict[str, Any] = {}
        if self.after is not None:
            found |= self.ordering.cursor_parameters(self.after, "after")
        if self.before is not None:
            found |= self.ordering.cursor_parameters(self.before, "before")
        return found

    def shape(self) -> tuple[Any, ...]:
        """What the statement of this page depends on: all but the cursors' non-NULL values."""
        return (
            self.ordering,
            self.size,
            self.backward,
            None if self.after is None else tuple(value is None for value in self.after),
            None if self.before is None else tuple(value is None for value in self.before),
            self.where,
        )

    def page(self, rows: Sequence[Any]) -> "Page":
        """Cut the `size + 1` rows fetched into a page; the extra row says there is more."""
        has_more = len(rows) > self.size
        kept = list(rows[: self.size])
        if self.backward:
            kept.reverse()
        return Page(rows=kept, has_more=has_more, request=self)


@dataclass(slots=True)
class Page:
    rows: list[Any]
    has_more: bool
    request: PageRequest


# --- relations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relation:
    """A to-many relation: the child model and the column holding the parent's id."""

    name: str
    model: type[models.Base]
    parent_key: Callable[[], SQLColumnExpression[int | None]]
    parent: type[models.Base]  # the model whose id the parent key holds
    through_tags: bool = False
    # The order of a page without `orderBy` (empty: the child entity's default order).
    default_order: tuple[OrderTerm, ...] = ()
    # The sort keys an index orders each parent's children by (then by id): a page in one of
    # them is walked on MariaDB (`_bounded_pages`), other pages rank.
    indexed: tuple[str, ...] = ()

    def is_indexed(self, ordering: Ordering) -> bool:
        """Whether an index walks each parent's children in `ordering` (either way)."""
        first, *rest = ordering.terms
        return first.key in self.indexed and all(
            term.key == "ID" and term.descending == first.descending for term in rest
        )

    def select_from(self, *columns: Any) -> Select[Any]:
        stmt = select(*columns).select_from(self.model)
        if self.through_tags:
            stmt = stmt.join(models.post_tags, models.post_tags.c.post_id == models.Post.id)
        return stmt


RELATIONS = {
    relation.name: relation
    for relation in (
        # ix_posts_user_id_created_at, ix_comments_user_id, ix_comments_post_id_created_at,
        # ix_comments_parent_id_created_at (InnoDB ends each with the primary key)
        Relation(
            "User.posts",
            models.Post,
            lambda: models.Post.user_id,
            models.User,
            indexed=("CREATED_AT",),
        ),
        Relation(
            "User.comments",
            models.Comment,
            lambda: models.Comment.user_id,
            models.User,
            indexed=("ID",),
        ),
        Relation(
            "Post.comments",
            models.Comment,
            lambda: models.Comment.post_id,
            models.Post,
            indexed=("CREATED_AT",),
        ),
        Relation(
            "Comment.replies",
            models.Comment,
            lambda: models.Comment.parent_id,
            models.Comment,
            default_order=(OrderTerm("CREATED_AT"),),
            indexed=("CREATED_AT",),
        ),
        Relation(
            "Tag.posts",
            models.Post,
            lambda: models.post_tags.c.tag_id,
            models.Tag,
            through_tags=True,
        ),
    )
}


# --- parameters --------------------------------------------------------------------------------


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


def _parameter(name: str, value: Any, **options: Any) -> BindParameter[Any]:
    """`:name`, holding `value` unless it is None (then bound at execution)."""
    if value is None:
        return bindparam(name, **options)
    return bindparam(name, value, **options)


def key_in(column: Any, dialect: str, keys: Keys = None) -> ColumnElement[bool]:
    """`column` is one of `:keys`: `= ANY(array)` on PostgreSQL, an expanding IN elsewhere."""
    if dialect == "postgresql":
        # A BIGINT column's keys may be past INTEGER's range (audit log ids).
        element = BigInteger if isinstance(column.type, BigInteger) else Integer
        matched: ColumnElement[bool] = column == any_(
            _parameter("keys", keys, type_=ARRAY(element))
        )
        return matched
    in_keys: ColumnElement[bool] = column.in_(_parameter("keys", keys, expanding=True))
    return in_keys


class Joined(str):
    """A name selected with an expression of its own: a column of a to-one row, read by a scalar
    subquery correlated with the selected row (the author's username beside each post), so that
    row needs no statement of its own. Equal to (and hashed as) its label."""

    __slots__ = ("expression",)

    expression: Any

    def __new__(cls, label: str, expression: Any) -> "Joined":
        joined = super().__new__(cls, label)
        joined.expression = expression
        return joined


def joined(label: str, model: type[models.Base], column: str, foreign_key: Any) -> Joined:
    """`model`'s `column` of the row whose id is `foreign_key` (a column of the selected model),
    selected under `label` beside that row: a scalar subquery, correlated with it."""
    target: Any = model
    # Never correlated with `model`'s table around it (a comment's author inside a page of
    # comments embedded in a user's row reads its own users row, not that user).
    value = (
        select(getattr(target, column))
        .where(target.id == foreign_key)
        .correlate_except(target)
        .scalar_subquery()
    )
    return Joined(label, value)


def selected(model: type[models.Base], names: Names) -> list[Any]:
    """The entity, or its columns (or SQL hybrids, such as `full_name`, or `Joined` columns of
    its to-one rows) labelled by name."""
    entity: Any = model
    if names is None:
        return [entity]
    return [
        name.expression.label(name)
        if isinstance(name, Joined)
        else getattr(entity, name).label(name)
        for name in names
    ]


def _selected_from(model: type[models.Base], names: Names, derived: FromClause) -> list[Any]:
    """`selected(model, names)`, read from a subquery that selects them."""
    if names is None:
        return [aliased(model, derived)]
    return [derived.c[name] for name in names]


# --- roots -------------------------------------------------------------------------------------


def rows_by_id(
    model: type[models.Base], names: Names, viewer: Any, dialect: str, keys: Keys = None
) -> Select[Any]:
    entity: Any = model
    return select(*selected(model, names)).where(
        key_in(entity.id, dialect, keys), visible(model, viewer)
    )


def root_page(
    model: type[models.Base], names: Names, request: PageRequest, viewer: Any
) -> Select[Any]:
    return (
        select(*selected(model, names))
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
    ordering: Ordering,
    values: tuple[Any, ...],
    *,
    forward: bool,
    where: Filter | None,
    viewer: Any,
) -> Select[Any]:
    """Whether any row lies at or past a cursor: the far side of a page's pageInfo."""
    condition = ordering.at_or_beyond(values, forward=forward)
    found = exists().where(visible(model, viewer), condition, *filter_conditions(where))
    return select(found.label("found"))


def user_by_username(names: Names, username_key: str | None = None) -> Select[Any]:
    """The user with this folded name (`models.fold_username`), `:username_key` if None."""
    return select(*selected(models.User, names)).where(
        models.User.username_key == _parameter("username_key", username_key)
    )


def post_by_slug(names: Names, viewer: Any, slug: str | None = None) -> Select[Any]:
    """The visible post with this slug (compared exactly), `:slug` if None."""
    return select(*selected(models.Post, names)).where(
        models.Post.slug == _parameter("slug", slug), visible(models.Post, viewer)
    )


def tag_by_name(names: Names, viewer: Any, name: str | None = None) -> Select[Any]:
    """The tag with this (normalised) name, `:name` if None."""
    return select(*selected(models.Tag, names)).where(
        models.Tag.name == _parameter("name", name), visible(models.Tag, viewer)
    )


# --- per parent ----------------------------------------------------------------------------------


# PostgreSQL: a to-many page read beside each parent row, as a JSON array of its rows
# (`Joined` names of the parent's statement), so the page needs no statement of its own. Each
# subquery correlates with the parent's table only.


def _json_rows(page: Subquery, order: Any) -> Any:
    """The JSON array of `page`'s rows in `order` (`[]` for none). A page inside another's rows
    nests in its JSON; asyncpg hands the outermost to the planner as text (SQLAlchemy's
    connections decode it)."""
    rows = func.json_agg(aggregate_order_by(page.table_valued(), order))
    return select(func.coalesce(rows, text("'[]'::json"))).scalar_subquery()


def embedded_page(
    label: str, relation: Relation, names: Names, request: PageRequest, viewer: Any
) -> Joined:
    """`child_pages` for the parent row around it: its first `size + 1` children, as JSON."""
    assert names is not None
    assert not request.conditions()
    clauses = request.ordering.clauses(reverse=request.backward)
    parent: Any = relation.parent
    page = (
        relation.select_from(
            *selected(relation.model, names),
            func.row_number().over(order_by=clauses).label("pos"),
        )
        .where(relation.parent_key() == parent.id, visible(relation.model, viewer))
        .order_by(*clauses)
        .limit(request.size + 1)
        .correlate(parent)
        .subquery("embedded_page")
    )
    return Joined(label, _json_rows(page, page.c.pos))


def embedded_count(label: str, relation: Relation, viewer: Any) -> Joined:
    """`child_counts` for the parent row around it."""
    parent: Any = relation.parent
    count = (
        relation.select_from(func.count())
        .where(relation.parent_key() == parent.id, visible(relation.model, viewer))
        .correlate(parent)
        .scalar_subquery()
    )
    return Joined(label, count)


def embedded_tags(label: str, names: Names) -> Joined:
    """`tags_of_posts` for the post row around it, as JSON."""
    order = (models.Tag.name, models.Tag.id)
    tags = (
        select(*selected(models.Tag, names), func.row_number().over(order_by=order).label("pos"))
        .select_from(models.post_tags)
        .join(models.Tag, models.Tag.id == models.post_tags.c.tag_id)
        .where(models.post_tags.c.post_id == models.Post.id)
        .order_by(*order)
        .correlate(models.Post)
        .subquery("embedded_tags")
    )
    return Joined(label, _json_rows(tags, tags.c.pos))


def tags_of_posts(names: Names, dialect: str, keys: Keys = None) -> Select[Any]:
    """Each post's tags by name, `(parent_key, *selected)` per row (a visible post's tags are
    visible)."""
    return (
        select(models.post_tags.c.post_id.label("parent_key"), *selected(models.Tag, names))
        .join(models.Tag, models.Tag.id == models.post_tags.c.tag_id)
        .where(key_in(models.post_tags.c.post_id, dialect, keys))
        .order_by(models.Tag.name, models.Tag.id)
    )


def child_counts(
    relation: Relation, where: Filter | None, viewer: Any, dialect: str, keys: Keys = None
) -> Select[Any]:
    """How many visible children each parent has: `(parent_key, count)`, one GROUP BY."""
    parent = relation.parent_key()
    return (
        relation.select_from(parent.label("parent_key"), func.count().label("count"))
        .where(
            key_in(parent, dialect, keys),
            visible(relation.model, viewer),
            *filter_conditions(where),
        )
        .group_by(parent)
    )


def children_beyond(
    relation: Relation,
    ordering: Ordering,
    values: tuple[Any, ...],
    *,
    forward: bool,
    where: Filter | None,
    viewer: Any,
    dialect: str,
    keys: Keys = None,
) -> Select[Any]:
    """The parents with children at or past a cursor: `parent_key` per row."""
    parent = relation.parent_key()
    return (
        relation.select_from(parent.label("parent_key"))
        .where(
            key_in(parent, dialect, keys),
            visible(relation.model, viewer),
            ordering.at_or_beyond(values, forward=forward),
            *filter_conditions(where),
        )
        .distinct()
    )


def child_pages(
    relation: Relation,
    names: Names,
    request: PageRequest,
    viewer: Any,
    dialect: str,
    keys: Keys = None,
) -> Select[Any]:
    """One page per parent, `size + 1` rows each (the extra row answers hasNextPage), as
    `(parent_key, *selected)` rows ordered by parent, then by the page's order."""
    if dialect == "postgresql" and request.where is None:
        return _lateral_pages(relation, names, request, viewer, keys)
    if dialect not in ("sqlite", "postgresql") and relation.is_indexed(request.ordering):
        return _bounded_pages(relation, names, request, viewer, keys)
    pages = _walked_pages if dialect == "sqlite" else _ranked_pages
    return pages(
        relation,
        selected(relation.model, names),
        request,
        viewer,
        lambda column: key_in(column, dialect, keys),
    )


def _lateral_pages(
    relation: Relation, names: Names, request: PageRequest, viewer: Any, keys: Keys
) -> Select[Any]:
    """PostgreSQL: for each parent, walk the index to its first `size + 1` children and stop.

    `unnest(:keys) CROSS JOIN LATERAL (... ORDER BY ... LIMIT n + 1)` costs what the page's rows
    cost, however many children the parents have; ranking them all costs every child.
    """
    parents = (
        func.unnest(_parameter("keys", keys, type_=ARRAY(Integer)))
        .table_valued("parent_key")
        .render_derived(name="parents")
    )
    clauses = request.ordering.clauses(reverse=request.backward)
    page = (
        relation.select_from(
            *selected(relation.model, names),
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
        select(parents.c.parent_key, *_selected_from(relation.model, names, page))
        .select_from(parents)
        .join(page, true())
        .order_by(parents.c.parent_key, page.c.pos)
    )


def _walked_pages(
    relation: Relation,
    columns: Sequence[Any],
    request: PageRequest,
    viewer: Viewer | None,
    parent_in: Callable[[Any], ColumnElement[bool]],
) -> Select[Any]:
    """SQLite: each parent's first `size + 1` children, `(parent_key, *columns)` per row.

    For each parent (the rows of its table whose ids `parent_in` keeps), a correlated
    `child.id IN (SELECT id ... WHERE parent = it ORDER BY ... LIMIT size + 1)` runs once and
    walks that parent's children as far as the page needs (an index in the page's order stops
    after `size + 1` rows): no window ranks every child of every parent. The subquery's own
    children table shadows the outer one (it correlates with `parents` only), so the
    visibility, filter and cursor conditions are those of every other page statement.
    (MariaDB refuses LIMIT inside IN: see `_bounded_pages`.)
    """
    parent: Any = relation.parent
    parents = select(parent.id.label("parent_key")).where(parent_in(parent.id)).subquery("parents")
    model: Any = relation.model
    clauses = request.ordering.clauses(reverse=request.backward)
    page = (
        relation.select_from(model.id)
        .where(
            relation.parent_key() == parents.c.parent_key,
            visible(relation.model, viewer),
            *request.conditions(),
        )
        .order_by(*clauses)
        .limit(request.size + 1)
        .correlate(parents)
    )
    return (
        select(parents.c.parent_key, *columns)
        .select_from(parents)
        .join(relation.model, model.id.in_(page))
        .order_by(parents.c.parent_key, *clauses)
    )


def _bounded_pages(
    relation: Relation, names: Names, request: PageRequest, viewer: Any, keys: Keys
) -> Select[Any]:
    """MariaDB: each parent's first `size + 1` children, `(parent_key, *selected)` per row,
    read up to a bound found by walking that parent's index only as far as its page.

    MariaDB has no LATERAL and refuses LIMIT inside IN, but runs a correlated scalar subquery
    once per parent row: `(SELECT id ... WHERE parent = it ORDER BY ... LIMIT 1 OFFSET size)` is
    the id of the parent's first child past its page (NULL if the page holds them all). The
    children are then joined to their parent and kept while they sort at or before that bound
    row, compared atom by atom in the page's order (`<=>` on the atoms before: a nullable key's
    NULLs tie, its is-NULL flag orders them), so the same visibility, filter and cursor
    conditions give the rows ROW_NUMBER() would rank first, and nothing sorts every child.
    Its own alias of the parent's table, so a comment's replies do not correlate with comments.

    The statement runs with `exists_to_in=off`: MariaDB would otherwise turn an `EXISTS` of the
    conditions (a comment's visibility is its post's) into a semi-join that puts the post first
    and sorts all its comments; kept a subquery, it is checked per row while the index is
    walked. And with `derived_merge=off`: merged into the statement, `parents` had its bound
    found three times per parent (ANALYZE: 150 runs for 50 posts); materialized, once.

    Only for a page in an order an index walks (`Relation.indexed`): otherwise each bound sorts
    all the parent's children, as ranking does, and the join reads them again (50 users'
    comments: twice the CPU of ranking). Tag.posts ranks: no index orders a tag's posts, and
    MariaDB read every linked post's row per tag to find the bound (bench/README.md).
    """
    parent: Any = aliased(relation.parent, name="parent")
    model: Any = relation.model
    clauses = request.ordering.clauses(reverse=request.backward)
    conditions = [visible(relation.model, viewer), *request.conditions()]
    beyond_page = (
        relation.select_from(model.id)
        .where(relation.parent_key() == parent.id, *conditions)
        .order_by(*clauses)
        .limit(1)
        .offset(request.size)
        .correlate(parent)
        .scalar_subquery()
    )
    parents = (
        select(parent.id.label("parent_key"), beyond_page.label("bound_id"))
        .where(key_in(parent.id, "mariadb", keys))
        .subquery("parents")
    )
    bound = model.__table__.alias("bound")
    return (
        _BoundedSelect(parents.c.parent_key, *selected(relation.model, names))
        .select_from(parents)
        .join(relation.model, relation.parent_key() == parents.c.parent_key)
        .outerjoin(bound, bound.c.id == parents.c.bound_id)
        .where(*conditions, bound.c.id.is_(None) | _not_after(clauses, ClauseAdapter(bound)))
        .order_by(parents.c.parent_key, *clauses)
    )


class _BoundedSelect(Select[Any]):
    """A SELECT run as `SET STATEMENT optimizer_switch='exists_to_in=off,derived_merge=off' FOR
    SELECT ...` on MariaDB (see `_bounded_pages`)."""

    inherit_cache = True


@compiles(_BoundedSelect, "mysql")
def _compile_bounded_select(element: Select[Any], compiler: Any, **options: Any) -> str:
    is_statement = not compiler.stack  # not a subquery of another statement
    rendered: str = compiler.visit_select(element, **options)
    if not is_statement:
        return rendered
    return "SET STATEMENT optimizer_switch='exists_to_in=off,derived_merge=off' FOR " + rendered


def _not_after(clauses: Sequence[Any], bound: ClauseAdapter) -> ColumnElement[bool]:
    """A row sorts at or before the bound row (`bound` adapts a column to that row's) in the
    order of `clauses`, whose last expression (the id) is unique."""
    expressions = [clause.element for clause in clauses]
    alternatives = []
    for index, clause in enumerate(clauses):
        ours, theirs = expressions[index], bound.traverse(expressions[index])
        is_before = ours > theirs if clause.modifier is operators.desc_op else ours < theirs
        last = index == len(clauses) - 1
        ties = [
            expression.is_not_distinct_from(bound.traverse(expression))
            for expression in expressions[:index]
        ]
        alternatives.append(and_(*ties, is_before | (ours == theirs) if last else is_before))
    return or_(*alternatives)


def _ranked_pages(
    relation: Relation,
    columns: Sequence[Any],
    request: PageRequest,
    viewer: Viewer | None,
    parent_in: Callable[[Any], ColumnElement[bool]],
) -> Select[Any]:
    """Each parent's first `size + 1` children by ROW_NUMBER() over all its matching children,
    `(parent_key, *columns)` per row (PostgreSQL's filtered pages; MariaDB's in an order no
    index walks, and Tag.posts)."""
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
        .where(parent_in(parent), visible(relation.model, viewer), *request.conditions())
        .subquery()
    )
    # Keep size + 1 rows per parent: the extra row answers hasNextPage without a COUNT.
    return (
        select(ranked.c.parent_key, *columns)
        .join(ranked, model.id == ranked.c.row_id)
        .where(ranked.c.pos <= request.size + 1)
        .order_by(ranked.c.parent_key, ranked.c.pos)
    )
