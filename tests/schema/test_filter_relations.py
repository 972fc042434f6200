"""Relation filters: to-one nesting, some/none/every, visibility inside them, e-mail privacy,
and the statements nested filtered connections cost."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from tests.conftest import StatementCounter
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient, GraphQLResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVERYONE = ["alice", "bob", "carol", "dave", "root"]
# "secret" is only on drafts: hidden from everyone but those drafts' authors and admins.
PUBLIC_TAGS = ["news", "python", "unused"]
ROLES = ["anonymous", "bob", "alice", "carol", "root"]

USERS = """query($where: UserWhere) {
  users(where: $where, first: 100) { totalCount nodes { username } }
}"""
POSTS = """query($where: PostWhere) {
  posts(where: $where, first: 100, orderBy: [{field: TITLE, direction: ASC}]) {
    totalCount nodes { title }
  }
}"""
TAGS = """query($where: TagWhere) {
  tags(where: $where, first: 100) { totalCount nodes { name } }
}"""
USER_COMMENTS = """query($username: String!, $where: CommentWhere) {
  user(username: $username) {
    comments(where: $where, first: 100) { totalCount nodes { content } }
  }
}"""


@dataclass(frozen=True, slots=True)
class Blog:
    """alice: "Alice public" (news, python) and "Alice draft" (news, secret); carol: only "Carol
    draft" (secret); dave: "Plain" (no tags, no comments); bob comments on both of alice's posts;
    alice comments on carol's draft; root is an admin; the tag "unused" has no posts."""

    alice: models.User
    bob: models.User
    carol: models.User
    dave: models.User
    root: models.User
    public: models.Post
    draft: models.Post

    def viewer(self, role: str) -> models.User | None:
        return None if role == "anonymous" else getattr(self, role)


@pytest.fixture
async def blog(db: AsyncSession) -> Blog:
    alice = await make_user(
        db,
        username="alice",
        email="alice@example.test",
        first_name="Alice",
        last_name="Liddell",
        age=30,
    )
    bob = await make_user(db, username="bob", email="bob@example.test", age=40)
    carol = await make_user(db, username="carol", email="carol@example.test")
    dave = await make_user(db, username="dave", email="dave@example.test", age=20)
    root = await make_user(db, username="root", email="root@example.test", is_admin=True)
    news, python, secret = [await make_tag(db, name) for name in ("news", "python", "secret")]
    await make_tag(db, "unused")
    public = await make_post(db, author=alice, title="Alice public", tags=[news, python])
    draft = await make_post(
        db, author=alice, title="Alice draft", published=False, tags=[news, secret]
    )
    carols = await make_post(db, author=carol, title="Carol draft", published=False, tags=[secret])
    await make_post(db, author=dave, title="Plain")
    await make_comment(db, post=public, author=bob, content="Nice post", created_at=T0)
    await make_comment(
        db, post=draft, author=bob, content="Draft feedback", created_at=T0 + timedelta(hours=1)
    )
    await make_comment(db, post=carols, author=alice, content="Alice on Carol draft")
    return Blog(alice=alice, bob=bob, carol=carol, dave=dave, root=root, public=public, draft=draft)


def expect_ok(result: GraphQLResult) -> Any:
    assert result.errors is None, result.errors
    return result.data


async def names(
    api: GraphQLClient,
    query: str,
    where: dict[str, Any] | None,
    viewer: models.User | None = None,
) -> list[str]:
    """What a root connection's `where` matches (username, title or tag name, in list order)."""
    data = expect_ok(await api.query(query, {"where": where}, viewer=viewer))
    (connection,) = data.values()
    found = [next(iter(node.values())) for node in connection["nodes"]]
    assert connection["totalCount"] == len(found)
    return found


async def comments_of(
    api: GraphQLClient, username: str, where: dict[str, Any], viewer: models.User | None = None
) -> list[str]:
    data = expect_ok(
        await api.query(USER_COMMENTS, {"username": username, "where": where}, viewer=viewer)
    )
    connection = data["user"]["comments"]
    found = [node["content"] for node in connection["nodes"]]
    assert connection["totalCount"] == len(found)
    return found


