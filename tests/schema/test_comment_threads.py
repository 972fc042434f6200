"""Comment editing and threaded replies (API.md, "Replies"), through HTTP."""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from tests.conftest import PlannedApi, StatementCounter
from tests.factories import make_comment, make_post, make_user
from tests.graphql_client import GraphQLClient

COMMENT_PAYLOAD = """
  __typename
  ... on Comment { id content editedAt parent { id content } post { id } }
  ... on Error { message }
  ... on ValidationError { field }
  ... on NotFoundError { missingId: id }
"""
ADD_COMMENT = f"""mutation($input: AddCommentInput!) {{
  addComment(input: $input) {{ {COMMENT_PAYLOAD} }} }}"""
UPDATE_COMMENT = f"""mutation($id: ID!, $input: UpdateCommentInput!) {{
  updateComment(id: $id, input: $input) {{ {COMMENT_PAYLOAD} }} }}"""
DELETE_COMMENT = """mutation($id: ID!) { deleteComment(id: $id) {
  __typename ... on Error { message } } }"""
THREAD = """query($id: ID!) { post(id: $id) {
  comments(where: {isReply: {eq: false}}) { totalCount nodes { content parent { content }
    replies { totalCount nodes { content parent { content }
      replies { nodes { content } } } } } }
  replies: comments(where: {isReply: {eq: true}}) { totalCount }
  underFirst: comments(where: {parent: {content: {eq: "first"}}}) { nodes { content } } } }"""
NESTED_REPLIES = """{ posts { nodes { comments { nodes { replies { nodes {
  replies(first: 3, orderBy: [{field: CREATED_AT, direction: DESC}]) { nodes { content } }
} } } } } } }"""


def _id(kind: str, row: models.Base) -> str:
    return encode_global_id(kind, row.id)  # type: ignore[attr-defined]


async def _reply(
    api: GraphQLClient, viewer: models.User, post: Any, parent: Any, content: str
) -> dict[str, Any]:
    post_id = post if isinstance(post, str) else _id("Post", post)
    fields = {"postId": post_id, "content": content}
    if parent is not None:
        fields["parentId"] = parent if isinstance(parent, str) else parent["id"]
    result = await api.query(ADD_COMMENT, {"input": fields}, viewer=viewer)
    assert result.errors is None
    payload: dict[str, Any] = result.data["addComment"]
    return payload


