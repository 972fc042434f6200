"""Property: sequences of mutations on rows that exist keep the contract's invariants.

A small blog (two authors' posts and drafts, comments, a deleted post) is built once per test
function; hypothesis draws steps — a mutation, a caller (anonymous, the author, another user, an
admin) and a target among the blog's ids (others' posts, drafts, the deleted post, ids of the
wrong type) — and each example runs inside a savepoint rolled back afterwards. After each step:
no 5xx, no masked error, no traceback or SQL; another user's draft is never revealed (not
found, never forbidden); and the tables changed exactly as the new audit rows say (a comment
that went with its post excepted), so a mutation is applied whole with its audit rows or not
at all.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import models
from gql_blog.ids import encode_global_id
from tests.factories import make_comment, make_post, make_user
from tests.graphql_client import GraphQLClient, assert_clean

CALLERS = ["anonymous", "ada", "bob", "root"]
RESULT = "__typename"
MUTATIONS = {
    "updatePost": 'mutation($id: ID!) { updatePost(id: $id, input: {title: "Changed"}) '
    f"{{ {RESULT} }} }}",
    "publishPost": f"mutation($id: ID!) {{ publishPost(id: $id) {{ {RESULT} }} }}",
    "deletePost": f"mutation($id: ID!) {{ deletePost(id: $id) {{ {RESULT} }} }}",
    "addComment": 'mutation($id: ID!) { addComment(input: {postId: $id, content: "Hi"}) '
    f"{{ {RESULT} }} }}",
    "deleteComment": f"mutation($id: ID!) {{ deleteComment(id: $id) {{ {RESULT} }} }}",
    "deletePosts": "mutation($id: ID!) { deletePosts(where: {id: {eq: $id}}) "
    f"{{ {RESULT} }} }}",
    "deactivateUsers": "mutation($id: ID!) { deactivateUsers(where: {id: {eq: $id}}) "
    f"{{ {RESULT} }} }}",
    "createPost": 'mutation($id: ID!) { createPost(input: {title: $id, content: "C"}) '
    f"{{ {RESULT} }} }}",
}
# Typenames of success: everything else is an expected failure, which must change nothing.
SUCCESSES = {"Post", "Comment", "Deleted", "BulkUpdated"}
Snapshot = dict[tuple[str, int], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Blog:
    users: dict[str, models.User]
    tokens: dict[str, str]
    # Target name → (type, row id): posts and drafts by owner, the deleted post, comments, users.
    targets: dict[str, tuple[str, int]]


@pytest.fixture
async def blog(api: GraphQLClient, db: AsyncSession) -> Blog:
    users = {
        "ada": await make_user(db, username="ada"),
        "bob": await make_user(db, username="bob"),
        "root": await make_user(db, username="root", is_admin=True),
    }
    tokens = {name: await api.token_for(user) for name, user in users.items()}
    posts = {
        f"{name}-{kind}": await make_post(db, author=users[name], published=kind == "post")
        for name in ("ada", "bob")
        for kind in ("post", "draft")
    }
    gone = await make_post(db, author=users["ada"])
    await db.delete(gone)
    comments = {
        "bob-comment-on-ada-post": await make_comment(
            db, post=posts["ada-post"], author=users["bob"]
        ),
        "ada-comment-on-ada-draft": await make_comment(
            db, post=posts["ada-draft"], author=users["ada"]
        ),
    }
    await db.flush()
    targets = {name: ("Post", post.id) for name, post in posts.items()}
    targets |= {name: ("Comment", row.id) for name, row in comments.items()}
    targets |= {name: ("User", user.id) for name, user in users.items()}
    targets["deleted-post"] = ("Post", gone.id)
    return Blog(users, tokens, targets)


async def _snapshot(connection: AsyncConnection) -> Snapshot:
    """Every audited row's audited values, by (entity type, id)."""
    found: Snapshot = {}
    for entity, stmt in (
        (
            "Post",
            select(models.Post.id, models.Post.published, models.Post.user_id, models.Post.title),
        ),
        ("Comment", select(models.Comment.id, models.Comment.post_id)),
        ("User", select(models.User.id, models.User.is_active)),
    ):
        for row in await connection.execute(stmt):
            found[(entity, row[0])] = tuple(row[1:])
    return found


def _changes(before: Snapshot, after: Snapshot) -> set[tuple[str, int, str]]:
    """(entity type, id, action) of each row the step created, updated or deleted."""
    created = {(*key, "CREATE") for key in after.keys() - before.keys()}
    deleted_posts = {key[1] for key in before.keys() - after.keys() if key[0] == "Post"}
    deleted = {
        (*key, "DELETE")
        for key in before.keys() - after.keys()
        # A post's comments go with it, logged by the post's one DELETE entry.
        if not (key[0] == "Comment" and before[key][0] in deleted_posts)
    }
    updated = {
        (*key, "UPDATE") for key in before.keys() & after.keys() if before[key] != after[key]
    }
    return created | deleted | updated