# --- to-one nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param(
            {"author": {"username": {"eq": "alice"}}},
            ["Alice draft", "Alice public"],
            id="author-username",
        ),
        pytest.param(
            {"author": {"fullName": {"eq": "Alice Liddell"}}},
            ["Alice draft", "Alice public"],
            id="author-fullName",
        ),
        pytest.param({"author": {"age": {"isNull": True}}}, ["Carol draft"], id="author-age-null"),
        pytest.param({"author": {"age": {"lt": 30}}}, ["Plain"], id="author-age-lt"),
        pytest.param(
            {"author": {"not": {"username": {"eq": "alice"}}}},
            ["Carol draft", "Plain"],
            id="author-not",
        ),
        pytest.param(
            {"not": {"author": {"username": {"eq": "alice"}}}},
            ["Carol draft", "Plain"],
            id="not-author",
        ),
        pytest.param(
            {"author": {"or": [{"age": {"gte": 30}}, {"age": {"isNull": True}}]}},
            ["Alice draft", "Alice public", "Carol draft"],
            id="author-or",
        ),
        pytest.param(
            {"author": {"comments": {"some": {}}}},
            ["Alice draft", "Alice public"],
            id="author-with-comments",
        ),
        pytest.param(
            {"author": {"username": {"eq": "alice"}}, "published": {"eq": False}},
            ["Alice draft"],
            id="author-and-own-field",
        ),
    ],
)
async def test_post_where_author_nests_a_user_filter(
    api: GraphQLClient, blog: Blog, where: dict[str, Any], expected: list[str]
) -> None:
    assert await names(api, POSTS, where, viewer=blog.root) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param({"post": {"title": {"eq": "Alice public"}}}, ["Nice post"], id="post-title"),
        pytest.param(
            {"post": {"author": {"username": {"eq": "alice"}}}},
            ["Draft feedback", "Nice post"],
            id="post-author",
        ),
        pytest.param({"post": {"published": {"eq": False}}}, ["Draft feedback"], id="post-draft"),
        pytest.param(
            {"post": {"tags": {"some": {"name": {"eq": "secret"}}}}},
            ["Draft feedback"],
            id="post-tags",
        ),
        pytest.param({"not": {"post": {"published": {"eq": True}}}}, ["Draft feedback"], id="not"),
        pytest.param(
            {"author": {"username": {"eq": "bob"}}}, ["Draft feedback", "Nice post"], id="author"
        ),
    ],
)
async def test_comment_where_post_nests_a_post_filter(
    api: GraphQLClient, blog: Blog, where: dict[str, Any], expected: list[str]
) -> None:
    assert await comments_of(api, "bob", where, viewer=blog.root) == expected


# --- some / none / every on every to-many relation (as an admin, who sees everything) -----------


