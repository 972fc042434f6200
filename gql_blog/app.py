"""The Starlette app: /graphql (HTTP, GraphiQL, websockets), /healthz, /readyz, /metrics; one
engine and one event bus per process, a session per request (per operation on a websocket)."""

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, get_operation_ast, parse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.http.base import BaseRequestProtocol
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.graphql import OperationType

from gql_blog import (
    admission,
    auth,
    draining,
    engines,
    events,
    graphiql,
    graphql_http,
    http_caching,
    metrics,
    migrations,
    outages,
    persisted_queries,
    read_pool,
    readiness,
    replicas,
    serial_session,
    tracing,
    websocket,
)
from gql_blog.config import Settings
from gql_blog.plan.planner import Planner
from gql_blog.row_counts import RowCounts
from gql_blog.schema import limits, schema
from gql_blog.schema.context import Context
from gql_blog.schema.documents import CachedDocument, DocumentCache

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)

_SESSION_KEY = "gql_blog.session"
SUBSCRIPTION_OVER_HTTP = (
    "Subscriptions run over a websocket: connect to /graphql with the graphql-transport-ws "
    "protocol (e.g. the graphql-ws or gql client) and send the subscription there."
)
IGNORED_AUTHORIZATION = (
    "The Authorization header is not `Bearer <token>`, so this request ran signed out."
)


class State(TypedDict):
    sessions: async_sessionmaker[AsyncSession]
    events: events.EventBus
    # PostgreSQL: the planned read path's connections (None elsewhere, and in tests' sessions).
    reads: read_pool.ReadPool | None
    # The primary and the read replicas (None in tests' sessions).
    databases: replicas.Databases | None
    # The SIGTERM drain (GQL_BLOG_DRAIN_SECONDS); None in tests' sessions.
    drain: draining.Drain | None


