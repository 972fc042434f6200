"""A connection's converted arguments as the read model takes them: a page request, an ordering,
a plain `where` (global ids decoded to row ids).

Both executors call these, strawberry's resolvers and the planned path, so a request's input is
checked once, by the same rules; what they refuse raises the read model's own input errors
(`InvalidPageError`, `InvalidCursorError`, `InvalidFilterError`, `InvalidIdError`), which
`bad_input.py` turns into BAD_USER_INPUT.
"""

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

from strawberry import UNSET

from gql_blog import models
from gql_blog.config import Settings
from gql_blog.errors import InvalidCursorError, InvalidFilterError, InvalidPageError
from gql_blog.ids import decode_global_id
from gql_blog.ordering import Ordering, OrderTerm
from gql_blog.read_model import Filter, PageRequest

# An id of another type can equal no row; 0 is an id no row has.
_NO_ROW = 0


def page_request(
    settings: Settings,
    ordering: Ordering,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    where: Filter | None = None,
) -> PageRequest:
    """Validate and decode `first/after/last/before`; errors name the argument at fault."""
    if first is not None and last is not None:
        raise InvalidPageError("Pass either `first` or `last`, not both.")
    for name, value in (("first", first), ("last", last)):
        if value is None:
            continue
        if value < 0:
            raise InvalidPageError(f"`{name}` must not be negative (got {value}).")
        if value > settings.max_page_size:
            raise InvalidPageError(
                f"`{name}` must be at most {settings.max_page_size} (got {value})."
            )
    size = last if last is not None else first
    # The cursor's fingerprint covers the filter: a cursor of another filter is refused.
    scope = "" if where is None else where.key
    return PageRequest(
        ordering=ordering,
        size=settings.default_page_size if size is None else size,
        backward=last is not None,
        after=_decode(ordering, "after", after, scope),
        before=_decode(ordering, "before", before, scope),
        where=where,
    )


def _decode(
    ordering: Ordering, name: str, cursor: str | None, scope: str
) -> tuple[Any, ...] | None:
    if cursor is None:
        return None
    try:
        return tuple(ordering.decode_cursor(cursor, scope=scope))
    except InvalidCursorError as error:
        raise InvalidCursorError(f"`{name}`: {error}") from None


def ordering_of(
    entity: str, order_by: Sequence[Any] | None, default: Sequence[OrderTerm] = ()
) -> Ordering:
    """The ordering an `orderBy` list asks for (each item has field, direction, nulls); with
    none, `default` (if given, else the entity's default order)."""
    terms = [
        OrderTerm(
            key=item.field.value,
            descending=item.direction.value == "DESC",
            nulls_first=None if item.nulls is None else item.nulls.value == "FIRST",
        )
        for item in order_by or ()
    ]
    return Ordering.of(entity, terms or default)


def plain_where(where: Any) -> dict[str, Any] | None:
    """A `where` input as the plain dict where.py compiles (global ids decoded to row ids).

    The inputs say what they are: a `where` names its `entity`, an id filter sets `is_id_filter`,
    the operators of one value (eq, in, ...) set `is_operator_input`.
    """
    if where is None or where is UNSET:
        return None
    plain: dict[str, Any] = _plain(where, entity=getattr(where, "entity", None))
    return plain


def _plain(value: Any, *, entity: str | None) -> Any:
    if isinstance(value, list):
        return [_plain(item, entity=entity) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if getattr(value, "is_id_filter", False):
        return _plain_ids(value, entity)
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    own = getattr(value, "entity", entity)
    is_operator_input = getattr(value, "is_operator_input", False)
    result: dict[str, Any] = {}
    for item in dataclasses.fields(value):
        raw = getattr(value, item.name)
        if raw is UNSET:
            continue
        # null stands for no condition nowhere: refused, except as an operator's operand,
        # which where.py refuses with the operator's path (eq: null → "use isNull").
        if raw is None and not is_operator_input:
            raise InvalidFilterError("", f"`{item.name.rstrip('_')}` must not be null")
        result[item.name.rstrip("_")] = _plain(raw, entity=own)
    return result


def _plain_ids(ids: Any, entity: str | None) -> dict[str, Any]:
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
    type_name, row_id = decode_global_id(value)
    # An id beyond the id columns' range names no row (and PostgreSQL refuses to bind it).
    return row_id if type_name == entity and row_id < models.ID_LIMIT else _NO_ROW
