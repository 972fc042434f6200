"""The `where` inputs (typed filters), turned into the plain dicts that filters.py compiles."""

import dataclasses
import enum
from datetime import datetime
from typing import Any, ClassVar

import strawberry
from strawberry import UNSET

from gql_blog.schema.errors import UserInputError
from gql_blog.schema.ids import decode_global_id


@strawberry.enum(description="How string filters compare text.")
class FilterMode(enum.Enum):
    DEFAULT = "DEFAULT"
    INSENSITIVE = "INSENSITIVE"


@strawberry.input(description="Conditions on an Int; comparisons never match null (use isNull).")
class IntFilter:
    eq: int | None = UNSET
    ne: int | None = UNSET
    in_: list[int] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[int] | None = UNSET
    lt: int | None = UNSET
    lte: int | None = UNSET
    gt: int | None = UNSET
    gte: int | None = UNSET
    is_null: bool | None = UNSET


@strawberry.input(description="Conditions on a String; case-sensitive unless mode: INSENSITIVE.")
class StringFilter:
    eq: str | None = UNSET
    ne: str | None = UNSET
    in_: list[str] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[str] | None = UNSET
    contains: str | None = UNSET
    starts_with: str | None = UNSET
    ends_with: str | None = UNSET
    is_null: bool | None = UNSET
    mode: FilterMode | None = UNSET


@strawberry.input(description="Conditions on a Boolean.")
class BooleanFilter:
    eq: bool | None = UNSET
    ne: bool | None = UNSET
    is_null: bool | None = UNSET


@strawberry.input(description="Conditions on a DateTime; comparisons never match null.")
class DateTimeFilter:
    eq: datetime | None = UNSET
    ne: datetime | None = UNSET
    in_: list[datetime] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[datetime] | None = UNSET
    lt: datetime | None = UNSET
    lte: datetime | None = UNSET
    gt: datetime | None = UNSET
    gte: datetime | None = UNSET
    is_null: bool | None = UNSET


@strawberry.input(description="Conditions on a global id.")
class IDFilter:
    eq: strawberry.ID | None = UNSET
    ne: strawberry.ID | None = UNSET
    in_: list[strawberry.ID] | None = strawberry.field(default=UNSET, name="in")
    not_in: list[strawberry.ID] | None = UNSET


@strawberry.input(description="Users to match: every given condition must hold.")
class UserWhere:
    entity: ClassVar[str] = "User"
    id: IDFilter | None = UNSET
    username: StringFilter | None = UNSET
    email: StringFilter | None = UNSET
    full_name: StringFilter | None = UNSET
    age: IntFilter | None = UNSET
    is_active: BooleanFilter | None = UNSET
    created_at: DateTimeFilter | None = UNSET
    posts: "PostListFilter | None" = UNSET
    comments: "CommentListFilter | None" = UNSET
    and_: list["UserWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["UserWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "UserWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(description="Posts to match: every given condition must hold.")
class PostWhere:
    entity: ClassVar[str] = "Post"
    id: IDFilter | None = UNSET
    title: StringFilter | None = UNSET
    content: StringFilter | None = UNSET
    published: BooleanFilter | None = UNSET
    created_at: DateTimeFilter | None = UNSET
    updated_at: DateTimeFilter | None = UNSET
    author: UserWhere | None = UNSET
    tags: "TagListFilter | None" = UNSET
    comments: "CommentListFilter | None" = UNSET
    and_: list["PostWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["PostWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "PostWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(description="Comments to match: every given condition must hold.")
class CommentWhere:
    entity: ClassVar[str] = "Comment"
    id: IDFilter | None = UNSET
    content: StringFilter | None = UNSET
    created_at: DateTimeFilter | None = UNSET
    author: UserWhere | None = UNSET
    post: PostWhere | None = UNSET
    and_: list["CommentWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["CommentWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "CommentWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(description="Tags to match: every given condition must hold.")
class TagWhere:
    entity: ClassVar[str] = "Tag"
    id: IDFilter | None = UNSET
    name: StringFilter | None = UNSET
    posts: "PostListFilter | None" = UNSET
    and_: list["TagWhere"] | None = strawberry.field(default=UNSET, name="and")
    or_: list["TagWhere"] | None = strawberry.field(default=UNSET, name="or")
    not_: "TagWhere | None" = strawberry.field(default=UNSET, name="not")


@strawberry.input(
    description="Conditions on a list of posts (SQL EXISTS); every over none is true."
)
class PostListFilter:
    some: PostWhere | None = UNSET
    none: PostWhere | None = UNSET
    every: PostWhere | None = UNSET


@strawberry.input(description="Conditions on a list of comments (SQL EXISTS).")
class CommentListFilter:
    some: CommentWhere | None = UNSET
    none: CommentWhere | None = UNSET
    every: CommentWhere | None = UNSET


@strawberry.input(description="Conditions on a list of tags (SQL EXISTS).")
class TagListFilter:
    some: TagWhere | None = UNSET
    none: TagWhere | None = UNSET
    every: TagWhere | None = UNSET


_OPERATOR_INPUTS = (IntFilter, StringFilter, BooleanFilter, DateTimeFilter)

# An id of another type can equal no row; 0 is an id no row has.
_NO_ROW = 0
_ID_LIMIT = 2**31
_KNOWN_TYPES = frozenset({"User", "Post", "Comment", "Tag", "AuditLogEntry"})


def plain_where(where: Any) -> dict[str, Any] | None:
    """A `where` input as the plain dict filters.py compiles (global ids decoded to row ids)."""
    if where is None or where is UNSET:
        return None
    plain: dict[str, Any] = _plain(where, entity=getattr(where, "entity", None))
    return plain


def _plain(value: Any, *, entity: str | None) -> Any:
    if isinstance(value, list):
        return [_plain(item, entity=entity) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, IDFilter):
        return _plain_ids(value, entity)
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    own = getattr(value, "entity", entity)
    result: dict[str, Any] = {}
    for item in dataclasses.fields(value):
        raw = getattr(value, item.name)
        if raw is UNSET:
            continue
        # null stands for no condition nowhere: refused, except as an operator's operand,
        # which filters.py refuses with the operator's path (eq: null → "use isNull").
        if raw is None and not isinstance(value, _OPERATOR_INPUTS):
            raise UserInputError(f"where: `{item.name.rstrip('_')}` must not be null")
        result[item.name.rstrip("_")] = _plain(raw, entity=own)
    return result


def _plain_ids(ids: IDFilter, entity: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in dataclasses.fields(ids):
        raw = getattr(ids, item.name)
        if raw is UNSET:
            continue
        name = item.name.rstrip("_")
        if raw is None:
            result[name] = None
        elif isinstance(raw, list):
            result[name] = [_row_id(value, entity) for value in raw]
        else:
            result[name] = _row_id(raw, entity)
    return result


def _row_id(value: str, entity: str | None) -> int:
    type_name, row_id = decode_global_id(value, known_types=_KNOWN_TYPES)
    # An id beyond the id columns' range names no row (and PostgreSQL refuses to bind it).
    return row_id if type_name == entity and row_id < _ID_LIMIT else _NO_ROW
