"""GET /readyz: 200 while the database answers at head; 503 with the reason otherwise."""

import dataclasses
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from gql_blog import migrations
from gql_blog.app import create_app
from gql_blog.config import Settings
from tests.databases import empty_database
from tests.graphql_client import GraphQLClient


async def _readyz(settings: Settings) -> httpx.Response:
    """GET /readyz from an app with its own engine on `settings`' database."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get("/readyz")


def _unreachable(settings: Settings, tmp_path: Path) -> Settings:
    url = make_url(settings.database_url)
    if settings.dialect == "sqlite":
        url = url.set(database=str(tmp_path / "no such folder" / "blog.db"))
    else:
        url = url.set(port=1)  # nothing listens there
    return dataclasses.replace(settings, database_url=url.render_as_string(hide_password=False))


async def test_readyz_answers_ready_at_head(api: GraphQLClient) -> None:
    response = await api.http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "revision": migrations.head_revision()}


async def test_readyz_with_the_database_down_is_a_503_saying_so(
    settings: Settings, tmp_path: Path
) -> None:
    response = await _readyz(_unreachable(settings, tmp_path))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["reason"].startswith("the database is unreachable: ")


async def test_readyz_with_the_database_behind_is_a_503_naming_the_revisions(
    dialect: str, settings: Settings, tmp_path: Path
) -> None:
    async with empty_database(dialect, tmp_path) as url:
        response = await _readyz(dataclasses.replace(settings, database_url=url))

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "reason": "the database is not at the latest migration "
        f"(never migrated, head is {migrations.head_revision()})",
    }
