"""The GraphQL object types: thin views over the ORM rows, relations resolved through loaders."""

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar, Optional, Self, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from gql_blog import audit, models
from gql_blog.arguments import ordering_of, page_request
from gql_blog.ids import encode_global_id
from gql_blog.plan.declarations import Children, Email, GlobalId, Tags, ToOne, declare
from gql_blog.read_model import RELATIONS
from gql_blog.schema.connections import (
    ChildSource,
    Connection,
    NullsOrder,
    OrderDirection,
    compile_filter,
    connection,
    connection_field,
)
from gql_blog.schema.context import Context
from gql_blog.schema.inputs import CommentWhere, PostWhere
from gql_blog.schema.lookahead import node_fields
from gql_blog.visibility import can_see_email

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT")
BlogInfo = Info[Context, None]


@strawberry.enum(description="Fields users can be ordered by.")
class UserOrderField(enum.Enum):
    ID = "ID"
    USERNAME = "USERNAME"
    AGE = "AGE"
    CREATED_AT = "CREATED_AT"
    FULL_NAME = "FULL_NAME"


@strawberry.enum(description="Fields posts can be ordered by.")
class PostOrderField(enum.Enum):
    ID = "ID"
    TITLE = "TITLE"
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    PUBLISHED_AT = "PUBLISHED_AT"


@strawberry.enum(description="Fields comments can be ordered by.")
class CommentOrderField(enum.Enum):
    ID = "ID"
    CREATED_AT = "CREATED_AT"


@strawberry.enum(description="Fields tags can be ordered by.")
class TagOrderField(enum.Enum):
    ID = "ID"
    NAME = "NAME"


@strawberry.input(description="One sort key for users; the id always breaks ties.")
class UserOrder:
    field: UserOrderField
    direction: OrderDirection = OrderDirection.ASC
    nulls: NullsOrder | None = None


@strawberry.input(description="One sort key for posts; the id always breaks ties.")
class PostOrder:
    field: PostOrderField
    direction: OrderDirection = OrderDirection.ASC
    nulls: NullsOrder | None = None


@strawberry.input(description="One sort key for comments; the id always breaks ties.")
class CommentOrder:
    field: CommentOrderField
    direction: OrderDirection = OrderDirection.ASC
    nulls: NullsOrder | None = None


@strawberry.input(description="One sort key for tags; the id always breaks ties.")
class TagOrder:
    field: TagOrderField
    direction: OrderDirection = OrderDirection.ASC
    nulls: NullsOrder | None = None


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    row_id: strawberry.Private[int]
    type_name: ClassVar[str]

    @strawberry.field(
        description="The globally unique, opaque id of this object.", metadata=declare(GlobalId())
    )
    def id(self) -> strawberry.ID:
        return strawberry.ID(encode_global_id(self.type_name, self.row_id))


async def _children(
    info: BlogInfo,
    *,
    relation: str,
    parent_id: int,
    entity: str,
    args: dict[str, Any],
) -> Connection[Any]:
    """A nested connection: this parent's page comes from one loader batch for all parents."""
    context = info.context
    ordering = ordering_of(entity, args.pop("order_by"), RELATIONS[relation].default_order)
    where = compile_filter(context.loaders, entity, args.pop("where"))
    request = page_request(context.settings, ordering, where=where, **args)
    page = await context.loaders.pages(relation, request).load(parent_id)
    source = ChildSource(context.loaders, relation, parent_id, ordering, where)
    return connection(page, source, await node_converter(info, entity, page.rows))


def _children_field(
    relation: str, entity: str, where_type: type, order_type: type, description: str
) -> Any:
    """A nested connection over `relation`, declared for the planner too."""
    return connection_field(
        lambda parent, info, args: _children(
            info, relation=relation, parent_id=parent.row_id, entity=entity, args=args
        ),
        node=entity,
        where_type=where_type,
        order_type=order_type,
        description=description,
        module=__name__,
        metadata=declare(Children(relation, entity)),
    )


async def _rows_by_key(loader: Any, keys: list[int]) -> dict[int, Any]:
    """Load `keys` in one batch (the page's siblings together); key → row."""
    unique = list(dict.fromkeys(keys))
    return dict(zip(unique, await loader.load_many(unique), strict=True))


