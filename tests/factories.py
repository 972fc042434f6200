"""Factories: each returns a flushed row with unique defaults; tests name only what matters."""

import itertools
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models, slugs

_sequence = itertools.count(1)


def _next() -> int:
    return next(_sequence)


async def make_user(
    db: AsyncSession,
    *,
    username: str | None = None,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    age: int | None = None,
    is_admin: bool = False,
    is_active: bool = True,
    created_at: datetime | None = None,
) -> models.User:
    number = _next()
    user = models.User(
        username=username or f"user{number}",
        email=email or f"user{number}@example.test",
        password_hash="not-a-real-hash",
        first_name=first_name,
        last_name=last_name,
        age=age,
        is_admin=is_admin,
        is_active=is_active,
    )
    if created_at is not None:
        user.created_at = created_at
    db.add(user)
    await db.flush()
    return user


async def make_tag(db: AsyncSession, name: str | None = None) -> models.Tag:
    tag = models.Tag(name=name or f"tag{_next()}")
    db.add(tag)
    await db.flush()
    return tag


async def make_post(
    db: AsyncSession,
    *,
    author: models.User,
    title: str | None = None,
    content: str = "Some words about something.",
    published: bool = True,
    tags: list[models.Tag] | None = None,
    created_at: datetime | None = None,
    slug: str | None = None,
    published_at: datetime | None = None,
) -> models.Post:
    """A post; its slug is unique (the title's with a number, unless given), and a published
    post's publishing time its creation time unless given."""
    title = title or f"Post {_next()}"
    post = models.Post(
        title=title,
        content=content,
        published=published,
        user_id=author.id,
        slug=slug or f"{slugs.slugify(title)[:70]}-{_next()}",
    )
    if created_at is not None:
        post.created_at = created_at
    if published:
        post.published_at = published_at or created_at or models.utc_now()
    db.add(post)
    await db.flush()
    if tags:
        await db.execute(
            insert(models.post_tags), [{"post_id": post.id, "tag_id": tag.id} for tag in tags]
        )
    return post


async def make_comment(
    db: AsyncSession,
    *,
    post: models.Post,
    author: models.User,
    content: str | None = None,
    created_at: datetime | None = None,
    parent: models.Comment | None = None,
    edited_at: datetime | None = None,
) -> models.Comment:
    comment = models.Comment(
        content=content or f"Comment {_next()}",
        post_id=post.id,
        user_id=author.id,
        parent_id=None if parent is None else parent.id,
        edited_at=edited_at,
    )
    if created_at is not None:
        comment.created_at = created_at
    db.add(comment)
    await db.flush()
    return comment
