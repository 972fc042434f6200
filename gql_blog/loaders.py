"""Batched loaders, one set per request: rows by id, pages of children for many parents in one
statement, tags of posts, grouped counts, and the root connections' page and count queries.

Every query here applies the viewer's visibility predicate, so pages, counts and `node` agree.
"""

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    exists,
    func,
    select,
    true,
)
from sqlalchemy.sql import Select

from gql_blog import models
from gql_blog.entities import CONTENT_MODELS
from gql_blog.ordering import Ordering, OrderTerm
from gql_blog.serial_session import SerialSession
from gql_blog.visibility import (
    Viewer,
    can_see_emails,
    visible,
    visible_comments,
    visible_posts,
    visible_tags,
)
from gql_blog.where import WhereCompiler, canonical_where

RowT = TypeVar("RowT", bound=models.Base)
LoaderT = TypeVar("LoaderT", bound=DataLoader[Any, Any])

# Stays under every dialect's bind-parameter limit (SQLite's is the smallest, 32,766).
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled `where`; equal (as a loader key) when its canonical text is."""

    key: str
    predicate: ColumnElement[bool] = field(compare=False, hash=False)


def filter_conditions(where: Filter | None) -> list[ColumnElement[bool]]:
    return [] if where is None else [where.predicate]


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

    def select_from(self, *columns: Any) -> Select[Any]:
        stmt = select(*columns).select_from(self.model)
        if self.through_tags:
            stmt = stmt.join(models.post_tags, models.post_tags.c.post_id == models.Post.id)
        return stmt


RELATIONS = {
    relation.name: relation
    for relation in (
        Relation("User.posts", models.Post, lambda: models.Post.user_id, models.User),
        Relation("User.comments", models.Comment, lambda: models.Comment.user_id, models.User),
        Relation("Post.comments", models.Comment, lambda: models.Comment.post_id, models.Post),
        Relation(
            "Comment.replies",
            models.Comment,
            lambda: models.Comment.parent_id,
            models.Comment,
            default_order=(OrderTerm("CREATED_AT"),),
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


def walked_pages(
    relation: Relation,
    selected: Sequence[Any],
    request: PageRequest,
    viewer: Viewer | None,
    parent_in: Callable[[Any], ColumnElement[bool]],
) -> Select[Any]:
    """SQLite: each parent's first `size + 1` children, `(parent_key, *selected)` per row.

    For each parent (the rows of its table whose ids `parent_in` keeps), a correlated
    `child.id IN (SELECT id ... WHERE parent = it ORDER BY ... LIMIT size + 1)` runs once and
    walks that parent's children as far as the page needs (an index in the page's order stops
    after `size + 1` rows): no window ranks every child of every parent. The subquery's own
    children table shadows the outer one (it correlates with `parents` only), so the
    visibility, filter and cursor conditions are those of every other page statement.
    (PostgreSQL has LATERAL for this; MariaDB refuses LIMIT inside IN and re-runs dependent
    subqueries per joined row, so it ranks, see `ranked_pages`.)
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
        select(parents.c.parent_key, *selected)
        .select_from(parents)
        .join(relation.model, model.id.in_(page))
        .order_by(parents.c.parent_key, *clauses)
    )


def ranked_pages(
    relation: Relation,
    selected: Sequence[Any],
    request: PageRequest,
    viewer: Viewer | None,
    parent_in: Callable[[Any], ColumnElement[bool]],
) -> Select[Any]:
    """Each parent's first `size + 1` children by ROW_NUMBER() over all its matching children,
    `(parent_key, *selected)` per row."""
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
        select(ranked.c.parent_key, *selected)
        .join(ranked, model.id == ranked.c.row_id)
        .where(ranked.c.pos <= request.size + 1)
        .order_by(ranked.c.parent_key, ranked.c.pos)
    )


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


class ById(DataLoader[int, RowT | None], Generic[RowT]):
    """Rows of one model by id, visibility applied; rows known already cost no statement.

    Known rows are not answered from aiodataloader's cache: every key waits for its tick's batch,
    so siblings resolve together. Were a cached parent to resolve earlier, its children's loaders
    would dispatch without the other parents' keys, and the statement count would depend on data.
    """

    def __init__(self, db: SerialSession, model: type[RowT], condition: ColumnElement[bool]):
        super().__init__(max_batch_size=MAX_BATCH, cache=False)
        self._db = db
        self._model = model
        self._condition = condition
        self.loaded: dict[int, RowT | None] = {}

    async def batch_load_fn(self, ids: list[int]) -> list[RowT | None]:
        model: Any = self._model
        # An id beyond the column's range names no row, and PostgreSQL refuses to bind it.
        limit = models.id_limit(model.id.type)
        wanted = {row_id for row_id in ids if row_id < limit and row_id not in self.loaded}
        if wanted:
            stmt = select(model).where(model.id.in_(sorted(wanted)), self._condition)
            by_id = {row.id: row for row in await self._db.scalars(stmt)}
            self.loaded.update({row_id: by_id.get(row_id) for row_id in wanted})
        return [self.loaded.get(row_id) for row_id in ids]

    def remember(self, row: RowT) -> None:
        row_id: int = row.id  # type: ignore[attr-defined]
        self.loaded.setdefault(row_id, row)