async def node_converter(info: BlogInfo, entity: str, rows: list[Any]) -> Callable[[Any], Any]:
    """Rows → nodes, with the to-one relations their selection asks for loaded ahead."""
    wanted = node_fields(info)
    loaders = info.context.loaders
    if entity == "Post":
        authors = tags = None
        if "author" in wanted:
            authors = await _rows_by_key(loaders.users, [row.user_id for row in rows])
        if "tags" in wanted:
            tags = await _rows_by_key(loaders.tags_of_posts, [row.id for row in rows])
        return lambda row: Post.from_model(
            row,
            author=None if authors is None else authors[row.user_id],
            tags=None if tags is None else tags[row.id],
        )
    if entity == "Comment":
        comment_authors = posts = None
        if "author" in wanted:
            comment_authors = await _rows_by_key(loaders.users, [row.user_id for row in rows])
        if "post" in wanted:
            posts = await _rows_by_key(loaders.posts, [row.post_id for row in rows])
        return lambda row: Comment.from_model(
            row,
            author=None if comment_authors is None else comment_authors[row.user_id],
            post=None if posts is None else posts[row.post_id],
        )
    return NODE_CONVERTERS[entity]


def _row_or_raise(row: RowT | None, what: str) -> RowT:
    # A non-null foreign key without its row is a bug, not a user error.
    if row is None:
        raise LookupError(f"missing {what}")
    return row


@strawberry.type(description="A member of the blog.")
class User(Node):
    type_name: ClassVar[str] = "User"
    username: str
    first_name: str | None
    last_name: str | None
    full_name: str | None
    bio: str | None
    age: int | None
    is_active: bool
    is_admin: bool
    created_at: datetime
    private_email: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.User) -> Self:
        return cls(
            row_id=row.id,
            username=row.username,
            first_name=row.first_name,
            last_name=row.last_name,
            full_name=row.full_name,
            bio=row.bio,
            age=row.age,
            is_active=row.is_active,
            is_admin=row.is_admin,
            created_at=row.created_at,
            private_email=row.email,
        )

    @strawberry.field(
        description="Only the user and admins see it; null for everyone else.",
        metadata=declare(Email()),
    )
    def email(self, info: BlogInfo) -> str | None:
        if not can_see_email(info.context.viewer, self.row_id):
            return None
        return self.private_email

    posts = _children_field(
        "User.posts",
        "Post",
        PostWhere,
        PostOrder,
        "The user's posts; drafts only for the user and admins.",
    )

    comments = _children_field(
        "User.comments",
        "Comment",
        CommentWhere,
        CommentOrder,
        "The user's comments on posts the viewer may see.",
    )


async def _load_user(info: BlogInfo, user_id: int) -> User:
    row = await info.context.loaders.users.load(user_id)
    return User.from_model(_row_or_raise(row, f"user {user_id}"))


async def _load_post(info: BlogInfo, post_id: int) -> "Post":
    row = await info.context.loaders.posts.load(post_id)
    return Post.from_model(_row_or_raise(row, f"post {post_id}"))


async def _load_tags(info: BlogInfo, post_id: int) -> list["Tag"]:
    rows = await info.context.loaders.tags_of_posts.load(post_id)
    return [Tag.from_model(row) for row in rows]


@strawberry.type(description="A blog post; drafts are visible to their author and admins only.")
class Post(Node):
    type_name: ClassVar[str] = "Post"
    title: str
    content: str
    published: bool
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = strawberry.field(
        description="When the post last became published; null while it is a draft."
    )
    slug: str = strawberry.field(
        description="Unique and URL-safe; made from the title, kept when the title changes."
    )
    user_id: strawberry.Private[int]
    # Loaded ahead by the connection for the whole page (see lookahead.py), else None.
    author_row: strawberry.Private[models.User | None] = None
    tag_rows: strawberry.Private[list[models.Tag] | None] = None

    @classmethod
    def from_model(
        cls,
        row: models.Post,
        *,
        author: models.User | None = None,
        tags: list[models.Tag] | None = None,
    ) -> Self:
        return cls(
            row_id=row.id,
            title=row.title,
            content=row.content,
            published=row.published,
            created_at=row.created_at,
            updated_at=row.updated_at,
            published_at=row.published_at,
            slug=row.slug,
            user_id=row.user_id,
            author_row=author,
            tag_rows=tags,
        )

    @strawberry.field(
        description="Who wrote the post.",
        graphql_type=User,
        metadata=declare(ToOne("User", "user_id")),
    )
    def author(self, info: BlogInfo) -> User | Awaitable[User]:
        if self.author_row is not None:
            return User.from_model(self.author_row)
        return _load_user(info, self.user_id)

    @strawberry.field(
        description="The post's tags, by name.",
        graphql_type=list["Tag"],
        metadata=declare(Tags()),
    )
    def tags(self, info: BlogInfo) -> list["Tag"] | Awaitable[list["Tag"]]:
        if self.tag_rows is not None:
            return [Tag.from_model(row) for row in self.tag_rows]
        return _load_tags(info, self.row_id)

    comments = _children_field(
        "Post.comments", "Comment", CommentWhere, CommentOrder, "Comments on the post."
    )


