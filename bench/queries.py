"""The three queries, as each server's schema spells them, and how answers are compared.

gql_blog, the floor and the naive server take the same text (gql_blog's schema). The rivals have
schemas of their own: their texts use aliases so that their answers come back in gql_blog's
shape wherever their schema allows it, and `normalize` turns what remains (Relay `edges { node }`
lists, PostGraphile's row ids and its `post_tags` links) into that shape. The run compares every
server's normalized `data` with the floor's before it measures anything.

The client is signed in as an admin, so drafts are visible: the feed asks for published posts
explicitly, and users → posts → comments includes drafts.
"""

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bench.servers import PLANNER_OFF

FEED_PAGE: Final = 20
DEEP_USERS: Final = 10
DEEP_POSTS: Final = 10
COMMENTS_PAGE: Final = 5
DETAIL_COMMENTS_PAGE: Final = 20

Json = Any

# The 20 newest published posts with author, tags and the 5 newest comments with their authors.
FEED: Final = (
    "query Feed { posts(first: 20, where: { published: { eq: true } }) { nodes { id title"
    " author { username } tags { name }"
    " comments(first: 5) { nodes { content author { username } } } } } }"
)
# Users by id, each one's first 10 posts by id (drafts too), each post's 5 newest comments.
DEEP: Final = (
    "query Deep { users(first: 10, orderBy: [{ field: ID }]) { nodes { username"
    " posts(first: 10, orderBy: [{ field: ID }]) { nodes { id title"
    " comments(first: 5) { nodes { content author { username } } } } } } } }"
)
# One post (with 32 comments) with author, tags and its 20 newest comments with their authors.
DETAIL: Final = (
    "query Detail($id: ID!) { post(id: $id) { id title author { username } tags { name }"
    " comments(first: 20) { nodes { content author { username } } } } }"
)

# graphene-sqlalchemy (bench/graphene_app.py): Relay connections with edges, plain tag lists.
GRAPHENE_FEED: Final = (
    "query Feed { posts(first: 20, published: true) { edges { node { id title"
    " author { username } tags { edges { node { name } } }"
    " comments(first: 5) { edges { node { content author { username } } } } } } } }"
)
GRAPHENE_DEEP: Final = (
    "query Deep { users(first: 10) { edges { node { username"
    " posts(first: 10) { edges { node { id title"
    " comments(first: 5) { edges { node { content author { username } } } } } } } } } } }"
)
GRAPHENE_DETAIL: Final = (
    "query Detail($id: ID!) { post(id: $id) { id title author { username }"
    " tags { edges { node { name } } }"
    " comments(first: 20) { edges { node { content author { username } } } } } }"
)

# strawberry-sqlalchemy-mapper (bench/mapper_app.py). Its nested `first` limits the whole batch
# (5 comments for all 20 posts together, not 5 per post), so nested lists are asked for whole,
# in the relationships' order, and cut to the page size when compared.
MAPPER_FEED: Final = (
    "query Feed { posts(first: 20, published: true) { id title author { username }"
    " tags: tagLinks { edges { node { tag { name } } } }"
    " comments { edges { node { content author { username } } } } } }"
)
MAPPER_DEEP: Final = (
    "query Deep { users(first: 10) { username"
    " posts { edges { node { id title"
    " comments { edges { node { content author { username } } } } } } } } }"
)
MAPPER_DETAIL: Final = (
    "query Detail($id: Int!) { post(id: $id) { id title author { username }"
    " tags: tagLinks { edges { node { tag { name } } } }"
    " comments { edges { node { content author { username } } } } } }"
)

# PostGraphile 5 (Amber preset): its own names, aliased to gql_blog's; row ids as `rowId`.
POSTGRAPHILE_FEED: Final = (
    "query Feed { posts: allPosts(first: 20, condition: { published: true },"
    " orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { id: rowId title"
    " author: userByUserId { username }"
    " tags: postTagsByPostId { nodes { tag: tagByTagId { name } } }"
    " comments: commentsByPostId(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC])"
    " { nodes { content author: userByUserId { username } } } } } }"
)
POSTGRAPHILE_DEEP: Final = (
    "query Deep { users: allUsers(first: 10, orderBy: [ROW_ID_ASC]) { nodes { username"
    " posts: postsByUserId(first: 10, orderBy: [ROW_ID_ASC]) { nodes { id: rowId title"
    " comments: commentsByPostId(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC])"
    " { nodes { content author: userByUserId { username } } } } } } } }"
)
POSTGRAPHILE_DETAIL: Final = (
    "query Detail($id: Int!) { post: postByRowId(rowId: $id) { id: rowId title"
    " author: userByUserId { username }"
    " tags: postTagsByPostId { nodes { tag: tagByTagId { name } } }"
    " comments: commentsByPostId(first: 20, orderBy: [CREATED_AT_DESC, ROW_ID_DESC])"
    " { nodes { content author: userByUserId { username } } } } }"
)

