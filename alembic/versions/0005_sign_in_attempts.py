"""add sign-in attempts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Recent sign-ins that have not succeeded, per username digest and client address: the throttle
that every worker process shares lives in the database.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gql_blog.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Text compares and orders by code point: collation "C" on PostgreSQL (as in 0001).
def _string(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username_digest", _string(64), nullable=False),
        sa.Column("address", _string(64), nullable=False),
        sa.Column("created_at", gql_blog.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_attempts")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    for column in ("username_digest", "address", "created_at"):
        op.create_index(op.f(f"ix_sign_in_attempts_{column}"), "sign_in_attempts", [column])


def downgrade() -> None:
    op.drop_table("sign_in_attempts")
