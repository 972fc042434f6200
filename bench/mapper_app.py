"""strawberry-sqlalchemy-mapper over gql_blog's tables: strawberry types generated from models.

The mapper turns `bench.rival_models` into strawberry types; each relationship resolves through
its `StrawberrySQLAlchemyLoader`, one batched statement per relationship and level, and lists
become Relay connections. Two limits of the library shape the bench's texts (`bench.queries`):
it cannot follow a `secondary` many-to-many, so tags come through the `post_tags` link rows; and
a nested `first` limits the whole batch, not each parent's list, so nested lists are asked for
whole and cut to the page size when compared. The root fields are written by hand.

Serve it with `uvicorn --factory bench.mapper_app:create_app` and `BENCH_DATABASE_URL` set.
"""

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import Info
from strawberry_sqlalchemy_mapper import StrawberrySQLAlchemyLoader, StrawberrySQLAlchemyMapper

from bench.rival_models import CommentRow, PostRow, PostTagRow, TagRow, UserRow


def _type_name(model: type[Any]) -> str:
    """`PostRow` is the model, `Post` its GraphQL type."""
    name: str = model.__name__
    return name.removesuffix("Row")


mapper: StrawberrySQLAlchemyMapper[Any] = StrawberrySQLAlchemyMapper(model_to_type_name=_type_name)


@mapper.type(UserRow)
class User:
    pass


@mapper.type(TagRow)
class Tag:
    pass


@mapper.type(PostTagRow)
class PostTag:
    pass


@mapper.type(PostRow)
class Post:
    __exclude__ = ("tags",)


@mapper.type(CommentRow)
class Comment:
    pass


def _sessions(info: Info) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = info.context["sessions"]
    return sessions


@strawberry.type
class Query:
    @strawberry.field
    async def posts(self, info: Info, first: int = 20, published: bool | None = None) -> list[Post]:
        stmt = select(PostRow).order_by(PostRow.created_at.desc(), PostRow.id.desc())
        if published is not None:
            stmt = stmt.where(PostRow.published.is_(published))
        async with _sessions(info)() as session:
            return list(await session.scalars(stmt.limit(first)))  # type: ignore[arg-type]

    @strawberry.field
    async def users(self, info: Info, first: int = 20) -> list[User]:
        async with _sessions(info)() as session:
            rows = await session.scalars(select(UserRow).order_by(UserRow.id).limit(first))
            return list(rows)  # type: ignore[arg-type]

    @strawberry.field
    async def post(self, info: Info, id: int) -> Post | None:
        async with _sessions(info)() as session:
            return await session.get(PostRow, id)  # type: ignore[return-value]


mapper.finalize()
schema = strawberry.Schema(query=Query, types=list(mapper.mapped_types.values()))


class MapperGraphQL(GraphQL[dict[str, Any], None]):
    """strawberry's ASGI view with the mapper's loader in the context, and orjson."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(schema, graphql_ide=None)
        self._sessions = sessions

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        loader = StrawberrySQLAlchemyLoader(async_bind_factory=self._sessions)
        return {"sessions": self._sessions, "sqlalchemy_loader": loader}

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def create_app() -> Starlette:
    url = os.environ["BENCH_DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://")
    engine = create_async_engine(url, pool_size=10, max_overflow=10)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    return Starlette(
        routes=[
            Route("/graphql", MapperGraphQL(sessions), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