@pytest.mark.parametrize(
    ("query", "where", "expected"),
    [
        pytest.param(
            USERS,
            {"posts": {"some": {"title": {"contains": "draft"}}}},
            ["alice", "carol"],
            id="User.posts-some",
        ),
        pytest.param(
            USERS,
            {"posts": {"none": {"published": {"eq": False}}}},
            ["bob", "dave", "root"],
            id="User.posts-none",
        ),
        pytest.param(
            USERS,
            {"posts": {"every": {"published": {"eq": False}}}},
            ["bob", "carol", "root"],
            id="User.posts-every-true-over-no-posts",
        ),
        pytest.param(
            USERS, {"posts": {"some": {}}}, ["alice", "carol", "dave"], id="User.posts-any"
        ),
        pytest.param(USERS, {"posts": {"none": {}}}, ["bob", "root"], id="User.posts-empty"),
        pytest.param(
            USERS,
            {"posts": {"some": {"published": {"eq": True}}, "none": {"published": {"eq": False}}}},
            ["dave"],
            id="User.posts-some-and-none",
        ),
        pytest.param(
            USERS,
            {"comments": {"some": {"content": {"eq": "Nice post"}}}},
            ["bob"],
            id="User.comments-some",
        ),
        pytest.param(
            USERS, {"comments": {"none": {}}}, ["carol", "dave", "root"], id="User.comments-none"
        ),
        pytest.param(
            USERS,
            {"comments": {"every": {"post": {"published": {"eq": True}}}}},
            ["carol", "dave", "root"],
            id="User.comments-every-true-over-no-comments",
        ),
        pytest.param(
            POSTS,
            {"tags": {"some": {"name": {"eq": "secret"}}}},
            ["Alice draft", "Carol draft"],
            id="Post.tags-some",
        ),
        pytest.param(
            POSTS,
            {"tags": {"none": {"name": {"eq": "news"}}}},
            ["Carol draft", "Plain"],
            id="Post.tags-none",
        ),
        pytest.param(
            POSTS,
            {"tags": {"every": {"name": {"in": ["news", "python"]}}}},
            ["Alice public", "Plain"],
            id="Post.tags-every-true-over-no-tags",
        ),
        pytest.param(
            POSTS,
            {"comments": {"some": {"author": {"username": {"eq": "bob"}}}}},
            ["Alice draft", "Alice public"],
            id="Post.comments-some",
        ),
        pytest.param(POSTS, {"comments": {"none": {}}}, ["Plain"], id="Post.comments-none"),
        pytest.param(
            POSTS,
            {"comments": {"every": {"content": {"startsWith": "N"}}}},
            ["Alice public", "Plain"],
            id="Post.comments-every-true-over-no-comments",
        ),
        pytest.param(
            TAGS,
            {"posts": {"some": {"published": {"eq": False}}}},
            ["news", "secret"],
            id="Tag.posts-some",
        ),
        pytest.param(TAGS, {"posts": {"none": {}}}, ["unused"], id="Tag.posts-none"),
        pytest.param(
            TAGS,
            {"posts": {"every": {"published": {"eq": False}}}},
            ["secret", "unused"],
            id="Tag.posts-every-true-over-no-posts",
        ),
        pytest.param(
            TAGS,
            {"posts": {"some": {"author": {"posts": {"some": {"title": {"eq": "Alice draft"}}}}}}},
            ["news", "python", "secret"],
            id="Tag.posts-author-posts-nested-same-table",
        ),
        pytest.param(
            USERS,
            {"posts": {"some": {"comments": {"some": {"author": {"username": {"eq": "alice"}}}}}}},
            ["carol"],
            id="User.posts-comments-author",
        ),
    ],
)
async def test_to_many_quantifiers(
    api: GraphQLClient, blog: Blog, query: str, where: dict[str, Any], expected: list[str]
) -> None:
    assert await names(api, query, where, viewer=blog.root) == expected


@pytest.mark.parametrize(
    ("query", "where"),
    [
        pytest.param(USERS, {"posts": {"some": {"age": {"eq": 1}}}}, id="unknown-field"),
        pytest.param(USERS, {"posts": {"any": {}}}, id="unknown-quantifier"),
    ],
)
async def test_misspelt_relation_filter_is_a_validation_error(
    api: GraphQLClient, blog: Blog, query: str, where: dict[str, Any]
) -> None:
    result = await api.query(query, {"where": where})

    assert result.data is None
    assert result.errors


# --- visibility inside relation filters ----------------------------------------------------------

