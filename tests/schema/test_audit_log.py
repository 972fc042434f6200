"""auditLog and AuditLogEntry nodes: admins only, newest first, filters, what is logged."""

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import audit, models
from gql_blog.ids import encode_global_id
from tests.conftest import StatementCounter
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient

AUDIT_LOG = """query($first: Int, $after: String, $where: AuditLogWhere) {
  auditLog(first: $first, after: $after, where: $where) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id entityType entityId action actor { username } changes createdAt }
  }
}"""
REGISTER = """mutation($input: RegisterInput!) { register(input: $input) { __typename } }"""
UPDATE_VIEWER = """mutation($input: UpdateViewerInput!) {
  updateViewer(input: $input) { __typename }
}"""
NODE = """query($id: ID!) { node(id: $id) { id ... on AuditLogEntry { action entityType } } }"""


def _user_id(user: models.User) -> str:
    return encode_global_id("User", user.id)


async def _audit_count(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(models.AuditLog)) or 0)


async def _last_entry(db: AsyncSession) -> models.AuditLog:
    stmt = select(models.AuditLog).order_by(models.AuditLog.id.desc()).limit(1)
    return (await db.scalars(stmt)).one()


async def _audit_log(api: GraphQLClient, viewer: models.User, **variables: Any) -> dict[str, Any]:
    result = await api.query(AUDIT_LOG, variables, viewer=viewer)
    assert result.errors is None
    data: dict[str, Any] = result.data["auditLog"]
    return data


# --- who may read it ----------------------------------------------------------------------------


async def test_audit_log_is_forbidden_for_anonymous_callers_before_any_sql(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    with count_sql() as counted:
        result = await api.query(AUDIT_LOG)

    assert result.data is None
    assert result.error_codes == ["FORBIDDEN"]
    assert counted.total == 0


@pytest.mark.parametrize("is_active", [True, False], ids=["member", "inactive-member"])
async def test_audit_log_is_forbidden_for_non_admins(
    api: GraphQLClient, db: AsyncSession, is_active: bool
) -> None:
    member = await make_user(db, is_active=is_active)

    result = await api.query(AUDIT_LOG, viewer=member)

    assert result.data is None
    assert result.error_codes == ["FORBIDDEN"]
    assert result.status == 200


async def test_node_shows_audit_entries_to_admins_only(
    api: GraphQLClient, db: AsyncSession
) -> None:
    admin = await make_user(db, is_admin=True)
    member = await make_user(db)
    entry_id = encode_global_id("AuditLogEntry", (await _last_entry(db)).id)

    for_admin = await api.query(NODE, {"id": entry_id}, viewer=admin)
    for_member = await api.query(NODE, {"id": entry_id}, viewer=member)
    for_anonymous = await api.query(NODE, {"id": entry_id})

    assert for_admin.errors is None
    assert for_admin.data == {"node": {"id": entry_id, "action": "CREATE", "entityType": "User"}}
    assert for_member.data == {"node": None}
    assert for_anonymous.data == {"node": None}


# --- what the mutations log ---------------------------------------------------------------------


async def test_register_is_logged_with_the_new_user_as_actor(
    api: GraphQLClient, db: AsyncSession
) -> None:
    admin = await make_user(db, username="admin", is_admin=True)

    await api.query(
        REGISTER,
        {"input": {"username": "Ada", "email": "Ada@Example.test", "password": "a passphrase"}},
    )

    ada = (await db.scalars(select(models.User).where(models.User.username == "Ada"))).one()
    page = await _audit_log(api, admin, first=1)
    [entry] = page["nodes"]
    assert entry["entityType"] == "User"
    assert entry["entityId"] == _user_id(ada)
    assert entry["action"] == "CREATE"
    assert entry["actor"] == {"username": "Ada"}
    assert entry["changes"] == {
        "username": "Ada",
        "email": "ada@example.test",
        "isActive": True,
        "isAdmin": False,
    }


async def test_update_viewer_logs_only_changed_fields_and_hides_the_password(
    api: GraphQLClient, db: AsyncSession
) -> None:
    admin = await make_user(db, username="admin", is_admin=True)
    ada = await make_user(db, username="ada", age=36, first_name="Ada")

    result = await api.query(
        UPDATE_VIEWER,
        {"input": {"age": 36, "firstName": "Augusta", "bio": "Notes", "password": "new secret!"}},
        viewer=ada,
    )

    assert result.data["updateViewer"]["__typename"] == "User"
    [entry] = (await _audit_log(api, admin, first=1))["nodes"]
    assert (entry["action"], entry["entityId"], entry["actor"]) == (
        "UPDATE",
        _user_id(ada),
        {"username": "ada"},
    )
    assert entry["changes"] == {
        "firstName": ["Ada", "Augusta"],
        "bio": [None, "Notes"],
        "password": "changed",
    }


async def test_update_viewer_without_changes_logs_nothing(
    api: GraphQLClient, db: AsyncSession
) -> None:
    ada = await make_user(db, username="ada", age=36)
    before = await _audit_count(db)

    result = await api.query(UPDATE_VIEWER, {"input": {"age": 36}}, viewer=ada)

    assert result.data["updateViewer"]["__typename"] == "User"
    assert await _audit_count(db) == before


@pytest.mark.parametrize(
    ("mutation", "variables"),
    [
        (REGISTER, {"input": {"username": "ADA", "email": "x@example.test", "password": "p" * 8}}),
        (REGISTER, {"input": {"username": "bob", "email": "bob@example.test", "password": "p"}}),
        (UPDATE_VIEWER, {"input": {"bio": "Hello", "email": "taken@example.test"}}),
        (UPDATE_VIEWER, {"input": {"bio": "Hello", "age": 200}}),
    ],
    ids=["register-conflict", "register-invalid", "update-conflict", "update-invalid"],
)
async def test_failed_mutation_leaves_no_audit_row(
    api: GraphQLClient, db: AsyncSession, mutation: str, variables: dict[str, Any]
) -> None:
    ada = await make_user(db, username="ada")
    await make_user(db, email="taken@example.test")
    await api.token_for(ada)
    before = await _audit_count(db)

    result = await api.query(mutation, variables, viewer=ada)

    assert result.errors is None
    assert result.data[next(iter(result.data))]["__typename"] in {
        "ConflictError",
        "ValidationError",
    }
    assert await _audit_count(db) == before


async def test_relations_in_changes_are_global_ids(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)
    post = await make_post(db, author=admin, title="Engines")

    [entry] = (await _audit_log(api, admin, first=1))["nodes"]

    assert entry["entityType"] == "Post"
    assert entry["entityId"] == encode_global_id("Post", post.id)
    assert entry["actor"] is None
    assert entry["changes"]["author"] == _user_id(admin)


# --- paging and filters -------------------------------------------------------------------------


async def test_audit_log_pages_newest_first(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, username="admin", is_admin=True)
    users = [await make_user(db) for _ in range(4)]
    newest_first = [_user_id(user) for user in reversed([admin, *users])]

    first = await _audit_log(api, admin, first=2)
    second = await _audit_log(api, admin, first=2, after=first["pageInfo"]["endCursor"])
    third = await _audit_log(api, admin, first=2, after=second["pageInfo"]["endCursor"])

    pages = [first, second, third]
    assert [entry["entityId"] for page in pages for entry in page["nodes"]] == newest_first
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]
    assert {page["totalCount"] for page in pages} == {5}
    created = [entry["createdAt"] for page in pages for entry in page["nodes"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"entityType": {"eq": "Post"}}, ["Post:CREATE"]),
        ({"action": "UPDATE"}, ["User:UPDATE"]),
        ({"actor": {"username": {"eq": "ada"}}}, ["User:UPDATE"]),
        ({"not": {"entityType": {"in": ["User"]}}}, ["Post:CREATE"]),
        (
            {"or": [{"action": "UPDATE"}, {"entityType": {"eq": "Post"}}]},
            ["User:UPDATE", "Post:CREATE"],
        ),
        ({"and": [{"action": "CREATE"}, {"entityType": {"startsWith": "Us"}}]}, ["User:CREATE"]),
    ],
    ids=["entity-type", "action", "actor", "not", "or", "and"],
)
async def test_audit_log_filters(
    api: GraphQLClient, db: AsyncSession, where: dict[str, Any], expected: list[str]
) -> None:
    ada = await make_user(db, username="ada", is_admin=True)
    await make_post(db, author=ada)
    await api.query(UPDATE_VIEWER, {"input": {"bio": "Notes"}}, viewer=ada)

    page = await _audit_log(api, ada, where=where)

    assert [f"{entry['entityType']}:{entry['action']}" for entry in page["nodes"]] == expected
    assert page["totalCount"] == len(expected)


