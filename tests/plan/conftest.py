"""Fixtures for the planned read path: a small, varied blog and the app served twice over it.

`twins` serves one app with the planner and one without, each on its own engine as in
production, over a committed blog (users, posts, drafts, tags and comments whose shapes exercise
visibility, null fields and ordering ties); every table is emptied afterwards. Committed rows,
not the test's transaction: one request that breaks its connection (a statement cancelled when
a sibling root field failed, as in test_app.py) would otherwise fail every later request too.
"""

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import auth, engines, models
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.ids import encode_global_id
from tests.committed import empty_tables
from tests.conftest import graphql_endpoint
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import serve_app
from tests.plan.differential import Twins

# Equal timestamps on purpose: orderings by createdAt must fall back to the id alike.
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1, microseconds=250_000)
T2 = T0 + timedelta(days=2)
T3 = T0 + timedelta(days=3)

# Who asks: nobody, an author who owns drafts (not an admin), an admin.
ROLES = ["anonymous", "author", "admin"]


@dataclass(frozen=True, slots=True)
class Blog:
    users: dict[str, models.User]
    posts: dict[str, models.Post]
    tags: dict[str, models.Tag]
    comments: dict[str, models.Comment]

    def viewer(self, role: str) -> models.User | None:
        return {"anonymous": None, "author": self.users["ann"], "admin": self.users["admin"]}[role]

    def global_id(self, kind: str, name: str) -> str:
        """The global id of the row named `name` among the blog's `kind` (post, user, ...)."""
        rows: dict[str, models.User | models.Post | models.Tag | models.Comment] = {
            "post": self.posts,
            "user": self.users,
            "tag": self.tags,
            "comment": self.comments,
        }[kind]  # type: ignore[assignment]  # each dict holds one model
        return encode_global_id(kind.capitalize(), rows[name].id)


async def _users(db: AsyncSession) -> dict[str, models.User]:
    users = {
        "admin": await make_user(
            db, username="admin", first_name="Ada", last_name="Min", age=40, is_admin=True
        ),
        "ann": await make_user(
            db, username="ann", first_name="Ann", last_name="Author", age=30, created_at=T0
        ),
        "bob": await make_user(db, username="bob", created_at=T0),
        "cyd": await make_user(db, username="Cyd", first_name="Cyd", age=30, created_at=T1),
        "dee": await make_user(db, username="dee", last_name="Dee", is_active=False),
        "eve": await make_user(db, username="eve", first_name="Ève", last_name="Ünïcode", age=22),
    }
    users["ann"].bio = "Writes drafts — and «quotes» 🎉"
    await db.flush()
    return users


async def _posts(
    db: AsyncSession, users: dict[str, models.User], tags: dict[str, models.Tag]
) -> dict[str, models.Post]:
    ann, bob = users["ann"], users["bob"]
    return {
        "hello": await make_post(
            db,
            author=ann,
            title="Hello world",
            content='Grüße aus der Welt: ünïcode, "quotes" and a\nnewline.',
            tags=[tags["python"], tags["sql"]],
            created_at=T0,
            slug="hello-world",
            published_at=T2,  # written at T0, published later
        ),
        "same_ann": await make_post(
            db,
            author=ann,
            title="Same title",
            tags=[tags["python"]],
            created_at=T0,
            slug="same-title",
        ),
        "ann_draft": await make_post(
            db,
            author=ann,
            title="Draft by ann",
            published=False,
            tags=[tags["secret"], tags["python"]],
            created_at=T1,
            slug="draft-by-ann",
        ),
        "same_bob": await make_post(
            db,
            author=bob,
            title="Same title",
            tags=[tags["sql"], tags["graphql"]],
            created_at=T0,
            slug="same-title-2",
        ),
        "bob_draft": await make_post(
            db,
            author=bob,
            title="Bob's draft",
            published=False,
            tags=[tags["graphql"]],
            created_at=T2,
        ),
        "untagged": await make_post(db, author=users["cyd"], title="untagged", created_at=T2),
        "news": await make_post(
            db,
            author=users["admin"],
            title="Announcement",
            tags=[tags["python"], tags["sql"], tags["graphql"]],
            created_at=T3,
        ),
    }


async def _comments(
    db: AsyncSession, users: dict[str, models.User], posts: dict[str, models.Post]
) -> dict[str, models.Comment]:
    # (name, post, author, created at): drafts carry comments too, some at equal times.
    shapes = [
        ("hello_bob", "hello", "bob", T1),
        ("hello_cyd", "hello", "cyd", T1),
        ("hello_ann", "hello", "ann", T2),
        ("draft_ann", "ann_draft", "ann", T1),
        ("draft_admin", "ann_draft", "admin", T1),
        ("same_bob_ann", "same_bob", "ann", T1),
        ("bob_draft_bob", "bob_draft", "bob", T2),
        ("news_eve_1", "news", "eve", T3),
        ("news_eve_2", "news", "eve", T3),
        ("news_dee", "news", "dee", T0),
    ]
    comments = {
        name: await make_comment(
            db,
            post=posts[post],
            author=users[author],
            content=f"Comment {name}",
            created_at=created_at,
            edited_at=T3 if name == "hello_cyd" else None,
        )
        for name, post, author, created_at in shapes
    }
    # Threads: (name, parent, author, created at); replies are comments of the parent's post.
    replies = [
        ("reply_ann", "hello_bob", "ann", T2),
        ("reply_eve", "hello_bob", "eve", T2),
        ("reply_deep", "reply_ann", "bob", T3),
        ("reply_draft", "draft_ann", "admin", T2),
    ]
    for name, parent, author, created_at in replies:
        comments[name] = await make_comment(
            db,
            post=next(p for p in posts.values() if p.id == comments[parent].post_id),
            author=users[author],
            content=f"Comment {name}",
            created_at=created_at,
            parent=comments[parent],
        )
    return comments


async def build_blog(db: AsyncSession) -> Blog:
    users = await _users(db)
    tags = {name: await make_tag(db, name) for name in ["python", "sql", "graphql", "secret"]}
    tags["unused"] = await make_tag(db, "unused")
    posts = await _posts(db, users, tags)
    comments = await _comments(db, users, posts)
    return Blog(users=users, posts=posts, tags=tags, comments=comments)


@dataclass(frozen=True, slots=True)
class Served:
    blog: Blog
    twins: Twins


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    """The committed blog, and the app with the planner and the app without it over it."""
    engine = engines.create_engine(settings)
    planned_app = create_app(dataclasses.replace(settings, planner=True))
    generic_app = create_app(dataclasses.replace(settings, planner=False))
    try:
        async with (
            engines.create_sessionmaker(engine)() as session,
            serve_app(planned_app, session) as planned,
            serve_app(generic_app, session) as generic,
        ):
            blog = await build_blog(session)
            tokens = {role: await _token(session, blog.viewer(role)) for role in ROLES}
            await session.commit()
            twins = Twins(
                planned=planned.http,
                generic=generic.http,
                planner=graphql_endpoint(planned_app).planner,
                tokens=tokens,
            )
            yield Served(blog, twins)
    finally:
        await empty_tables(engine)
        await engine.dispose()


async def _token(session: AsyncSession, viewer: models.User | None) -> str | None:
    if viewer is None:
        return None
    return await auth.issue_token(session, viewer, lifetime=timedelta(hours=1))
