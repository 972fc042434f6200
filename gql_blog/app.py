"""The Starlette app: /graphql (HTTP, GraphiQL), /healthz; one engine, a session per request."""

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import orjson
from cross_web import HTTPException
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import ExecutionResult

from gql_blog import auth, db, graphiql
from gql_blog.config import Settings
from gql_blog.plan.planner import Planner
from gql_blog.schema import schema
from gql_blog.schema.context import Context
from gql_blog.schema.documents import DocumentCache

logger = logging.getLogger(__name__)

_SESSION_KEY = "gql_blog.session"


class State(TypedDict):
    sessions: async_sessionmaker[AsyncSession]


class GraphQLApp(GraphQL[Context, None]):
    """strawberry's ASGI view with one session per request, orjson, and JSON error bodies."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(schema, graphql_ide="graphiql")
        self.settings = settings
        self.planning = settings.planner
        self.planner = Planner(schema)
        self.documents = DocumentCache(settings.document_cache_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sessions: async_sessionmaker[AsyncSession] = scope["state"]["sessions"]
        # The session closes here whatever happens: success, error or client disconnect.
        async with sessions() as session:
            serial = db.SerialSession(session)
            scope[_SESSION_KEY] = serial
            try:
                await self._respond(scope, receive, send)
            finally:
                await serial.drain()

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            response = JSONResponse(
                {"errors": [{"message": error.reason}]}, status_code=error.status_code
            )
        await response(scope, receive, send)

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: Any,
    ) -> ExecutionResult:
        # Planned queries skip parsing, validation and the generic executor (see plan/).
        if self.planning:
            planned = await self.planner.execute(
                request_data.query, request_data.operation_name, request_data.variables, context
            )
            if planned is not None:
                return planned
        await context.load_viewer()
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if self.planning:
            self.planner.learn(request_data.query, request_data.operation_name, result)
        return result

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        serial: db.SerialSession = request.scope[_SESSION_KEY]
        token = auth.bearer_token(request.headers.get("authorization"))
        context = Context(
            db=serial,
            viewer=None,
            settings=self.settings,
            request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
            documents=self.documents,
            token=token,
        )
        if not isinstance(request, Request):
            # A websocket's operations have no planned path: its resolvers need the viewer.
            await context.load_viewer()
        return context

    async def render_graphql_ide(self, request: Request) -> Response:
        # strawberry's page loads GraphiQL from a CDN; ours uses the vendored copy.
        return graphiql.graphiql_page(request.scope.get("root_path", ""))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        # orjson refuses invalid UTF-8, lone surrogates (no driver can store them) and nesting
        # deeper than 1,024 levels; its JSONDecodeError is json's, so strawberry answers 400.
        value = orjson.loads(data)
        if not isinstance(value, dict | list):
            raise HTTPException(400, "The request body must be a JSON object.")
        return value


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    settings: Settings | None = None,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> Starlette:
    """The ASGI app; settings default to the environment's. Tests pass their own `sessions`."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        if sessions is not None:
            yield {"sessions": sessions}
            return
        engine = db.create_engine(settings)
        try:
            yield {"sessions": db.create_sessionmaker(engine)}
        finally:
            await engine.dispose()

    graphql = GraphQLApp(settings)
    return Starlette(
        debug=settings.debug,
        routes=[
            graphiql.static_mount(),
            # Every method reaches strawberry, which refuses all but GET and POST (405, as JSON).
            Route("/graphql", graphql),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
