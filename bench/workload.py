"""The soak's workload: who signs in, what is read and written, and the files bench/soak.lua reads.

Made once, after seeding, from the seeded rows: sign-in tokens for the first `users` seeded
accounts (wrk's requests take them in turn) and a few more for the subscribers; published posts
to read in detail and to comment on; users whose pages are read. The query texts go to wrk as
JSON strings, so the Lua script only splices in variables. A random run id makes every comment
text, post title and tag name of this run unique.
"""

import asyncio
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import select

from bench import queries
from gql_blog import auth, engines, models
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id

TOKEN_LIFETIME: Final = timedelta(days=1)

USER_PAGE: Final = (
    "query UserPage($username: String!) { user(username: $username) { username fullName"
    " posts(first: 10) { totalCount nodes { id title createdAt tags { name } } } } }"
)
ADD_COMMENT: Final = (
    "mutation AddComment($input: AddCommentInput!) { addComment(input: $input) { __typename"
    " ... on Comment { id post { id } content } ... on ValidationError { field message }"
    " ... on Error { message } } }"
)
CREATE_POST: Final = (
    "mutation CreatePost($input: CreatePostInput!) { createPost(input: $input) { __typename"
    " ... on Post { id published title tags { name } } ... on Error { message } } }"
)
QUERIES: Final = {
    "feed": queries.FEED,
    "detail": queries.DETAIL,
    "user": USER_PAGE,
    "comment": ADD_COMMENT,
    "post": CREATE_POST,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """How many of each the workload takes from the seeded rows."""

    users: int = 64
    subscriber_users: int = 8
    comment_posts: int = 16
    read_posts: int = 256
    read_users: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    run: str
    tokens: list[str]
    subscriber_tokens: list[str]
    comment_posts: list[int]
    environment: dict[str, str]  # SOAK_* → the file bench/soak.lua reads

    def probe_title(self) -> str:
        return f"soak {self.run}-probe"


def tags_of(title: str) -> list[str]:
    """The two new tags of the post titled `soak MARKER` (bench/soak.lua, the probe), by name."""
    marker = title.removeprefix("soak ")
    return [f"{marker}-a", f"{marker}-b"]


async def prepare(database_url: str, shape: Shape, *, folder: Path) -> Workload:
    """Tokens and ids from the seeded database at `database_url`; the files in `folder`."""
    engine = engines.create_engine(Settings(database_url=database_url))
    try:
        async with engines.create_sessionmaker(engine).begin() as session:
            users = list(
                await session.scalars(
                    select(models.User)
                    .where(models.User.is_admin.is_(False))
                    .order_by(models.User.id)
                    .limit(max(shape.users + shape.subscriber_users, shape.read_users))
                )
            )
            tokens = []
            for user in users[: shape.users + shape.subscriber_users]:
                tokens.append(await auth.issue_token(session, user, lifetime=TOKEN_LIFETIME))
            published = list(
                await session.scalars(
                    select(models.Post.id)
                    .where(models.Post.published.is_(True))
                    .order_by(models.Post.id)
                    .limit(shape.comment_posts + shape.read_posts)
                )
            )
    finally:
        await engine.dispose()
    comment_posts = published[: shape.comment_posts]
    files = {
        "SOAK_TOKENS": tokens[: shape.users],
        "SOAK_COMMENT_POSTS": [encode_global_id("Post", post_id) for post_id in comment_posts],
        "SOAK_DETAIL_IDS": [encode_global_id("Post", post_id) for post_id in published],
        "SOAK_USERNAMES": [user.username for user in users[: shape.read_users]],
        "SOAK_QUERIES": [f"{name}\t{json.dumps(text)}" for name, text in QUERIES.items()],
    }
    environment = await asyncio.to_thread(_write_files, folder, files)
    run = secrets.token_hex(4)
    return Workload(
        run=run,
        tokens=tokens[: shape.users],
        subscriber_tokens=tokens[shape.users :],
        comment_posts=comment_posts,
        environment=environment | {"SOAK_RUN": run},
    )


def _write_files(folder: Path, files: dict[str, list[str]]) -> dict[str, str]:
    """Each variable's lines in a file of its own; variable → path."""
    folder.mkdir(parents=True, exist_ok=True)
    environment = {}
    for variable, lines in files.items():
        path = folder / f"{variable.lower()}.txt"
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        environment[variable] = str(path)
    return environment
