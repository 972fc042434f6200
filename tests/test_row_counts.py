"""Row counts the cost model prices by: read from every database, exactly or from statistics."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_blog import row_counts
from gql_blog.row_counts import TABLES, RowCounts


async def test_refresh_reads_every_table_on_every_database(engine: AsyncEngine) -> None:
    counts = RowCounts({"posts": 123})
    await counts.refresh(engine)
    assert counts.version == 1
    # Each test's rows are rolled back: the posts counted are the committed ones, not 123.
    assert counts.table("posts") != 123
    assert all(counts.table(table) >= 0 for table in TABLES)


async def test_refresh_takes_the_statistics_of_large_tables(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every table counts as large: PostgreSQL's reltuples (-1 until analysed: counted then)
    # and MariaDB's TABLE_ROWS are read, and must be valid SQL there.
    monkeypatch.setattr(row_counts, "EXACT_BELOW", 0)
    counts = RowCounts()
    await counts.refresh(engine)
    assert counts.version == 1
    assert all(counts.table(table) >= 0 for table in TABLES)


async def test_a_failed_refresh_keeps_the_last_counts() -> None:
    class Unreachable:
        def connect(self) -> None:
            raise OSError("the database is gone")

    counts = RowCounts({"posts": 123})
    await counts.refresh(Unreachable())  # type: ignore[arg-type]  # fails as an engine would
    assert counts.table("posts") == 123
    assert counts.version == 0


def test_fanout_is_children_per_parent_through_post_tags_for_tags() -> None:
    counts = RowCounts({"users": 10, "posts": 200, "tags": 4, "post_tags": 100})
    assert counts.fanout("User", "Post") == 20
    assert counts.fanout("Post", "Tag") == 0.5
    assert counts.fanout("Tag", "Post") == 25
    assert RowCounts().fanout("User", "Post") == 0
