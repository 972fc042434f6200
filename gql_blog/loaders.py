"""Batched loaders, one set per request, for strawberry's executor: each batches the keys of one
event-loop tick into one statement and remembers the rows it loaded. Every statement comes from
the read model's builders (`gql_blog.read_model`), which the planned path runs too.
"""

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader

from gql_blog import models, read_model
from gql_blog.ordering import Ordering
from gql_blog.read_model import (
    ENTITY,
    MAX_BATCH,
    RELATIONS,
    Filter,
    Page,
    PageRequest,
    Relation,
    compile_where,
)
from gql_blog.serial_session import SerialSession

RowT = TypeVar("RowT", bound=models.Base)
LoaderT = TypeVar("LoaderT", bound=DataLoader[Any, Any])


class ById(DataLoader[int, RowT | None], Generic[RowT]):
    """Rows of one model by id, visibility applied; rows known already cost no statement.

    Known rows are not answered from aiodataloader's cache: every key waits for its tick's batch,
    so siblings resolve together. Were a cached parent to resolve earlier, its children's loaders
    would dispatch without the other parents' keys, and the statement count would depend on data.
    """

    def __init__(self, db: SerialSession, model: type[RowT], viewer: models.User | None):
        super().__init__(max_batch_size=MAX_BATCH, cache=False)
        self._db = db
        self._model = model
        self._viewer = viewer
        self.loaded: dict[int, RowT | None] = {}

    async def batch_load_fn(self, ids: list[int]) -> list[RowT | None]:
        model: Any = self._model
        # An id beyond the column's range names no row, and PostgreSQL refuses to bind it.
        limit = models.id_limit(model.id.type)
        wanted = {row_id for row_id in ids if row_id < limit and row_id not in self.loaded}
        if wanted:
            stmt = read_model.rows_by_id(
                model, ENTITY, self._viewer, self._db.dialect.name, keys=sorted(wanted)
            )
            by_id = {row.id: row for row in await self._db.scalars(stmt)}
            self.loaded.update({row_id: by_id.get(row_id) for row_id in wanted})
        return [self.loaded.get(row_id) for row_id in ids]

    def remember(self, row: RowT) -> None:
        row_id: int = row.id  # type: ignore[attr-defined]
        self.loaded.setdefault(row_id, row)


class ChildPages(DataLoader[int, "Page"]):
    """One page of children per parent, for all parents in one statement (see
    `read_model.child_pages`)."""

    def __init__(self, loaders: "Loaders", relation: Relation, request: PageRequest):
        super().__init__(max_batch_size=MAX_BATCH)
        self._loaders = loaders
        self._relation = relation
        self._request = request

    async def batch_load_fn(self, parent_ids: list[int]) -> list[Page]:
        loaders, request = self._loaders, self._request
        stmt = read_model.child_pages(
            self._relation,
            ENTITY,
            request,
            loaders.viewer,
            loaders.db.dialect.name,
            keys=parent_ids,
        )
        grouped: dict[int, list[Any]] = defaultdict(list)
        for parent_id, row in await loaders.db.rows(stmt):
            grouped[parent_id].append(row)
            loaders.remember(row)
        return [request.page(grouped[parent_id]) for parent_id in parent_ids]


class ChildCounts(DataLoader[int, int]):
    """How many visible children each parent has: one GROUP BY for all parents."""

    def __init__(self, loaders: "Loaders", relation: Relation, where: Filter | None):
        super().__init__(max_batch_size=MAX_BATCH)
        self._loaders = loaders
        self._relation = relation
        self._where = where

    async def batch_load_fn(self, parent_ids: list[int]) -> list[int]:
        loaders = self._loaders
        stmt = read_model.child_counts(
            self._relation, self._where, loaders.viewer, loaders.db.dialect.name, keys=parent_ids
        )
        counts = dict(await loaders.db.rows(stmt))
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
        self._ordering = ordering
        self._values = values
        self._forward = forward
        self._where = where

    async def batch_load_fn(self, parent_ids: list[int]) -> list[bool]:
        stmt = read_model.children_beyond(
            self._relation,
            self._ordering,
            self._values,
            forward=self._forward,
            where=self._where,
            viewer=self._loaders.viewer,
            dialect=self._loaders.db.dialect.name,
            keys=parent_ids,
        )
        found = {parent_id for (parent_id,) in await self._loaders.db.rows(stmt)}
        return [parent_id in found for parent_id in parent_ids]


class TagsOfPosts(DataLoader[int, list[models.Tag]]):
    """Each post's tags, by name: one join through post_tags for all posts."""

    def __init__(self, loaders: "Loaders"):
        super().__init__(max_batch_size=MAX_BATCH)
        self._loaders = loaders

    async def batch_load_fn(self, post_ids: list[int]) -> list[list[models.Tag]]:
        stmt = read_model.tags_of_posts(ENTITY, self._loaders.db.dialect.name, keys=post_ids)
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
        self.users = ById(db, models.User, viewer)
        self.posts = ById(db, models.Post, viewer)
        self.comments = ById(db, models.Comment, viewer)
        self.tags = ById(db, models.Tag, viewer)
        self.audit_logs = ById(db, models.AuditLog, viewer)
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
        stmt = read_model.user_by_username(ENTITY, models.fold_username(username))
        row = next(iter(await self.db.scalars(stmt)), None)
        if row is not None:
            self.remember(row)
        return row

    async def post_by_slug(self, slug: str) -> models.Post | None:
        if "\x00" in slug:  # no stored slug holds NUL, and PostgreSQL refuses to bind it
            return None
        stmt = read_model.post_by_slug(ENTITY, self.viewer, slug)
        row = next(iter(await self.db.scalars(stmt)), None)
        if row is not None:
            self.remember(row)
        return row

    async def tag_by_name(self, name: str) -> models.Tag | None:
        if "\x00" in name:  # no stored name holds NUL, and PostgreSQL refuses to bind it
            return None
        stmt = read_model.tag_by_name(ENTITY, self.viewer, name.strip().lower())
        row = next(iter(await self.db.scalars(stmt)), None)
        if row is not None:
            self.remember(row)
        return row

    async def root_page(self, model: type[models.Base], request: PageRequest) -> Page:
        stmt = read_model.root_page(model, ENTITY, request, self.viewer)
        rows = await self.db.scalars(stmt)
        for row in rows:
            self.remember(row)
        return request.page(rows)

    async def root_count(self, model: type[models.Base], where: Filter | None = None) -> int:
        stmt = read_model.root_count(model, where, self.viewer)
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
        stmt = read_model.root_beyond(
            model, ordering, values, forward=forward, where=where, viewer=self.viewer
        )
        return bool(await self.db.scalar(stmt))
