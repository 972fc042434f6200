"""Relay connections: the Connection/Edge/PageInfo types, and the connection fields."""

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from strawberry.types import Info

from gql_blog import models
from gql_blog.arguments import plain_where
from gql_blog.loaders import Loaders
from gql_blog.ordering import Ordering
from gql_blog.read_model import Filter, Page

NodeT = TypeVar("NodeT")


def compile_filter(loaders: Loaders, entity: str, where: Any) -> Filter | None:
    """A `where` input compiled for this request's viewer (`InvalidFilterError` if refused)."""
    return loaders.where(entity, plain_where(where))


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