class GraphQLApp(GraphQL[Context, None]):
    """strawberry's ASGI view with one session per request, orjson, and JSON error bodies.

    The HTTP rules (media types, body limit, refusals) live in `graphql_http`; the methods here
    only hook them into strawberry's view.
    """

    graphql_transport_ws_handler_class = websocket.TransportWSHandler
    websocket_adapter_class = websocket.TextWebSocketAdapter

    def __init__(self, settings: Settings, *, tracer: "Tracer | None" = None) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            # The legacy graphql-ws protocol stays off: every current client speaks this one.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        )
        self.settings = settings
        self.tracer = tracer
        self.planning = settings.planner
        self.planner = Planner(schema)
        # One entry per document: its parse, validation, prices and plans (see `execute_single`).
        self.documents = DocumentCache(settings.document_cache_bytes)
        # The tables' row counts the cost model prices by; the lifespan keeps them fresh.
        self.row_counts = RowCounts()
        self.persisted = _persisted_queries(settings)
        self.expensive = admission.ExpensiveRequests(settings)
        self.sockets = websocket.SocketCount(settings)
        self.subscription_starts = asyncio.Semaphore(websocket.SUBSCRIPTION_STARTS_AT_ONCE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sessions: async_sessionmaker[AsyncSession] = scope["state"]["sessions"]
        if scope["type"] == "websocket":
            # No session per socket: each operation opens its own (see websocket.py).
            await super().__call__(scope, receive, send)
            return
        # The session (if the request opened one) closes here whatever happens: success, error
        # or client disconnect; a statement still running (the request was stopped) is
        # cancelled on the database first.
        serial = serial_session.SerialSession(sessions=sessions)
        scope[_SESSION_KEY] = serial
        try:
            await self._respond_in_time(scope, receive, send)
        finally:
            await serial.stop()
            await serial.close()

    async def _respond_in_time(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer within the request's time limit; stop the work if the client hangs up."""
        watch = graphql_http.DisconnectWatch(receive)
        this = asyncio.current_task()
        assert this is not None
        watching = asyncio.ensure_future(watch.cancel_on_hang_up(this))
        limit = self.settings.request_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                await self._respond(scope, watch.receive, watch.send_through(send))
        except TimeoutError:
            logger.warning("graphql.request_timeout", extra={"path": scope.get("path")})
            if not watch.response_started:
                await graphql_http.timeout_response(limit)(scope, receive, send)
        except asyncio.CancelledError:
            if not watch.hung_up:
                raise
            this.uncancel()  # the client's hang-up, not the server's: nothing more to send
            logger.info("graphql.client_disconnected", extra={"path": scope.get("path")})
        finally:
            watching.cancel()

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        media_type = graphql_http.response_media_type(request.headers.get("accept"))
        try:
            request = await self._read_request(request)
            response = await self._answer_plain(request)
            if response is None:
                response = await self.run(request)
            response = self._with_caching_headers(request, response)
        except ClientDisconnect:
            logger.info("graphql.client_disconnected", extra={"path": request.url.path})
            return
        except HTTPException as error:
            response = graphql_http.refusal_response(
                error, method=request.method, media_type=media_type
            )
        except Exception as error:  # the last boundary: whatever failed, the answer is GraphQL JSON
            response = _error_response(error, media_type)
        await response(scope, receive, send)

    async def _answer_plain(self, request: Request) -> Response | None:
        """A plain JSON POST of one operation, answered past strawberry's view (which would
        read the same body and reach the same `execute_operation`); None for any other shape
        (`graphql_http.plain_operation`): `run` answers it."""
        operation = await graphql_http.plain_operation(request)
        if operation is None:
            return None
        graphql_http.refuse_bad_operation_name(operation.operation_name)
        data = await self.persisted.resolve(operation)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, sub_response)
        adapter = self.request_adapter_class(request)
        result = await self.execute_operation(request, adapter, data, context, None, sub_response)
        assert isinstance(result, ExecutionResult)  # one operation, no streaming `Accept`
        return self.create_response(await self.process_result(request, result), sub_response)

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: Any,
    ) -> ExecutionResult:
        """The one door every operation over HTTP goes through (alone, or one of a batch).

        Its document is parsed and validated once, into its entry of the document cache
        (`document`), and priced there (`_cost`); a valid one within every limit goes to the
        planner, which plans it on first sight, and whatever the planner does not answer runs
        on strawberry's executor, whose limits' extension finds the same entry (nothing is
        parsed, validated or priced again). Both run within the admission of the same price.
        """
        if isinstance(request_data, persisted_queries.UnresolvedRequest):
            return request_data.answer()  # an unknown or untrusted persisted query
        query = request_data.query
        cached = self.document(query) if isinstance(query, str) else None
        cost = None if cached is None or cached.errors else self._cost(cached, request_data)
        # 0 for a document the limits refuse: that refusal runs no SQL.
        async with self.expensive.admitted(cost or 0):
            if cost is not None and self._may_plan(request, cached, request_data):
                assert cached is not None  # priced, so cached and valid
                planned = await self.planner.execute(
                    cached, request_data.operation_name, request_data.variables, context
                )
                if planned is not None:
                    planned.extensions = {**(planned.extensions or {}), "cost": cost}
                    return planned
            await context.load_viewer()
            return await self._execute(request_adapter, context, request_data)

    async def _execute(
        self, request_adapter: Any, context: Context, request_data: Any
    ) -> ExecutionResult:
        """strawberry's `execute_single`, refusing subscriptions: they need a websocket."""
        method = request_adapter.method
        allowed = OperationType.from_http(method) - {OperationType.SUBSCRIPTION}
        try:
            return await self.schema.execute(
                request_data.query,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, SUBSCRIPTION_OVER_HTTP) from error
            raise HTTPException(400, error.as_http_error_reason(method)) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    def _may_plan(self, request: Request, cached: CachedDocument | None, data: Any) -> bool:
        """Whether the planner may answer: not with the planner off, and not a mutation over
        GET (refused by the executor) or with replicas (writes go to the primary, see
        `execute_operation`)."""
        if not self.planning:
            return False
        databases: replicas.Databases | None = request.scope["state"].get("databases")
        held_back = bool(databases and databases.replicas)
        if request.method == "POST" and not held_back:
            return True
        return not _is_mutation(cached, data.operation_name)

    def _cost(self, cached: CachedDocument, request_data: Any) -> int | None:
        """The request's price (`extensions.cost`), remembered in the document's entry; None
        when the limits refuse it (the executor answers why)."""
        cost, errors = limits.request_cost(
            cached,
            request_data.operation_name,
            request_data.variables,
            self.settings,
            schema=schema._schema,
            counts=self.row_counts,
        )
        return None if errors else cost

    def document(self, query: str) -> CachedDocument | None:
        """The entry of `query` in the document cache: parsed and validated (limits first) the
        first time it is seen, as the limits' extension would (which then finds it there);
        None when it does not parse (strawberry parses it again and answers why)."""
        cached = self.documents.get(query)
        if cached is not None:
            return cached
        try:
            document = parse(query, max_tokens=self.settings.max_tokens)
        except GraphQLError:
            return None
        errors = limits.validate_document(schema._schema, document, self.settings)
        return self.documents.put(query, document, errors)

    def _with_caching_headers(self, request: Request, response: Response) -> Response:
        """Anonymous GET answers get Cache-Control and an ETag (or a 304); see http_caching."""
        return http_caching.with_caching_headers(
            request, response, max_age=self.settings.cache_max_age_seconds
        )

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A GET of a persisted query has no `query` either, but wants its answer, not GraphiQL.
        if "extensions" in request.query_params:
            return False
        return super().should_render_graphql_ide(request)

    async def _read_request(self, request: Request) -> Request:
        """The request with its body read within the size limit (POST only, JSON only)."""
        graphql_http.refuse_long_url(request)
        graphql_http.refuse_unsafe_content_type(request)
        if request.method != "POST":
            return request
        body = await graphql_http.read_body(request, self.settings.max_body_bytes)
        return Request(request.scope, graphql_http.replay_body(body, request.receive))

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        if isinstance(request, WebSocket):
            return self._socket_context(request)
        serial: serial_session.SerialSession = request.scope[_SESSION_KEY]
        reads = _read_from_replica(request, serial)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        authorization = request.headers.get("authorization")
        token = auth.bearer_token(authorization)
        warnings = []
        if authorization and token is None:
            # The header's value is never logged: it may well be a credential.
            logger.info("auth.authorization_ignored", extra={"request_id": request_id})
            warnings.append(IGNORED_AUTHORIZATION)
        return Context(
            db=serial,
            viewer=None,
            settings=self.settings,
            request_id=request_id,
            documents=self.documents,
            row_counts=self.row_counts,
            events=request.scope["state"]["events"],
            reads=reads,
            token=token,
            client_address=request.client.host if request.client else None,
            tracer=self.tracer,
            warnings=warnings,
        )

    def _socket_context(self, socket: WebSocket) -> Context:
        """The socket's context: what its operations share; each copies it with its session."""
        sessions: async_sessionmaker[AsyncSession] = socket.scope["state"]["sessions"]
        return Context(
            # A placeholder that never connects: every operation replaces it with its own.
            db=serial_session.SerialSession(sessions()),
            viewer=None,
            settings=self.settings,
            request_id=socket.headers.get("x-request-id") or uuid.uuid4().hex,
            documents=self.documents,
            row_counts=self.row_counts,
            events=socket.scope["state"]["events"],
            client_address=socket.client.host if socket.client else None,
            tracer=self.tracer,
            sessions=sessions,
            planner=self.planner if self.planning else None,
        )

    async def on_ws_connect(self, context: Context) -> None:
        if context.sessions is None:
            raise RuntimeError("a websocket context needs its session factory")
        await websocket.sign_in(context, context.sessions)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = graphql_http.response_media_type(request.headers.get("accept"))
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if graphql_http.is_request_error(result):
            del response["data"]  # the operation never started: there is no data, not null data
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        media_type = sub_response.media_type or graphql_http.JSON
        outage = graphql_http.outage_in(response_data)
        if outage is not None:
            return graphql_http.outage_response(outage, media_type)
        response = Response(
            self.encode_json(response_data),
            status_code=graphql_http.status_for(response_data, media_type),
            media_type=media_type,
        )
        response.headers.raw.extend(sub_response.headers.raw)
        return response

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        databases: replicas.Databases | None = request.scope["state"].get("databases")
        writes = bool(databases and databases.replicas) and self._writes(request_data)
        if writes:
            assert databases is not None
            context.db.use_primary()  # the writes, and every read after them, on the primary
            context.reads = databases.primary.reads
        result: ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult
        if isinstance(request_data, list):
            result = await self._execute_batch(
                request, request_adapter, request_data, context, sub_response
            )
        else:
            result = await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        if writes:
            assert databases is not None
            # Read-your-writes: sent back, it keeps the client's reads off replicas behind it.
            position = await databases.primary_position(context.db)
            sub_response.headers[replicas.COMMIT_LSN_HEADER] = position
        return result

    def _writes(self, request_data: GraphQLRequestData | list[GraphQLRequestData]) -> bool:
        """Whether any operation of the request is a mutation."""
        return any(
            _is_mutation(self.document(data.query) if data.query else None, data.operation_name)
            for data in (request_data if isinstance(request_data, list) else [request_data])
        )

    async def _execute_batch(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: list[GraphQLRequestData],
        context: Context,
        sub_response: Response,
    ) -> list[ExecutionResult]:
        # A batch shares one session, so its operations run one after another (strawberry
        # gathers them), each with fresh loaders: a mutation's writes show in what follows.
        results = []
        for data in request_data:
            fresh = context.for_operation()
            results.append(
                await self.execute_single(request, request_adapter, sub_response, fresh, None, data)
            )
        return results

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):
            graphql_http.refuse_bad_operation_name(data.operation_name)
        # Before anything else reads `query`: a persisted query's hash becomes its text here.
        return await self.persisted.resolve_all(data)

    def _validate_batch_request(
        self, request_data: list[GraphQLRequestData], protocol: GraphQLRequestProtocol
    ) -> None:
        graphql_http.refuse_bad_batch(request_data, self.settings.max_batch_operations)

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


