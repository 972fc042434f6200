"""remember the addresses that signed in to an account

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

A succeeded sign-in attempt is kept (marked `succeeded`) instead of deleted: the addresses an
account signed in from recently stay free to sign in to it while strangers' failures throttle the
account (see gql_blog/throttle.py). The scale helper's 0007 comes between 0006 and this one once
both are merged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sign_in_attempts") as batch:
        batch.add_column(
            sa.Column("succeeded", sa.Boolean(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sign_in_attempts") as batch:
        batch.drop_column("succeeded")