QUERY_NAMES: Final = ("feed", "deep", "detail")
# The feed's cell on the 10x data set (`make bench BENCH_SCALE=large`).
LARGE_FEED: Final = "feed (10x data)"

# The write cells (issue 16): a comment added to `Dataset.write_post_id` by the admin, answered
# with its content and author; only the servers of WRITE_SETS write.
ADD_COMMENT: Final = (
    "mutation AddComment($postId: ID!, $content: String!) {"
    " addComment(input: { postId: $postId, content: $content })"
    " { ... on Comment { content author { username } } } }"
)
POSTGRAPHILE_ADD_COMMENT: Final = (
    "mutation AddComment($postId: Int!, $userId: Int!, $content: String!) {"
    " addComment: createComment(input: { comment: { postId: $postId, userId: $userId,"
    " content: $content } }) { comment { content author: userByUserId { username } } } }"
)
WRITE_NAMES: Final = ("add_comment",)
WRITTEN_CONTENT: Final = "A comment from the benchmark."


def post_global_id(row_id: int) -> str:
    """gql_blog's (and Relay's) opaque id: base64 of `Post:<id>`."""
    return base64.b64encode(f"Post:{row_id}".encode()).decode()


def write_variables(dialect: str, *, post_id: int, admin_id: int) -> dict[str, Any]:
    """The write cell's variables: gql_blog signs in as the admin; PostGraphile is told who."""
    if dialect == "global":
        return {"postId": post_global_id(post_id), "content": WRITTEN_CONTENT}
    return {"postId": post_id, "userId": admin_id, "content": WRITTEN_CONTENT}


def variables_for(query: str, dialect: str, *, detail_post_id: int) -> dict[str, Any]:
    """The variables of `query` for a server whose ids are global (`global`) or row ids."""
    if query != "detail":
        return {}
    return {"id": post_global_id(detail_post_id) if dialect == "global" else detail_post_id}


