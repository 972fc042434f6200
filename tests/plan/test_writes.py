"""Planned mutations answer as strawberry's executor does: payload, database and events alike.

Each request runs three times over the same rows, each time in a savepoint rolled back after it:
on the planner's app (a new document: planned on first sight), on it again (from the plans its
cache entry keeps), and on the app without the planner. Time stands still, so timestamps agree;
ids do not (a rolled-back sequence stays advanced on PostgreSQL and MariaDB), so the rows a
request created are renamed by their order of creation before the bytes are compared.
"""

import asyncio
import base64
import functools
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import auth, events, models
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.plan.planner import Planner
from tests.committed import serve_committed_api
from tests.conftest import StatementCounter, graphql_endpoint
from tests.graphql_client import GraphQLClient, request_sessions, serve_app
from tests.plan.conftest import ROLES, Blog, build_blog

NOW = datetime(2030, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


class _Frozen(datetime):
    """`datetime` whose now() is NOW."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW


# What a write may change, read back in a fixed order.
TABLES = ("users", "posts", "tags", "post_tags", "comments", "audit_logs")
# Tables compared without their ids, in no order: each user's tokens (each app issued its own,
# at its own time, so which one is not compared) and sign-in attempts.
_UNORDERED = {
    "auth_tokens": ("user_id", "expires_at", "revoked_at"),
    "sign_in_attempts": ("username_digest", "address", "succeeded", "created_at"),
}
# The tables whose new rows are renamed, and the columns that point at them.
_RENAMED = ("users", "posts", "tags", "comments", "audit_logs")
_POINTERS = {
    ("post_tags", "post_id"): "posts",
    ("post_tags", "tag_id"): "tags",
    ("comments", "post_id"): "posts",
    ("auth_tokens", "user_id"): "users",
    ("audit_logs", "actor_id"): "users",
}
_GLOBAL_TYPES = {"users": "User", "posts": "Post", "tags": "Tag", "comments": "Comment"}
# A token issued (each run's differs); whether it signs in is tested on its own.
_TOKEN = re.compile(rb'"token":"[A-Za-z0-9_-]{43}"')

ADD_COMMENT = """mutation Add($input: AddCommentInput!) { addComment(input: $input) {
  __typename
  ... on Comment { id content createdAt editedAt parent { id content }
                   author { id username email fullName }
                   post { id title slug publishedAt published author { username email }
                          tags { name } } }
  ... on ValidationError { field }
  ... on NotFoundError { missing: id }
  ... on Error { message }
} }"""
ADD_COMMENT_SMALL = """mutation($input: AddCommentInput!) { addComment(input: $input) {
  ... on CommentResult { __typename } ... on Comment { id } } }"""
CREATE_POST = """mutation Create($input: CreatePostInput!) { createPost(input: $input) {
  __typename
  ... on Post { id title content published createdAt updatedAt slug publishedAt
                author { username isAdmin } tags { id name }
                comments(first: 5) { totalCount nodes { id } pageInfo { hasNextPage } } }
  ... on ValidationError { message field }
  ... on Error { message }
} }"""

# The payload of a post written by updatePost or publishPost: its author need not be the viewer.
_POST_RESULT = """
  __typename
  ... on Post { id title content published createdAt updatedAt slug publishedAt
                author { username email } tags { name }
                comments(first: 5) { totalCount nodes { id content } } }
  ... on ValidationError { message field }
  ... on ConflictError { message field }
  ... on NotFoundError { missing: id }
  ... on Error { message }
"""
UPDATE_POST = (
    "mutation Update($id: ID!, $input: UpdatePostInput!) { updatePost(id: $id, input: $input) {"
    + _POST_RESULT
    + "} }"
)
PUBLISH_POST = "mutation Publish($id: ID!) { publishPost(id: $id) {" + _POST_RESULT + "} }"
_DELETE_RESULT = """
  __typename ... on Deleted { id } ... on NotFoundError { missing: id } ... on Error { message }
"""
DELETE_POST = "mutation DeletePost($id: ID!) { deletePost(id: $id) {" + _DELETE_RESULT + "} }"
DELETE_COMMENT = (
    "mutation DeleteComment($id: ID!) { deleteComment(id: $id) {" + _DELETE_RESULT + "} }"
)
UPDATE_COMMENT = """mutation Edit($id: ID!, $input: UpdateCommentInput!) {
  updateComment(id: $id, input: $input) {
    __typename
    ... on Comment { id content createdAt editedAt author { username email }
                     post { title author { username } } parent { id } }
    ... on ValidationError { field }
    ... on NotFoundError { missing: id }
    ... on Error { message }
} }"""
_BULK_RESULT = "__typename ... on BulkUpdated { affected } ... on Error { message }"
DEACTIVATE_USERS = (
    "mutation Deactivate($where: UserWhere!) { deactivateUsers(where: $where) {"
    + _BULK_RESULT
    + "} }"
)
DELETE_POSTS = (
    "mutation DeletePosts($where: PostWhere!) { deletePosts(where: $where) {" + _BULK_RESULT + "} }"
)

IMPORT_POSTS = """mutation Import($inputs: [CreatePostInput!]!) { importPosts(inputs: $inputs) {
  __typename created
  results {
    __typename
    ... on Post { id title slug published createdAt updatedAt publishedAt author { username }
                  tags { name } comments(first: 2) { totalCount } }
    ... on ValidationError { message field }
    ... on Error { message }
  }
  again: results { ... on Post { id tags { id } } }
} }"""

LOGOUT = "mutation LogOut { logout }"
UPDATE_VIEWER = """mutation Me($input: UpdateViewerInput!) { updateViewer(input: $input) {
  __typename
  ... on User { id username email firstName lastName fullName bio age isActive isAdmin createdAt
                posts(first: 3) { totalCount nodes { title published } } }
  ... on ValidationError { message field }
  ... on ConflictError { message field }
  ... on Error { message }
} }"""
_AUTH_RESULT = """
  __typename
  ... on AuthPayload { token user { id username email fullName age bio isActive isAdmin createdAt
                                    posts(first: 5) { totalCount nodes { title published } } } }
  ... on ValidationError { message field }
  ... on ConflictError { message field }
  ... on InvalidCredentialsError { message retryAfterSeconds }
"""
REGISTER = (
    "mutation Register($input: RegisterInput!) { register(input: $input) {" + _AUTH_RESULT + "} }"
)
LOGIN = "mutation LogIn($input: LoginInput!) { login(input: $input) {" + _AUTH_RESULT + "} }"
# What the factories store as every user's password hash; a new one is argon2's.
OLD_HASH = "not-a-real-hash"
NEW_PASSWORD = "correct horse battery"


class RecordingBus(events.InProcessBus):
    """The in-process bus, remembering every event it delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[events.Event] = []

    def committed(self, noted: Sequence[events.Event]) -> None:
        self.delivered.extend(noted)
        super().committed(noted)


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    rows: dict[str, list[dict[str, Any]]]
    events: list[tuple[str, Any, Any]]


@dataclass(slots=True)
class Apps:
    connection: AsyncConnection
    planned: GraphQLClient
    planned_bus: RecordingBus
    generic: GraphQLClient
    generic_bus: RecordingBus
    planner: Planner
    blog: Blog
    before: dict[str, int]  # each renamed table's highest id before any request

    async def answer(
        self, client: GraphQLClient, bus: RecordingBus, query: str, variables: Any, role: str
    ) -> Answer:
        """The request's response, rows and events, all undone afterwards."""
        savepoint = await self.connection.begin_nested()
        try:
            response = await self.post(client, query, variables, role)
            rows = await self.rows()
        finally:
            await savepoint.rollback()
        delivered = [(event.kind.value, event.post_id, event.comment_id) for event in bus.delivered]
        bus.delivered.clear()
        return self.renamed(Answer(response.content, rows, delivered))

    async def post(
        self, client: GraphQLClient, query: str, variables: Any, role: str
    ) -> httpx.Response:
        viewer = self.blog.viewer(role)
        headers = {}
        if viewer is not None:
            headers["Authorization"] = f"Bearer {await client.token_for(viewer)}"
        body = {"query": query, "variables": variables}
        return await client.http.post("/graphql", json=body, headers=headers)

    async def rows(self) -> dict[str, list[dict[str, Any]]]:
        tables = models.Base.metadata.tables
        found = {}
        for name in TABLES:
            table = tables[name]
            result = await self.connection.execute(select(table).order_by(*table.primary_key))
            found[name] = [_hash_checked(dict(row)) for row in result.mappings()]
        for name, columns in _UNORDERED.items():
            table = models.Base.metadata.tables[name]
            result = await self.connection.execute(select(*(table.c[c] for c in columns)))
            found[name] = [dict(row) for row in result.mappings()]
        return found

    def renamed(self, answer: Answer) -> Answer:
        """New ids as `new <table> <n>`, wherever they appear (global ids too)."""
        names: dict[str, dict[int, str]] = {}
        body = answer.body
        for table in _RENAMED:
            new_ids = sorted(r["id"] for r in answer.rows[table] if r["id"] > self.before[table])
            names[table] = {row_id: f"new {table} {n}" for n, row_id in enumerate(new_ids)}
            type_name = _GLOBAL_TYPES.get(table)
            for row_id, name in names[table].items():
                if type_name is not None:
                    global_id = base64.b64encode(f"{type_name}:{row_id}".encode())
                    body = body.replace(global_id, name.encode())
        body = _TOKEN.sub(b'"token":"(issued)"', body)
        rows = {
            table: [_rename_row(table, row, names) for row in table_rows]
            for table, table_rows in answer.rows.items()
        }
        for table in _UNORDERED:
            rows[table].sort(key=repr)
        posts, comments = names["posts"], names["comments"]
        delivered = [
            (kind, posts.get(post_id, post_id), comments.get(comment_id, comment_id))
            for kind, post_id, comment_id in answer.events
        ]
        return Answer(body, rows, delivered)


def _hash_checked(row: dict[str, Any]) -> dict[str, Any]:
    """A user's new password hash (salted: each run's differs) as whether it verifies
    NEW_PASSWORD."""
    if row.get("password_hash", OLD_HASH) != OLD_HASH:
        row["password_hash"] = ("argon2", _verifies(row["password_hash"]))
    return row


@functools.cache
def _verifies(password_hash: str) -> bool:
    """Whether the hash verifies NEW_PASSWORD (argon2 takes a while: once per hash)."""
    return auth.verify_password(password_hash, NEW_PASSWORD)


def _rename_row(
    table: str, row: dict[str, Any], names: dict[str, dict[int, str]]
) -> dict[str, Any]:
    renamed = dict(row)
    if table in names:
        renamed["id"] = names[table].get(row["id"], row["id"])
    for (pointing, column), target in _POINTERS.items():
        if pointing == table:
            renamed[column] = names[target].get(row[column], row[column])
    if table == "audit_logs":
        target = {"User": "users", "Post": "posts", "Comment": "comments"}[row["entity_type"]]
        renamed["entity_id"] = names.get(target, {}).get(row["entity_id"], row["entity_id"])
        changes = dict(row["changes"])
        if "post" in changes:
            changes["post"] = names["posts"].get(changes["post"], changes["post"])
        renamed["changes"] = (changes, list(changes))  # key order is part of the text
    return renamed


@pytest.fixture
async def apps(
    settings: Settings,
    connection: AsyncConnection,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Apps]:
    # Column defaults hold `models.utc_now` itself, which reads the module's `datetime`.
    monkeypatch.setattr(models, "datetime", _Frozen)
    blog = await build_blog(db)
    for name in ("ann", "dee"):  # who logs in (dee is deactivated)
        blog.users[name].password_hash = auth.hash_password(NEW_PASSWORD)
    await db.flush()
    before = {}
    for table in _RENAMED:
        column = models.Base.metadata.tables[table].c.id
        before[table] = int(await db.scalar(select(column).order_by(column.desc())) or 0)
    planned_bus, generic_bus = RecordingBus(), RecordingBus()
    sessions = request_sessions(connection)
    planned_app = create_app(replace(settings, planner=True), sessions=sessions, bus=planned_bus)
    generic_app = create_app(replace(settings, planner=False), sessions=sessions, bus=generic_bus)
    async with serve_app(planned_app, db) as planned, serve_app(generic_app, db) as generic:
        for client in (planned, generic):  # issued now: a request's savepoint would undo them
            for role in ROLES:
                if (viewer := blog.viewer(role)) is not None:
                    await client.token_for(viewer)
        yield Apps(
            connection,
            planned,
            planned_bus,
            generic,
            generic_bus,
            graphql_endpoint(planned_app).planner,
            blog,
            before,
        )


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    query: str
    variables: dict[str, Any]
    # The planner declines a signed-in viewer's request (the executor answers both); an
    # anonymous one is refused before the input is read, on either path.
    declined: bool = False
    # The payload's type for the author and for the admin (anonymous: AuthenticationError).
    expected: tuple[str, str] | None = None
    # Whether it writes when it succeeds (publishing a published post changes nothing).
    writes: bool = True


def _comment(blog: Blog, post: str, content: str = "A fine comment.") -> dict[str, Any]:
    return {"input": {"postId": blog.global_id("post", post), "content": content}}


def _post(**fields: Any) -> dict[str, Any]:
    return {"input": {"title": "New post", "content": "Words.", **fields}}


def _reply(blog: Blog, post: str, parent_id: str) -> dict[str, Any]:
    variables = _comment(blog, post, "A reply.")
    variables["input"]["parentId"] = parent_id
    return variables


def _blank(variables: dict[str, Any]) -> dict[str, Any]:
    variables["input"]["content"] = ""
    return variables


def _cases(blog: Blog) -> list[Case]:
    user_id = blog.global_id("user", "bob")
    return [
        Case("comment on a published post", ADD_COMMENT, _comment(blog, "hello")),
        Case("comment on ann's draft", ADD_COMMENT, _comment(blog, "ann_draft")),
        Case("comment on bob's draft", ADD_COMMENT, _comment(blog, "bob_draft")),
        Case("comment on the admin's post", ADD_COMMENT_SMALL, _comment(blog, "news")),
        Case("blank comment", ADD_COMMENT, _comment(blog, "hello", "   ")),
        Case("comment with NUL", ADD_COMMENT, _comment(blog, "hello", "a\x00b")),
        Case("comment on a user id", ADD_COMMENT, {"input": {"postId": user_id, "content": "x"}}),
        Case(
            "comment on a malformed id",
            ADD_COMMENT,
            {"input": {"postId": "nonsense", "content": "x"}},
            declined=True,
        ),
        Case(
            "reply to a comment",
            ADD_COMMENT,
            _reply(blog, "hello", blog.global_id("comment", "hello_bob")),
        ),
        Case(
            "reply to a reply",
            ADD_COMMENT,
            _reply(blog, "hello", blog.global_id("comment", "reply_ann")),
        ),
        Case(
            "reply to a comment of another post",
            ADD_COMMENT,
            _reply(blog, "hello", blog.global_id("comment", "news_dee")),
        ),
        Case(
            "reply to a comment of a draft",
            ADD_COMMENT,
            _reply(blog, "ann_draft", blog.global_id("comment", "draft_ann")),
        ),
        Case(
            "reply to a post id",
            ADD_COMMENT,
            _reply(blog, "hello", blog.global_id("post", "hello")),
        ),
        # What is missing is said before what is wrong with the content.
        Case("blank comment on bob's draft", ADD_COMMENT, _comment(blog, "bob_draft", " ")),
        Case(
            "blank reply to a comment of another post",
            ADD_COMMENT,
            _blank(_reply(blog, "hello", blog.global_id("comment", "news_dee"))),
        ),
        Case(
            "blank reply to a post id",
            ADD_COMMENT,
            _blank(_reply(blog, "hello", blog.global_id("post", "hello"))),
        ),
        Case("draft without tags", CREATE_POST, _post()),
        Case(
            "published post with tags old and new",
            CREATE_POST,
            _post(published=True, tags=["Python", " brand-new ", "python", "sql"]),
        ),
        Case("blank title", CREATE_POST, _post(title=" ")),
        Case("eleven tags", CREATE_POST, _post(tags=[f"t{n}" for n in range(11)])),
        Case("blank tag", CREATE_POST, _post(tags=["ok", ""])),
    ]


# The edits: (label, mutation, the row its id names, its input, the author's answer, the
# admin's answer). "post hello" is ann's (the author's) published post; see tests/plan/conftest.py.
_POST = ("Post", "Post")
_REFUSED = {kind: (kind, kind) for kind in ("ValidationError", "ConflictError", "NotFoundError")}
_EDITS: list[tuple[str, str, str, dict[str, Any] | None, tuple[str, str]]] = [
    ("retitle ann's post", UPDATE_POST, "post hello", {"title": "Hi"}, _POST),
    ("retag ann's post", UPDATE_POST, "post hello", {"tags": ["SQL", " fresh "]}, _POST),
    (
        "publish ann's draft by an update",
        UPDATE_POST,
        "post ann_draft",
        {"published": True, "content": "Done."},
        _POST,
    ),
    ("unpublish ann's post", UPDATE_POST, "post hello", {"published": False}, _POST),
    ("set a free slug", UPDATE_POST, "post hello", {"slug": "hello-again"}, _POST),
    (
        "set a taken slug",
        UPDATE_POST,
        "post hello",
        {"slug": "same-title", "title": "Taken"},
        _REFUSED["ConflictError"],
    ),
    (
        "set an invalid slug",
        UPDATE_POST,
        "post hello",
        {"slug": "Not A Slug"},
        _REFUSED["ValidationError"],
    ),
    (
        "blank title in an update",
        UPDATE_POST,
        "post hello",
        {"title": " ", "tags": ["new-tag"]},
        _REFUSED["ValidationError"],
    ),
    (
        "eleven tags in an update",
        UPDATE_POST,
        "post hello",
        {"tags": [f"t{n}" for n in range(11)]},
        _REFUSED["ValidationError"],
    ),
    (
        "update bob's post",
        UPDATE_POST,
        "post same_bob",
        {"title": "Mine"},
        ("ForbiddenError", "Post"),
    ),
    (
        "update bob's draft",
        UPDATE_POST,
        "post bob_draft",
        {"title": "Seen", "published": True},
        ("NotFoundError", "Post"),
    ),
    (
        "update a comment id",
        UPDATE_POST,
        "comment hello_ann",
        {"title": "x"},
        _REFUSED["NotFoundError"],
    ),
    ("publish ann's draft", PUBLISH_POST, "post ann_draft", None, _POST),
    ("publish bob's draft", PUBLISH_POST, "post bob_draft", None, ("NotFoundError", "Post")),
    ("delete ann's post", DELETE_POST, "post hello", None, ("Deleted", "Deleted")),
    ("delete bob's post", DELETE_POST, "post same_bob", None, ("ForbiddenError", "Deleted")),
    ("delete bob's draft", DELETE_POST, "post bob_draft", None, ("NotFoundError", "Deleted")),
    ("delete a tag id", DELETE_POST, "tag python", None, _REFUSED["NotFoundError"]),
    (
        "edit ann's comment",
        UPDATE_COMMENT,
        "comment hello_ann",
        {"content": "New."},
        ("Comment", "Comment"),
    ),
    (
        "edit ann's reply",
        UPDATE_COMMENT,
        "comment reply_ann",
        {"content": "Re."},
        ("Comment", "Comment"),
    ),
    (
        "edit bob's comment",
        UPDATE_COMMENT,
        "comment hello_bob",
        {"content": "No."},
        ("ForbiddenError", "Comment"),
    ),
    (
        "edit a comment on bob's draft",
        UPDATE_COMMENT,
        "comment bob_draft_bob",
        {"content": "Hidden."},
        ("NotFoundError", "Comment"),
    ),
    (
        "blank edit",
        UPDATE_COMMENT,
        "comment hello_ann",
        {"content": "  "},
        _REFUSED["ValidationError"],
    ),
    ("edit a post id", UPDATE_COMMENT, "post hello", {"content": "x"}, _REFUSED["NotFoundError"]),
    (
        "delete ann's reply and its replies",
        DELETE_COMMENT,
        "comment reply_ann",
        None,
        ("Deleted", "Deleted"),
    ),
    (
        "delete bob's thread",
        DELETE_COMMENT,
        "comment hello_bob",
        None,
        ("ForbiddenError", "Deleted"),
    ),
    (
        "delete a comment on bob's draft",
        DELETE_COMMENT,
        "comment bob_draft_bob",
        None,
        ("NotFoundError", "Deleted"),
    ),
]
# Edits that succeed without a change: (label, mutation, the row, its input, answers).
_NO_OPS: list[tuple[str, str, str, dict[str, Any] | None, tuple[str, str]]] = [
    ("update nothing", UPDATE_POST, "post hello", {"title": None}, _POST),
    ("publish a published post", PUBLISH_POST, "post hello", None, _POST),
    ("publish bob's post", PUBLISH_POST, "post same_bob", None, ("ForbiddenError", "Post")),
]
# Admins' bulk operations: (label, mutation, its `where`); the author is refused.
_BULK: list[tuple[str, str, dict[str, Any]]] = [
    ("deactivate bob", DEACTIVATE_USERS, {"username": {"eq": "bob"}}),
    ("deactivate everyone", DEACTIVATE_USERS, {}),
    ("delete the posts of one title", DELETE_POSTS, {"title": {"eq": "Same title"}}),
    ("delete bob's posts", DELETE_POSTS, {"author": {"username": {"eq": "bob"}}}),
    ("delete every post", DELETE_POSTS, {}),
]


def _edit_cases(blog: Blog) -> list[Case]:
    cases = []
    for edits, writes in ((_EDITS, True), (_NO_OPS, False)):
        for label, query, row, given, expected in edits:
            kind, name = row.split()
            variables: dict[str, Any] = {"id": blog.global_id(kind, name)}
            if given is not None:
                variables["input"] = given
            cases.append(Case(label, query, variables, expected=expected, writes=writes))
    malformed = {"id": "nonsense", "input": {"title": "x"}}
    cases.append(Case("update a malformed id", UPDATE_POST, malformed, declined=True))
    admins_only = ("ForbiddenError", "BulkUpdated")
    cases += [
        Case(label, query, {"where": where}, expected=admins_only) for label, query, where in _BULK
    ]
    nobody = {"where": {"username": {"eq": "nobody"}}}
    cases.append(
        Case("deactivate nobody", DEACTIVATE_USERS, nobody, expected=admins_only, writes=False)
    )
    return cases


def _import(*items: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": [{"content": "Words.", **item} for item in items]}


# Good items and bad: each in its own savepoint.
_IMPORTS = [
    Case(
        "import good and bad posts",
        IMPORT_POSTS,
        _import(
            {"title": "One", "published": True, "tags": ["Python", "imported"]},
            {"title": " "},
            {"title": "Two", "tags": ["imported", "sql"]},
            {"title": "Three", "tags": [f"t{n}" for n in range(11)]},
            {"title": "One"},
        ),
    ),
    Case("import nothing", IMPORT_POSTS, _import()),
    Case("import only bad posts", IMPORT_POSTS, _import({"title": ""}, {"title": "x\x00"})),
    Case("log out", LOGOUT, {}),
]


def _viewer_cases(blog: Blog) -> list[Case]:
    """updateViewer: the author and the admin change their own account (label, input, the
    payload's type, whether it writes)."""
    changed, refused = ("User", "User"), ("ValidationError", "ValidationError")
    profile = {"email": " New@Example.TEST ", "firstName": "Nan", "lastName": None, "age": 31}
    taken = {"email": blog.users["bob"].email.upper(), "password": NEW_PASSWORD}
    table: list[tuple[str, dict[str, Any], tuple[str, str], bool]] = [
        ("change the profile", profile | {"bio": "New."}, changed, True),
        ("change the password", {"password": NEW_PASSWORD}, changed, True),
        (
            "clear the profile",
            dict.fromkeys(("email", "firstName", "lastName", "bio", "age")),
            changed,
            True,
        ),
        ("change nothing", {}, changed, False),
        ("invalid e-mail", {"firstName": "X", "email": "nope"}, refused, True),
        ("e-mail with NUL", {"email": "a\x00@b.test"}, refused, True),
        ("age out of range", {"age": 151, "bio": "Old."}, refused, True),
        ("short password, invalid e-mail", {"password": "short", "email": "nope"}, refused, True),
        ("taken e-mail", taken, ("ConflictError", "ConflictError"), True),
    ]
    return [
        Case(label, UPDATE_VIEWER, {"input": given}, expected=expected, writes=writes)
        for label, given, expected, writes in table
    ]


def _account(**fields: Any) -> dict[str, Any]:
    account = {"username": "newbie", "email": "Newbie@Example.test", "password": NEW_PASSWORD}
    return {"input": account | {"firstName": "New", "age": 20} | fields}


def _login(username: str, password: str = NEW_PASSWORD) -> dict[str, Any]:
    return {"input": {"username": username, "password": password}}


# Anyone may register or log in: (label, mutation, variables, the payload's type).
_SIGN_INS: list[tuple[str, str, dict[str, Any], str]] = [
    ("register", REGISTER, _account(), "AuthPayload"),
    ("register a taken username", REGISTER, _account(username="ANN"), "ConflictError"),
    ("register a short password", REGISTER, _account(password="short"), "ValidationError"),
    ("register a bad username", REGISTER, _account(username="a b"), "ValidationError"),
    (
        "register a bad e-mail and password",
        REGISTER,
        _account(email="nope", password="short"),
        "ValidationError",
    ),
    ("register an age out of range", REGISTER, _account(age=-1), "ValidationError"),
    ("log in", LOGIN, _login("ANN"), "AuthPayload"),
    (
        "log in with a wrong password",
        LOGIN,
        _login("ann", "wrong password"),
        "InvalidCredentialsError",
    ),
    ("log in as nobody", LOGIN, _login("nobody"), "InvalidCredentialsError"),
    ("log in as a deactivated user", LOGIN, _login("dee"), "InvalidCredentialsError"),
]


def _sign_ins(blog: Blog) -> list[tuple[str, str, dict[str, Any], str]]:
    taken = _account(email=blog.users["bob"].email.upper())
    return [*_SIGN_INS, ("register a taken e-mail", REGISTER, taken, "ConflictError")]


def _sign_in_cases(blog: Blog) -> list[Case]:
    return [Case(label, query, variables) for label, query, variables, _ in _sign_ins(blog)]


def _all_cases(blog: Blog) -> list[Case]:
    return [
        *_cases(blog),
        *_edit_cases(blog),
        *_IMPORTS,
        *_viewer_cases(blog),
        *_sign_in_cases(blog),
    ]


@pytest.mark.parametrize("role", ROLES)
async def test_planned_writes_answer_as_the_executor(apps: Apps, role: str) -> None:
    failures = []
    for case in _all_cases(apps.blog):
        answered = apps.planner.answered
        first = await apps.answer(apps.planned, apps.planned_bus, case.query, case.variables, role)
        first_planned = apps.planner.answered == answered + 1
        answered = apps.planner.answered
        planned = await apps.answer(
            apps.planned, apps.planned_bus, case.query, case.variables, role
        )
        was_planned = apps.planner.answered == answered + 1
        generic = await apps.answer(
            apps.generic, apps.generic_bus, case.query, case.variables, role
        )
        expected = not case.declined or role == "anonymous"
        if (first_planned, was_planned) != (expected, expected):
            failures.append(
                f"{case.label}: planned {first_planned}, then {was_planned}; expected {expected}"
            )
        for name, answer in (("first", first), ("second", planned)):
            for part in ("body", "rows", "events"):
                if getattr(answer, part) != getattr(generic, part):
                    failures.append(
                        f"{case.label}, {name} {part}:\n  {getattr(answer, part)}\n"
                        f"  generic: {getattr(generic, part)}"
                    )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
async def test_planned_edits_answer_their_type_and_refusals_change_nothing(
    apps: Apps, role: str
) -> None:
    """The planned path's own outcome of each edit case: its payload type, its rows changed on
    success (but for a no-op), the database exactly as it was after a refusal."""
    unchanged = await apps.rows()
    failures = []
    for case in _all_cases(apps.blog):
        if case.expected is None:
            continue
        expected = {"anonymous": "AuthenticationError"} | dict(
            zip(("author", "admin"), case.expected, strict=True)
        )
        answer = await apps.answer(apps.planned, apps.planned_bus, case.query, case.variables, role)
        (payload,) = orjson.loads(answer.body)["data"].values()
        if payload["__typename"] != expected[role]:
            failures.append(f"{case.label}: {payload}, expected {expected[role]}")
        wrote = answer.rows != apps.renamed(Answer(b"", unchanged, [])).rows
        if wrote != (case.writes and not expected[role].endswith("Error")):
            failures.append(f"{case.label}: wrote {wrote} as {expected[role]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
async def test_planned_sign_ins_answer_their_type_and_refusals_change_nothing(
    apps: Apps, role: str
) -> None:
    """Each register and login case's payload type for any viewer; signed in, the payload reads
    as the new viewer (its e-mail address, its drafts). A refusal leaves every table as it was
    but a failed login's attempt, recorded as the executor records it."""
    unchanged = apps.renamed(Answer(b"", await apps.rows(), [])).rows
    failures = []
    for label, query, variables, expected in _sign_ins(apps.blog):
        answer = await apps.answer(apps.planned, apps.planned_bus, query, variables, role)
        (payload,) = orjson.loads(answer.body)["data"].values()
        if payload["__typename"] != expected:
            failures.append(f"{label}: {payload}, expected {expected}")
        changed = {name for name, rows in answer.rows.items() if rows != unchanged[name]}
        attempts = {"sign_in_attempts"} if query == LOGIN else set()
        if expected != "AuthPayload":
            if changed != attempts:
                failures.append(f"{label}: refused, but changed {changed}")
            continue
        wrote = {"auth_tokens"} | (attempts or {"users", "audit_logs"})
        if payload["user"]["email"] is None or changed != wrote:
            failures.append(f"{label}: {payload['user']}, changed {changed}")
    assert not failures, "\n".join(failures)


async def test_a_planned_sign_in_shows_the_new_viewers_drafts_and_its_token_signs_in(
    apps: Apps,
) -> None:
    answered = apps.planner.answered
    savepoint = await apps.connection.begin_nested()
    try:
        response = await apps.post(apps.planned, LOGIN, _login("ann"), "anonymous")
        token = response.json()["data"]["login"]["token"]
        viewer = await apps.planned.http.post(
            "/graphql",
            json={"query": "{ viewer { username } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        await savepoint.rollback()

    assert apps.planner.answered == answered + 2
    user = response.json()["data"]["login"]["user"]
    assert (user["username"], user["email"]) == ("ann", apps.blog.users["ann"].email)
    assert {"title": "Draft by ann", "published": False} in user["posts"]["nodes"]
    assert viewer.json()["data"] == {"viewer": {"username": "ann"}}


async def test_the_cases_write_and_refuse(apps: Apps) -> None:
    """The differential cases are not vacuous: they write rows, events and refusals."""
    cases = {case.label: case for case in _cases(apps.blog)}
    case = cases["published post with tags old and new"]
    wrote = await apps.answer(apps.generic, apps.generic_bus, case.query, case.variables, "author")
    assert len(wrote.rows["posts"]) == len(apps.blog.posts) + 1
    assert [kind for kind, _, _ in wrote.events] == ["post_published"]
    case = cases["blank title"]
    refused = await apps.answer(apps.generic, apps.generic_bus, case.query, case.variables, "admin")
    assert b'"ValidationError"' in refused.body
    assert len(refused.rows["posts"]) == len(apps.blog.posts)


async def test_a_planned_import_keeps_good_posts_and_reports_bad_ones(apps: Apps) -> None:
    case = {case.label: case for case in _IMPORTS}["import good and bad posts"]
    answered = apps.planner.answered

    answer = await apps.answer(apps.planned, apps.planned_bus, case.query, case.variables, "author")

    assert apps.planner.answered == answered + 1
    payload = orjson.loads(answer.body)["data"]["importPosts"]
    assert [result["__typename"] for result in payload["results"]] == [
        "Post",
        "ValidationError",
        "Post",
        "ValidationError",
        "Post",
    ]
    assert payload["created"] == 3
    assert [post["slug"] for post in answer.rows["posts"][len(apps.blog.posts) :]] == [
        "one",
        "two",
        "one-2",
    ]
    assert [kind for kind, _, _ in answer.events] == ["post_published"]


async def test_a_planned_import_signs_in_each_item_of_an_anonymous_one(apps: Apps) -> None:
    case = {case.label: case for case in _IMPORTS}["import good and bad posts"]
    answered = apps.planner.answered

    answer = await apps.answer(
        apps.planned, apps.planned_bus, case.query, case.variables, "anonymous"
    )

    assert apps.planner.answered == answered + 1
    payload = orjson.loads(answer.body)["data"]["importPosts"]
    assert {result["__typename"] for result in payload["results"]} == {"AuthenticationError"}
    assert (len(payload["results"]), payload["created"]) == (5, 0)
    assert len(answer.rows["posts"]) == len(apps.blog.posts)


async def test_a_planned_logout_revokes_the_token_it_was_sent_with(apps: Apps) -> None:
    answered = apps.planner.answered

    answer = await apps.answer(apps.planned, apps.planned_bus, LOGOUT, {}, "author")

    assert apps.planner.answered == answered + 1
    assert answer.body.startswith(b'{"data":{"logout":true}')
    ann = apps.blog.users["ann"].id
    revoked = [token["user_id"] for token in answer.rows["auth_tokens"] if token["revoked_at"]]
    assert revoked == [ann]


async def test_a_logout_whose_token_signs_no_one_in_is_the_executors(apps: Apps) -> None:
    """A deactivated user's token is live but signs no one in: the executor revokes it."""
    token = await apps.planned.token_for(apps.blog.users["dee"])
    answered = apps.planner.answered

    savepoint = await apps.connection.begin_nested()
    try:
        response = await apps.planned.http.post(
            "/graphql", json={"query": LOGOUT}, headers={"Authorization": f"Bearer {token}"}
        )
        tokens = await apps.rows()
    finally:
        await savepoint.rollback()

    assert apps.planner.answered == answered
    assert response.json()["data"] == {"logout": True}
    dee = apps.blog.users["dee"].id
    assert [t["user_id"] for t in tokens["auth_tokens"] if t["revoked_at"]] == [dee]


# addComment: the token's user, the post (share-locked), the comment, its audit entry, the
# post's tags; the comment's author and post, the post's author are rows the write holds. On
# PostgreSQL it is one statement (`writes.comment_statement`): the token's user, the write, and
# the payload's post with its tags beside it (its author is the viewer).
# createPost: the token's user, the slugs taken, the post, its audit entry, the tags named, the
# new one inserted and read back, the links; the payload's comments: a page and a count.
# updatePost, publishPost: the token's user, the post (locked), its UPDATE and audit entry; the
# payload's tags, comments page and count (its author is the viewer). New tags add the post's
# tags, the tags named, the new one inserted and read back, the links deleted and inserted.
# deletePost: the token's user, the post (locked), its DELETE and audit entry.
# updateComment: the token's user, the comment (locked), its UPDATE and audit entry; the
# payload's post (its author, and the post's, is the viewer).
# deleteComment: the token's user, the comment (locked), its replies (one recursive query) and
# their DELETE, its DELETE and audit entry.
# deactivateUsers, deletePosts: the token's user, the statement (RETURNING the rows), their audit
# entries. A refusal: the token's user, and what the write read before it refused.
# importPosts: the token's user; for each good item what createPost writes (a bad one is
# refused before any statement); the payload's comment counts (the rows it holds: the author,
# the tags). logout: the token's user, the UPDATE that revokes its token.
# updateViewer: the token's user, the UPDATE of the changed columns and its audit entry (the
# payload's posts: a page and a count); when nothing changed, nothing is written.
# register: the account, its audit entry, its token (three INSERTs); login: the throttle's
# three scopes, the attempt, the user; then the attempt's old rows and its success, the token.
# Both: the payload's posts (a page and a count).
# On MariaDB each new post's slug also takes and gives back its turn (`writes._slug_turn`), and an
# UPDATE has no RETURNING: a locking read picks its rows (`writes._bulk_change`).
_STATEMENTS = [
    ("comment on a published post", "author", 5),
    ("published post with tags old and new", "author", 10),
    ("retitle ann's post", "author", 7),
    ("retag ann's post", "author", 13),
    ("update bob's post", "author", 2),
    ("set a taken slug", "author", 3),
    ("publish ann's draft", "author", 7),
    ("delete ann's post", "author", 4),
    ("edit ann's comment", "author", 5),
    ("delete ann's reply and its replies", "author", 6),
    ("deactivate bob", "admin", 3),
    ("delete the posts of one title", "admin", 3),
    ("import good and bad posts", "author", 18),
    ("log out", "author", 2),
    ("change the profile", "author", 5),
    ("change nothing", "admin", 3),
    ("register", "anonymous", 5),
    ("log in", "anonymous", 10),
]
_POSTGRESQL_FEWER = {"comment on a published post": 2}
_MARIADB_EXTRA = {
    "published post with tags old and new": 2,
    "deactivate bob": 1,
    "import good and bad posts": 6,
}


@pytest.mark.parametrize(
    ("label", "role", "statements"),
    _STATEMENTS,
    ids=[
        "addComment",
        "createPost",
        "updatePost",
        "updatePost-tags",
        "updatePost-forbidden",
        "updatePost-conflict",
        "publishPost",
        "deletePost",
        "updateComment",
        "deleteComment",
        "deactivateUsers",
        "deletePosts",
        "importPosts",
        "logout",
        "updateViewer",
        "updateViewer-unchanged",
        "register",
        "login",
    ],
)
async def test_planned_writes_take_a_fixed_number_of_statements(
    apps: Apps, count_sql: StatementCounter, label: str, role: str, statements: int, dialect: str
) -> None:
    case = {case.label: case for case in _all_cases(apps.blog)}[label]
    await apps.answer(apps.planned, apps.planned_bus, case.query, case.variables, role)
    answered = apps.planner.answered

    savepoint = await apps.connection.begin_nested()
    with count_sql() as counted:
        response = await apps.post(apps.planned, case.query, case.variables, role)
    await savepoint.rollback()

    assert b'"errors"' not in response.content
    assert apps.planner.answered == answered + 1
    extra = _MARIADB_EXTRA.get(label, 0) if dialect == "mariadb" else 0
    if dialect == "postgresql":
        extra = -_POSTGRESQL_FEWER.get(label, 0)
    assert counted.total == statements + extra


async def test_a_learned_mutation_over_get_is_refused_as_before(apps: Apps) -> None:
    case = {case.label: case for case in _cases(apps.blog)}["comment on a published post"]
    await apps.answer(apps.planned, apps.planned_bus, case.query, case.variables, "author")
    token = await apps.planned.token_for(apps.blog.users["ann"])
    params = {"query": case.query, "variables": orjson.dumps(case.variables).decode()}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    answered = apps.planner.answered

    savepoint = await apps.connection.begin_nested()
    try:
        response = await apps.planned.http.get("/graphql", params=params, headers=headers)
        rows = await apps.rows()
    finally:
        await savepoint.rollback()

    assert apps.planner.answered == answered
    assert response.status_code == 405
    assert len(rows["comments"]) == len(apps.blog.comments)


@pytest.mark.parametrize("planner", [True, False], ids=["planned", "executor"])
async def test_racing_registrations_of_one_name_conflict_alike(
    settings: Settings, planner: bool
) -> None:
    """Two concurrent registrations of one username (in two cases), on committed rows: one
    account, and the other gets the ConflictError on either path, on every database."""
    async with serve_committed_api(replace(settings, planner=planner)) as served:
        counted = graphql_endpoint(served.app).planner
        answered = counted.answered
        results = await asyncio.gather(
            served.api.query(REGISTER, _account(username="racer")),
            served.api.query(REGISTER, _account(username="RACER", email="b@example.test")),
        )
        answers = sorted(
            orjson.dumps(result.data["register"], option=orjson.OPT_SORT_KEYS) for result in results
        )
        usernames = list(await served.db.scalars(select(models.User.username)))

    assert counted.answered - answered == (2 if planner else 0)
    signed_in, conflict = (orjson.loads(answer) for answer in answers)
    assert conflict == {
        "__typename": "ConflictError",
        "field": "username",
        "message": "That username is taken already.",
    }
    assert signed_in["__typename"] == "AuthPayload"
    assert len(usernames) == 1
