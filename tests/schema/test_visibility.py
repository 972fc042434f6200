"""Drafts and their comments are visible to their author and admins only, on every read path."""

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

# Who may be asking; only the draft's author and admins see drafts.
ROLES = ["anonymous", "other-user", "commenter", "author", "admin"]
SEES_DRAFTS = {"author", "admin"}


@dataclass(frozen=True, slots=True)
class Scene:
    """An author with a published post and a draft, both tagged, each with a reader's comment."""

    author: models.User
    other: models.User
    commenter: models.User
    admin: models.User
    post: models.Post
    draft: models.Post
    post_comment: models.Comment
    draft_comment: models.Comment

    def viewer(self, role: str) -> models.User | None:
        return {
            "anonymous": None,
            "other-user": self.other,
            "commenter": self.commenter,
            "author": self.author,
            "admin": self.admin,
        }[role]


@pytest.fixture
async def scene(db: AsyncSession) -> Scene:
    author = await make_user(db, username="writer")
    commenter = await make_user(db, username="reader")
    news = await make_tag(db, "news")
    post = await make_post(db, author=author, title="Published", tags=[news])
    draft = await make_post(db, author=author, title="Draft", published=False, tags=[news])
    return Scene(
        author=author,
        other=await make_user(db),
        commenter=commenter,
        admin=await make_user(db, is_admin=True),
        post=post,
        draft=draft,
        post_comment=await make_comment(db, post=post, author=commenter, content="On the post"),
        draft_comment=await make_comment(db, post=draft, author=commenter, content="On the draft"),
    )


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _posts(role: str) -> dict[str, object]:
    """The connection of the author's posts as `role` sees it, newest first."""
    if role in SEES_DRAFTS:
        return {"totalCount": 2, "nodes": [{"title": "Draft"}, {"title": "Published"}]}
    return {"totalCount": 1, "nodes": [{"title": "Published"}]}


async def test_root_posts_and_total_count_show_drafts_only_to_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query("{ posts { totalCount nodes { title } } }", viewer=scene.viewer(role))

    assert result.errors is None
    assert result.data == {"posts": _posts(role)}


async def test_user_posts_and_total_count_show_drafts_only_to_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        '{ user(username: "writer") { posts { totalCount nodes { title } } } }',
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    assert result.data == {"user": {"posts": _posts(role)}}


async def test_tag_posts_show_drafts_only_to_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        '{ tag(name: "news") { posts { totalCount nodes { title } } } }',
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    assert result.data == {"tag": {"posts": _posts(role)}}


async def test_draft_comments_via_node_show_only_to_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        """query($id: ID!) { node(id: $id) {
            ... on Post { comments { totalCount nodes { content } } } } }""",
        {"id": encode_global_id("Post", scene.draft.id)},
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    if role in SEES_DRAFTS:
        comments = {"totalCount": 1, "nodes": [{"content": "On the draft"}]}
        assert result.data == {"node": {"comments": comments}}
    else:
        assert result.data == {"node": None}


async def test_user_comments_on_a_draft_show_only_to_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        '{ user(username: "reader") { comments { totalCount nodes { content } } } }',
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    if role in SEES_DRAFTS:
        nodes = [{"content": "On the draft"}, {"content": "On the post"}]
    else:
        nodes = [{"content": "On the post"}]
    assert result.data == {"user": {"comments": {"totalCount": len(nodes), "nodes": nodes}}}


async def test_node_of_a_draft_is_null_except_for_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        "query($id: ID!) { node(id: $id) { ... on Post { title } } }",
        {"id": encode_global_id("Post", scene.draft.id)},
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    expected = {"title": "Draft"} if role in SEES_DRAFTS else None
    assert result.data == {"node": expected}


