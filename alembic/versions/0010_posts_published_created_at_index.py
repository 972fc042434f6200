"""an index of posts' published flag, creation time and author, for stats and groups

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

`postStats` and `postGroups` read only `published`, `created_at`, `user_id` and `id` of the posts
they count: this index holds them all (PostgreSQL's includes the id; InnoDB and SQLite keep the
primary key in every index), so the counts read it instead of the posts' rows, which carry the
content and its full-text copies.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_posts_published_created_at",
        "posts",
        ["published", "created_at", "user_id"],
        postgresql_include=["id"],
    )


def downgrade() -> None:
    op.drop_index("ix_posts_published_created_at", table_name="posts")
