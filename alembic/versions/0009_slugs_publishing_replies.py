"""posts' slugs and publishing time, comments' edit time and replies

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

`posts.slug` (unique, see gql_blog/slugs.py) is filled from the titles of the posts already there,
in id order, `-2`, `-3`, … where a slug is taken; `posts.published_at` is the `created_at` of the
posts already published. `comments.parent_id` names the comment a reply answers (SET NULL on
delete: a post's deletion cascades to all its comments at one level), `comments.edited_at` when
updateComment last changed it.

`posts.slug` stays nullable in the database: SQLite adds a NOT NULL column only by rebuilding
`posts`, which would drop full-text search's triggers and cascade into comments (see 0004).
Nothing here rebuilds `posts`; on SQLite, `comments` is rebuilt to add and to drop the foreign key
of `parent_id` (ALTER TABLE cannot).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gql_blog import slugs

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How many slugs one UPDATE round trip writes.
_CHUNK = 1000


# Text compares and orders by code point: collation "C" on PostgreSQL (as in 0001).
def _string(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length=length).with_variant(
        sa.String(length=length, collation="C"), "postgresql"
    )


def _datetime() -> sa.types.TypeEngine[object]:
    # As gql_blog.models.UtcDateTime: timestamptz on PostgreSQL, DATETIME(6) on MariaDB.
    return sa.DateTime(timezone=True).with_variant(
        sa.dialects.mysql.DATETIME(fsp=6), "mysql", "mariadb"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("posts", sa.Column("slug", _string(slugs.MAX_LENGTH), nullable=True))
    op.add_column("posts", sa.Column("published_at", _datetime(), nullable=True))
    op.add_column("comments", sa.Column("edited_at", _datetime(), nullable=True))
    op.add_column("comments", sa.Column("parent_id", sa.Integer(), nullable=True))
    # Before the foreign key: MariaDB would otherwise add an index of its own for it.
    op.create_index("ix_comments_parent_id_created_at", "comments", ["parent_id", "created_at"])
    if dialect == "sqlite":
        # A foreign key is added by rebuilding the table (SQLite would not reflect the name and
        # ON DELETE of one added inline by ALTER TABLE ADD COLUMN).
        with op.batch_alter_table("comments", recreate="always") as batch:
            batch.create_foreign_key(
                "fk_comments_parent_id_comments",
                "comments",
                ["parent_id"],
                ["id"],
                ondelete="SET NULL",
            )
    else:
        op.create_foreign_key(
            "fk_comments_parent_id_comments",
            "comments",
            "comments",
            ["parent_id"],
            ["id"],
            ondelete="SET NULL",
        )
    _fill_posts()
    op.create_index("ix_posts_slug", "posts", ["slug"], unique=True)
    op.create_index("ix_posts_published_at", "posts", ["published_at"])


def _fill_posts() -> None:
    """Slugs from the titles, in id order; published posts' publishing time is their creation."""
    posts = sa.table(
        "posts",
        sa.column("id", sa.Integer()),
        sa.column("title", sa.String()),
        sa.column("slug", sa.String()),
        sa.column("published", sa.Boolean()),
        sa.column("published_at", sa.DateTime()),
        sa.column("created_at", sa.DateTime()),
    )
    op.execute(
        posts.update().where(posts.c.published.is_(True)).values(published_at=posts.c.created_at)
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(posts.c.id, posts.c.title).order_by(posts.c.id)).all()
    taken: set[str] = set()
    values = []
    for post_id, title in rows:
        slug = slugs.first_free(slugs.slugify(title), taken)
        taken.add(slug)
        values.append({"row_id": post_id, "new_slug": slug})
    stmt = (
        posts.update()
        .where(posts.c.id == sa.bindparam("row_id"))
        .values(slug=sa.bindparam("new_slug"))
    )
    for start in range(0, len(values), _CHUNK):
        bind.execute(stmt, values[start : start + _CHUNK])


def downgrade() -> None:
    op.drop_index("ix_posts_published_at", table_name="posts")
    op.drop_index("ix_posts_slug", table_name="posts")
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_comments_parent_id_created_at", table_name="comments")
        with op.batch_alter_table("comments", recreate="always") as batch:
            batch.drop_column("parent_id")
            batch.drop_column("edited_at")
    else:
        # The foreign key first: MariaDB keeps the index while a foreign key needs it.
        op.drop_constraint("fk_comments_parent_id_comments", "comments", type_="foreignkey")
        op.drop_index("ix_comments_parent_id_created_at", table_name="comments")
        op.drop_column("comments", "parent_id")
        op.drop_column("comments", "edited_at")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): batch mode would rebuild `posts`.
    op.drop_column("posts", "published_at")
    op.drop_column("posts", "slug")
