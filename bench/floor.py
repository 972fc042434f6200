"""The floor: the bench's three queries answered by hand, with no GraphQL at all.

A raw ASGI app on asyncpg and orjson: one request takes one pooled connection and sends one
batched statement per level (`= ANY($1)` arrays, so one prepared statement serves every batch
size; nested pages as `unnest(...) CROSS JOIN LATERAL (... LIMIT n)`), then builds the response
as dicts in gql_blog's field order. It recognises a request by its exact query text (those of
`bench.queries`) and answers with exactly the JSON gql_blog returns for it, as seen by an
admin: the practical limit of one Python process answering these queries.

Serve it with `uvicorn --factory bench.floor:create_app` and `BENCH_DATABASE_URL` set (a plain
`postgresql://` URL).
"""

import base64
import binascii
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
import orjson

from bench import queries

POOL_SIZE: Final = 20  # what gql_blog may open: GQL_BLOG_POOL_SIZE + GQL_BLOG_MAX_OVERFLOW

FEED_POSTS: Final = (
    "select id, title, user_id from posts where published"
    " order by created_at desc, id desc limit $1"
)
USER_PAGE: Final = "select id, username from users order by id limit $1"
POST_BY_ID: Final = "select id, title, user_id from posts where id = $1"
USERNAMES: Final = "select id, username from users where id = any($1::int[])"
TAGS_OF_POSTS: Final = (
    "select pt.post_id, t.name from post_tags pt join tags t on t.id = pt.tag_id"
    " where pt.post_id = any($1::int[]) order by pt.post_id, t.name, t.id"
)
POSTS_OF_USERS: Final = (
    "select u.id as parent_id, p.id, p.title from unnest($1::int[]) as u(id)"
    " cross join lateral (select id, title from posts where user_id = u.id"
    " order by id limit $2) as p order by u.id, p.id"
)
COMMENTS_OF_POSTS: Final = (
    "select p.id as parent_id, c.content, c.user_id from unnest($1::int[]) as p(id)"
    " cross join lateral (select id, content, user_id, created_at from comments"
    " where post_id = p.id order by created_at desc, id desc limit $2) as c"
    " order by p.id, c.created_at desc, c.id desc"
)

Row = asyncpg.Record
Json = dict[str, Any]
Handler = Callable[[asyncpg.Connection, dict[str, Any]], Awaitable[Json]]


def _global_id(row_id: int) -> str:
    return base64.b64encode(b"Post:%d" % row_id).decode()


def _grouped(rows: list[Row]) -> dict[int, list[Row]]:
    groups: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row["parent_id"]].append(row)
    return groups


async def _usernames(connection: asyncpg.Connection, ids: set[int]) -> dict[int, str]:
    return {row["id"]: row["username"] for row in await connection.fetch(USERNAMES, list(ids))}


async def _comment_pages(
    connection: asyncpg.Connection, post_ids: list[int], size: int
) -> dict[int, Json]:
    """Each post's comments page with authors: two statements for all the posts."""
    comments = await connection.fetch(COMMENTS_OF_POSTS, post_ids, size)
    authors = await _usernames(connection, {row["user_id"] for row in comments})
    pages = {post_id: {"nodes": []} for post_id in post_ids}
    for row in comments:
        pages[row["parent_id"]]["nodes"].append(
            {"content": row["content"], "author": {"username": authors[row["user_id"]]}}
        )
    return pages


async def _posts_with_details(
    connection: asyncpg.Connection, posts: list[Row], comments: int
) -> list[Json]:
    """id, title, author, tags and a comments page for each post: four statements."""
    post_ids = [row["id"] for row in posts]
    authors = await _usernames(connection, {row["user_id"] for row in posts})
    tags = defaultdict(list)
    for row in await connection.fetch(TAGS_OF_POSTS, post_ids):
        tags[row["post_id"]].append({"name": row["name"]})
    pages = await _comment_pages(connection, post_ids, comments)
    return [
        {
            "id": _global_id(row["id"]),
            "title": row["title"],
            "author": {"username": authors[row["user_id"]]},
            "tags": tags[row["id"]],
            "comments": pages[row["id"]],
        }
        for row in posts
    ]


async def feed(connection: asyncpg.Connection, variables: dict[str, Any]) -> Json:
    posts = await connection.fetch(FEED_POSTS, queries.FEED_PAGE)
    nodes = await _posts_with_details(connection, posts, queries.COMMENTS_PAGE)
    return {"posts": {"nodes": nodes}}


async def deep(connection: asyncpg.Connection, variables: dict[str, Any]) -> Json:
    users = await connection.fetch(USER_PAGE, queries.DEEP_USERS)
    posts = await connection.fetch(POSTS_OF_USERS, [row["id"] for row in users], queries.DEEP_POSTS)
    pages = await _comment_pages(connection, [row["id"] for row in posts], queries.COMMENTS_PAGE)
    by_user = _grouped(posts)
    return {
        "users": {
            "nodes": [
                {
                    "username": user["username"],
                    "posts": {
                        "nodes": [
                            {
                                "id": _global_id(post["id"]),
                                "title": post["title"],
                                "comments": pages[post["id"]],
                            }
                            for post in by_user[user["id"]]
                        ]
                    },
                }
                for user in users
            ]
        }
    }


async def detail(connection: asyncpg.Connection, variables: dict[str, Any]) -> Json:
    post_id = _post_row_id(variables.get("id"))
    post = None if post_id is None else await connection.fetchrow(POST_BY_ID, post_id)
    if post is None:
        return {"post": None}
    (node,) = await _posts_with_details(connection, [post], queries.DETAIL_COMMENTS_PAGE)
    return {"post": node}


def _post_row_id(global_id: object) -> int | None:
    if not isinstance(global_id, str):
        return None
    try:
        type_name, _, raw_id = base64.b64decode(global_id, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return int(raw_id) if type_name == "Post" and raw_id.isdigit() else None


HANDLERS: Final[dict[str, Handler]] = {
    queries.FEED: feed,
    queries.DEEP: deep,
    queries.DETAIL: detail,
}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FloorApp:
    """The raw ASGI app: POST /graphql with a known query, GET /healthz, and the lifespan."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}')
            return
        body = await _read_body(receive)
        await self._graphql(send, body)

    async def _graphql(self, send: Send, body: bytes) -> None:
        try:
            request = orjson.loads(body)
            handler = HANDLERS[request["query"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await _respond(send, 400, b'{"errors":[{"message":"unknown query"}]}')
            return
        assert self._pool is not None
        async with self._pool.acquire() as connection:
            data = await handler(connection, request.get("variables") or {})
        await _respond(send, 200, orjson.dumps({"data": data}))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._pool = await asyncpg.create_pool(
                    self._database_url, min_size=1, max_size=POOL_SIZE, reset=_keep_as_it_is
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    await self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _keep_as_it_is(connection: asyncpg.Connection) -> None:
    """The floor sets no session state, so a released connection has nothing to undo.

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a round trip (and a counted SELECT) per request for nothing.
    """


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> FloorApp:
    """The floor's ASGI app, on the database `BENCH_DATABASE_URL` names."""
    return FloorApp(os.environ["BENCH_DATABASE_URL"])
