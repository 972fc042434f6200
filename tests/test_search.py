"""`searchPosts` on every dialect: ranking, snippets, visibility, paging, cursors, hostile input.

InnoDB's FULLTEXT indexes see only committed rows, so the searches run against committed data
(`committed`: the app on its own engine, every table emptied afterwards). Tests that need no hit
run inside the test's transaction, as elsewhere.
"""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import column, insert, table, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from gql_blog import migrations, models, search
from gql_blog.config import Settings
from gql_blog.engines import create_engine
from gql_blog.ids import encode_global_id
from gql_blog.serial_session import SerialSession
from tests.committed import CommittedApi, serve_committed_api
from tests.conftest import StatementCounter
from tests.databases import empty_database
from tests.factories import make_post, make_user
from tests.graphql_client import GraphQLClient, GraphQLResult

SEARCH = """query(
  $query: String!, $first: Int, $after: String, $last: Int, $before: String, $where: PostWhere
) {
  searchPosts(
    query: $query, first: $first, after: $after, last: $last, before: $before, where: $where
  ) {
    edges { cursor rank snippet node { id title } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    totalCount
  }
}"""
SEARCH_PAGE = """query($query: String!) {
  searchPosts(query: $query) { edges { cursor rank snippet node { id title } } }
}"""
SEARCH_PAGE_AND_TOTAL = """query($query: String!) {
  searchPosts(query: $query) { nodes { title } totalCount }
}"""
NOISE = [
    ("Gardening", "Roses and tulips bloom early in a warm spring."),
    ("Cooking", "Slow roasted vegetables with garlic and thyme."),
]


@pytest.fixture
async def committed(settings: Settings) -> AsyncIterator[CommittedApi]:
    async with serve_committed_api(settings) as served:
        yield served


async def add_noise(db: AsyncSession, author: models.User) -> None:
    """Posts without the searched words: InnoDB gives no weight to a word every row holds."""
    for title, content in NOISE:
        await make_post(db, author=author, title=title, content=content)


async def search_posts(
    api: GraphQLClient, query: str, *, viewer: models.User | None = None, **arguments: Any
) -> GraphQLResult:
    return await api.query(SEARCH, {"query": query, **arguments}, viewer=viewer)


def found(result: GraphQLResult) -> dict[str, Any]:
    assert result.errors is None
    connection: dict[str, Any] = result.data["searchPosts"]
    return connection


def titles(result: GraphQLResult) -> list[str]:
    return [edge["node"]["title"] for edge in found(result)["edges"]]


async def test_title_hit_ranks_above_content_hit(committed: CommittedApi) -> None:
    author = await make_user(committed.db)
    await make_post(
        committed.db, author=author, title="Dinner", content="A python curled up by the stove."
    )
    await make_post(
        committed.db, author=author, title="Python tips", content="Notes on clean loops."
    )
    await add_noise(committed.db, author)
    await committed.db.commit()

    result = await search_posts(committed.api, "python")

    edges = found(result)["edges"]
    assert [edge["node"]["title"] for edge in edges] == ["Python tips", "Dinner"]
    assert edges[0]["rank"] > edges[1]["rank"] > 0


async def test_snippet_marks_the_matched_word(committed: CommittedApi) -> None:
    author = await make_user(committed.db)
    content = " ".join(["Filler words come first."] * 5 + ["Then a python appears."] * 2)
    await make_post(committed.db, author=author, title="Zoo notes", content=content)
    await add_noise(committed.db, author)
    await committed.db.commit()

    result = await search_posts(committed.api, "Python")

    [edge] = found(result)["edges"]
    assert "«python»" in edge["snippet"]
    assert len(edge["snippet"].split()) <= 31


async def test_title_only_hit_shows_the_marked_title(committed: CommittedApi) -> None:
    author = await make_user(committed.db)
    await make_post(
        committed.db, author=author, title="Python tips", content="Notes on clean loops."
    )
    await add_noise(committed.db, author)
    await committed.db.commit()

    result = await search_posts(committed.api, "python")

    [edge] = found(result)["edges"]
    assert edge["snippet"] == "«Python» tips"