def _read_from_replica(
    request: Request, serial: serial_session.SerialSession
) -> read_pool.ReadPool | None:
    """Route the request's reads to a replica that has replayed what the client wrote (its
    `GQL-Blog-Commit-LSN` header), if one is usable; the read pool its planned reads use."""
    state = request.scope["state"]
    databases: replicas.Databases | None = state.get("databases")
    header = request.headers.get(replicas.COMMIT_LSN_HEADER)
    if databases is None or not databases.replicas:
        return state.get("reads")  # type: ignore[no-any-return]  # the state is a TypedDict
    try:
        min_lsn = None if header is None else replicas.parse_lsn(header)
    except replicas.BadLsnError as error:
        bad = GraphQLError(str(error), extensions={"code": "BAD_USER_INPUT"})
        raise graphql_http.RequestRefused(400, bad) from None
    server = databases.for_reads(min_lsn)
    if server is not databases.primary:
        serial.read_from(server.sessions)
    return server.reads


def _is_mutation(cached: CachedDocument | None, operation_name: Any) -> bool:
    """Whether the operation of a parsed document is a mutation."""
    if cached is None:
        return False
    operation = get_operation_ast(cached.document, operation_name)
    return operation is not None and operation.operation.value == "mutation"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _error_response(error: Exception, media_type: str) -> Response:
    """503 when the database was out of reach (the planned path raises) or expensive requests
    had no turn for it, else a masked 500."""
    if isinstance(error, admission.ServerBusyError):
        return graphql_http.outage_response(outages.Outage.BUSY, media_type)
    outage = outages.outage_of(error)
    if outage is not None:
        return graphql_http.outage_response(outage, media_type)
    return graphql_http.internal_error_response(media_type)


