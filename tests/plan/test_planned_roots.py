"""The aggregate and admin root fields are planned: userStats, postStats, postGroups, auditLog and
AuditLogEntry nodes. The planner answers them (its `answered` counter says so) with a number of
statements fixed by the query's shape, whatever the page size or the data.
(tests/plan/test_differential.py compares their answers with the executor's byte for byte.)
"""

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import audit, models
from gql_blog.ids import decode_global_id, encode_global_id
from tests.conftest import PlannedApi, StatementCounter
from tests.factories import make_user
from tests.schema.test_budgets import DRAFTS, build_blog

STATS = """query($uw: UserWhere, $pw: PostWhere) { userStats(where: $uw) { count averageAge }
  postStats(where: $pw) { count publishedCount lastCreatedAt } }"""
GROUPS = """query($first: Int) { postGroups(groupBy: [AUTHOR, TAG], first: $first) { count
  key { author { username posts(first: 2) { totalCount nodes { title } } } tag { name } } } }"""
AUDIT_LOG = """query($first: Int, $where: AuditLogWhere) {
  auditLog(first: $first, where: $where) { totalCount pageInfo { hasNextPage endCursor }
    nodes { id action entityId changes
      actor { username posts(first: 1) { nodes { title } } } } } }"""
ENTRY = """query($id: ID!) { node(id: $id) { id
  ... on AuditLogEntry { action actor { username } } } }"""


async def _planned(
    planned_api: PlannedApi,
    count_sql: StatementCounter,
    query: str,
    variables: dict[str, Any],
    viewer: models.User | None = None,
) -> tuple[Any, int]:
    """The planner's answer to a document it has learned, and how many statements it ran."""
    client, planner = planned_api.client, planned_api.planner
    answered = planner.answered
    with count_sql() as counted:
        result = await client.query(query, variables, viewer=viewer)
    assert result.errors is None, result.errors
    assert planner.answered == answered + 1, "the planner did not answer"
    return result.data, counted.total


async def test_stats_are_planned_with_one_statement_each(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter
) -> None:
    blog = await build_blog(db, posts=12)
    await planned_api.client.query(STATS, {})  # teaches the planner the document

    data, statements = await _planned(planned_api, count_sql, STATS, {})
    filtered, filtered_statements = await _planned(
        planned_api,
        count_sql,
        STATS,
        {"uw": {"username": {"startsWith": "author"}}, "pw": {"published": {"eq": False}}},
    )

    assert statements == filtered_statements == 2
    assert data["postStats"]["count"] == len(blog.posts)  # drafts are hidden from anonymous
    assert data["userStats"]["count"] == len(blog.authors) + len(blog.readers)
    assert filtered["userStats"]["count"] == len(blog.authors)
    assert filtered["postStats"]["count"] == 0