async def test_drafts_are_found_only_by_their_author(committed: CommittedApi) -> None:
    author, other = await make_user(committed.db), await make_user(committed.db)
    await make_post(committed.db, author=author, title="Python in public", content="Out now.")
    await make_post(
        committed.db, author=author, title="Python draft", content="Not yet.", published=False
    )
    await add_noise(committed.db, author)
    for viewer in (author, other):
        await committed.api.token_for(viewer)
    await committed.db.commit()

    anonymous = await search_posts(committed.api, "python")
    as_author = await search_posts(committed.api, "python", viewer=author)
    as_other = await search_posts(committed.api, "python", viewer=other)

    assert titles(anonymous) == titles(as_other) == ["Python in public"]
    assert found(anonymous)["totalCount"] == found(as_other)["totalCount"] == 1
    assert sorted(titles(as_author)) == ["Python draft", "Python in public"]
    assert found(as_author)["totalCount"] == 2


async def test_total_count_counts_every_hit_beyond_the_page(committed: CommittedApi) -> None:
    author = await make_user(committed.db)
    for number in range(3):
        await make_post(committed.db, author=author, content=f"Python notes, part {number}.")
    await add_noise(committed.db, author)
    await committed.db.commit()

    result = await search_posts(committed.api, "python", first=1)

    connection = found(result)
    assert len(connection["edges"]) == 1
    assert connection["totalCount"] == 3
    assert connection["pageInfo"]["hasNextPage"] is True


async def make_ranked_hits(db: AsyncSession) -> list[str]:
    """Seven hits with ties among their ranks; their global ids, best first."""
    author = await make_user(db)
    posts = [
        await make_post(db, author=author, title="Python python", content="All about python."),
        await make_post(db, author=author, title="Python", content="Loops and lists."),
        await make_post(db, author=author, title="Python", content="Loops and lists."),
        await make_post(db, author=author, title="Snakes", content="A python, and a python."),
        await make_post(db, author=author, title="Snakes", content="A python, and a python."),
        await make_post(db, author=author, title="Snakes", content="A python, and a python."),
        await make_post(db, author=author, title="Reptiles", content="One python, many lizards."),
    ]
    await add_noise(db, author)
    await db.commit()
    # Equal ranks fall back to the id, descending.
    order = [0, 2, 1, 5, 4, 3, 6]
    return [encode_global_id("Post", posts[index].id) for index in order]


async def test_paging_forward_with_after_finds_every_hit_once(
    committed: CommittedApi,
) -> None:
    expected = await make_ranked_hits(committed.db)
    seen: list[str] = []
    after = None
    for _ in range(10):
        connection = found(await search_posts(committed.api, "python", first=2, after=after))
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == expected


async def test_paging_backward_with_before_finds_every_hit_once(
    committed: CommittedApi,
) -> None:
    expected = await make_ranked_hits(committed.db)
    seen: list[str] = []
    before = None
    for _ in range(10):
        connection = found(await search_posts(committed.api, "python", last=2, before=before))
        seen = [edge["node"]["id"] for edge in connection["edges"]] + seen
        assert connection["pageInfo"]["hasNextPage"] is (before is not None)
        if not connection["pageInfo"]["hasPreviousPage"]:
            break
        before = connection["pageInfo"]["startCursor"]
    assert seen == expected


async def test_ranks_are_the_same_in_every_request(committed: CommittedApi) -> None:
    await make_ranked_hits(committed.db)

    first, second = [found(await search_posts(committed.api, "python")) for _ in range(2)]

    assert first == second


async def test_cursor_of_another_search_text_is_an_invalid_cursor(
    committed: CommittedApi,
) -> None:
    await make_ranked_hits(committed.db)
    cursor = found(await search_posts(committed.api, "python", first=1))["pageInfo"]["endCursor"]

    result = await search_posts(committed.api, "lizards", first=1, after=cursor)

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid cursor" in result.error_messages[0]


@pytest.mark.parametrize(
    "cursor", ["not a cursor", "", "W10", "WyJ4Il0"], ids=["garbage", "empty", "list", "short"]
)
async def test_malformed_cursor_is_an_invalid_cursor(api: GraphQLClient, cursor: str) -> None:
    result = await search_posts(api, "python", before=cursor)

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid cursor" in result.error_messages[0]