class ChildPages(DataLoader[int, "Page"]):
    """One page of children per parent, for all parents in one statement (see `walked_pages`)."""

    def __init__(self, loaders: "Loaders", relation: Relation, request: PageRequest):
        super().__init__(max_batch_size=MAX_BATCH)
        self._loaders = loaders
        self._relation = relation
        self._request = request

    async def batch_load_fn(self, parent_ids: list[int]) -> list[Page]:
        relation, request = self._relation, self._request
        pages = walked_pages if self._loaders.db.dialect.name == "sqlite" else ranked_pages
        stmt = pages(
            relation,
            [relation.model],
            request,
            self._loaders.viewer,
            lambda column: column.in_(parent_ids),
        )
        grouped: dict[int, list[Any]] = defaultdict(list)
        for parent_id, row in await self._loaders.db.rows(stmt):
            grouped[parent_id].append(row)
            self._loaders.remember(row)
        return [request.page(grouped[parent_id]) for parent_id in parent_ids]


class ChildCounts(DataLoader[int, int]):
    """How many visible children each parent has: one GROUP BY for all parents."""

    def __init__(self, loaders: "Loaders", relation: Relation, where: Filter | None):
        super().__init__(max_batch_size=MAX_BATCH)
        self._loaders = loaders
        self._relation = relation
        self._where = where

    async def batch_load_fn(self, parent_ids: list[int]) -> list[int]:
        parent = self._relation.parent_key()
        stmt = (
            self._relation.select_from(parent, func.count())
            .where(
                parent.in_(parent_ids),
                visible(self._relation.model, self._loaders.viewer),
                *filter_conditions(self._where),
            )
            .group_by(parent)
        )
        counts = dict(await self._loaders.db.rows(stmt))
        return [counts.get(parent_id, 0) for parent_id in parent_ids]


class ChildrenBeyond(DataLoader[int, bool]):
    """Whether each parent has children at or past a cursor: the far side of a page's pageInfo."""

    def __init__(
        self,
        loaders: "Loaders",
        relation: Relation,
        ordering: Ordering,
        values: tuple[Any, ...],
        forward: bool,
        where: Filter | None,
    ):
        super().__init__(max_batch_size=MAX_BATCH)
        self._loaders = loaders
        self._relation = relation
        self._conditions = [
            ordering.at_or_beyond(values, forward=forward),
            *filter_conditions(where),
        ]

    async def batch_load_fn(self, parent_ids: list[int]) -> list[bool]:
        parent = self._relation.parent_key()
        stmt = (
            self._relation.select_from(parent)
            .where(
                parent.in_(parent_ids),
                visible(self._relation.model, self._loaders.viewer),
                *self._conditions,
            )
            .distinct()
        )
        found = {parent_id for (parent_id,) in await self._loaders.db.rows(stmt)}
        return [parent_id in found for parent_id in parent_ids]


class TagsOfPosts(DataLoader[int, list[models.Tag]]):
    """Each post's tags, by name: one join through post_tags for all posts."""

    def __init__(self, loaders: "Loaders"):
        super().__init__(max_batch_size=MAX_BATCH)
        self._loaders = loaders

    async def batch_load_fn(self, post_ids: list[int]) -> list[list[models.Tag]]:
        stmt = (
            select(models.post_tags.c.post_id, models.Tag)
            .join(models.Tag, models.Tag.id == models.post_tags.c.tag_id)
            .where(models.post_tags.c.post_id.in_(post_ids))
            .order_by(models.Tag.name, models.Tag.id)
        )
        grouped: dict[int, list[models.Tag]] = defaultdict(list)
        for post_id, tag in await self._loaders.db.rows(stmt):
            grouped[post_id].append(tag)
            self._loaders.tags.remember(tag)
        return [grouped[post_id] for post_id in post_ids]