async def test_nodes_hide_a_draft_and_its_comment_except_from_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    ids = [
        encode_global_id("Post", scene.post.id),
        encode_global_id("Post", scene.draft.id),
        encode_global_id("Comment", scene.draft_comment.id),
    ]

    result = await api.query(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}, viewer=scene.viewer(role)
    )

    assert result.errors is None
    if role in SEES_DRAFTS:
        assert result.data == {"nodes": [{"id": value} for value in ids]}
    else:
        assert result.data == {"nodes": [{"id": ids[0]}, None, None]}


async def test_post_by_id_of_a_draft_is_null_except_for_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        "query($id: ID!) { post(id: $id) { title } }",
        {"id": encode_global_id("Post", scene.draft.id)},
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    expected = {"title": "Draft"} if role in SEES_DRAFTS else None
    assert result.data == {"post": expected}


async def test_comment_on_a_draft_via_node_is_null_except_for_author_and_admin(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        "query($id: ID!) { node(id: $id) { ... on Comment { content post { title } } } }",
        {"id": encode_global_id("Comment", scene.draft_comment.id)},
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    if role in SEES_DRAFTS:
        assert result.data == {"node": {"content": "On the draft", "post": {"title": "Draft"}}}
    else:
        assert result.data == {"node": None}


async def test_published_post_and_its_comment_are_visible_to_everyone(
    api: GraphQLClient, scene: Scene, role: str
) -> None:
    result = await api.query(
        "query($id: ID!) { post(id: $id) { title comments { totalCount nodes { content } } } }",
        {"id": encode_global_id("Post", scene.post.id)},
        viewer=scene.viewer(role),
    )

    assert result.errors is None
    comments = {"totalCount": 1, "nodes": [{"content": "On the post"}]}
    assert result.data == {"post": {"title": "Published", "comments": comments}}


@pytest.mark.parametrize(
    ("asker", "sees_email"),
    [("anonymous", False), ("other-user", False), ("author", True), ("admin", True)],
    ids=["anonymous", "other-user", "self", "admin"],
)
async def test_email_is_visible_only_to_the_user_and_admins(
    api: GraphQLClient, scene: Scene, asker: str, sees_email: bool
) -> None:
    result = await api.query('{ user(username: "writer") { email } }', viewer=scene.viewer(asker))

    assert result.errors is None
    assert result.data == {"user": {"email": scene.author.email if sees_email else None}}


@pytest.mark.parametrize(
    ("role", "sees_secret_tag"),
    [("anonymous", False), ("other", False), ("author", True), ("admin", True)],
    ids=["anonymous", "other-user", "author", "admin"],
)
async def test_tag_used_only_on_a_draft_is_visible_only_to_author_and_admin(
    api: GraphQLClient, db: AsyncSession, role: str, sees_secret_tag: bool
) -> None:
    author = await make_user(db)
    secret = await make_tag(db, "acquisition-of-acme")
    public = await make_tag(db, "announcements")
    await make_post(db, author=author, published=False, tags=[secret])
    await make_post(db, author=author, published=True, tags=[public])
    viewer = {
        "anonymous": None,
        "other": await make_user(db),
        "author": author,
        "admin": await make_user(db, is_admin=True),
    }[role]

    result = await api.query(
        """query($id: ID!) {
          tags { totalCount nodes { name } }
          tag(name: "acquisition-of-acme") { name }
          node(id: $id) { id }
          orphans: tags(where: {posts: {none: {}}}) { nodes { name } }
        }""",
        {"id": encode_global_id("Tag", secret.id)},
        viewer=viewer,
    )

    assert result.errors is None
    names = [tag["name"] for tag in result.data["tags"]["nodes"]]
    expected = ["acquisition-of-acme", "announcements"] if sees_secret_tag else ["announcements"]
    assert names == expected
    assert result.data["tags"]["totalCount"] == len(expected)
    assert (result.data["tag"] is not None) is sees_secret_tag
    assert (result.data["node"] is not None) is sees_secret_tag
    assert result.data["orphans"]["nodes"] == []