async def test_where_narrows_the_hits_and_their_count(committed: CommittedApi) -> None:
    await make_ranked_hits(committed.db)
    where = {"title": {"eq": "Snakes"}}

    result = await search_posts(committed.api, "python", where=where, first=2)

    connection = found(result)
    assert [edge["node"]["title"] for edge in connection["edges"]] == ["Snakes", "Snakes"]
    assert connection["totalCount"] == 3


async def test_cursor_of_another_filter_is_an_invalid_cursor(committed: CommittedApi) -> None:
    await make_ranked_hits(committed.db)
    cursor = found(await search_posts(committed.api, "python", first=1))["pageInfo"]["endCursor"]

    result = await search_posts(
        committed.api, "python", first=1, after=cursor, where={"title": {"eq": "Snakes"}}
    )

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert "invalid cursor" in result.error_messages[0]


async def test_edited_and_deleted_posts_are_searched_as_they_are_now(
    committed: CommittedApi,
) -> None:
    author = await make_user(committed.db)
    edited = await make_post(committed.db, author=author, title="Old", content="About pythons.")
    deleted = await make_post(committed.db, author=author, title="Gone", content="About cobras.")
    await add_noise(committed.db, author)
    await committed.db.commit()
    values = {"title": "New", "content": "About cobras now."}
    await committed.db.execute(
        update(models.Post).where(models.Post.id == edited.id).values(**values)
    )
    await committed.db.delete(deleted)
    await committed.db.commit()

    assert titles(await search_posts(committed.api, "pythons")) == []
    assert titles(await search_posts(committed.api, "cobras")) == ["New"]


HOSTILE = {
    "double-quote": '"',
    "single-quote": "'",
    "and": "AND",
    "or-not": "OR NOT",
    "star": "*",
    "open-paren": "(",
    "close-paren": ")",
    "column-filter": "title:foo",
    "minus": "a -b",
    "emoji": "😀",
    "ten-kilobytes": "x" * 10_000,
    "empty": "",
    "blank": "   ",
    "like-wildcards": "%_",
    "backslash": "\\",
    "nul": "python\x00",
    "near": "NEAR(python snake, 2)",
    "many-words": "python " * 5_000,
    "unbalanced-phrase": '"python snake',
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
async def test_any_search_text_is_a_search_not_an_error(
    api: GraphQLClient, db: AsyncSession, text: str
) -> None:
    author = await make_user(db)
    await make_post(db, author=author, title="Python (snake)", content="A -b 'quoted' \"text\" %_")

    result = await search_posts(api, text)

    assert result.errors is None
    assert isinstance(result.data["searchPosts"]["edges"], list)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"first": 101}, "`first` must be at most 100"),
        ({"last": -1}, "`last` must not be negative"),
        ({"first": 1, "last": 1}, "either `first` or `last`"),
    ],
    ids=["too-many", "negative", "both"],
)
async def test_bad_page_size_is_bad_user_input(
    api: GraphQLClient, arguments: dict[str, int], message: str
) -> None:
    result = await search_posts(api, "python", **arguments)

    assert result.error_codes == ["BAD_USER_INPUT"]
    assert message in result.error_messages[0]


async def test_one_page_is_one_statement_and_its_total_one_more(
    committed: CommittedApi, count_sql: StatementCounter
) -> None:
    await make_ranked_hits(committed.db)

    with count_sql() as page_only:
        page = await committed.api.query(SEARCH_PAGE, {"query": "python"})
    with count_sql() as with_total:
        page_and_total = await committed.api.query(SEARCH_PAGE_AND_TOTAL, {"query": "python"})

    assert len(found(page)["edges"]) == 7
    assert found(page_and_total)["totalCount"] == 7
    assert (page_only.total, with_total.total) == (1, 2)


