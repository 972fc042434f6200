"""Sign-in tokens: only a live token of an active user signs a request in, on both read paths."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gql_blog import auth, models
from gql_blog.config import Settings
from tests.conftest import PlannedApi
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, serve_api

# Root fields the planner answers (on first sight of the document).
FEED = "query Feed { viewer { username } posts { nodes { title } } }"


@pytest.fixture
async def executor_api(
    settings: Settings, connection: AsyncConnection, db: AsyncSession
) -> AsyncIterator[GraphQLClient]:
    """The app with the planner off (GQL_BLOG_PLANNER=false): strawberry's executor answers."""
    async with serve_api(dataclasses.replace(settings, planner=False), connection, db) as client:
        yield client


async def _feed_on_both_paths(
    api: PlannedApi, executor: GraphQLClient, viewer: models.User
) -> list[object]:
    """The feed as `viewer` sees it, asked of strawberry's executor, then of the planner."""
    answered = api.planner.answered
    results = [
        await executor.query(FEED, viewer=viewer),
        await api.client.query(FEED, viewer=viewer),
    ]
    assert [result.errors for result in results] == [None, None]
    assert api.planner.answered == answered + 1
    return [result.data for result in results]


async def test_an_active_users_token_reads_their_drafts_on_both_paths(
    planned_api: PlannedApi, executor_api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db, username="ada")
    await make_post(db, author=author, title="Draft", published=False)

    feeds = await _feed_on_both_paths(planned_api, executor_api, author)

    assert feeds == [{"viewer": {"username": "ada"}, "posts": {"nodes": [{"title": "Draft"}]}}] * 2


async def test_an_inactive_users_token_reads_as_anonymous_on_both_paths(
    planned_api: PlannedApi, executor_api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db, username="ada", is_active=False)
    await make_post(db, author=author, title="Draft", published=False)
    await make_post(db, author=author, title="Published")

    feeds = await _feed_on_both_paths(planned_api, executor_api, author)

    assert feeds == [{"viewer": None, "posts": {"nodes": [{"title": "Published"}]}}] * 2


async def test_a_user_deactivated_after_signing_in_reads_as_anonymous_on_both_paths(
    planned_api: PlannedApi, executor_api: GraphQLClient, db: AsyncSession
) -> None:
    author = await make_user(db, username="ada")
    await make_post(db, author=author, title="Draft", published=False)
    await planned_api.client.token_for(author)
    await db.execute(update(models.User).where(models.User.id == author.id).values(is_active=False))

    feeds = await _feed_on_both_paths(planned_api, executor_api, author)

    assert feeds == [{"viewer": None, "posts": {"nodes": []}}] * 2


async def test_an_inactive_admins_token_may_not_read_the_audit_log(
    api: GraphQLClient, db: AsyncSession
) -> None:
    admin = await make_user(db, is_admin=True, is_active=False)

    result = await api.query("{ auditLog { totalCount } }", viewer=admin)

    assert result.data is None
    assert result.error_codes == ["FORBIDDEN"]


@pytest.mark.parametrize("is_active", [True, False], ids=["active", "inactive"])
async def test_viewer_from_token_finds_only_active_users(db: AsyncSession, is_active: bool) -> None:
    user = await make_user(db, is_active=is_active)
    token = await auth.issue_token(db, user, lifetime=timedelta(hours=1))

    found = await auth.viewer_from_token(db, token)

    assert found is (user if is_active else None)
