"""GraphQL over HTTP: response media types, the body limit, refusals and CORS, all as GraphQL JSON.

`application/graphql-response+json` is answered to clients that prefer it: a request error
(parse, validation, variable coercion, a limit) is then a 400 without `data`; with
`application/json` it stays a 200, as the GraphQL-over-HTTP spec asks. POST bodies must be
`application/json`, which browsers never send cross-origin without a CORS preflight; a GET runs
queries only, and a signed-in GET carries `Authorization`, which also needs a preflight, so a
"simple" cross-site request can only ever read what anonymous visitors may.
"""

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from gql_blog import outages
from gql_blog.caches import LruCache
from gql_blog.http_protocol import MAX_URL_BYTES, URL_BYTES_EXTENSION
from gql_blog.replicas import COMMIT_LSN_HEADER
from gql_blog.schema.errors import (
    OUTAGE_CODES,
    QueryTooComplexError,
    internal_error,
    new_error_id,
    outage_error,
)

logger = logging.getLogger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
# What each acceptable media range of an Accept header is answered with.
_ANSWERS = {GRAPHQL_RESPONSE_JSON: GRAPHQL_RESPONSE_JSON, JSON: JSON, "application/*": JSON}
_ANSWERS["*/*"] = JSON


class RequestRefused(HTTPException):
    """A request refused before it runs, answered with one GraphQL error (and maybe headers)."""

    def __init__(
        self, status_code: int, error: GraphQLError, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status_code, error.message)
        self.error = error
        self.headers = dict(headers or {})


def response_media_type(accept: str | None) -> str:
    """The media type to answer with: graphql-response+json when preferred, else JSON."""
    best, best_quality = JSON, 0.0
    for media_range in (accept or "").split(","):
        media, *parameters = (part.strip().lower() for part in media_range.split(";"))
        answer = _ANSWERS.get(media)
        quality = _quality(parameters)
        if answer is None or quality <= 0:
            continue
        if quality > best_quality or (quality == best_quality and answer == GRAPHQL_RESPONSE_JSON):
            best, best_quality = answer, quality
    return best