async def test_a_planned_page_without_snippets_makes_none(
    committed: CommittedApi, count_sql: StatementCounter
) -> None:
    await make_ranked_hits(committed.db)

    with count_sql() as counted:
        page = await committed.api.query(SEARCH_PAGE_AND_TOTAL, {"query": "python"})

    assert len(found(page)["nodes"]) == 7
    page_sql = " ".join(counted.statements).lower()
    assert "ts_headline" not in page_sql
    assert "snippet(" not in page_sql


async def test_text_without_words_runs_no_statement(
    api: GraphQLClient, count_sql: StatementCounter
) -> None:
    with count_sql() as counted:
        result = await api.query(SEARCH_PAGE_AND_TOTAL, {"query": " *() "})

    assert found(result) == {"nodes": [], "totalCount": 0}
    assert counted.total == 0


# --- reading the text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("python snake", '("python") AND ("snake")'),
        ('"big snake" python', '("big snake") AND ("python")'),
        ("python or snake lizard", '("python" OR "snake") AND ("lizard")'),
        ("python -snake", '(("python")) NOT ("snake")'),
        ('NEAR(a b) title:x "c', '("NEAR(a") AND ("b)") AND ("title:x") AND ("c")'),
        ("-snake", None),
        ("or ( ) * 😀", None),
    ],
    ids=["words", "phrase", "or", "not", "operators-quoted", "only-excluded", "no-words"],
)
def test_fts5_query_quotes_every_word(text: str, query: str | None) -> None:
    assert search.fts5_query(text) == query


def test_cut_snippet_marks_hits_around_the_first_one() -> None:
    lead, tail = [f"w{number}" for number in range(40)], [f"t{number}" for number in range(40)]
    content = " ".join([*lead, "Python, and python.", *tail])

    snippet = search.cut_snippet(content, frozenset({"python"}))

    assert snippet == " ".join(["…w30", *lead[31:], "«Python», and «python».", *tail[:16], "t16…"])


@pytest.mark.parametrize("statement", ["page", "count", "beyond"])
def test_postgresql_reads_the_search_text_once_per_statement(statement: str) -> None:
    # A bare websearch_to_tsquery(:text) runs again for every hit ranked once PostgreSQL caches
    # a generic plan; a scalar subquery (an InitPlan) runs once.
    query = search.SearchQuery("postgresql", text="keyset pagination", viewer=None, where=None)
    built = {
        "page": query.page_statement(search.SearchRequest(size=10)),
        "count": query.count_statement(),
        "beyond": query.beyond_statement((0.5, 7), forward=True),
    }[statement]
    assert built is not None

    sql = " ".join(str(built.compile(dialect=postgresql.dialect())).split())

    assert "websearch_to_tsquery(" in sql
    assert sql.count("websearch_to_tsquery(") == sql.count("(SELECT websearch_to_tsquery(")


# --- migration 0003 ---------------------------------------------------------------------------


async def test_posts_written_before_the_migration_are_found(dialect: str, tmp_path: Path) -> None:
    users = table(
        "users", column("id"), column("username"), column("email"), column("password_hash")
    )
    posts = table(
        "posts",
        column("id"),
        column("title"),
        column("content"),
        column("published"),
        column("user_id"),
    )
    rows = [
        {"id": 1, "title": "Engines", "content": "On the analytical one.", "published": True},
        {"id": 2, "title": "Looms", "content": "On punched cards.", "published": True},
    ]
    async with empty_database(dialect, tmp_path) as url:
        await asyncio.to_thread(migrations.upgrade, url, "0002")
        engine = create_engine(Settings(database_url=url))
        try:
            async with engine.begin() as connection:
                user = {
                    "id": 1,
                    "username": "ada",
                    "email": "ada@example.test",
                    "password_hash": "x",
                }
                await connection.execute(insert(users), [user])
                await connection.execute(insert(posts), [row | {"user_id": 1} for row in rows])
            await asyncio.to_thread(migrations.upgrade, url)
            async with AsyncSession(engine) as session:
                post_search = search.PostSearch(
                    SerialSession(session), text="analytical", viewer=None
                )
                page = await post_search.page(search.SearchRequest(size=10))
        finally:
            await engine.dispose()
    assert [hit.post.title for hit in page.hits] == ["Engines"]
