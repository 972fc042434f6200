"""Relay connections: page arguments → `PageRequest`, and the Connection/Edge/PageInfo types."""

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from strawberry.types import Info

from gql_blog import models
from gql_blog.config import Settings
from gql_blog.loaders import Filter, Loaders, Page, PageRequest
from gql_blog.ordering import InvalidCursorError, Ordering, OrderTerm
from gql_blog.schema.errors import UserInputError
from gql_blog.schema.inputs import plain_where
from gql_blog.where import InvalidFilterError

NodeT = TypeVar("NodeT")


def page_request(
    settings: Settings,
    ordering: Ordering,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    where: Filter | None = None,
) -> PageRequest:
    """Validate and decode `first/after/last/before`; errors name the argument at fault."""
    if first is not None and last is not None:
        raise UserInputError("Pass either `first` or `last`, not both.")
    for name, value in (("first", first), ("last", last)):
        if value is None:
            continue
        if value < 0:
            raise UserInputError(f"`{name}` must not be negative (got {value}).")
        if value > settings.max_page_size:
            raise UserInputError(
                f"`{name}` must be at most {settings.max_page_size} (got {value})."
            )
    size = last if last is not None else first
    # The cursor's fingerprint covers the filter: a cursor of another filter is refused.
    scope = "" if where is None else where.key
    return PageRequest(
        ordering=ordering,
        size=settings.default_page_size if size is None else size,
        backward=last is not None,
        after=_decode(ordering, "after", after, scope),
        before=_decode(ordering, "before", before, scope),
        where=where,
    )


def compile_filter(loaders: Loaders, entity: str, where: Any) -> Filter | None:
    """A `where` input compiled for this request's viewer; a bad filter is BAD_USER_INPUT."""
    try:
        return loaders.where(entity, plain_where(where))
    except InvalidFilterError as error:
        raise UserInputError(str(error)) from None


def _decode(
    ordering: Ordering, name: str, cursor: str | None, scope: str
) -> tuple[Any, ...] | None:
    if cursor is None:
        return None
    try:
        return tuple(ordering.decode_cursor(cursor, scope=scope))
    except InvalidCursorError as error:
        raise UserInputError(f"`{name}`: {error}") from None


def ordering_of(entity: str, order_by: Sequence[Any] | None) -> Ordering:
    """The ordering an `orderBy` list asks for (each item has field, direction, nulls)."""
    terms = [
        OrderTerm(
            key=item.field.value,
            descending=item.direction is OrderDirection.DESC,
            nulls_first=None if item.nulls is None else item.nulls is NullsOrder.FIRST,
        )
        for item in order_by or ()
    ]
    return Ordering.of(entity, terms)


class Source(Protocol):
    """Where a connection's rows came from: counts and far-side probes run there, lazily."""

    def count(self) -> Awaitable[int]: ...

    def beyond(self, values: tuple[Any, ...], *, forward: bool) -> Awaitable[bool]: ...


@dataclass(frozen=True, slots=True)
class RootSource:
    loaders: Loaders
    model: type[models.Base]
    ordering: Ordering
    where: Filter | None = None

    def count(self) -> Awaitable[int]:
        return self.loaders.root_count(self.model, self.where)

    def beyond(self, values: tuple[Any, ...], *, forward: bool) -> Awaitable[bool]:
        return self.loaders.root_beyond(
            self.model, self.ordering, values, forward=forward, where=self.where
        )


@dataclass(frozen=True, slots=True)
class ChildSource:
    loaders: Loaders
    relation: str
    parent_id: int
    ordering: Ordering
    where: Filter | None = None

    def count(self) -> Awaitable[int]:
        loader = self.loaders.counts(self.relation, self.where)
        result: Awaitable[int] = loader.load(self.parent_id)
        return result

    def beyond(self, values: tuple[Any, ...], *, forward: bool) -> Awaitable[bool]:
        loader = self.loaders.beyond(
            self.relation, self.ordering, values, forward=forward, where=self.where
        )
        result: Awaitable[bool] = loader.load(self.parent_id)
        return result


