"""The root Query: nodes by global id, the viewer, single lookups and root connections."""

import asyncio
from typing import Any

import strawberry

from gql_blog import models
from gql_blog.arguments import ordering_of, page_request
from gql_blog.entities import NODE_MODELS
from gql_blog.ids import decode_global_id
from gql_blog.schema.audit_log import AuditLogWhere, audit_log_connection
from gql_blog.schema.connections import (
    Connection,
    RootSource,
    compile_filter,
    connection,
    connection_field,
)
from gql_blog.schema.inputs import PostWhere, TagWhere, UserWhere
from gql_blog.schema.search import PostSearchConnection, resolve_search_posts
from gql_blog.schema.stats import (
    PostGroup,
    PostStats,
    UserStats,
    resolve_post_groups,
    resolve_post_stats,
    resolve_user_stats,
)
from gql_blog.schema.types import (
    NODE_CONVERTERS,
    AuditLogEntry,
    BlogInfo,
    Node,
    Post,
    PostOrder,
    Tag,
    TagOrder,
    User,
    UserOrder,
    node_converter,
)


async def _node(info: BlogInfo, type_name: str, row_id: int) -> Node | None:
    model, convert = NODE_MODELS[type_name], NODE_CONVERTERS[type_name]
    row = await info.context.loaders.by_model(model).load(row_id)
    return None if row is None else convert(row)


async def _root_connection(
    info: BlogInfo, model: type[models.Base], entity: str, args: dict[str, Any]
) -> Connection[Any]:
    context = info.context
    ordering = ordering_of(entity, args.pop("order_by"))
    where = compile_filter(context.loaders, entity, args.pop("where"))
    request = page_request(context.settings, ordering, where=where, **args)
    page = await context.loaders.root_page(model, request)
    convert = await node_converter(info, entity, page.rows)
    return connection(page, RootSource(context.loaders, model, ordering, where), convert)


def _root_field(
    model: type[models.Base], node: type, where_type: type, order_type: type, description: str
) -> Any:
    """A root connection over every visible row of `model`."""
    entity = node.__name__
    return connection_field(
        lambda root, info, args: _root_connection(info, model, entity, args),
        node=node,
        where_type=where_type,
        order_type=order_type,
        description=description,
        module=__name__,
    )


@strawberry.type
class Query:
    @strawberry.field(
        description="Any object by its global id; null if it does not exist or is hidden."
    )
    async def node(self, info: BlogInfo, id: strawberry.ID) -> Node | None:
        type_name, row_id = decode_global_id(id)
        return await _node(info, type_name, row_id)

    @strawberry.field(description="Objects by global id, in order; one batch per type.")
    async def nodes(self, info: BlogInfo, ids: list[strawberry.ID]) -> list[Node | None]:
        decoded = [decode_global_id(value) for value in ids]
        return list(await asyncio.gather(*(_node(info, *pair) for pair in decoded)))

    @strawberry.field(description="The signed-in user, or null.")
    def viewer(self, info: BlogInfo) -> User | None:
        viewer = info.context.viewer
        return None if viewer is None else User.from_model(viewer)

    @strawberry.field(description="A user by username (compared ignoring case).")
    async def user(self, info: BlogInfo, username: str) -> User | None:
        row = await info.context.loaders.user_by_username(username)
        return None if row is None else User.from_model(row)

    users = _root_field(
        models.User, User, UserWhere, UserOrder, "All users; by username unless ordered otherwise."
    )

    @strawberry.field(
        description="A post by global id; null if missing, hidden or of another type."
    )
    async def post(self, info: BlogInfo, id: strawberry.ID) -> Post | None:
        type_name, row_id = decode_global_id(id)
        if type_name != "Post":
            return None
        row = await info.context.loaders.posts.load(row_id)
        return None if row is None else Post.from_model(row)

    @strawberry.field(description="A post by slug; null if no visible post has it.")
    async def post_by_slug(self, info: BlogInfo, slug: str) -> Post | None:
        row = await info.context.loaders.post_by_slug(slug)
        return None if row is None else Post.from_model(row)

    posts = _root_field(
        models.Post,
        Post,
        PostWhere,
        PostOrder,
        "Posts the viewer may see; newest first unless ordered otherwise.",
    )

    @strawberry.field(description="A tag by name (trimmed, lower-cased).")
    async def tag(self, info: BlogInfo, name: str) -> Tag | None:
        row = await info.context.loaders.tag_by_name(name)
        return None if row is None else Tag.from_model(row)

    tags = _root_field(
        models.Tag, Tag, TagWhere, TagOrder, "All tags; by name unless ordered otherwise."
    )

    user_stats: UserStats = strawberry.field(
        resolver=resolve_user_stats, description="Counts and ages of the users `where` matches."
    )
    post_stats: PostStats = strawberry.field(
        resolver=resolve_post_stats, description="Counts and dates of the visible posts matched."
    )
    post_groups: list[PostGroup] = strawberry.field(
        resolver=resolve_post_groups,
        description="Visible posts grouped and counted; largest groups first, then by key.",
    )

    @strawberry.field(description="Who changed which user, post or comment; admins only.")
    async def audit_log(
        self,
        info: BlogInfo,
        first: int | None = None,
        after: str | None = None,
        where: AuditLogWhere | None = None,
    ) -> Connection[AuditLogEntry]:
        return await audit_log_connection(info, first=first, after=after, where=where)

    search_posts: PostSearchConnection = strawberry.field(
        resolver=resolve_search_posts,
        description="Posts matching a full-text search of title and content, best match first.",
    )