async def test_groups_and_their_keys_take_one_statement_per_level(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    blog = await build_blog(db, posts=30)
    await planned_api.client.query(GROUPS, {"first": 2})

    few, few_statements = await _planned(planned_api, count_sql, GROUPS, {"first": 2})
    many, many_statements = await _planned(planned_api, count_sql, GROUPS, {"first": 100})

    # The groups, their authors, their tags, the authors' posts and those posts' counts (on
    # PostgreSQL, read beside the authors).
    assert few_statements == many_statements == (3 if dialect == "postgresql" else 5)
    assert len(few["postGroups"]) == 2
    assert len(many["postGroups"]) > 10
    authors = {group["key"]["author"]["username"] for group in many["postGroups"]}
    assert authors == {author.username for author in blog.authors}
    assert all(group["key"]["tag"] for group in many["postGroups"])


async def _logged_blog(db: AsyncSession) -> models.User:
    admin = await make_user(db, username="root", is_admin=True)
    audit.act_as(db, admin)
    await build_blog(db, posts=8)
    audit.act_as(db, None)
    return admin


async def test_the_audit_log_is_planned_for_admins(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    admin = await _logged_blog(db)
    await planned_api.client.query(AUDIT_LOG, {"first": 2}, viewer=admin)

    few, few_statements = await _planned(
        planned_api, count_sql, AUDIT_LOG, {"first": 2}, viewer=admin
    )
    where = {"entityType": {"eq": "Post"}, "actor": {"username": {"eq": "root"}}}
    many, many_statements = await _planned(
        planned_api, count_sql, AUDIT_LOG, {"first": 30, "where": where}, viewer=admin
    )

    # The viewer, the page, its count, the actors, their posts (on PostgreSQL, read beside the
    # actors).
    assert few_statements == many_statements == (4 if dialect == "postgresql" else 5)
    assert len(few["auditLog"]["nodes"]) == 2
    entries = many["auditLog"]["nodes"]
    assert len(entries) == 8 + DRAFTS  # one CREATE per post
    assert all(entry["actor"]["username"] == "root" for entry in entries)
    assert all(decode_global_id(entry["entityId"])[0] == "Post" for entry in entries)
    assert all(entry["action"] == "CREATE" and entry["changes"]["title"] for entry in entries)


async def test_the_audit_log_is_forbidden_to_anyone_else_by_the_planner_before_any_sql(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter
) -> None:
    """FORBIDDEN, byte for byte the executor's (test_differential), from the planner itself:
    before the page size is checked, and with no statement but the token's user lookup."""
    await _logged_blog(db)
    reader = await make_user(db, username="reader")
    client, planner = planned_api.client, planned_api.planner
    await client.token_for(reader)  # signed in beforehand

    for viewer, statements in ((None, 0), (reader, 1)):
        answered = planner.answered
        with count_sql() as counted:
            result = await client.query(AUDIT_LOG, {"first": 500}, viewer=viewer)
        assert planner.answered == answered + 1, "the planner did not answer"
        assert result.data is None
        assert result.errors is not None
        assert [(error["message"], error["extensions"]["code"]) for error in result.errors] == [
            (audit.FORBIDDEN_MESSAGE, "FORBIDDEN")
        ]
        assert counted.total == statements


async def test_audit_entry_nodes_are_planned(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter
) -> None:
    admin = await _logged_blog(db)
    reader = await make_user(db, username="reader")
    logged = select(models.AuditLog).where(models.AuditLog.actor_id == admin.id).limit(1)
    entry = (await db.scalars(logged)).one()
    variables = {"id": encode_global_id("AuditLogEntry", entry.id)}
    await planned_api.client.query(ENTRY, variables, viewer=admin)

    seen, statements = await _planned(planned_api, count_sql, ENTRY, variables, viewer=admin)
    hidden, _ = await _planned(planned_api, count_sql, ENTRY, variables, viewer=reader)

    expected = {"id": variables["id"], "action": "CREATE", "actor": {"username": "root"}}
    assert seen["node"] == expected
    assert statements == 3  # the viewer, the entry, its actor
    assert hidden["node"] is None


SEARCH = """query($first: Int, $after: String) { searchPosts(query: "words", first: $first,
  after: $after) { totalCount pageInfo { hasNextPage endCursor }
    edges { rank snippet node { title author { username }
      comments(first: 2) { nodes { id } } } } } }"""


async def test_search_pages_take_one_statement_per_level(
    planned_api: PlannedApi, db: AsyncSession, count_sql: StatementCounter, dialect: str
) -> None:
    if dialect == "mariadb":
        pytest.skip("InnoDB FULLTEXT sees committed rows only (test_differential covers MariaDB)")
    blog = await build_blog(db, posts=12)
    await planned_api.client.query(SEARCH, {"first": 2})

    first, first_statements = await _planned(planned_api, count_sql, SEARCH, {"first": 2})
    cursor = first["searchPosts"]["pageInfo"]["endCursor"]
    second, second_statements = await _planned(
        planned_api, count_sql, SEARCH, {"first": 20, "after": cursor}
    )

    # The page (its authors read beside it), its count, the comment pages (on PostgreSQL, read
    # beside the page).
    assert first_statements == second_statements == (2 if dialect == "postgresql" else 3)
    assert first["searchPosts"]["totalCount"] == len(blog.posts)  # no drafts for anonymous
    hits = first["searchPosts"]["edges"] + second["searchPosts"]["edges"]
    assert len(hits) == len(blog.posts)
    assert len({hit["node"]["title"] for hit in hits}) == len(blog.posts)
    assert all("«words»" in hit["snippet"] and hit["node"]["author"] for hit in hits)
    assert all(len(hit["node"]["comments"]["nodes"]) <= 2 for hit in hits)
