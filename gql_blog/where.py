"""Typed `where` filters compiled to SQL predicates, visibility applied inside relations."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, and_, false, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from gql_blog import models
from gql_blog.errors import (
    InvalidFilterError as InvalidFilterError,  # re-exported: callers name it here
)


def _column(model: Any, name: str) -> Callable[[], ColumnElement[Any]]:
    def expression() -> ColumnElement[Any]:
        column: ColumnElement[Any] = getattr(model, name)
        return column

    return expression


# Longer lists would pass PostgreSQL's bind-parameter limit (32,767) in one statement.
MAX_LIST_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class _Field:
    expression: Callable[[], ColumnElement[Any]]
    kind: str  # "int" | "string" | "bool" | "datetime" | "id"


@dataclass(frozen=True, slots=True)
class _ToOne:
    entity: str
    exists: Callable[[ColumnElement[bool]], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class _ToMany:
    entity: str
    exists: Callable[[ColumnElement[bool]], ColumnElement[bool]]


Visibility = Callable[[str], ColumnElement[bool]]

_OPERATORS = {
    "int": {"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "is_null"},
    "datetime": {"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "is_null"},
    "string": {
        "eq",
        "ne",
        "in",
        "not_in",
        "contains",
        "starts_with",
        "ends_with",
        "is_null",
        "mode",
    },
    "bool": {"eq", "ne", "is_null"},
    "id": {"eq", "ne", "in", "not_in"},
}
_LOGICAL = {"and", "or", "not"}


def _field(model: Any, attribute: str, kind: str) -> _Field:
    return _Field(_column(model, attribute), kind)


WHERE_FIELDS: dict[str, dict[str, _Field]] = {
    "User": {
        "id": _field(models.User, "id", "id"),
        "username": _field(models.User, "username", "string"),
        "email": _field(models.User, "email", "string"),
        "full_name": _field(models.User, "full_name", "string"),
        "age": _field(models.User, "age", "int"),
        "is_active": _field(models.User, "is_active", "bool"),
        "created_at": _field(models.User, "created_at", "datetime"),
    },
    "Post": {
        "id": _field(models.Post, "id", "id"),
        "title": _field(models.Post, "title", "string"),
        "content": _field(models.Post, "content", "string"),
        "published": _field(models.Post, "published", "bool"),
        "created_at": _field(models.Post, "created_at", "datetime"),
        "updated_at": _field(models.Post, "updated_at", "datetime"),
        "published_at": _field(models.Post, "published_at", "datetime"),
        "slug": _field(models.Post, "slug", "string"),
    },
    "Comment": {
        "id": _field(models.Comment, "id", "id"),
        "content": _field(models.Comment, "content", "string"),
        "created_at": _field(models.Comment, "created_at", "datetime"),
        "edited_at": _field(models.Comment, "edited_at", "datetime"),
        "is_reply": _Field(lambda: models.Comment.parent_id.is_not(None), "bool"),
    },
    "Tag": {
        "id": _field(models.Tag, "id", "id"),
        "name": _field(models.Tag, "name", "string"),
    },
    "AuditLogEntry": {
        "entity_type": _field(models.AuditLog, "entity_type", "string"),
        "action": _field(models.AuditLog, "action", "string"),
        "created_at": _field(models.AuditLog, "created_at", "datetime"),
    },
}


class WhereCompiler:
    """Compiles plain `where` dicts (snake_case keys, operator dicts) into SQL predicates.

    Every leaf is two-valued (never NULL), so `not` returns exactly the rows its inner filter does
    not. Relation filters see only rows `visible(entity)` admits, so no filter reveals a draft.
    """

    def __init__(
        self,
        *,
        visible: Visibility,
        can_see_email: Callable[[], ColumnElement[bool]],
        max_depth: int,
    ) -> None:
        self._visible = visible
        self._can_see_email = can_see_email
        self._max_depth = max_depth

    def compile(self, entity: str, where: Mapping[str, Any] | None) -> ColumnElement[bool] | None:
        if not where:
            return None
        return self._where(entity, where, path="", depth=1)

    def _where(
        self, entity: str, where: Mapping[str, Any], *, path: str, depth: int
    ) -> ColumnElement[bool]:
        if depth > self._max_depth:
            raise InvalidFilterError(path, f"nested deeper than {self._max_depth} levels")
        parts = [
            self._entry(entity, key, value, path=_join(path, key), depth=depth)
            for key, value in where.items()
        ]
        return and_(true(), *parts)

    def _entry(
        self, entity: str, key: str, value: Any, *, path: str, depth: int
    ) -> ColumnElement[bool]:
        if key in _LOGICAL:
            return self._logical(entity, key, value, path=path, depth=depth)
        field = WHERE_FIELDS[entity].get(key)
        if field is not None:
            predicate = self._scalar(field, value, path=path)
            if entity == "User" and key == "email":
                # Email addresses are private: a filter may match only the ones the viewer sees.
                predicate = and_(self._can_see_email(), predicate)
            return predicate
        relation = _RELATIONS[entity].get(key)
        if relation is None:
            raise InvalidFilterError(path, f"{entity} has no filterable field {key!r}")
        if isinstance(relation, _ToOne):
            inner = self._where(relation.entity, value, path=path, depth=depth + 1)
            return relation.exists(and_(self._visible(relation.entity), inner))
        return self._to_many(relation, value, path=path, depth=depth)

    def _logical(
        self, entity: str, key: str, value: Any, *, path: str, depth: int
    ) -> ColumnElement[bool]:
        if key == "not":
            return ~self._where(entity, value, path=path, depth=depth + 1)
        parts = [
            self._where(entity, item, path=f"{path}[{index}]", depth=depth + 1)
            for index, item in enumerate(value)
        ]
        if key == "and":
            return and_(true(), *parts)
        return or_(false(), *parts)

    def _to_many(
        self, relation: _ToMany, value: Mapping[str, Any], *, path: str, depth: int
    ) -> ColumnElement[bool]:
        visible = self._visible(relation.entity)
        parts = []
        for quantifier, inner_where in value.items():
            inner = self._where(
                relation.entity, inner_where, path=_join(path, quantifier), depth=depth + 1
            )
            if quantifier == "some":
                parts.append(relation.exists(and_(visible, inner)))
            elif quantifier == "none":
                parts.append(~relation.exists(and_(visible, inner)))
            elif quantifier == "every":
                # Every visible row matches: no visible row fails (true over no rows).
                parts.append(~relation.exists(and_(visible, ~inner)))
            else:
                raise InvalidFilterError(path, f"unknown quantifier {quantifier!r}")
        return and_(true(), *parts)

    def _scalar(
        self, field: _Field, operators: Mapping[str, Any], *, path: str
    ) -> ColumnElement[bool]:
        allowed = _OPERATORS[field.kind]
        unknown = sorted(set(operators) - allowed)
        if unknown:
            raise InvalidFilterError(
                path, f"operator {unknown[0]!r} does not apply to {field.kind} fields"
            )
        insensitive = operators.get("mode") == "INSENSITIVE"
        column = field.expression()
        parts = [
            _compare(column, name, value, insensitive=insensitive, path=_join(path, name))
            for name, value in operators.items()
            if name != "mode"
        ]
        return and_(true(), *parts)


def _join(path: str, key: str) -> str:
    # Paths in messages use the GraphQL names the client wrote (fullName.notIn, not full_name).
    head, *rest = key.split("_")
    key = head + "".join(word.capitalize() for word in rest)
    return f"{path}.{key}" if path else key


class UnicodeLower(FunctionElement[str]):
    """lower() that folds every letter, not only ASCII, on every dialect."""

    type = String()
    inherit_cache = True
    name = "lower"


@compiles(UnicodeLower)
def _unicode_lower(element: UnicodeLower, compiler: Any, **kw: Any) -> str:
    # SQLite's built-in lower() is replaced by Python's str.lower on connect (see engines.py).
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(UnicodeLower, "postgresql")
def _unicode_lower_postgresql(element: UnicodeLower, compiler: Any, **kw: Any) -> str:
    # Text columns use collation "C", under which lower() folds ASCII only.
    return f'lower(({compiler.process(element.clauses, **kw)}) COLLATE "und-x-icu")'


def _lower(expression: Any) -> ColumnElement[Any]:
    return UnicodeLower(expression)


def _compare(
    column: ColumnElement[Any], name: str, value: Any, *, insensitive: bool, path: str
) -> ColumnElement[bool]:
    """One operator; two-valued: comparisons never match NULL (use isNull for that)."""
    if name == "is_null":
        if value is None:
            raise InvalidFilterError(path, "isNull takes true or false")
        return column.is_(None) if value else column.is_not(None)
    if value is None:
        raise InvalidFilterError(path, "null is not a value to compare with: use isNull")
    _check_operands(value if isinstance(value, list) else [value], path=path)
    if insensitive:
        column = _lower(column)
        value = [item.lower() for item in value] if isinstance(value, list) else value.lower()
    if name in ("in", "not_in"):
        return _membership(column, name, value, path=path)
    if name in ("contains", "starts_with", "ends_with"):
        return and_(column.is_not(None), _like(column, name, value))
    comparisons = {
        "eq": column.__eq__,
        "ne": column.__ne__,
        "lt": column.__lt__,
        "lte": column.__le__,
        "gt": column.__gt__,
        "gte": column.__ge__,
    }
    compared: ColumnElement[bool] = comparisons[name](value)
    return and_(column.is_not(None), compared)


def _check_operands(values: list[Any], *, path: str) -> None:
    """Refuse operands no column can hold, before they reach a driver that would fail on them."""
    for item in values:
        if isinstance(item, str) and "\x00" in item:
            raise InvalidFilterError(path, "text must not contain NUL characters")
        if not isinstance(item, datetime):
            continue
        if item.tzinfo is None:
            # A time without an offset names no instant (and the column refuses it).
            raise InvalidFilterError(
                path, "a DateTime needs a UTC offset, e.g. 2024-01-01T00:00:00Z"
            )
        try:
            item.astimezone(UTC)
        except OverflowError:
            raise InvalidFilterError(path, "that DateTime is out of range") from None


def _like(column: ColumnElement[Any], name: str, value: str) -> ColumnElement[bool]:
    # autoescape: % and _ in user text match themselves.
    if name == "contains":
        return column.contains(value, autoescape=True)
    if name == "starts_with":
        return column.startswith(value, autoescape=True)
    return column.endswith(value, autoescape=True)


def _membership(
    column: ColumnElement[Any], name: str, values: list[Any], *, path: str
) -> ColumnElement[bool]:
    if any(item is None for item in values):
        raise InvalidFilterError(path, "lists may not contain null: use isNull")
    if len(values) > MAX_LIST_LENGTH:
        raise InvalidFilterError(path, f"at most {MAX_LIST_LENGTH} values (got {len(values)})")
    if not values:
        # An empty `in` matches nothing; an empty `notIn` matches every row, NULLs included.
        return false() if name == "in" else true()
    member = column.in_(values) if name == "in" else column.not_in(values)
    return and_(column.is_not(None), member)


def _has(attribute: Any) -> Callable[[ColumnElement[bool]], ColumnElement[bool]]:
    return lambda inner: attribute.has(inner)


def _any(attribute: Any) -> Callable[[ColumnElement[bool]], ColumnElement[bool]]:
    return lambda inner: attribute.any(inner)


_RELATIONS: dict[str, dict[str, _ToOne | _ToMany]] = {
    "User": {
        "posts": _ToMany("Post", _any(models.User.posts)),
        "comments": _ToMany("Comment", _any(models.User.comments)),
    },
    "Post": {
        "author": _ToOne("User", _has(models.Post.author)),
        "tags": _ToMany("Tag", _any(models.Post.tags)),
        "comments": _ToMany("Comment", _any(models.Post.comments)),
    },
    "Comment": {
        "author": _ToOne("User", _has(models.Comment.author)),
        "post": _ToOne("Post", _has(models.Comment.post)),
        "parent": _ToOne("Comment", _has(models.Comment.parent)),
    },
    "Tag": {"posts": _ToMany("Post", _any(models.Tag.posts))},
    "AuditLogEntry": {"actor": _ToOne("User", _has(models.AuditLog.actor))},
}


def canonical_where(where: Mapping[str, Any] | None) -> str:
    """A stable text form of a filter: keys loaders by it and goes into cursor fingerprints."""
    if not where:
        return ""
    return orjson.dumps(where, option=orjson.OPT_SORT_KEYS).decode()


def relation_of(entity: str, key: str) -> tuple[str, bool] | None:
    """The entity a relation filter `key` of `entity` reads, and whether it is to-many (its
    value then holds `some`/`none`/`every` filters); None when `key` is no relation."""
    relation = _RELATIONS.get(entity, {}).get(key)
    if relation is None:
        return None
    return relation.entity, isinstance(relation, _ToMany)
