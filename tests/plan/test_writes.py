"""Planned mutations answer as strawberry's executor does: payload, database and events alike.

Each request runs three times over the same rows, each time in a savepoint rolled back after it:
on the planner's app (a new document: planned on first sight), on it again (from the plans its
cache entry keeps), and on the app without the planner. Time stands still, so timestamps agree;
ids do not (a rolled-back sequence stays advanced on PostgreSQL and MariaDB), so the rows a
request created are renamed by their order of creation before the bytes are compared.
"""

import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import events, models
from gql_blog.app import create_app
from gql_blog.config import Settings
from gql_blog.plan.planner import Planner
from tests.conftest import StatementCounter, graphql_endpoint
from tests.graphql_client import GraphQLClient, request_sessions, serve_app
from tests.plan.conftest import ROLES, Blog, build_blog

NOW = datetime(2030, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)
# What a write may change, read back in a fixed order.
TABLES = ("posts", "tags", "post_tags", "comments", "audit_logs")
# The tables whose new rows are renamed, and the columns that point at them.
_RENAMED = ("posts", "tags", "comments", "audit_logs")
_POINTERS = {
    ("post_tags", "post_id"): "posts",
    ("post_tags", "tag_id"): "tags",
    ("comments", "post_id"): "posts",
}

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
        return self._renamed(Answer(response.content, rows, delivered))

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
            found[name] = [dict(row) for row in result.mappings()]
        return found

    def _renamed(self, answer: Answer) -> Answer:
        """New ids as `new <table> <n>`, wherever they appear (global ids too)."""
        names: dict[str, dict[int, str]] = {}
        body = answer.body
        for table in _RENAMED:
            new_ids = sorted(r["id"] for r in answer.rows[table] if r["id"] > self.before[table])
            names[table] = {row_id: f"new {table} {n}" for n, row_id in enumerate(new_ids)}
            type_name = {"posts": "Post", "tags": "Tag", "comments": "Comment"}.get(table)
            for row_id, name in names[table].items():
                if type_name is not None:
                    global_id = base64.b64encode(f"{type_name}:{row_id}".encode())
                    body = body.replace(global_id, name.encode())
        rows = {
            table: [_rename_row(table, row, names) for row in table_rows]
            for table, table_rows in answer.rows.items()
        }
        posts, comments = names["posts"], names["comments"]
        delivered = [
            (kind, posts.get(post_id, post_id), comments.get(comment_id, comment_id))
            for kind, post_id, comment_id in answer.events
        ]
        return Answer(body, rows, delivered)


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
        target = {"Post": "posts", "Comment": "comments"}.get(row["entity_type"], "")
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
    monkeypatch.setattr(models, "utc_now", lambda: NOW)
    blog = await build_blog(db)
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


def _comment(blog: Blog, post: str, content: str = "A fine comment.") -> dict[str, Any]:
    return {"input": {"postId": blog.global_id("post", post), "content": content}}


def _post(**fields: Any) -> dict[str, Any]:
    return {"input": {"title": "New post", "content": "Words.", **fields}}


def _reply(blog: Blog, post: str, parent_id: str) -> dict[str, Any]:
    variables = _comment(blog, post, "A reply.")
    variables["input"]["parentId"] = parent_id
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


@pytest.mark.parametrize("role", ROLES)
async def test_planned_writes_answer_as_the_executor(apps: Apps, role: str) -> None:
    failures = []
    for case in _cases(apps.blog):
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


@pytest.mark.parametrize(
    ("label", "statements"),
    [("comment on a published post", 5), ("published post with tags old and new", 10)],
    ids=["addComment", "createPost"],
)
async def test_planned_writes_take_a_fixed_number_of_statements(
    apps: Apps, count_sql: StatementCounter, label: str, statements: int, dialect: str
) -> None:
    case = {case.label: case for case in _cases(apps.blog)}[label]
    await apps.answer(apps.planned, apps.planned_bus, case.query, case.variables, "author")
    answered = apps.planner.answered

    savepoint = await apps.connection.begin_nested()
    with count_sql() as counted:
        response = await apps.post(apps.planned, case.query, case.variables, "author")
    await savepoint.rollback()

    assert b'"errors"' not in response.content
    assert apps.planner.answered == answered + 1
    # addComment: the token's user, the post (share-locked), the comment, its audit entry, the
    # post's tags; the comment's author and post, the post's author are rows the write holds.
    # createPost: the token's user, the slugs taken, the post, its audit entry, the tags named,
    # the new one inserted and read back, the links; the payload's comments: a page and a count.
    # On MariaDB a new post's slug also takes and gives back its turn (`writes._slug_turn`).
    turn = 2 if dialect == "mariadb" and label.startswith("published post") else 0
    assert counted.total == statements + turn


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
