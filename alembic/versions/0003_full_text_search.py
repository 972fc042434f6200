"""full-text search over posts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

PostgreSQL: a generated tsvector column with a GIN index. SQLite: an FTS5 table over posts kept
in sync by triggers (and rebuilt from the rows already there). MariaDB: InnoDB FULLTEXT indexes over
case-insensitive stored copies of title and content.
None of these objects is in the models; gql_blog.search.is_search_object hides them from
autogenerate, and a later SQLite batch migration of `posts` must recreate the triggers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSTGRESQL_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, content), 'B')"
)

_MARIADB_COLLATION = "utf8mb4_unicode_ci"

_SQLITE_UPGRADE = (
    # External content: the index stores no copy of the text; snippet() reads it from posts.
    "CREATE VIRTUAL TABLE posts_fts USING fts5("
    "title, content, content='posts', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER posts_fts_after_insert AFTER INSERT ON posts BEGIN "
    "INSERT INTO posts_fts (rowid, title, content) VALUES (new.id, new.title, new.content); "
    "END",
    "CREATE TRIGGER posts_fts_after_delete AFTER DELETE ON posts BEGIN "
    "INSERT INTO posts_fts (posts_fts, rowid, title, content) "
    "VALUES ('delete', old.id, old.title, old.content); "
    "END",
    "CREATE TRIGGER posts_fts_after_update AFTER UPDATE OF id, title, content ON posts BEGIN "
    "INSERT INTO posts_fts (posts_fts, rowid, title, content) "
    "VALUES ('delete', old.id, old.title, old.content); "
    "INSERT INTO posts_fts (rowid, title, content) VALUES (new.id, new.title, new.content); "
    "END",
    "INSERT INTO posts_fts (posts_fts) VALUES ('rebuild')",
)
_SQLITE_DOWNGRADE = (
    "DROP TRIGGER posts_fts_after_update",
    "DROP TRIGGER posts_fts_after_delete",
    "DROP TRIGGER posts_fts_after_insert",
    "DROP TABLE posts_fts",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.add_column(
            "posts",
            sa.Column(
                "search_vector",
                postgresql.TSVECTOR(),
                sa.Computed(_POSTGRESQL_VECTOR, persisted=True),
                nullable=False,
            ),
        )
        op.create_index(
            "ix_posts_search_vector", "posts", ["search_vector"], postgresql_using="gin"
        )
    elif dialect == "sqlite":
        for statement in _SQLITE_UPGRADE:
            op.execute(statement)
    else:
        # InnoDB matches FULLTEXT words by the column's collation, and posts' is binary: the
        # indexes cover stored copies under a case-insensitive one (virtual columns cannot).
        copies = (
            ("search_title", mysql.VARCHAR(200, collation=_MARIADB_COLLATION), "title"),
            ("search_content", mysql.MEDIUMTEXT(collation=_MARIADB_COLLATION), "content"),
        )
        for name, text_type, source in copies:
            op.add_column("posts", sa.Column(name, text_type, sa.Computed(source, persisted=True)))
        # The first FULLTEXT index adds InnoDB's hidden FTS_DOC_ID column (a table rebuild).
        op.create_index(
            "ix_posts_title_content_fulltext",
            "posts",
            ["search_title", "search_content"],
            mysql_prefix="FULLTEXT",
        )
        op.create_index(
            "ix_posts_title_fulltext", "posts", ["search_title"], mysql_prefix="FULLTEXT"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.drop_index("ix_posts_search_vector", table_name="posts")
        op.drop_column("posts", "search_vector")
    elif dialect == "sqlite":
        for statement in _SQLITE_DOWNGRADE:
            op.execute(statement)
    else:
        op.drop_index("ix_posts_title_fulltext", table_name="posts")
        op.drop_index("ix_posts_title_content_fulltext", table_name="posts")
        op.drop_column("posts", "search_content")
        op.drop_column("posts", "search_title")
