"""HTTP caching of GET reads: `Cache-Control`, `ETag` and 304 for anonymous answers only.

A GET runs only queries, so its answer may be cached when nothing in it depends on who asked:
the request carries no `Authorization` and the answer has no errors. Such an answer is `public`
for `max_age` seconds, with a strong `ETag` of its body, and an `If-None-Match` that matches is
answered 304 without a body. `Vary: Authorization` keeps a shared cache from handing it to a
signed-in request. Every other GET answer is `no-store`: a signed-in one must never be kept.
"""

import hashlib

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gql_blog.graphql_http import GRAPHQL_RESPONSE_JSON, JSON

NO_STORE = "no-store"
VARY = "Authorization, Accept"


def with_caching_headers(request: Request, response: Response, *, max_age: int) -> Response:
    """The GET answer with its caching headers (or a 304); any other answer as it is."""
    if request.method != "GET" or response.media_type not in (JSON, GRAPHQL_RESPONSE_JSON):
        return response
    if not _is_cacheable(request, response):
        response.headers["Cache-Control"] = NO_STORE
        return response
    etag = entity_tag(bytes(response.body))
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag, "Vary": VARY}
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response


def entity_tag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    candidates = [candidate.strip() for candidate in if_none_match.split(",")]
    return any(candidate == "*" or candidate.removeprefix("W/") == etag for candidate in candidates)


def _is_cacheable(request: Request, response: Response) -> bool:
    if "authorization" in request.headers or response.status_code != 200:
        return False
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and not body.get("errors")
