"""What the README tells a newcomer, checked against the running code: the seeded user to sign in
as, and what `searchPosts`' text means on each database ("Searching posts")."""

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gql_blog import cli, migrations
from gql_blog.config import Settings
from tests.committed import CommittedApi, serve_committed_api
from tests.factories import make_post, make_user
from tests.live import live_server

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _graphql_block_after(marker: str) -> str:
    after = README.split(marker, 1)[1]
    return after.split("```graphql\n", 1)[1].split("```", 1)[0].strip()


async def test_the_readmes_sign_in_works_as_the_user_it_names_on_a_fresh_seeded_database(
    tmp_path: Path,
) -> None:
    password = re.findall(r"seeded user's password is `([^`]+)`", README)
    username = re.findall(r"`\{ viewer \{ username \} \}` then answers `([^`]+)`", README)
    mutation = _graphql_block_after("To sign in, run this mutation")
    assert len(password) == len(username) == 1
    assert f'username: "{username[0]}", password: "{password[0]}"' in mutation
    url = f"sqlite+aiosqlite:///{tmp_path / 'blog.sqlite'}"
    await asyncio.to_thread(migrations.upgrade, url)

    seeded = await asyncio.to_thread(
        CliRunner().invoke,
        cli.main,
        ["seed", "--users", "3", "--posts-per-user", "1", "--comments-per-post", "0"],
        env={"GQL_BLOG_DATABASE_URL": url},
    )

    assert seeded.exit_code == 0, seeded.output
    assert f"Sign in as {username[0]!r} with password {password[0]!r}" in seeded.stdout
    async with (
        live_server(Settings(database_url=url)) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        signed_in = (await http.post("/graphql", json={"query": mutation})).json()
        token = signed_in["data"]["login"]["token"]
        viewer = await http.post(
            "/graphql",
            json={"query": "{ viewer { username } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert viewer.json()["data"] == {"viewer": {"username": username[0]}}


# "Searching posts": what each database finds for a text (the README's table).
POSTS = {
    "Fox": "The quick brown fox jumps over the fence.",
    "Dog": "A brown dog and a quick cat sleep.",
    "Yard": "Only the fox was seen in the yard today.",
    # Posts without the words: InnoDB gives no weight to a word every row holds.
    "Gardening": "Roses and tulips bloom early in a warm spring.",
    "Cooking": "Slow roasted vegetables with garlic and thyme.",
}
# text: (what PostgreSQL and SQLite find, what MariaDB finds)
FOUND = {
    # words must all match there; any of them matches on MariaDB
    "quick fox": ({"Fox"}, {"Fox", "Dog", "Yard"}),
    # a phrase, in order; quotes mean nothing on MariaDB
    '"quick brown"': ({"Fox"}, {"Fox", "Dog"}),
    # `or` between words
    "dog or yard": ({"Dog", "Yard"}, {"Dog", "Yard"}),
    # `-word` excludes; on MariaDB it is one more word
    "brown -dog": ({"Fox"}, {"Fox", "Dog"}),
    # exclusions only: nothing there, the word's posts on MariaDB
    "-dog": (set(), {"Dog"}),
    # English stemming there (jumping finds jumps), none on MariaDB
    "jumping": ({"Fox"}, set()),
    # no prefix matching anywhere
    "qui*": (set(), set()),
    # FTS5's own syntax is plain words on SQLite: no post has the word "near"
    "NEAR(quick fox)": (set(), {"Fox", "Dog", "Yard"}),
}


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[CommittedApi]:
    async with serve_committed_api(settings) as served:
        yield served


SEARCH = "query($query: String!) { searchPosts(query: $query) { nodes { title } } }"


async def test_search_texts_mean_what_the_readme_says_on_each_database(
    committed: CommittedApi, settings: Settings
) -> None:
    author = await make_user(committed.db)
    for title, content in POSTS.items():
        await make_post(committed.db, author=author, title=title, content=content)
    await committed.db.commit()

    found = {}
    for text in FOUND:
        result = await committed.api.query(SEARCH, {"query": text})
        assert result.errors is None
        found[text] = {node["title"] for node in result.data["searchPosts"]["nodes"]}

    on_mariadb = settings.dialect == "mysql"
    assert found == {text: expected[on_mariadb] for text, expected in FOUND.items()}