VISIBILITY_CASES = [
    pytest.param(
        USERS,
        {"posts": {"some": {"published": {"eq": False}}}},
        {
            "anonymous": [],
            "bob": [],
            "alice": ["alice"],
            "carol": ["carol"],
            "root": ["alice", "carol"],
        },
        id="users-with-a-draft",
    ),
    pytest.param(
        USERS,
        {"posts": {"some": {"title": {"eq": "Alice draft"}}}},
        {"anonymous": [], "bob": [], "alice": ["alice"], "carol": [], "root": ["alice"]},
        id="users-with-a-draft-by-title",
    ),
    pytest.param(
        USERS,
        {"posts": {"some": {}}},
        {
            "anonymous": ["alice", "dave"],
            "bob": ["alice", "dave"],
            "alice": ["alice", "dave"],
            "carol": ["alice", "carol", "dave"],
            "root": ["alice", "carol", "dave"],
        },
        id="users-with-any-post",
    ),
    pytest.param(
        USERS,
        {"posts": {"none": {}}},
        {
            "anonymous": ["bob", "carol", "root"],
            "bob": ["bob", "carol", "root"],
            "alice": ["bob", "carol", "root"],
            "carol": ["bob", "root"],
            "root": ["bob", "root"],
        },
        id="users-without-posts",
    ),
    pytest.param(
        USERS,
        {"posts": {"every": {"published": {"eq": True}}}},
        {
            "anonymous": EVERYONE,
            "bob": EVERYONE,
            "alice": ["bob", "carol", "dave", "root"],
            "carol": ["alice", "bob", "dave", "root"],
            "root": ["bob", "dave", "root"],
        },
        id="users-whose-posts-are-all-published",
    ),
    pytest.param(
        USERS,
        {"not": {"posts": {"some": {"published": {"eq": False}}}}},
        {
            "anonymous": EVERYONE,
            "bob": EVERYONE,
            "alice": ["bob", "carol", "dave", "root"],
            "carol": ["alice", "bob", "dave", "root"],
            "root": ["bob", "dave", "root"],
        },
        id="users-not-having-a-draft",
    ),
    pytest.param(
        USERS,
        {"comments": {"some": {}}},
        {
            "anonymous": ["bob"],
            "bob": ["bob"],
            "alice": ["bob"],
            "carol": ["alice", "bob"],
            "root": ["alice", "bob"],
        },
        id="users-with-comments",
    ),
    pytest.param(
        USERS,
        {"comments": {"some": {"content": {"eq": "Draft feedback"}}}},
        {"anonymous": [], "bob": [], "alice": ["bob"], "carol": [], "root": ["bob"]},
        id="users-with-a-comment-on-a-draft",
    ),
    pytest.param(
        USERS,
        {"comments": {"some": {"post": {"title": {"eq": "Carol draft"}}}}},
        {"anonymous": [], "bob": [], "alice": [], "carol": ["alice"], "root": ["alice"]},
        id="users-commenting-on-a-draft-by-post",
    ),
    pytest.param(
        USERS,
        {"comments": {"every": {"content": {"eq": "Nice post"}}}},
        {
            "anonymous": EVERYONE,
            "bob": EVERYONE,
            "alice": ["alice", "carol", "dave", "root"],
            "carol": ["bob", "carol", "dave", "root"],
            "root": ["carol", "dave", "root"],
        },
        id="users-whose-comments-all-say-nice-post",
    ),
    pytest.param(
        TAGS,
        {"posts": {"some": {}}},
        {
            "anonymous": ["news", "python"],
            "bob": ["news", "python"],
            "alice": ["news", "python", "secret"],
            "carol": ["news", "python", "secret"],
            "root": ["news", "python", "secret"],
        },
        id="tags-with-posts",
    ),
    pytest.param(
        TAGS,
        {"posts": {"every": {"published": {"eq": True}}}},
        {
            "anonymous": PUBLIC_TAGS,
            "bob": PUBLIC_TAGS,
            "alice": ["python", "unused"],
            "carol": ["news", "python", "unused"],
            "root": ["python", "unused"],
        },
        id="tags-whose-posts-are-all-published",
    ),
    pytest.param(
        TAGS,
        {"posts": {"none": {"published": {"eq": False}}}},
        {
            "anonymous": PUBLIC_TAGS,
            "bob": PUBLIC_TAGS,
            "alice": ["python", "unused"],
            "carol": ["news", "python", "unused"],
            "root": ["python", "unused"],
        },
        id="tags-without-drafts",
    ),
    pytest.param(
        POSTS,
        {"author": {"posts": {"some": {"published": {"eq": False}}}}},
        {
            "anonymous": [],
            "bob": [],
            "alice": ["Alice draft", "Alice public"],
            "carol": ["Carol draft"],
            "root": ["Alice draft", "Alice public", "Carol draft"],
        },
        id="posts-by-authors-with-drafts",
    ),
    pytest.param(
        POSTS,
        {"comments": {"none": {}}},
        {
            "anonymous": ["Plain"],
            "bob": ["Plain"],
            "alice": ["Plain"],
            "carol": ["Plain"],
            "root": ["Plain"],
        },
        id="posts-without-comments",
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("query", "where", "expected"), VISIBILITY_CASES)
async def test_relation_filters_see_only_what_the_viewer_may_see(
    api: GraphQLClient,
    blog: Blog,
    role: str,
    query: str,
    where: dict[str, Any],
    expected: dict[str, list[str]],
) -> None:
    assert await names(api, query, where, viewer=blog.viewer(role)) == expected[role]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        pytest.param("anonymous", [], id="anonymous"),
        pytest.param("bob", [], id="commenter"),
        pytest.param("alice", ["Draft feedback"], id="author"),
        pytest.param("root", ["Draft feedback"], id="admin"),
    ],
)
async def test_comment_filter_on_its_post_never_reveals_a_draft(
    api: GraphQLClient, blog: Blog, role: str, expected: list[str]
) -> None:
    where = {"post": {"published": {"eq": False}}}

    assert await comments_of(api, "bob", where, viewer=blog.viewer(role)) == expected


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        pytest.param("anonymous", ["Alice public"], id="anonymous"),
        pytest.param("alice", ["Alice draft", "Alice public"], id="author"),
    ],
)
async def test_nested_connection_with_relation_filter_applies_visibility(
    api: GraphQLClient, blog: Blog, role: str, expected: list[str]
) -> None:
    result = await api.query(
        """{ user(username: "alice") { posts(where: {comments: {some: {}}},
             orderBy: [{field: TITLE, direction: ASC}]) { totalCount nodes { title } } } }""",
        viewer=blog.viewer(role),
    )

    assert expect_ok(result) == {
        "user": {"posts": {"totalCount": len(expected), "nodes": [{"title": t} for t in expected]}}
    }


