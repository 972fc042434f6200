"""case-insensitive usernames

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

`users.username_key` holds the lower-cased username under a unique index, so the database refuses
"Ada" beside "ada" even when two registrations race. Existing rows get their key here; if two of
them differ only in case, the upgrade fails on the unique index and names the duplicate.

The column stays nullable in the database: SQLite can add a NOT NULL column only by rebuilding
`users`, and dropping the old table would cascade into posts, comments and tokens. For the same
reason nothing here uses batch mode.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Text compares and orders by code point: collation "C" on PostgreSQL (as in 0001).
def _string(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length=length).with_variant(
        sa.String(length=length, collation="C"), "postgresql"
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("username_key", _string(32), nullable=True))
    users = sa.table(
        "users", sa.column("username", sa.String()), sa.column("username_key", sa.String())
    )
    op.execute(users.update().values(username_key=sa.func.lower(users.c.username)))
    op.create_index(op.f("ix_users_username_key"), "users", ["username_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_username_key"), table_name="users")
    # A plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): batch mode would rebuild the table.
    op.drop_column("users", "username_key")
