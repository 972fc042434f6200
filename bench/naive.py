"""A deliberately naive GraphQL server over the same tables: one SELECT per field per parent row.

This is the "first attempt" the benchmark compares gql_blog with: plain async resolvers, no
dataloaders, every `author`, `tags`, `comments` and `posts` field runs its own statement for each
parent row (the classic N+1). It answers the benchmark's three queries with gql_blog's field
names, arguments and orderings, as an admin sees the rows (drafts included; it checks no token),
so it returns the same JSON as gql_blog. The rest of the stack is the same as gql_blog's:
strawberry on Starlette, orjson, one AsyncSession per request whose statements run one at a time
(an AsyncSession refuses concurrent use, and graphql-core resolves list items concurrently).

Serve it with `uvicorn --factory bench.naive:create_app` and `GQL_BLOG_DATABASE_URL` set.
"""

import base64
import contextlib
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson
import strawberry
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import Info

from gql_blog import engines, models, serial_session
from gql_blog.config import Settings

_SESSION_KEY = "bench.naive.session"
DEFAULT_FIRST = 20


@dataclass(slots=True)
class NaiveContext:
    db: serial_session.SerialSession


NaiveInfo = Info[NaiveContext, None]


@strawberry.enum
class OrderField(enum.Enum):
    ID = "ID"
    CREATED_AT = "CREATED_AT"


@strawberry.input
class Order:
    field: OrderField


@strawberry.input
class BooleanFilter:
    eq: bool | None = None


@strawberry.input
class PostWhere:
    published: BooleanFilter | None = None


def _post_order(order_by: list[Order] | None) -> tuple[ColumnElement[Any], ...]:
    if order_by and order_by[0].field is OrderField.ID:
        return (models.Post.id,)
    return (models.Post.created_at.desc(), models.Post.id.desc())


async def _post_page(
    info: NaiveInfo,
    *where: ColumnElement[bool],
    first: int,
    order_by: list[Order] | None = None,
) -> "PostConnection":
    stmt = select(models.Post).where(*where).order_by(*_post_order(order_by)).limit(first)
    rows = await info.context.db.scalars(stmt)
    return PostConnection(nodes=[Post.from_model(row) for row in rows])


@strawberry.type
class User:
    row_id: strawberry.Private[int]
    username: str

    @classmethod
    def from_model(cls, row: models.User) -> "User":
        return cls(row_id=row.id, username=row.username)

    @strawberry.field
    async def posts(
        self, info: NaiveInfo, first: int = DEFAULT_FIRST, order_by: list[Order] | None = None
    ) -> "PostConnection":
        return await _post_page(
            info, models.Post.user_id == self.row_id, first=first, order_by=order_by
        )


@strawberry.type
class Tag:
    name: str


@strawberry.type
class Comment:
    content: str
    user_id: strawberry.Private[int]

    @strawberry.field
    async def author(self, info: NaiveInfo) -> User:
        stmt = select(models.User).where(models.User.id == self.user_id)
        return User.from_model((await info.context.db.scalars(stmt))[0])


@strawberry.type
class CommentConnection:
    nodes: list[Comment]


@strawberry.type
class Post:
    row_id: strawberry.Private[int]
    title: str
    user_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, row: models.Post) -> "Post":
        return cls(row_id=row.id, title=row.title, user_id=row.user_id)

    @strawberry.field
    def id(self) -> strawberry.ID:
        # Relay's opaque id, spelled like gql_blog's so both servers answer the same JSON.
        return strawberry.ID(base64.b64encode(f"Post:{self.row_id}".encode()).decode())

    @strawberry.field
    async def author(self, info: NaiveInfo) -> User:
        stmt = select(models.User).where(models.User.id == self.user_id)
        return User.from_model((await info.context.db.scalars(stmt))[0])

    @strawberry.field
    async def tags(self, info: NaiveInfo) -> list[Tag]:
        stmt = (
            select(models.Tag)
            .join(models.post_tags, models.post_tags.c.tag_id == models.Tag.id)
            .where(models.post_tags.c.post_id == self.row_id)
            .order_by(models.Tag.name, models.Tag.id)
        )
        return [Tag(name=row.name) for row in await info.context.db.scalars(stmt)]

    @strawberry.field
    async def comments(self, info: NaiveInfo, first: int = DEFAULT_FIRST) -> CommentConnection:
        stmt = (
            select(models.Comment)
            .where(models.Comment.post_id == self.row_id)
            .order_by(models.Comment.created_at.desc(), models.Comment.id.desc())
            .limit(first)
        )
        nodes = [
            Comment(content=row.content, user_id=row.user_id)
            for row in await info.context.db.scalars(stmt)
        ]
        return CommentConnection(nodes=nodes)


@strawberry.type
class PostConnection:
    nodes: list[Post]


@strawberry.type
class UserConnection:
    nodes: list[User]


def _post_row_id(global_id: str) -> int | None:
    type_name, _, raw_id = base64.b64decode(global_id).decode().partition(":")
    return int(raw_id) if type_name == "Post" and raw_id.isdigit() else None


@strawberry.type
class Query:
    @strawberry.field
    async def posts(
        self, info: NaiveInfo, first: int = DEFAULT_FIRST, where: PostWhere | None = None
    ) -> PostConnection:
        published = where.published.eq if where and where.published else None
        conditions = [] if published is None else [models.Post.published.is_(published)]
        return await _post_page(info, *conditions, first=first)

    @strawberry.field
    async def users(
        self, info: NaiveInfo, first: int = DEFAULT_FIRST, order_by: list[Order] | None = None
    ) -> UserConnection:
        by_id = bool(order_by) and order_by[0].field is OrderField.ID
        stmt = select(models.User).order_by(models.User.id if by_id else models.User.username)
        rows = await info.context.db.scalars(stmt.limit(first))
        return UserConnection(nodes=[User.from_model(row) for row in rows])

    @strawberry.field
    async def post(self, info: NaiveInfo, id: strawberry.ID) -> Post | None:
        row_id = _post_row_id(id)
        stmt = select(models.Post).where(models.Post.id == row_id)
        rows = await info.context.db.scalars(stmt)
        return Post.from_model(rows[0]) if rows else None


schema = strawberry.Schema(query=Query)


class State(TypedDict):
    sessions: async_sessionmaker[AsyncSession]


class NaiveGraphQL(GraphQL[NaiveContext, None]):
    """strawberry's ASGI view with one session per request and orjson, as gql_blog has."""

    def __init__(self) -> None:
        super().__init__(schema, graphql_ide=None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sessions: async_sessionmaker[AsyncSession] = scope["state"]["sessions"]
        async with sessions() as session:
            scope[_SESSION_KEY] = session
            await super().__call__(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Any) -> NaiveContext:
        return NaiveContext(db=serial_session.SerialSession(request.scope[_SESSION_KEY]))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings | None = None,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> Starlette:
    """The naive server's ASGI app; settings default to the environment's, like gql_blog's."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        if sessions is not None:
            yield {"sessions": sessions}
            return
        engine = engines.create_engine(settings)
        try:
            yield {"sessions": engines.create_sessionmaker(engine)}
        finally:
            await engine.dispose()

    return Starlette(
        routes=[
            Route("/graphql", NaiveGraphQL(), methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