async def root(request: Request) -> Response:
    """`/` has nothing of its own: send browsers (and say where) to the API and GraphiQL."""
    target = f"{request.scope.get('root_path', '')}/graphql"
    return JSONResponse(
        {"message": f"The GraphQL API, and GraphiQL for browsers, are at {target}."},
        status_code=307,
        headers={"Location": target},
    )


def _readyz(head: str) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(request: Request) -> Response:
        """200 once the database answers and is at the latest migration; else 503 and why
        (also while the server drains before it stops)."""
        databases: replicas.Databases | None = getattr(request.state, "databases", None)
        shown = {"replicas": databases.readiness()} if databases and databases.replicas else {}
        drain: draining.Drain | None = getattr(request.state, "drain", None)
        if drain is not None and drain.draining:
            # Out of the balancer's rotation first; the requests it still sends are served.
            body = {"status": "draining", "reason": drain.reason(), **shown}
            return JSONResponse(body, status_code=503)
        problem = await readiness.readiness_problem(request.state.sessions, head=head)
        if problem is not None:
            body = {"status": "unavailable", "reason": problem, **shown}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", "revision": head, **shown})

    return readyz


def _metrics(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    async def metrics_text(request: Request) -> Response:
        body, content_type = metrics.render(settings.prometheus_multiproc_dir)
        return Response(body, media_type=content_type)

    return metrics_text


def _lifespan(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession] | None,
    tracer: "Tracer | None",
    bus: events.EventBus | None,
    persisted: persisted_queries.PersistedQueries,
    row_counts: RowCounts,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[State]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        retention = timedelta(seconds=settings.persisted_query_retention_seconds)
        if sessions is not None:
            persisted.share(persisted_queries.SharedQueries(sessions, retention=retention))
            # Sessions given by a test share one transaction: only in-process events fit.
            local = bus or events.InProcessBus(queue_size=settings.subscriber_queue_size)
            yield {
                "sessions": sessions,
                "events": local,
                "reads": None,
                "databases": None,
                "drain": None,
            }
            return
        engine = engines.create_engine(settings)
        # Before tracing: the counts are the server's own reads, of no request.
        await row_counts.refresh(engine)
        if tracer is not None:
            tracing.instrument_engine(engine, tracer)
        engine_sessions = engines.create_sessionmaker(engine)
        persisted.share(persisted_queries.SharedQueries(engine_sessions, retention=retention))
        chosen = bus or events.create_bus(settings, engine_sessions)
        await chosen.start()
        reads = await read_pool.ReadPool.open(settings, engine) if settings.planner else None
        replica_list = [
            await replicas.open_replica(settings, url) for url in settings.database_replica_urls
        ]
        if tracer is not None:
            for replica in replica_list:
                tracing.instrument_engine(replica.engine, tracer)
        databases = replicas.Databases(
            primary=replicas.Server("primary", engine, engine_sessions, reads),
            replicas=replica_list,
            max_lag_seconds=settings.replica_max_lag_seconds,
        )
        databases.start()
        counting = asyncio.create_task(
            row_counts.keep_fresh(engine, settings.row_counts_refresh_seconds, tracer)
        )
        # What the process built to start (modules, the schema, the engine) lives as long as it
        # serves: out of the collector's sight, full collections stay short (no slow p99 tail).
        gc.freeze()
        drain = draining.Drain(settings.drain_seconds)
        undrain = drain.install(asyncio.get_running_loop())
        try:
            yield {
                "sessions": engine_sessions,
                "events": chosen,
                "reads": reads,
                "databases": databases,
                "drain": drain,
            }
        finally:
            undrain()
            gc.unfreeze()
            counting.cancel()
            # uvicorn runs this after the in-flight requests have finished.
            await chosen.stop()
            await databases.close()  # every server's pools, the primary's too

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    tracer_provider: "TracerProvider | None" = None,
    bus: events.EventBus | None = None,
) -> Starlette:
    """The ASGI app; settings default to the environment's.

    Tests pass their own `sessions`, a `tracer_provider` to see the spans (GQL_BLOG_OTEL), and
    a `bus` to watch its listeners; else the bus fits the database (`events.create_bus`).
    """
    settings = settings or Settings.from_env()
    tracer = None
    if settings.otel:
        tracer = tracing.tracer_of(tracer_provider or tracing.create_provider())
    graphql = GraphQLApp(settings, tracer=tracer)
    return Starlette(
        middleware=_cors_middleware(settings),
        debug=settings.debug,
        routes=[
            graphiql.static_mount(),
            # Every method reaches strawberry, which refuses all but GET and POST (405, as JSON).
            Route("/graphql", graphql),
            # Subscriptions (and any operation) over graphql-transport-ws, on the same path.
            WebSocketRoute("/graphql", graphql),
            Route("/", root, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", _readyz(migrations.head_revision()), methods=["GET"]),
            Route("/metrics", _metrics(settings), methods=["GET"]),
        ],
        lifespan=_lifespan(settings, sessions, tracer, bus, graphql.persisted, graphql.row_counts),
    )


def _persisted_queries(settings: Settings) -> persisted_queries.PersistedQueries:
    trusted = None
    if settings.trusted_documents is not None:
        trusted = persisted_queries.load_trusted_documents(settings.trusted_documents)
    return persisted_queries.PersistedQueries(
        max_bytes=settings.persisted_query_cache_bytes, trusted=trusted
    )


def _cors_middleware(settings: Settings) -> list[Middleware]:
    """CORS for the configured origins only; with none, no cross-origin page may call the API
    (and a preflight is told which setting would allow its origin)."""
    return [Middleware(graphql_http.GraphQLCORSMiddleware, allow_origins=settings.cors_origins)]
