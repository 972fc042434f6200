"""add the shared persisted queries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Automatic persisted queries registered on one worker run on every worker and host: their texts
live in this table, behind each worker's in-process cache.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import gql_blog.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persisted_queries",
        sa.Column(
            "sha256",
            sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "query",
            sa.Text()
            .with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
            .with_variant(sa.Text(collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("registered_at", gql_blog.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_persisted_queries")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    op.create_index(
        op.f("ix_persisted_queries_registered_at"), "persisted_queries", ["registered_at"]
    )


def downgrade() -> None:
    op.drop_table("persisted_queries")