@strawberry.enum(description="Sort direction.")
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum(description="Where NULLs go; by default last for ASC and first for DESC.")
class NullsOrder(enum.Enum):
    FIRST = "FIRST"
    LAST = "LAST"


@strawberry.type(description="Where a page stands in its connection.")
class PageInfo:
    start_cursor: str | None
    end_cursor: str | None
    page: strawberry.Private[Page]
    source: strawberry.Private[Source]

    @strawberry.field(description="Whether rows follow this page.")
    async def has_next_page(self) -> bool:
        request = self.page.request
        if not request.backward and self.page.has_more:
            return True
        if request.before is None:
            return False
        return await self.source.beyond(request.before, forward=True)

    @strawberry.field(description="Whether rows precede this page.")
    async def has_previous_page(self) -> bool:
        request = self.page.request
        if request.backward and self.page.has_more:
            return True
        if request.after is None:
            return False
        return await self.source.beyond(request.after, forward=False)


@strawberry.type(description="A node and the cursor that points at it.")
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="One page of a list, with its cursors and total.")
class Connection(Generic[NodeT]):
    nodes: list[NodeT]
    page: strawberry.Private[Page]
    source: strawberry.Private[Source]
    scope: strawberry.Private[str]

    @strawberry.field(description="The page's nodes, each with its cursor.")
    def edges(self) -> list[Edge[NodeT]]:
        ordering = self.page.request.ordering
        return [
            Edge(cursor=ordering.encode_cursor(row, scope=self.scope), node=node)
            for row, node in zip(self.page.rows, self.nodes, strict=True)
        ]

    @strawberry.field(description="Where this page stands.")
    def page_info(self) -> PageInfo:
        ordering, rows = self.page.request.ordering, self.page.rows
        return PageInfo(
            start_cursor=ordering.encode_cursor(rows[0], scope=self.scope) if rows else None,
            end_cursor=ordering.encode_cursor(rows[-1], scope=self.scope) if rows else None,
            page=self.page,
            source=self.source,
        )

    @strawberry.field(description="How many rows the whole list has (counted only when asked).")
    async def total_count(self) -> int:
        return await self.source.count()


# (parent, info, {first, after, last, before, where, order_by}) -> the connection.
ConnectionLoader = Callable[[Any, Any, dict[str, Any]], Awaitable[Connection[Any]]]


def connection_field(
    load: ConnectionLoader,
    *,
    node: Any,
    where_type: type,
    order_type: type,
    description: str,
    module: str,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """A connection field with the six page arguments, resolved by `load`.

    `node` may be a type's name: strawberry resolves it in `module` (the caller's), where the
    type is defined, so a field can point at a type defined after it.
    """

    async def resolve(
        self: Any,
        info: Any,
        first: Any = None,
        after: Any = None,
        last: Any = None,
        before: Any = None,
        where: Any = None,
        order_by: Any = None,
    ) -> Connection[Any]:
        args = {
            "first": first,
            "after": after,
            "last": last,
            "before": before,
            "where": where,
            "order_by": order_by,
        }
        return await load(self, info, args)

    resolve.__module__ = module
    resolve.__annotations__ = {
        "info": Info,
        "first": int | None,
        "after": str | None,
        "last": int | None,
        "before": str | None,
        "where": where_type | None,
        "order_by": list[order_type] | None,  # type: ignore[valid-type]  # a runtime type
        "return": Connection[node],
    }
    return strawberry.field(resolver=resolve, description=description, metadata=metadata)


def connection(page: Page, source: Source, convert: Callable[[Any], NodeT]) -> Connection[NodeT]:
    where = page.request.where
    return Connection(
        nodes=[convert(row) for row in page.rows],
        page=page,
        source=source,
        scope="" if where is None else where.key,
    )
