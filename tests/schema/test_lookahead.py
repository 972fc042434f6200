"""Look-ahead: a connection loads its nodes' author, tags and post for the whole page at once."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog.schema import types
from tests.conftest import StatementCounter
from tests.factories import make_comment, make_post, make_tag, make_user
from tests.graphql_client import GraphQLClient

FRAGMENT_QUERY = """
query {
  posts(first: 10) {
    edges { node { ...PostParts } }
  }
}
fragment PostParts on Post {
  title
  ... on Post { author { username } }
  tags { name }
  comments(first: 3) { nodes { ...CommentParts } }
}
fragment CommentParts on Comment { content author { username } post { title } }
"""


async def _blog(db: AsyncSession) -> None:
    authors = [await make_user(db) for _ in range(3)]
    reader = await make_user(db)
    tag = await make_tag(db)
    for index in range(6):
        post = await make_post(db, author=authors[index % 3], tags=[tag])
        await make_comment(db, post=post, author=reader)


async def test_relations_selected_through_fragments_resolve_without_their_loaders(
    api: GraphQLClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _blog(db)

    async def refuse(*args: object) -> None:
        raise AssertionError("a loaded-ahead relation went through its per-node loader")

    for name in ("_load_user", "_load_post", "_load_tags"):
        monkeypatch.setattr(types, name, refuse)
    result = await api.query(FRAGMENT_QUERY)

    assert result.errors is None
    edges = result.data["posts"]["edges"]
    assert len(edges) == 6
    for edge in edges:
        post = edge["node"]
        assert post["author"]["username"].startswith("user")
        assert len(post["tags"]) == 1
        [comment] = post["comments"]["nodes"]
        assert comment["post"]["title"] == post["title"]


async def test_look_ahead_costs_no_extra_statement(
    executor_api: GraphQLClient, db: AsyncSession, count_sql: StatementCounter
) -> None:
    await _blog(db)
    with count_sql() as counted:
        result = await executor_api.query(FRAGMENT_QUERY)
    assert result.errors is None
    # page, authors, tags, comment pages, comment authors (posts are known already)
    assert counted.total == 5
