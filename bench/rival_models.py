"""The rivals' own SQLAlchemy 2 models over gql_blog's tables: only the columns the bench reads.

graphene-sqlalchemy and strawberry-sqlalchemy-mapper build their schemas from models, and
relationship loads need relationships that gql_blog's models leave `lazy="raise"` (gql_blog
never loads through them). These are ordinary declarative models, as a team using either
library would write them, with each relationship ordered as gql_blog orders that list. Only
SQLAlchemy is imported here: graphene's venv uses this module too.
"""

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str]
    posts: Mapped[list["PostRow"]] = relationship(back_populates="author", order_by="PostRow.id")


class TagRow(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


class PostRow(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    published: Mapped[bool]
    created_at: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author: Mapped[UserRow] = relationship(back_populates="posts")
    tags: Mapped[list[TagRow]] = relationship(
        secondary="post_tags", order_by=(TagRow.name, TagRow.id), viewonly=True
    )
    # The link rows themselves, for a mapper that cannot follow `secondary` (strawberry's).
    tag_links: Mapped[list["PostTagRow"]] = relationship(viewonly=True)
    comments: Mapped[list["CommentRow"]] = relationship(
        order_by="(CommentRow.created_at.desc(), CommentRow.id.desc())"
    )


class CommentRow(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[str]
    created_at: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    author: Mapped[UserRow] = relationship()


class PostTagRow(Base):
    __tablename__ = "post_tags"
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), primary_key=True)
    tag: Mapped[TagRow] = relationship(viewonly=True)
