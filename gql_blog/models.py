"""The blog's tables as SQLAlchemy 2 models: users, posts, comments, tags, audit log, tokens.

Every rule about a single value lives here, in a validator, so it holds whichever layer writes:
a broken rule raises `InvalidValueError`, which names the attribute it is about.
"""

import enum
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    case,
    literal,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

from gql_blog import slugs
from gql_blog.errors import (
    InvalidValueError as InvalidValueError,  # re-exported: callers name it here
)

# Constraint names are the same on every dialect, so migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Case-sensitive, code-point ordered text on every dialect: the API promises identical filters and
# orderings on SQLite (binary by default), PostgreSQL (the database's collation, often linguistic,
# unless a column says "C") and MariaDB (case-insensitive by default; utf8mb4_bin would still pad
# with spaces, so 'a' = 'a ' there: the NO PAD binary collation compares like the others).
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}
POSTGRESQL_COLLATION = "C"

USERNAME_MAX = 32
EMAIL_MAX = 254
TITLE_MAX = 200
TAG_NAME_MAX = 50
NAME_MAX = 100
BIO_MAX = 2_000
POST_CONTENT_MAX = 100_000
COMMENT_CONTENT_MAX = 10_000
AGE_RANGE = range(0, 151)
# The first id past an INTEGER id column's range: no row has it, and PostgreSQL refuses to bind it.
ID_LIMIT = 2**31
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_]{3,32}")


def id_limit(column_type: TypeEngine[Any]) -> int:
    """The first integer past what a column of this type holds (BIGINT or INTEGER)."""
    return 2**63 if isinstance(column_type, BigInteger) else ID_LIMIT


def utc_now() -> datetime:
    return datetime.now(UTC)


class UtcNow(FunctionElement[datetime]):
    """The current UTC time as a column default, with microseconds, on every dialect."""

    type = DateTime()
    inherit_cache = True


@compiles(UtcNow, "postgresql")
def _utc_now_postgresql(element: UtcNow, compiler: Any, **kw: Any) -> str:
    return "now()"


@compiles(UtcNow, "mysql")
@compiles(UtcNow, "mariadb")
def _utc_now_mysql(element: UtcNow, compiler: Any, **kw: Any) -> str:
    return "utc_timestamp(6)"


@compiles(UtcNow, "sqlite")
def _utc_now_sqlite(element: UtcNow, compiler: Any, **kw: Any) -> str:
    # The same text layout SQLAlchemy writes, so values compare correctly as strings.
    return "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; timestamptz on PostgreSQL, UTC DATETIME(6) elsewhere."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: gql_blog stores aware UTC times only")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def string(length: int) -> TypeEngine[str]:
    """VARCHAR compared and ordered by code point on every dialect (see MYSQL_TABLE_OPTIONS)."""
    return String(length).with_variant(String(length, collation=POSTGRESQL_COLLATION), "postgresql")


def text() -> TypeEngine[str]:
    """TEXT compared and ordered by code point on every dialect (see MYSQL_TABLE_OPTIONS)."""
    return Text().with_variant(Text(collation=POSTGRESQL_COLLATION), "postgresql")