# --- email privacy ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("query", "where", "expected"),
    [
        pytest.param(
            USERS,
            {"email": {"eq": "alice@example.test"}},
            {"anonymous": [], "bob": [], "alice": ["alice"], "carol": [], "root": ["alice"]},
            id="eq",
        ),
        pytest.param(
            USERS,
            {"email": {"eq": "ALICE@example.test", "mode": "INSENSITIVE"}},
            {"anonymous": [], "bob": [], "alice": ["alice"], "carol": [], "root": ["alice"]},
            id="eq-insensitive",
        ),
        pytest.param(
            USERS,
            {"email": {"endsWith": "@example.test"}},
            {
                "anonymous": [],
                "bob": ["bob"],
                "alice": ["alice"],
                "carol": ["carol"],
                "root": EVERYONE,
            },
            id="endsWith",
        ),
        pytest.param(
            USERS,
            {"email": {"startsWith": "a"}},
            {"anonymous": [], "bob": [], "alice": ["alice"], "carol": [], "root": ["alice"]},
            id="startsWith-probe",
        ),
        pytest.param(
            USERS,
            {"not": {"email": {"eq": "alice@example.test"}}},
            {
                "anonymous": EVERYONE,
                "bob": EVERYONE,
                "alice": ["bob", "carol", "dave", "root"],
                "carol": EVERYONE,
                "root": ["bob", "carol", "dave", "root"],
            },
            id="not-eq",
        ),
        pytest.param(
            POSTS,
            {"author": {"email": {"eq": "dave@example.test"}}},
            {"anonymous": [], "bob": [], "alice": [], "carol": [], "root": ["Plain"]},
            id="post-author",
        ),
        pytest.param(
            TAGS,
            {"posts": {"some": {"author": {"email": {"contains": "alice"}}}}},
            {
                "anonymous": [],
                "bob": [],
                "alice": ["news", "python", "secret"],
                "carol": [],
                "root": ["news", "python", "secret"],
            },
            id="tag-posts-author",
        ),
    ],
)
async def test_email_filter_matches_only_addresses_the_viewer_may_see(
    api: GraphQLClient,
    blog: Blog,
    role: str,
    query: str,
    where: dict[str, Any],
    expected: dict[str, list[str]],
) -> None:
    assert await names(api, query, where, viewer=blog.viewer(role)) == expected[role]


# --- nested filtered connections: right rows per parent, statements independent of parents ------


