"""The `where` inputs (typed filters); `arguments.plain_where` turns them into plain dicts."""

import enum
from datetime import datetime
from typing import ClassVar

import strawberry
from strawberry import UNSET


@strawberry.enum(description="How string filters compare text.")
class FilterMode(enum.Enum):
    DEFAULT = "DEFAULT"
    INSENSITIVE = "INSENSITIVE"


@strawberry.input(description="Conditions on an Int; comparisons never match null (use isNull).")
class IntFilter:
    is_operator_input: ClassVar[bool] = True
    eq: int | None = UNSET
    ne: int | None = UNSET
    in_: list[int] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[int] | None = UNSET
    lt: int | None = UNSET
    lte: int | None = UNSET
    gt: int | None = UNSET
    gte: int | None = UNSET
    is_null: bool | None = UNSET


@strawberry.input(description="Conditions on a String; case-sensitive unless mode: INSENSITIVE.")
class StringFilter:
    is_operator_input: ClassVar[bool] = True
    eq: str | None = UNSET
    ne: str | None = UNSET
    in_: list[str] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[str] | None = UNSET
    contains: str | None = UNSET
    starts_with: str | None = UNSET
    ends_with: str | None = UNSET
    is_null: bool | None = UNSET
    mode: FilterMode | None = UNSET


@strawberry.input(description="Conditions on a Boolean.")
class BooleanFilter:
    is_operator_input: ClassVar[bool] = True
    eq: bool | None = UNSET
    ne: bool | None = UNSET
    is_null: bool | None = UNSET


@strawberry.input(description="Conditions on a DateTime; comparisons never match null.")
class DateTimeFilter:
    is_operator_input: ClassVar[bool] = True
    eq: datetime | None = UNSET
    ne: datetime | None = UNSET
    in_: list[datetime] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[datetime] | None = UNSET
    lt: datetime | None = UNSET
    lte: datetime | None = UNSET
    gt: datetime | None = UNSET
    gte: datetime | None = UNSET
    is_null: bool | None = UNSET


@strawberry.input(description="Conditions on a global id.")
class IDFilter:
    is_id_filter: ClassVar[bool] = True
    eq: strawberry.ID | None = UNSET
    ne: strawberry.ID | None = UNSET
    in_: list[strawberry.ID] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[strawberry.ID] | None = UNSET


@strawberry.input(description="Users to match: every given condition must hold.")
class UserWhere:
    entity: ClassVar[str] = "User"
    id: IDFilter | None = UNSET
    username: StringFilter | None = UNSET
    email: StringFilter | None = UNSET
    full_name: StringFilter | None = UNSET
    age: IntFilter | None = UNSET
    is_active: BooleanFilter | None = UNSET
    created_at: DateTimeFilter | None = UNSET
    posts: "PostListFilter | None" = UNSET
    comments: "CommentListFilter | None" = UNSET
    and_: list["UserWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["UserWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "UserWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(description="Posts to match: every given condition must hold.")
class PostWhere:
    entity: ClassVar[str] = "Post"
    id: IDFilter | None = UNSET
    title: StringFilter | None = UNSET
    content: StringFilter | None = UNSET
    published: BooleanFilter | None = UNSET
    created_at: DateTimeFilter | None = UNSET
    updated_at: DateTimeFilter | None = UNSET
    published_at: DateTimeFilter | None = UNSET
    slug: StringFilter | None = UNSET
    author: UserWhere | None = UNSET
    tags: "TagListFilter | None" = UNSET
    comments: "CommentListFilter | None" = UNSET
    and_: list["PostWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["PostWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "PostWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(description="Comments to match: every given condition must hold.")
class CommentWhere:
    entity: ClassVar[str] = "Comment"
    id: IDFilter | None = UNSET
    content: StringFilter | None = UNSET
    created_at: DateTimeFilter | None = UNSET
    edited_at: DateTimeFilter | None = UNSET
    author: UserWhere | None = UNSET
    post: PostWhere | None = UNSET
    parent: "CommentWhere | None" = UNSET
    is_reply: BooleanFilter | None = strawberry.field(
        default=UNSET, description="Whether the comment replies to another one."
    )
    and_: list["CommentWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["CommentWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "CommentWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(description="Tags to match: every given condition must hold.")
class TagWhere:
    entity: ClassVar[str] = "Tag"
    id: IDFilter | None = UNSET
    name: StringFilter | None = UNSET
    posts: "PostListFilter | None" = UNSET
    and_: list["TagWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["TagWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "TagWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(
    description="Conditions on a list of posts (SQL EXISTS); every over none is true."
)
class PostListFilter:
    some: PostWhere | None = UNSET
    none: PostWhere | None = UNSET
    every: PostWhere | None = UNSET


@strawberry.input(description="Conditions on a list of comments (SQL EXISTS).")
class CommentListFilter:
    some: CommentWhere | None = UNSET
    none: CommentWhere | None = UNSET
    every: CommentWhere | None = UNSET


@strawberry.input(description="Conditions on a list of tags (SQL EXISTS).")
class TagListFilter:
    some: TagWhere | None = UNSET
    none: TagWhere | None = UNSET
    every: TagWhere | None = UNSET