def long_text() -> TypeEngine[str]:
    """Text of up to 100,000 characters: MariaDB's TEXT holds only 64 KB."""
    return (
        Text()
        .with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
        .with_variant(Text(collation=POSTGRESQL_COLLATION), "postgresql")
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(UtcDateTime(), default=utc_now, server_default=UtcNow())


def _created_at_of_row(context: DefaultExecutionContext) -> datetime:
    """A new row's updated_at is its created_at (computed just before it, in column order)."""
    # SQLAlchemy leaves get_current_parameters unannotated.
    created_at: datetime = context.get_current_parameters()["created_at"]  # type: ignore[no-untyped-call]
    return created_at


def _username_key_of_row(context: DefaultExecutionContext) -> str:
    """A new row's username_key, for writers that insert users without the model (e.g. seeding)."""
    # SQLAlchemy leaves get_current_parameters unannotated.
    username: str = context.get_current_parameters()["username"]  # type: ignore[no-untyped-call]
    return fold_username(username)


def fold_username(username: str) -> str:
    """What makes two usernames the same: usernames are compared ignoring case."""
    return username.lower()


def _refuse_nul(field: str, value: str) -> None:
    # PostgreSQL cannot store NUL in text; refuse it everywhere so every dialect behaves alike.
    if "\x00" in value:
        raise InvalidValueError(field, f"{field} must not contain NUL characters")


def _clean_optional_text(field: str, value: str | None, *, maximum: int) -> str | None:
    """Blank optional text is stored as NULL."""
    if value is None or not value.strip():
        return None
    _refuse_nul(field, value)
    if len(value) > maximum:
        raise InvalidValueError(field, f"{field} must be at most {maximum} characters")
    return value


def _require_text(field: str, value: str, *, maximum: int) -> str:
    if not value or not value.strip():
        raise InvalidValueError(field, f"{field} must not be blank")
    _refuse_nul(field, value)
    if len(value) > maximum:
        raise InvalidValueError(field, f"{field} must be at most {maximum} characters")
    return value


post_tags = Table(
    "post_tags",
    Base.metadata,
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
    **MYSQL_TABLE_OPTIONS,
)


class User(Base):
    __tablename__ = "users"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(string(USERNAME_MAX), unique=True, index=True)
    # The lower-cased username, unique: the database itself refuses "Ada" beside "ada", even when
    # two registrations race. Kept by the username validator (and a default for bulk inserts);
    # NULL only in rows written by raw SQL, which the unique index then does not guard.
    username_key: Mapped[str | None] = mapped_column(
        string(USERNAME_MAX), unique=True, index=True, default=_username_key_of_row
    )
    email: Mapped[str] = mapped_column(string(EMAIL_MAX), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(string(255))
    first_name: Mapped[str | None] = mapped_column(string(NAME_MAX))
    last_name: Mapped[str | None] = mapped_column(string(NAME_MAX))
    bio: Mapped[str | None] = mapped_column(text())
    age: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()

    posts: Mapped[list["Post"]] = relationship(
        back_populates="author", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    comments: Mapped[list["Comment"]] = relationship(
        back_populates="author", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )

    @hybrid_property
    def full_name(self) -> str | None:
        names = [name for name in (self.first_name, self.last_name) if name]
        return " ".join(names) or None

    @full_name.inplace.expression
    @classmethod
    def _full_name_expression(cls) -> ColumnElement[str | None]:
        # NULL-safe on every dialect: `||`/CONCAT with a NULL operand would yield NULL.
        return case(
            (
                and_(cls.first_name.is_not(None), cls.last_name.is_not(None)),
                cls.first_name + literal(" ") + cls.last_name,
            ),
            (cls.first_name.is_not(None), cls.first_name),
            else_=cls.last_name,
        )

    @validates("username")
    def _validate_username(self, key: str, value: str) -> str:
        _require_text("username", value, maximum=USERNAME_MAX)
        if not USERNAME_PATTERN.fullmatch(value):
            raise InvalidValueError(
                "username", "username must be 3 to 32 letters, digits or underscores"
            )
        self.username_key = fold_username(value)
        return value

    @validates("email")
    def _validate_email(self, key: str, value: str) -> str:
        _refuse_nul("email", value)
        local, at, domain = value.strip().partition("@")
        if not at or not local or not domain or "@" in domain:
            raise InvalidValueError("email", "email must contain one '@' with text on both sides")
        if len(value.strip()) > EMAIL_MAX:
            raise InvalidValueError("email", f"email must be at most {EMAIL_MAX} characters")
        return value.strip().lower()

    @validates("age")
    def _validate_age(self, key: str, value: int | None) -> int | None:
        if value is not None and value not in AGE_RANGE:
            raise InvalidValueError("age", "age must be between 0 and 150")
        return value

    @validates("first_name", "last_name")
    def _validate_name(self, key: str, value: str | None) -> str | None:
        return _clean_optional_text(key, value, maximum=NAME_MAX)

    @validates("bio")
    def _validate_bio(self, key: str, value: str | None) -> str | None:
        if value is None:
            return None
        _refuse_nul("bio", value)
        if len(value) > BIO_MAX:
            raise InvalidValueError("bio", f"bio must be at most {BIO_MAX} characters")
        return value


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_user_id_created_at", "user_id", "created_at"),
        Index("ix_posts_slug", "slug", unique=True),
        # postStats and postGroups read only these columns: counted from this index, they never
        # read the wide rows (content, the search copies). PostgreSQL names the id (the others
        # keep the primary key in every index).
        Index(
            "ix_posts_published_created_at",
            "published",
            "created_at",
            "user_id",
            postgresql_include=["id"],
        ),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(string(TITLE_MAX))
    content: Mapped[str] = mapped_column(long_text())
    published: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utc_now, server_default=UtcNow(), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=_created_at_of_row, onupdate=utc_now, server_default=UtcNow()
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Unique (see gql_blog/slugs.py); every writer sets it. The column is nullable only because
    # SQLite adds a NOT NULL column by rebuilding `posts` (migration 0009).
    slug: Mapped[str] = mapped_column(string(slugs.MAX_LENGTH), nullable=True)
    # When the post last became published; NULL while it is a draft.
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)

    author: Mapped[User] = relationship(back_populates="posts", lazy="raise")
    comments: Mapped[list["Comment"]] = relationship(
        back_populates="post", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    tags: Mapped[list["Tag"]] = relationship(
        secondary=post_tags, back_populates="posts", lazy="raise", passive_deletes=True
    )

    @validates("title")
    def _validate_title(self, key: str, value: str) -> str:
        return _require_text("title", value, maximum=TITLE_MAX)

    @validates("content")
    def _validate_content(self, key: str, value: str) -> str:
        return _require_text("content", value, maximum=POST_CONTENT_MAX)


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_post_id_created_at", "post_id", "created_at"),
        Index("ix_comments_parent_id_created_at", "parent_id", "created_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[str] = mapped_column(text())
    created_at: Mapped[datetime] = _created_at()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    # The comment this one replies to (of the same post); NULL for a top-level comment. SET NULL,
    # not CASCADE: a post's deletion cascades to every comment at one level (MariaDB stops
    # cascade chains at 15), and deleteComment deletes the replies itself (writes.py).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="SET NULL"))
    # When updateComment last changed the content; NULL for an unedited comment.
    edited_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    author: Mapped[User] = relationship(back_populates="comments", lazy="raise")
    post: Mapped[Post] = relationship(back_populates="comments", lazy="raise")
    parent: Mapped["Comment | None"] = relationship(remote_side=[id], lazy="raise")

    @validates("content")
    def _validate_content(self, key: str, value: str) -> str:
        return _require_text("content", value, maximum=COMMENT_CONTENT_MAX)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(string(TAG_NAME_MAX), unique=True)

    posts: Mapped[list[Post]] = relationship(
        secondary=post_tags, back_populates="tags", lazy="raise", passive_deletes=True
    )

    @validates("name")
    def _validate_name(self, key: str, value: str) -> str:
        return _require_text("name", value.strip().lower(), maximum=TAG_NAME_MAX)


class AuditAction(enum.StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class AuditLog(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_entity", "entity_type", "entity_id"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    entity_type: Mapped[str] = mapped_column(string(20))
    entity_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[AuditAction] = mapped_column(string(10))
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utc_now, server_default=UtcNow(), index=True
    )

    actor: Mapped[User | None] = relationship(lazy="raise")


class AuthToken(Base):
    """A sign-in token; only its SHA-256 digest is stored, so a database leak reveals no token."""

    __tablename__ = "auth_tokens"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(string(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    user: Mapped[User] = relationship(lazy="raise")


class SignInAttempt(Base):
    """A sign-in attempt: recent failed ones throttle further tries, succeeded ones mark the
    addresses an account is known to sign in from (see gql_blog/throttle.py).

    An attempt counts as failed until it succeeds. The username is stored as a digest of its
    folded form: attempts name any text a client sends, and an unknown username is throttled
    exactly like a known one.
    """

    __tablename__ = "sign_in_attempts"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    username_digest: Mapped[str] = mapped_column(string(64), index=True)
    address: Mapped[str] = mapped_column(string(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class OutboxEvent(Base):
    """A committed event waiting for every worker to read it (every dialect; see events.py).

    Written in the mutation's own transaction, so it exists only if the mutation committed; ids
    only, as every event. Rows older than the retention period are pruned.
    """

    __tablename__ = "event_outbox"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(string(32))
    post_id: Mapped[int]
    comment_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class PersistedQuery(Base):
    """An automatic persisted query's text by its SHA-256: registered on one worker, it runs on
    every worker and host sharing the database (see persisted_queries.py).

    `registered_at` moves on each registration; rows not registered again within the retention
    period are pruned (a client whose hash is gone is told so, and sends the text once more).
    """

    __tablename__ = "persisted_queries"
    __table_args__ = MYSQL_TABLE_OPTIONS

    sha256: Mapped[str] = mapped_column(string(64), primary_key=True)
    query: Mapped[str] = mapped_column(long_text())
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