async def _audit_entries(connection: AsyncConnection, after_id: int) -> set[tuple[str, int, str]]:
    stmt = select(models.AuditLog.entity_type, models.AuditLog.entity_id, models.AuditLog.action)
    rows = await connection.execute(stmt.where(models.AuditLog.id > after_id))
    return {(row[0], row[1], str(row[2])) for row in rows}


async def _last_audit_id(connection: AsyncConnection) -> int:
    stmt = select(models.AuditLog.id).order_by(models.AuditLog.id.desc()).limit(1)
    return (await connection.scalar(stmt)) or 0


# Mutations naming a post (or a comment on one) that an unseen draft must answer NotFoundError.
_NAMING_A_POST = {"updatePost", "publishPost", "deletePost", "addComment", "deleteComment"}


def _is_foreign_draft(before: Snapshot, target: tuple[str, int], caller_id: int | None) -> bool:
    """Whether the target is (or is on) a draft of someone other than the caller."""
    post = before.get(("Post", before[target][0])) if target[0] == "Comment" else None
    if target[0] == "Post":
        post = before.get(target)
    return post is not None and not post[0] and post[1] != caller_id


async def _step(
    api: GraphQLClient, connection: AsyncConnection, blog: Blog, step: tuple[str, str, str]
) -> None:
    mutation, caller, target = step
    note(f"{caller} runs {mutation} on {target}")
    row = blog.targets[target]
    before, last_audit = await _snapshot(connection), await _last_audit_id(connection)
    headers = {"Authorization": f"Bearer {blog.tokens[caller]}"} if caller in blog.tokens else {}
    response = await api.http.post(
        "/graphql",
        json={"query": MUTATIONS[mutation], "variables": {"id": encode_global_id(*row)}},
        headers=headers,
    )

    assert_clean(response)
    changes = _changes(before, await _snapshot(connection))
    assert changes == await _audit_entries(connection, last_audit)
    body = response.json()
    typename = next(iter(body["data"].values()))["__typename"] if body.get("data") else None
    if typename not in SUCCESSES:
        assert changes == set()
    caller_id = blog.users[caller].id if caller in blog.users else None
    hidden = mutation in _NAMING_A_POST and caller != "root" and row in before
    if hidden and _is_foreign_draft(before, row, caller_id):
        assert typename in ("NotFoundError", "AuthenticationError")


async def _no_foreign_drafts_visible(api: GraphQLClient, blog: Blog) -> None:
    for caller in ("anonymous", "ada", "bob"):
        headers = (
            {"Authorization": f"Bearer {blog.tokens[caller]}"} if caller in blog.tokens else {}
        )
        response = await api.http.post(
            "/graphql",
            json={"query": "{ posts(first: 100) { nodes { published author { username } } } }"},
            headers=headers,
        )
        assert_clean(response)
        nodes = response.json()["data"]["posts"]["nodes"]
        assert all(node["published"] or node["author"]["username"] == caller for node in nodes)


STEP = st.tuples(
    st.sampled_from(list(MUTATIONS)),
    # Signed-in callers more often: most of what an anonymous caller sends changes nothing.
    st.sampled_from([*CALLERS, "ada", "root"]),
    st.sampled_from(
        [
            "ada-post",
            "ada-draft",
            "bob-post",
            "bob-draft",
            "deleted-post",
            "bob-comment-on-ada-post",
            "ada-comment-on-ada-draft",
            "ada",
            "bob",
            "root",
        ]
    ),
)


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=25,
    deadline=None,
    database=None,
)
@given(steps=st.lists(STEP, min_size=1, max_size=6))
# Every mutation once where it succeeds, whatever hypothesis draws besides.
@example(steps=[("deletePosts", "root", "bob-draft"), ("deactivateUsers", "root", "bob")])
@example(
    steps=[
        ("updatePost", "ada", "ada-draft"),
        ("publishPost", "ada", "ada-draft"),
        ("addComment", "bob", "ada-draft"),
        ("deletePost", "ada", "ada-draft"),
    ]
)
@example(
    steps=[
        ("deleteComment", "bob", "bob-comment-on-ada-post"),
        ("createPost", "ada", "ada"),
        ("updatePost", "bob", "ada-draft"),
    ]
)
async def test_mutation_sequences_keep_the_invariants(
    api: GraphQLClient, connection: AsyncConnection, blog: Blog, steps: list[tuple[str, str, str]]
) -> None:
    savepoint = await connection.begin_nested()
    try:
        for step in steps:
            await _step(api, connection, blog, step)
            await _no_foreign_drafts_visible(api, blog)
    finally:
        await savepoint.rollback()