class Loaders:
    """The request's loaders; their caches live and die with the request."""

    def __init__(
        self, db: SerialSession, viewer: models.User | None, *, max_filter_depth: int = 10
    ) -> None:
        self.db = db
        self.viewer = viewer
        self._max_filter_depth = max_filter_depth
        self.users = ById(db, models.User, true())
        self.posts = ById(db, models.Post, visible_posts(viewer))
        self.comments = ById(db, models.Comment, visible_comments(viewer))
        self.tags = ById(db, models.Tag, visible_tags(viewer))
        self.audit_logs = ById(db, models.AuditLog, visible(models.AuditLog, viewer))
        self.tags_of_posts = TagsOfPosts(self)
        self._by_model: dict[type[models.Base], ById[Any]] = {
            models.User: self.users,
            models.Post: self.posts,
            models.Comment: self.comments,
            models.Tag: self.tags,
            models.AuditLog: self.audit_logs,
        }
        self._keyed: dict[Hashable, DataLoader[Any, Any]] = {}
        if viewer is not None:
            self.users.remember(viewer)

    def by_model(self, model: type[models.Base]) -> ById[Any]:
        return self._by_model[model]

    def remember(self, row: models.Base) -> None:
        """Prime the by-id loader with a row some other path loaded (visibility already applied)."""
        self._by_model[type(row)].remember(row)

    def _keyed_loader(self, key: Hashable, create: Callable[[], LoaderT]) -> LoaderT:
        loader = self._keyed.get(key)
        if loader is None:
            loader = self._keyed[key] = create()
        return loader  # type: ignore[return-value]

    def pages(self, relation: str, request: PageRequest) -> ChildPages:
        spec = RELATIONS[relation]
        return self._keyed_loader(
            ("pages", relation, request), lambda: ChildPages(self, spec, request)
        )

    def counts(self, relation: str, where: Filter | None = None) -> ChildCounts:
        spec = RELATIONS[relation]
        return self._keyed_loader(
            ("counts", relation, where), lambda: ChildCounts(self, spec, where)
        )

    def beyond(
        self,
        relation: str,
        ordering: Ordering,
        values: tuple[Any, ...],
        *,
        forward: bool,
        where: Filter | None = None,
    ) -> ChildrenBeyond:
        spec = RELATIONS[relation]
        return self._keyed_loader(
            ("beyond", relation, ordering, values, forward, where),
            lambda: ChildrenBeyond(self, spec, ordering, values, forward, where),
        )

    def where(self, entity: str, plain: Mapping[str, Any] | None) -> Filter | None:
        """Compile a plain `where` for this viewer (visibility inside every relation filter)."""
        return compile_where(self.viewer, entity, plain, max_depth=self._max_filter_depth)

    async def user_by_username(self, username: str) -> models.User | None:
        if "\x00" in username:  # no stored name holds NUL, and PostgreSQL refuses to bind it
            return None
        stmt = select(models.User).where(models.User.username_key == models.fold_username(username))
        row = next(iter(await self.db.scalars(stmt)), None)
        if row is not None:
            self.remember(row)
        return row

    async def tag_by_name(self, name: str) -> models.Tag | None:
        if "\x00" in name:  # no stored name holds NUL, and PostgreSQL refuses to bind it
            return None
        stmt = select(models.Tag).where(
            models.Tag.name == name.strip().lower(), visible_tags(self.viewer)
        )
        row = next(iter(await self.db.scalars(stmt)), None)
        if row is not None:
            self.remember(row)
        return row

    async def post_by_slug(self, slug: str) -> models.Post | None:
        if "\x00" in slug:  # no stored slug holds NUL, and PostgreSQL refuses to bind it
            return None
        stmt = select(models.Post).where(models.Post.slug == slug, visible_posts(self.viewer))
        row = next(iter(await self.db.scalars(stmt)), None)
        if row is not None:
            self.remember(row)
        return row

    async def root_page(self, model: type[models.Base], request: PageRequest) -> Page:
        entity: Any = model
        stmt = (
            select(entity)
            .where(visible(model, self.viewer), *request.conditions())
            .order_by(*request.ordering.clauses(reverse=request.backward))
            .limit(request.size + 1)
        )
        rows = await self.db.scalars(stmt)
        for row in rows:
            self.remember(row)
        return request.page(rows)

    async def root_count(self, model: type[models.Base], where: Filter | None = None) -> int:
        stmt = (
            select(func.count())
            .select_from(model)
            .where(visible(model, self.viewer), *filter_conditions(where))
        )
        return int(await self.db.scalar(stmt))

    async def root_beyond(
        self,
        model: type[models.Base],
        ordering: Ordering,
        values: tuple[Any, ...],
        *,
        forward: bool,
        where: Filter | None = None,
    ) -> bool:
        condition = ordering.at_or_beyond(values, forward=forward)
        stmt = select(
            exists().where(visible(model, self.viewer), condition, *filter_conditions(where))
        )
        return bool(await self.db.scalar(stmt))