def _quality(parameters: Sequence[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def is_request_error(result: ExecutionResult) -> bool:
    """Whether the operation never started: every error precedes execution (none has a path)."""
    errors = result.errors or []
    return result.data is None and bool(errors) and all(error.path is None for error in errors)


def status_for(response_data: object, media_type: str) -> int:
    """200 for a GraphQL response; 400 for a request error answered as graphql-response+json."""
    if media_type == GRAPHQL_RESPONSE_JSON and isinstance(response_data, dict):
        return 200 if "data" in response_data else 400
    return 200


def refuse_unsafe_content_type(request: Request) -> None:
    """POST bodies must be JSON: the content types a form or `fetch` sends without a preflight
    (text/plain, form data) are refused, so no other site can make a browser run a mutation."""
    if request.method != "POST":
        return
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != JSON:
        raise RequestRefused(
            415,
            GraphQLError(f"A POST body must be {JSON} (got {media_type or 'no content type'})."),
        )


def refuse_bad_operation_name(operation_name: object) -> None:
    """strawberry checks `query` and `variables` but not `operationName`: a string or null."""
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestRefused(400, GraphQLError("`operationName` must be a string or null."))


# What a plain operation holds; a streaming Accept wants what only strawberry's view sends.
_PLAIN_KEYS = frozenset({"query", "variables", "operationName"})
_STREAMING = re.compile(r"multipart/mixed|text/event-stream", re.IGNORECASE)


async def plain_operation(request: Request) -> GraphQLRequestData | None:
    """The request's operation when it is the common case, else None (strawberry parses it).

    The common case: a JSON POST (body already read) of one operation with a string `query`,
    object `variables` and string `operationName`, no `extensions`, no streaming `Accept`.
    """
    content_type = request.headers.get("content-type") or ""
    if request.method != "POST" or "application/json" not in content_type.lower():
        return None
    if _STREAMING.search(request.headers.get("accept") or ""):
        return None
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or not body.keys() <= _PLAIN_KEYS:
        return None
    query, variables, name = body.get("query"), body.get("variables"), body.get("operationName")
    if (
        isinstance(query, str)
        and isinstance(variables, dict | None)
        and isinstance(name, str | None)
    ):
        return GraphQLRequestData(query, variables, name, extensions=None)
    return None


def refuse_bad_batch(operations: Sequence[object], maximum: int) -> None:
    """A batch is a non-empty list of at most `maximum` JSON objects (400 otherwise)."""
    if maximum == 0:
        raise RequestRefused(400, GraphQLError("Batched requests are turned off."))
    if not operations:
        raise RequestRefused(400, GraphQLError("A batched request needs at least one operation."))
    if len(operations) > maximum:
        error = QueryTooComplexError("batch operations", maximum=maximum, value=len(operations))
        raise RequestRefused(400, error)
    if not all(
        isinstance(operation, dict) and _is_well_formed(operation) for operation in operations
    ):
        message = (
            "Each operation of a batch must be an object with a string `query` "
            "(or a persisted query's hash)."
        )
        raise RequestRefused(400, GraphQLError(message))


def _is_well_formed(operation: dict[str, Any]) -> bool:
    # A persisted query may leave out its text: its hash stands for it.
    query = operation.get("query")
    extensions = operation.get("extensions")
    is_persisted = isinstance(extensions, dict) and "persistedQuery" in extensions
    return (
        (isinstance(query, str) or (query is None and is_persisted))
        and isinstance(operation.get("variables") or {}, dict)
        and isinstance(operation.get("extensions") or {}, dict)
        and isinstance(operation.get("operationName") or "", str)
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is larger than `max_bytes`.

    A declared Content-Length over the limit is refused before a byte is read; a chunked body
    is counted while it arrives, so no more than the limit is ever held.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _body_too_large(max_bytes, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _body_too_large(max_bytes, f"more than {max_bytes}")
        chunks.append(chunk)
    return b"".join(chunks)


def refuse_long_url(request: Request) -> None:
    """A URL past `MAX_URL_BYTES` (its query dropped by the server's protocol) is a 414."""
    url_bytes = request.scope.get("extensions", {}).get(URL_BYTES_EXTENSION)
    if url_bytes is not None:
        error = QueryTooComplexError("URL bytes", maximum=MAX_URL_BYTES, value=url_bytes)
        raise RequestRefused(414, error)


def _body_too_large(max_bytes: int, value: int | str) -> RequestRefused:
    return RequestRefused(413, QueryTooComplexError("body bytes", maximum=max_bytes, value=value))


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out the already-read body, then listens for a disconnect."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


def refusal_response(error: HTTPException, *, method: str, media_type: str) -> Response:
    """One GraphQL error for a request refused before it ran; a mutation over GET is a 405."""
    if method == "GET" and isinstance(error.__cause__, InvalidOperationTypeError):
        refused = GraphQLError("Only queries run over GET; send mutations with POST.")
        return graphql_error_response([refused], 405, media_type, headers={"Allow": "POST"})
    if isinstance(error, RequestRefused):
        return graphql_error_response([error.error], error.status_code, media_type, error.headers)
    headers = {"Allow": "GET, POST"} if error.status_code == 405 else {}
    return graphql_error_response(
        [GraphQLError(error.reason)], error.status_code, media_type, headers
    )


def internal_error_response(media_type: str) -> Response:
    """The masked answer for a failure outside any operation (context, encoding); logged."""
    error_id = new_error_id()
    logger.error("graphql.unexpected_error", exc_info=True, extra={"error_id": error_id})
    return graphql_error_response([internal_error(error_id)], 500, media_type)


# How long a client should wait before retrying a request the database could not serve.
RETRY_AFTER_SECONDS = 1
_OUTAGES_BY_CODE = {code: outage for outage, code in OUTAGE_CODES.items()}


def outage_in(response_data: object) -> outages.Outage | None:
    """The database outage a resolver's error reports in a response (or batch), if any."""
    responses = response_data if isinstance(response_data, list) else [response_data]
    for response in responses:
        errors = response.get("errors") if isinstance(response, dict) else None
        for error in errors or []:
            code = (error.get("extensions") or {}).get("code")
            if code in _OUTAGES_BY_CODE:
                return _OUTAGES_BY_CODE[code]
    return None


def outage_response(outage: outages.Outage, media_type: str) -> Response:
    """A 503 for the whole request: the database was out of reach, so retrying may work."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return graphql_error_response([outage_error(outage)], 503, media_type, headers)


def graphql_error_response(
    errors: list[GraphQLError],
    status_code: int,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = orjson.dumps({"errors": [error.formatted for error in errors]})
    return Response(body, status_code=status_code, media_type=media_type, headers=headers)


class GraphQLCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as GraphQL JSON instead of text.

    Installed also when no origin is allowed, so that a refused origin's preflight is told
    which setting to change (instead of strawberry's 405 for OPTIONS); each refused origin is
    logged once per process.
    """

    def __init__(self, app: ASGIApp, *, allow_origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Accept",
                "X-Request-Id",
                COMMIT_LSN_HEADER,
            ],
            # Read-your-writes with replicas: a page reads it from a mutation's answer.
            expose_headers=[COMMIT_LSN_HEADER],
            max_age=600,
        )
        # Bounded, so that a stream of made-up origins cannot grow it.
        self._refused_origins: LruCache[str, bool] = LruCache(1024)

    async def simple_response(
        self, scope: Scope, receive: Receive, send: Send, request_headers: Headers
    ) -> None:
        if not self.allow_origins:  # no origin is allowed: answers carry no CORS headers at all
            await self.app(scope, receive, send)
            return
        await super().simple_response(scope, receive, send, request_headers)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = _without_content_headers(response.headers)
        origin = request_headers["origin"]
        if self.is_allowed_origin(origin):
            message = bytes(response.body).decode()
            return graphql_error_response(
                [GraphQLError(message)], response.status_code, JSON, headers
            )
        self._log_refused(origin)
        error = GraphQLError(_refused_origin_message(origin), extensions={"code": "FORBIDDEN"})
        return graphql_error_response([error], 403, JSON, headers)

    def _log_refused(self, origin: str) -> None:
        if self._refused_origins.get(origin) is not None:
            return
        self._refused_origins.put(origin, True)
        logger.warning("cors.origin_refused", extra={"origin": origin, "setting": CORS_SETTING})


CORS_SETTING = "GQL_BLOG_CORS_ORIGINS"


def _refused_origin_message(origin: str) -> str:
    return (
        f"CORS preflight refused: the origin {origin} is not in {CORS_SETTING}, so browsers "
        f"keep its pages from calling this API. To allow it, add it to {CORS_SETTING} "
        f"(comma-separated origins, e.g. {CORS_SETTING}={origin}) and restart the server."
    )


def _without_content_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: str(value)
        for name, value in headers.items()
        if name.lower() not in ("content-type", "content-length")
    }


class DisconnectWatch:
    """A request's receive and send, watched: has the client hung up, has the answer begun?

    The body is read through `receive`; once it is, `cancel_on_hang_up()` listens for the client
    hanging up (an ASGI server says `http.disconnect`, also once the answer is complete).
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._body_read = asyncio.Event()
        self.response_started = False
        self.response_complete = False
        self.hung_up = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self._body_read.set()
        return message

    def send_through(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.response_started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                self.response_complete = True
            await send(message)

        return sending

    async def cancel_on_hang_up(self, task: "asyncio.Task[Any]") -> None:
        """Cancel `task` if the client hangs up before its answer is complete."""
        await self._body_read.wait()
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self.response_complete:
            self.hung_up = True
            task.cancel()


def timeout_response(limit_seconds: float) -> Response:
    """The answer to a request stopped at its time limit: 503, one GraphQL error."""
    error = GraphQLError(
        f"The request took longer than its limit of {limit_seconds:g} seconds and was stopped.",
        extensions={"code": "REQUEST_TIMEOUT", "limitSeconds": limit_seconds},
    )
    return graphql_error_response([error], 503, "application/json", {"Retry-After": "1"})
