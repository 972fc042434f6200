"""Stats and groups: `userStats`, `postStats` and `postGroups`, views over gql_blog.stats."""

import enum
from datetime import datetime
from typing import Self

import strawberry

from gql_blog import stats
from gql_blog.bad_input import UserInputError
from gql_blog.schema.connections import compile_filter
from gql_blog.schema.inputs import PostWhere, UserWhere
from gql_blog.schema.types import BlogInfo, Tag, User


@strawberry.type(description="Counts and ages over the users a filter matches.")
class UserStats:
    count: int = strawberry.field(description="How many users match.")
    average_age: float | None = strawberry.field(
        description="The mean of the known ages; null when no age is known."
    )
    min_age: int | None = strawberry.field(description="The youngest known age.")
    max_age: int | None = strawberry.field(description="The oldest known age.")

    @classmethod
    def from_stats(cls, row: stats.UserStats) -> Self:
        return cls(
            count=row.count,
            average_age=row.average_age,
            min_age=row.min_age,
            max_age=row.max_age,
        )


@strawberry.type(description="Counts and dates over the posts a filter matches (visible only).")
class PostStats:
    count: int = strawberry.field(description="How many visible posts match.")
    published_count: int = strawberry.field(description="How many of them are published.")
    first_created_at: datetime | None = strawberry.field(description="The oldest one's creation.")
    last_created_at: datetime | None = strawberry.field(description="The newest one's creation.")

    @classmethod
    def from_stats(cls, row: stats.PostStats) -> Self:
        return cls(
            count=row.count,
            published_count=row.published_count,
            first_created_at=row.first_created_at,
            last_created_at=row.last_created_at,
        )


@strawberry.enum(description="What posts can be grouped by.")
class PostGroupField(enum.Enum):
    AUTHOR = "AUTHOR"
    TAG = "TAG"
    PUBLISHED = "PUBLISHED"
    CREATED_MONTH = "CREATED_MONTH"


@strawberry.type(description="What a group's posts share; fields not grouped by are null.")
class PostGroupKey:
    author_id: strawberry.Private[int | None]
    tag_id: strawberry.Private[int | None]

    @strawberry.field(description="The posts' author.")
    async def author(self, info: BlogInfo) -> User | None:
        if self.author_id is None:
            return None
        row = await info.context.loaders.users.load(self.author_id)
        return None if row is None else User.from_model(row)

    @strawberry.field(description="The tag; null for the group of untagged posts.")
    async def tag(self, info: BlogInfo) -> Tag | None:
        if self.tag_id is None:
            return None
        row = await info.context.loaders.tags.load(self.tag_id)
        return None if row is None else Tag.from_model(row)

    published: bool | None
    created_month: str | None = strawberry.field(description="The month created, YYYY-MM in UTC.")


@strawberry.type(description="Posts sharing a key, counted.")
class PostGroup:
    key: PostGroupKey
    count: int = strawberry.field(
        description="Posts in the group; a post with two tags counts in both tag groups."
    )
    first_created_at: datetime | None = strawberry.field(description="The oldest one's creation.")
    last_created_at: datetime | None = strawberry.field(description="The newest one's creation.")

    @classmethod
    def from_group(cls, group: stats.PostGroup) -> Self:
        key = group.key
        return cls(
            key=PostGroupKey(
                published=key.published,
                created_month=key.created_month,
                author_id=key.author_id,
                tag_id=key.tag_id,
            ),
            count=group.count,
            first_created_at=group.first_created_at,
            last_created_at=group.last_created_at,
        )


async def resolve_user_stats(info: BlogInfo, where: UserWhere | None = None) -> UserStats:
    context = info.context
    compiled = compile_filter(context.loaders, "User", where)
    return UserStats.from_stats(await stats.user_stats(context.db, compiled))


async def resolve_post_stats(info: BlogInfo, where: PostWhere | None = None) -> PostStats:
    context = info.context
    compiled = compile_filter(context.loaders, "Post", where)
    row = await stats.post_stats(context.db, viewer=context.viewer, where=compiled)
    return PostStats.from_stats(row)


async def resolve_post_groups(
    info: BlogInfo,
    *,
    where: PostWhere | None = None,
    group_by: list[PostGroupField],
    first: int | None = None,
) -> list[PostGroup]:
    context = info.context
    if not group_by:
        raise UserInputError("`groupBy` must name at least one field.")
    settings = context.settings
    limit = stats.group_limit(settings.default_page_size, settings.max_page_size, first)
    compiled = compile_filter(context.loaders, "Post", where)
    groups = await stats.post_groups(
        context.db,
        viewer=context.viewer,
        where=compiled,
        group_by=[stats.GroupField(field.value) for field in group_by],
        limit=limit,
    )
    return [PostGroup.from_group(group) for group in groups]