async def test_audit_log_filters_by_creation_time(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)
    older = await _last_entry(db)
    await make_user(db)

    page = await _audit_log(api, admin, where={"createdAt": {"gt": older.created_at.isoformat()}})

    assert [entry["action"] for entry in page["nodes"]] == ["CREATE"]
    assert page["nodes"][0]["entityId"] != _user_id(admin)


async def test_cursor_of_another_filter_is_refused(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)
    await make_user(db)
    page = await _audit_log(api, admin, first=1)

    result = await api.query(
        AUDIT_LOG,
        {"after": page["pageInfo"]["endCursor"], "where": {"action": "CREATE"}},
        viewer=admin,
    )

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid cursor" in result.error_messages[0]


async def test_page_size_over_the_maximum_is_refused(api: GraphQLClient, db: AsyncSession) -> None:
    admin = await make_user(db, is_admin=True)

    result = await api.query(AUDIT_LOG, {"first": 101}, viewer=admin)

    assert result.error_codes == ["BAD_USER_INPUT"]


async def test_audit_log_page_with_actors_takes_three_statements(
    api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    admin = await make_user(db, is_admin=True)
    authors = [await make_user(db) for _ in range(3)]
    for author in authors:
        audit.act_as(db, author)
        await make_post(db, author=author)
    await api.token_for(admin)

    with count_sql() as counted:
        result = await api.query(
            "{ auditLog(first: 20) { nodes { actor { username } changes } } }", viewer=admin
        )

    assert result.errors is None
    assert len(result.data["auditLog"]["nodes"]) == 7
    assert counted.total == 3  # the viewer's token, the page, and its actors