async def test_replies_nest_to_any_depth_and_list_oldest_first(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    post = await make_post(db, author=ada)

    first = await _reply(api, ada, post, None, "first")
    second = await _reply(api, ada, post, None, "second")
    answer = await _reply(api, ada, post, first, "answer")
    later = await _reply(api, ada, post, first, "later answer")
    deep = await _reply(api, ada, post, answer, "deep")

    assert (first["parent"], answer["parent"]) == (None, {"id": first["id"], "content": "first"})
    assert deep["parent"]["content"] == "answer"
    result = await api.query(THREAD, {"id": _id("Post", post)})
    thread = result.data["post"]
    assert result.errors is None
    assert thread["comments"]["totalCount"] == 2
    assert thread["comments"]["nodes"] == [
        {"content": "second", "parent": None, "replies": {"totalCount": 0, "nodes": []}},
        {
            "content": "first",
            "parent": None,
            "replies": {
                "totalCount": 2,
                "nodes": [
                    {
                        "content": "answer",
                        "parent": {"content": "first"},
                        "replies": {"nodes": [{"content": "deep"}]},
                    },
                    {
                        "content": "later answer",
                        "parent": {"content": "first"},
                        "replies": {"nodes": []},
                    },
                ],
            },
        },
    ]
    assert thread["replies"] == {"totalCount": 3}
    assert thread["underFirst"]["nodes"] == [{"content": "later answer"}, {"content": "answer"}]
    assert second["parent"] is None
    assert later["editedAt"] is None


async def test_a_reply_needs_a_visible_comment_of_the_same_post(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    bob = await make_user(db)
    post = await make_post(db, author=ada)
    other = await make_post(db, author=ada)
    draft = await make_post(db, author=ada, published=False)
    elsewhere = await make_comment(db, post=other, author=ada)
    hidden = await make_comment(db, post=draft, author=ada)

    refusals = [
        await _reply(api, bob, post, _id("Comment", row), "reply") for row in (elsewhere, hidden)
    ]
    wrong_type = await _reply(api, bob, post, _id("Post", post), "reply")
    missing = await _reply(api, bob, post, encode_global_id("Comment", 2**40), "reply")
    on_draft = await _reply(api, bob, draft, _id("Comment", hidden), "reply")

    for refusal, row_id in zip(
        [*refusals, wrong_type, missing],
        [_id("Comment", elsewhere), _id("Comment", hidden), _id("Post", post)],
        strict=False,
    ):
        assert refusal == {
            "__typename": "NotFoundError",
            "message": "No such comment.",
            "missingId": row_id,
        }
    assert missing["missingId"] == encode_global_id("Comment", 2**40)
    assert on_draft["message"] == "No such post."
    count = await db.scalar(select(func.count()).select_from(models.Comment))
    assert count == 2


async def test_update_comment_sets_content_and_edit_time_for_author_or_admin(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    bob = await make_user(db)
    admin = await make_user(db, is_admin=True)
    post = await make_post(db, author=ada)
    comment = await _reply(api, ada, post, None, "Frist!")

    edited = await api.query(
        UPDATE_COMMENT, {"id": comment["id"], "input": {"content": "First!"}}, viewer=ada
    )
    forbidden = await api.query(
        UPDATE_COMMENT, {"id": comment["id"], "input": {"content": "Mine"}}, viewer=bob
    )
    blank = await api.query(
        UPDATE_COMMENT, {"id": comment["id"], "input": {"content": "  "}}, viewer=ada
    )
    anonymous = await api.query(UPDATE_COMMENT, {"id": comment["id"], "input": {"content": "x"}})
    by_admin = await api.query(
        UPDATE_COMMENT, {"id": comment["id"], "input": {"content": "Moderated."}}, viewer=admin
    )
    missing = await api.query(
        UPDATE_COMMENT,
        {"id": encode_global_id("Comment", 999_999), "input": {"content": "x"}},
        viewer=ada,
    )

    first = edited.data["updateComment"]
    assert (first["content"], first["editedAt"] is not None) == ("First!", True)
    assert forbidden.data["updateComment"] == {
        "__typename": "ForbiddenError",
        "message": "Only the author or an admin may change this comment.",
    }
    assert blank.data["updateComment"]["__typename"] == "ValidationError"
    assert blank.data["updateComment"]["field"] == "content"
    assert anonymous.data["updateComment"]["__typename"] == "AuthenticationError"
    moderated = by_admin.data["updateComment"]
    assert moderated["content"] == "Moderated."
    assert moderated["editedAt"] > first["editedAt"]
    assert missing.data["updateComment"]["__typename"] == "NotFoundError"
    stmt = (
        select(models.AuditLog.action, models.AuditLog.actor_id, models.AuditLog.changes)
        .where(models.AuditLog.entity_type == "Comment")
        .order_by(models.AuditLog.id)
    )
    entries = [tuple(row) for row in (await db.execute(stmt)).all()]
    assert entries[1:] == [
        ("UPDATE", ada.id, {"content": ["Frist!", "First!"]}),
        ("UPDATE", admin.id, {"content": ["First!", "Moderated."]}),
    ]


async def test_delete_comment_deletes_its_replies_at_every_depth_with_one_audit_entry(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    post = await make_post(db, author=ada)
    keep = await make_comment(db, post=post, author=ada, content="keep")
    root = await make_comment(db, post=post, author=ada, content="root")
    parent = root
    for depth in range(20):  # deeper than MariaDB's 15 levels of cascades
        parent = await make_comment(db, post=post, author=ada, parent=parent, content=f"{depth}")
    sibling = await make_comment(db, post=post, author=ada, parent=root, content="sibling")
    await make_comment(db, post=post, author=ada, parent=keep, content="kept reply")
    start = await db.scalar(select(func.coalesce(func.max(models.AuditLog.id), 0)))

    result = await api.query(DELETE_COMMENT, {"id": _id("Comment", root)}, viewer=ada)

    assert result.data["deleteComment"]["__typename"] == "Deleted"
    left = await db.scalars(select(models.Comment.content).order_by(models.Comment.id))
    assert list(left) == ["keep", "kept reply"]
    entries = (
        await db.execute(
            select(models.AuditLog.action, models.AuditLog.entity_id).where(
                models.AuditLog.id > start
            )
        )
    ).all()
    assert [tuple(row) for row in entries] == [("DELETE", root.id)]
    assert sibling.id != root.id


async def test_deleting_a_post_deletes_deep_threads(api: GraphQLClient, db: AsyncSession) -> None:
    ada = await make_user(db)
    post = await make_post(db, author=ada)
    parent = None
    for depth in range(20):
        parent = await make_comment(db, post=post, author=ada, parent=parent, content=f"{depth}")

    result = await api.query(
        "mutation($id: ID!) { deletePost(id: $id) { __typename } }",
        {"id": _id("Post", post)},
        viewer=ada,
    )

    assert result.data["deletePost"]["__typename"] == "Deleted"
    assert await db.scalar(select(func.count()).select_from(models.Comment)) == 0


async def test_nested_replies_take_one_statement_per_level(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    ada = await make_user(db)
    for _ in range(3):
        post = await make_post(db, author=ada)
        for _ in range(2):
            top = await make_comment(db, post=post, author=ada)
            for _ in range(2):
                reply = await make_comment(db, post=post, author=ada, parent=top)
                await make_comment(db, post=post, author=ada, parent=reply)

    with count_sql() as counted:
        result = await api.query(NESTED_REPLIES)

    assert result.errors is None
    posts = result.data["posts"]["nodes"]
    assert [
        len(reply["replies"]["nodes"])
        for p in posts
        for c in p["comments"]["nodes"]
        for reply in c["replies"]["nodes"]
    ].count(1) == 12
    # posts, their comments, the comments' replies, the replies' replies: one each (on
    # PostgreSQL, the comments are read beside the posts; replies always by a statement).
    assert counted.total == (3 if dialect == "postgresql" else 4)


async def test_planned_nested_replies_take_one_statement_per_level(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    ada = await make_user(db)
    for _ in range(2):
        post = await make_post(db, author=ada)
        top = await make_comment(db, post=post, author=ada)
        reply = await make_comment(db, post=post, author=ada, parent=top)
        await make_comment(db, post=post, author=ada, parent=reply)
    query = """{ posts(first: 5) { nodes { comments(first: 5) { nodes { parent { id }
      replies(first: 5) { totalCount nodes { parent { content }
        replies(first: 5) { nodes { content } } } } } } } } }"""
    await planned_api.client.query(query)  # teaches the planner the document
    answered = planned_api.planner.answered

    with count_sql() as counted:
        result = await planned_api.client.query(query)

    assert result.errors is None
    assert planned_api.planner.answered == answered + 1
    assert result.extensions["cost"] == 5 + 25 + 125 + 625  # replies count as connections
    # posts; comments; their parents (the top-level ones' are null); replies and their count;
    # the replies' replies. A reply's parent is the row it was listed under: no statement. On
    # PostgreSQL, the comments are read beside the posts.
    assert counted.total == (5 if dialect == "postgresql" else 6)


async def test_a_reply_is_audited_with_its_parent_shown_as_a_global_id(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db)
    admin = await make_user(db, is_admin=True)
    post = await make_post(db, author=ada)
    top = await _reply(api, ada, post, None, "top")
    reply = await _reply(api, ada, post, top, "reply")

    result = await api.query(
        """query { auditLog(where: {entityType: {eq: "Comment"}, action: CREATE}) {
          nodes { entityId changes } } }""",
        viewer=admin,
    )

    assert result.errors is None
    entries = {node["entityId"]: node["changes"] for node in result.data["auditLog"]["nodes"]}
    assert entries[reply["id"]] == {
        "content": "reply",
        "author": _id("User", ada),
        "post": _id("Post", post),
        "parent": top["id"],
    }
    assert "parent" not in entries[top["id"]]