def unwrap_edges(value: Json) -> Json:
    """Relay `{edges: [{node: x}]}` lists as `{nodes: [x]}`, everywhere in `value`."""
    if isinstance(value, list):
        return [unwrap_edges(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"edges"}:
        return {"nodes": [unwrap_edges(edge["node"]) for edge in value["edges"]]}
    return {key: unwrap_edges(item) for key, item in value.items()}


def _post_like(value: Json, fix: Callable[[dict[str, Any]], dict[str, Any]]) -> Json:
    """Apply `fix` to every dict that has a `title` (a post), inside out."""
    if isinstance(value, list):
        return [_post_like(item, fix) for item in value]
    if not isinstance(value, dict):
        return value
    fixed = {key: _post_like(item, fix) for key, item in value.items()}
    return fix(fixed) if "title" in fixed else fixed


def _linked_post(post: dict[str, Any]) -> dict[str, Any]:
    """Row ids as global ids; tags through post_tags link rows as gql_blog's list, by name."""
    fixed = dict(post)
    if isinstance(fixed.get("id"), int):
        fixed["id"] = post_global_id(fixed["id"])
    if "tags" in fixed:
        names = sorted(link["tag"]["name"] for link in fixed["tags"]["nodes"])
        fixed["tags"] = [{"name": name} for name in names]
    return fixed


def _tag_list(post: dict[str, Any]) -> dict[str, Any]:
    """A connection of tags as gql_blog's plain list."""
    return post | {"tags": post["tags"]["nodes"]} if "tags" in post else post


def _mapper_post(page: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def fix(post: dict[str, Any]) -> dict[str, Any]:
        fixed = _linked_post(post)
        if "comments" in fixed:
            fixed["comments"] = {"nodes": fixed["comments"]["nodes"][:page]}
        return fixed

    return fix


def normalize(server: str, query: str, data: Json) -> Json:
    """`data` from `server` in the floor's shape (gql_blog's JSON); see the module docstring."""
    if server == "graphene-sqlalchemy":
        return _post_like(unwrap_edges(data), _tag_list)
    if server == "postgraphile" and query in WRITE_NAMES:
        return {"addComment": data["addComment"]["comment"]}
    if server == "postgraphile":
        return _post_like(data, _linked_post)
    if server != "strawberry-sqlalchemy-mapper":
        return data
    page = DETAIL_COMMENTS_PAGE if query == "detail" else COMMENTS_PAGE
    fixed = _post_like(unwrap_edges(data), _mapper_post(page))
    if query == "feed":
        return {"posts": {"nodes": fixed["posts"]}}
    if query == "deep":
        return {"users": {"nodes": [_mapper_user(user) for user in fixed["users"]]}}
    return fixed


def _mapper_user(user: dict[str, Any]) -> dict[str, Any]:
    return user | {"posts": {"nodes": user["posts"]["nodes"][:DEEP_POSTS]}}


@dataclass(frozen=True, slots=True)
class QuerySet:
    """One server's texts for the three queries, and how its ids are passed."""

    texts: dict[str, str]
    ids: str = "global"


GQL_BLOG_TEXTS: Final = QuerySet({"feed": FEED, "deep": DEEP, "detail": DETAIL})
QUERY_SETS: Final = {
    "floor": GQL_BLOG_TEXTS,
    "gql_blog": GQL_BLOG_TEXTS,
    PLANNER_OFF: GQL_BLOG_TEXTS,
    "naive": GQL_BLOG_TEXTS,
    "graphene-sqlalchemy": QuerySet(
        {"feed": GRAPHENE_FEED, "deep": GRAPHENE_DEEP, "detail": GRAPHENE_DETAIL}
    ),
    "strawberry-sqlalchemy-mapper": QuerySet(
        {"feed": MAPPER_FEED, "deep": MAPPER_DEEP, "detail": MAPPER_DETAIL}, ids="row"
    ),
    "postgraphile": QuerySet(
        {"feed": POSTGRAPHILE_FEED, "deep": POSTGRAPHILE_DEEP, "detail": POSTGRAPHILE_DETAIL},
        ids="row",
    ),
}
# The servers that write, with their text of each write.
WRITE_SETS: Final = {
    "gql_blog": QuerySet({"add_comment": ADD_COMMENT}),
    PLANNER_OFF: QuerySet({"add_comment": ADD_COMMENT}),
    "postgraphile": QuerySet({"add_comment": POSTGRAPHILE_ADD_COMMENT}, ids="row"),
}


# gql_blog's own operations (issue 16's second table), with the planner on and off. Every read
# leaves out what the bench's writes add (drafts, the audit entries after the seed), so each
# server answers them alike whatever ran before it.
OWN_READS: Final = {
    "node": (
        "query Node($id: ID!) { node(id: $id) { id"
        " ... on Post { title author { username } tags { name } } } }"
    ),
    "audit_log": (
        "query AuditLog($before: DateTime!) { auditLog(first: 20,"
        " where: { createdAt: { lt: $before } }) { nodes { entityType entityId action"
        " createdAt actor { username } } } }"
    ),
    "post_stats": (
        "query PostStats { postStats(where: { published: { eq: true } })"
        " { count publishedCount firstCreatedAt lastCreatedAt } }"
    ),
    "search": (
        'query Search { searchPosts(query: "keyset pagination", first: 10,'
        " where: { published: { eq: true } }) { nodes { id title } } }"
    ),
    "post_groups": (
        "query PostGroups { postGroups(groupBy: [TAG], first: 10,"
        " where: { published: { eq: true } }) { key { tag { name } } count } }"
    ),
}
# A draft (no read above shows it) with two tags, created on the first request.
CREATE_POST: Final = (
    "mutation CreatePost($input: CreatePostInput!) { createPost(input: $input)"
    " { ... on Post { title published tags { name } author { username } } } }"
)
OWN_WRITES: Final = {"create_post": CREATE_POST}
OWN_NAMES: Final = (*OWN_READS, *OWN_WRITES)
# The servers that answer them.
OWN_SERVERS: Final = ("gql_blog", PLANNER_OFF)


def own_variables(operation: str, *, detail_post_id: int, seeded_before: str) -> dict[str, Any]:
    """The variables of one of gql_blog's own operations."""
    if operation == "node":
        return {"id": post_global_id(detail_post_id)}
    if operation == "audit_log":
        return {"before": seeded_before}
    if operation == "create_post":
        tags = ["bench-one", "bench-two"]
        title = "A draft from the benchmark"
        return {"input": {"title": title, "content": WRITTEN_CONTENT, "tags": tags}}
    return {}