@strawberry.type(description="A comment on a post.")
class Comment(Node):
    type_name: ClassVar[str] = "Comment"
    content: str
    created_at: datetime
    edited_at: datetime | None = strawberry.field(
        description="When updateComment last changed the content; null if it never did."
    )
    user_id: strawberry.Private[int]
    post_id: strawberry.Private[int]
    parent_id: strawberry.Private[int | None]
    # Loaded ahead by the connection for the whole page (see lookahead.py), else None.
    author_row: strawberry.Private[models.User | None] = None
    post_row: strawberry.Private[models.Post | None] = None

    @classmethod
    def from_model(
        cls,
        row: models.Comment,
        *,
        author: models.User | None = None,
        post: models.Post | None = None,
    ) -> Self:
        return cls(
            row_id=row.id,
            content=row.content,
            created_at=row.created_at,
            edited_at=row.edited_at,
            user_id=row.user_id,
            post_id=row.post_id,
            parent_id=row.parent_id,
            author_row=author,
            post_row=post,
        )

    @strawberry.field(
        description="Who wrote the comment.",
        graphql_type=User,
        metadata=declare(ToOne("User", "user_id")),
    )
    def author(self, info: BlogInfo) -> User | Awaitable[User]:
        if self.author_row is not None:
            return User.from_model(self.author_row)
        return _load_user(info, self.user_id)

    @strawberry.field(
        description="The post commented on.",
        graphql_type=Post,
        metadata=declare(ToOne("Post", "post_id")),
    )
    def post(self, info: BlogInfo) -> Post | Awaitable[Post]:
        if self.post_row is not None:
            return Post.from_model(self.post_row)
        return _load_post(info, self.post_id)

    @strawberry.field(
        description="The comment this one replies to; null for a top-level comment.",
        graphql_type=Optional["Comment"],
        metadata=declare(ToOne("Comment", "parent_id")),
    )
    async def parent(self, info: BlogInfo) -> "Comment | None":
        if self.parent_id is None:
            return None
        row = await info.context.loaders.comments.load(self.parent_id)
        return Comment.from_model(_row_or_raise(row, f"comment {self.parent_id}"))

    replies = _children_field(
        "Comment.replies",
        "Comment",
        CommentWhere,
        CommentOrder,
        "Replies to the comment, oldest first unless ordered otherwise.",
    )


@strawberry.type(description="A tag; posts carry up to ten.")
class Tag(Node):
    type_name: ClassVar[str] = "Tag"
    name: str

    @classmethod
    def from_model(cls, row: models.Tag) -> Self:
        return cls(row_id=row.id, name=row.name)

    posts = _children_field("Tag.posts", "Post", PostWhere, PostOrder, "Posts with this tag.")


@strawberry.enum(description="What happened to the entity.")
class AuditAction(enum.Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@strawberry.type(description="One create, update or delete of a user, post or comment.")
class AuditLogEntry(Node):
    type_name: ClassVar[str] = "AuditLogEntry"
    entity_type: str = strawberry.field(description="The kind of entity: User, Post or Comment.")
    action: AuditAction
    changes: JSON | None = strawberry.field(
        description="CREATE and DELETE: {field: value}; UPDATE: {field: [old, new]}."
    )
    created_at: datetime
    entity_row_id: strawberry.Private[int]
    actor_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, row: models.AuditLog) -> Self:
        return cls(
            row_id=row.id,
            entity_type=row.entity_type,
            action=AuditAction(row.action),
            changes=JSON(audit.shown_changes(row.changes)),
            created_at=row.created_at,
            entity_row_id=row.entity_id,
            actor_id=row.actor_id,
        )

    @strawberry.field(description="The global id of the entity (it may be deleted by now).")
    def entity_id(self) -> strawberry.ID:
        return strawberry.ID(encode_global_id(self.entity_type, self.entity_row_id))

    @strawberry.field(description="Who did it; null when nobody signed in did (or is gone).")
    async def actor(self, info: BlogInfo) -> User | None:
        if self.actor_id is None:
            return None
        row = await info.context.loaders.users.load(self.actor_id)
        return None if row is None else User.from_model(row)


# The GraphQL view of each entity type's rows (`entities.NODE_MODELS` names their models).
# AuditLogEntry is admins only: the loaders see no audit rows for anyone else.
NODE_CONVERTERS: dict[str, Callable[[Any], Node]] = {
    node.type_name: node.from_model for node in (User, Post, Comment, Tag, AuditLogEntry)
}
