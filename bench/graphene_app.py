"""graphene-sqlalchemy 3 over gql_blog's tables, with its batching on, as its docs set it up.

Its models (`bench.rival_models`) map the columns the bench reads, relationships ordered as
gql_blog orders them; `SQLAlchemyObjectType` with `batching = True` loads each relationship
for all parents in one `selectin` statement, and relationship lists to Relay nodes become
connections (graphene slices them in Python; it batches connections only, so every type is a
node, tags too). The root fields are written by hand, with the
page size in SQL. graphene-sqlalchemy's batching runs the selectin loader on a synchronous
`Session`, so the statements go through psycopg on the event loop's thread.

It runs in a venv of its own (bench/.venv-graphene, see the Makefile): graphene 3.4 needs
graphql-core < 3.3, and strawberry (gql_blog) needs 3.3. Serve it with
`uvicorn --factory bench.graphene_app:create_app` and `BENCH_DATABASE_URL` set.
"""

import base64
import contextlib
import contextvars
import os
from collections.abc import AsyncIterator
from typing import Any

import graphene
import orjson
from graphene import relay
from graphene_sqlalchemy import SQLAlchemyObjectType, batching
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.rival_models import CommentRow, PostRow, TagRow, UserRow


class User(SQLAlchemyObjectType):
    class Meta:
        model = UserRow
        interfaces = (relay.Node,)
        batching = True
        create_filters = False
        only_fields = ("id", "username", "posts")


class Tag(SQLAlchemyObjectType):
    # A Relay node, so `Post.tags` is a connection: graphene-sqlalchemy batches connections only
    # (a plain list relationship loads once per post).
    class Meta:
        model = TagRow
        interfaces = (relay.Node,)
        batching = True
        create_filters = False
        only_fields = ("id", "name")


class Post(SQLAlchemyObjectType):
    class Meta:
        model = PostRow
        interfaces = (relay.Node,)
        batching = True
        create_filters = False
        only_fields = ("id", "title", "author", "tags", "comments")


class Comment(SQLAlchemyObjectType):
    class Meta:
        model = CommentRow
        interfaces = (relay.Node,)
        batching = True
        create_filters = False
        only_fields = ("id", "content", "author")


_request_loaders: contextvars.ContextVar[dict[Any, Any]] = contextvars.ContextVar("loaders")


class _PerRequestLoaders:
    """Stands in for graphene-sqlalchemy's process-wide `RELATIONSHIP_LOADERS_CACHE`.

    graphene-sqlalchemy keeps one batch loader per relationship for the whole process, so the
    parents of concurrent requests meet in one batch, whose rows belong to different sessions:
    its `assert session is Session.object_session(parent)` fails and the field comes back null
    with an error (in a 200 response). Here each request gets loaders of its own.
    """

    def get(self, key: Any, default: Any = None) -> Any:
        return _request_loaders.get().get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        _request_loaders.get()[key] = value


batching.RELATIONSHIP_LOADERS_CACHE = _PerRequestLoaders()


def _session(info: graphene.ResolveInfo) -> Session:
    session: Session = info.context["session"]
    return session


class Query(graphene.ObjectType):
    posts = relay.ConnectionField(
        Post.connection, first=graphene.Int(), published=graphene.Boolean()
    )
    users = relay.ConnectionField(User.connection, first=graphene.Int())
    post = graphene.Field(Post, id=graphene.ID(required=True))

    @staticmethod
    def resolve_posts(
        root: None, info: graphene.ResolveInfo, first: int = 20, published: bool | None = None
    ) -> list[PostRow]:
        stmt = select(PostRow).order_by(PostRow.created_at.desc(), PostRow.id.desc())
        if published is not None:
            stmt = stmt.where(PostRow.published.is_(published))
        return list(_session(info).scalars(stmt.limit(first)))

    @staticmethod
    def resolve_users(root: None, info: graphene.ResolveInfo, first: int = 20) -> list[UserRow]:
        return list(_session(info).scalars(select(UserRow).order_by(UserRow.id).limit(first)))

    @staticmethod
    def resolve_post(root: None, info: graphene.ResolveInfo, id: str) -> PostRow | None:
        type_name, _, raw_id = base64.b64decode(id).decode().partition(":")
        if type_name != "Post" or not raw_id.isdigit():
            return None
        return _session(info).get(PostRow, int(raw_id))


schema = graphene.Schema(query=Query)


def create_app() -> Starlette:
    """The ASGI app: POST /graphql runs `schema.execute_async` with a session per request."""
    url = os.environ["BENCH_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    # A checkout that waits blocks the event loop (and so the requests holding connections):
    # keep more connections than wrk's 16 requests in flight, plus the bench's own.
    engine = create_engine(url, pool_size=20, max_overflow=10)
    sessions = sessionmaker(engine, expire_on_commit=False)

    async def graphql(request: Request) -> Response:
        body: dict[str, Any] = orjson.loads(await request.body())
        loaders = _request_loaders.set({})
        with sessions() as session:
            result = await schema.execute_async(
                body["query"],
                variable_values=body.get("variables"),
                context_value={"session": session},
            )
        _request_loaders.reset(loaders)
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [{"message": str(error)} for error in result.errors]
        return Response(orjson.dumps(answer), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        engine.dispose()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