@pytest.mark.parametrize("authors", [2, 10])
async def test_nested_filtered_posts_take_three_statements_whatever_the_user_count(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, authors: int
) -> None:
    python = await make_tag(db, "python")
    expected = {}
    for number in range(authors):
        user = await make_user(db, username=f"writer{number:02}")
        kept = []
        for minute in range(number % 3 + 1):
            title = f"keep {number}-{minute}"
            await make_post(
                db,
                author=user,
                title=title,
                tags=[python],
                created_at=T0 + timedelta(minutes=minute),
            )
            kept.append(title)
        await make_post(db, author=user, title=f"skip {number}", tags=[python])
        await make_post(db, author=user, title=f"keep untagged {number}")
        expected[user.username] = {
            "totalCount": len(kept),
            "nodes": [{"title": title} for title in reversed(kept)],
        }
    query = """{ users { nodes { username posts(where: {title: {startsWith: "keep"},
        tags: {some: {name: {eq: "python"}}}}) { totalCount nodes { title } } } } }"""

    with count_sql() as counted:
        result = await api.query(query)

    data = expect_ok(result)
    assert {node["username"]: node["posts"] for node in data["users"]["nodes"]} == expected
    assert counted.total == 3  # the users page, every user's posts page, every user's count


@pytest.mark.parametrize("posts", [2, 10])
async def test_nested_filtered_comments_take_three_statements_whatever_the_post_count(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, posts: int
) -> None:
    author = await make_user(db, username="author")
    fan = await make_user(db, username="fan")
    expected = {}
    for number in range(posts):
        post = await make_post(
            db, author=author, title=f"Post {number:02}", created_at=T0 + timedelta(hours=number)
        )
        mine = [f"fan {number}-{index}" for index in range(number % 3)]
        for index, content in enumerate(mine):
            await make_comment(
                db, post=post, author=fan, content=content, created_at=T0 + timedelta(minutes=index)
            )
        await make_comment(db, post=post, author=author, content=f"author {number}")
        expected[post.title] = {
            "totalCount": len(mine),
            "nodes": [{"content": content} for content in reversed(mine)],
        }
    query = """{ posts(first: 100) { nodes { title
        comments(where: {author: {username: {eq: "fan"}}}) { totalCount nodes { content } } } } }"""

    with count_sql() as counted:
        result = await api.query(query)

    data = expect_ok(result)
    assert {node["title"]: node["comments"] for node in data["posts"]["nodes"]} == expected
    assert counted.total == 3  # the posts page, every post's comments page, every post's count


async def test_tag_posts_filtered_on_tags_look_at_all_of_each_posts_tags(
    api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db)
    a, b = await make_tag(db, "a"), await make_tag(db, "b")
    await make_post(db, author=author, title="only a", tags=[a])
    await make_post(db, author=author, title="a and b", tags=[a, b])
    await make_post(db, author=author, title="only b", tags=[b])
    query = """query($where: PostWhere) { tags { nodes { name
        posts(where: $where, orderBy: [{field: TITLE, direction: ASC}]) { nodes { title } } } } }"""

    def by_tag(data: Any) -> dict[str, list[str]]:
        return {
            tag["name"]: [post["title"] for post in tag["posts"]["nodes"]]
            for tag in data["tags"]["nodes"]
        }

    some_b = await api.query(query, {"where": {"tags": {"some": {"name": {"eq": "b"}}}}})
    every_a = await api.query(query, {"where": {"tags": {"every": {"name": {"eq": "a"}}}}})
    none_a = await api.query(query, {"where": {"tags": {"none": {"name": {"eq": "a"}}}}})

    assert by_tag(expect_ok(some_b)) == {"a": ["a and b"], "b": ["a and b", "only b"]}
    assert by_tag(expect_ok(every_a)) == {"a": ["only a"], "b": []}
    assert by_tag(expect_ok(none_a)) == {"a": [], "b": ["only b"]}


async def test_post_comments_filtered_on_their_post_see_the_post(
    api: GraphQLClient, blog: Blog
) -> None:
    result = await api.query(
        """query($id: ID!) { post(id: $id) {
            comments(where: {post: {tags: {some: {name: {eq: "python"}}}}}) {
              totalCount nodes { content } } } }""",
        {"id": encode_global_id("Post", blog.public.id)},
    )

    assert expect_ok(result) == {
        "post": {"comments": {"totalCount": 1, "nodes": [{"content": "Nice post"}]}}
    }
