"""add the event outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Subscription events on SQLite and MariaDB: each mutation writes its events here in its own
transaction, and every worker polls the table, so events reach every process.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gql_blog.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Text compares and orders by code point: collation "C" on PostgreSQL (as in 0001).
def _string(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _string(32), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", gql_blog.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_event_outbox_created_at"), "event_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_table("event_outbox")
