"""Orderings and keyset cursors: sort keys per entity, ORDER BY clauses, cursor predicates, and
the one cursor codec every connection (search included) uses.

A cursor encodes the sort-key values of a row plus its id, and a short fingerprint of the ordering
(and filter) it was made for: reused elsewhere it is an `InvalidCursorError`, never a wrong page.
NULLs sort as the contract says on every dialect: a nullable key orders first by an is-NULL flag.
"""

import base64
import binascii
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    false,
    literal,
    or_,
    tuple_,
)
from sqlalchemy.sql.elements import BindParameter, UnaryExpression

from gql_blog import models
from gql_blog.errors import (
    InvalidCursorError as InvalidCursorError,  # re-exported: callers name it here
)


@dataclass(frozen=True, slots=True)
class SortKey:
    """One orderable field of an entity: its SQL expression and how to read it from a row."""

    name: str
    expression: Callable[[], ColumnElement[Any]]
    value_of: Callable[[Any], Any]
    kind: type
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class OrderTerm:
    key: str
    descending: bool = False
    nulls_first: bool | None = None  # None: the contract's default (last for ASC, first for DESC)

    @property
    def is_nulls_first(self) -> bool:
        return self.descending if self.nulls_first is None else self.nulls_first


def _attr(name: str) -> Callable[[Any], Any]:
    return lambda row: getattr(row, name)


def _column(model: Any, name: str) -> Callable[[], ColumnElement[Any]]:
    def expression() -> ColumnElement[Any]:
        column: ColumnElement[Any] = getattr(model, name)
        return column

    return expression


def _keys(model: Any, *specs: tuple[str, str, type, bool]) -> dict[str, SortKey]:
    keys = {"ID": SortKey("ID", _column(model, "id"), _attr("id"), int)}
    for name, attribute, kind, nullable in specs:
        keys[name] = SortKey(name, _column(model, attribute), _attr(attribute), kind, nullable)
    return keys


SORT_KEYS: dict[str, dict[str, SortKey]] = {
    "User": _keys(
        models.User,
        ("USERNAME", "username", str, False),
        ("AGE", "age", int, True),
        ("CREATED_AT", "created_at", datetime, False),
        ("FULL_NAME", "full_name", str, True),
    ),
    "Post": _keys(
        models.Post,
        ("TITLE", "title", str, False),
        ("CREATED_AT", "created_at", datetime, False),
        ("UPDATED_AT", "updated_at", datetime, False),
        ("PUBLISHED_AT", "published_at", datetime, True),
    ),
    "Comment": _keys(models.Comment, ("CREATED_AT", "created_at", datetime, False)),
    "Tag": _keys(models.Tag, ("NAME", "name", str, False)),
    "AuditLogEntry": _keys(models.AuditLog, ("CREATED_AT", "created_at", datetime, False)),
}

DEFAULT_ORDER: dict[str, tuple[OrderTerm, ...]] = {
    "User": (OrderTerm("USERNAME"),),
    "Post": (OrderTerm("CREATED_AT", descending=True),),
    "Comment": (OrderTerm("CREATED_AT", descending=True),),
    "Tag": (OrderTerm("NAME"),),
    "AuditLogEntry": (OrderTerm("CREATED_AT", descending=True),),
}


@dataclass(frozen=True, slots=True)
class _Atom:
    """One ORDER BY expression: a key's value, or the is-NULL flag placed before a nullable key."""

    expression: ColumnElement[Any]
    descending: bool
    is_flag: bool = False


@dataclass(frozen=True, slots=True)
class Ordering:
    """An entity's ordering: the requested terms, then the id in the last term's direction."""

    entity: str
    terms: tuple[OrderTerm, ...]

    @classmethod
    def of(cls, entity: str, terms: Sequence[OrderTerm] = ()) -> "Ordering":
        chosen = tuple(terms) or DEFAULT_ORDER[entity]
        unknown = [term.key for term in chosen if term.key not in SORT_KEYS[entity]]
        if unknown:
            raise ValueError(f"{entity} cannot be ordered by {', '.join(unknown)}")
        # The id is the final tiebreaker, running the way the last key runs.
        if chosen[-1].key != "ID":
            chosen = (*chosen, OrderTerm("ID", descending=chosen[-1].descending))
        return cls(entity, chosen)

    def _key(self, term: OrderTerm) -> SortKey:
        return SORT_KEYS[self.entity][term.key]

    def _atoms(self) -> list[_Atom]:
        atoms: list[_Atom] = []
        for term in self.terms:
            key = self._key(term)
            expression = key.expression()
            if key.nullable:
                flag = case((expression.is_(None), 1), else_=0)
                atoms.append(_Atom(flag, term.is_nulls_first, is_flag=True))
            atoms.append(_Atom(expression, term.descending))
        return atoms

    def clauses(self, *, reverse: bool = False) -> list[UnaryExpression[Any]]:
        """ORDER BY clauses; `reverse` flips every direction (for `last`/`before`)."""
        return [
            atom.expression.desc() if atom.descending != reverse else atom.expression.asc()
            for atom in self._atoms()
        ]

    def values(self, row: Any) -> list[Any]:
        return [self._key(term).value_of(row) for term in self.terms]

    def _atom_values(self, values: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        for term, value in zip(self.terms, values, strict=True):
            if self._key(term).nullable:
                out.append(1 if value is None else 0)
            out.append(value)
        return out

    def beyond(
        self, values: Sequence[Any], *, forward: bool, name: str | None = None
    ) -> ColumnElement[bool]:
        """Rows strictly after (`forward`) or strictly before the position of `values`.

        With a `name`, the values are bind parameters `name_0`, `name_1`, ... (see
        `cursor_parameters`), so one statement serves every cursor with the same NULLs.
        """
        atoms = self._atoms()
        atom_values = self._atom_values(values)
        if name is not None:
            atom_values = [
                value
                if value is None
                else bindparam(f"{name}_{index}", value, atom.expression.type)
                for index, (atom, value) in enumerate(zip(atoms, atom_values, strict=True))
            ]
        if self._is_uniform(atoms):
            left = tuple_(*(atom.expression for atom in atoms))
            right = tuple_(
                *(
                    value
                    if isinstance(value, BindParameter)
                    else literal(value, atom.expression.type)
                    for atom, value in zip(atoms, atom_values, strict=True)
                )
            )
            return left > right if forward != atoms[0].descending else left < right
        alternatives = []
        for index, (atom, value) in enumerate(zip(atoms, atom_values, strict=True)):
            equal_before = [
                _equal(other, other_value)
                for other, other_value in zip(atoms[:index], atom_values[:index], strict=True)
            ]
            alternatives.append(and_(*equal_before, _past(atom, value, forward=forward)))
        return or_(*alternatives)

    def cursor_parameters(self, values: Sequence[Any], name: str) -> dict[str, Any]:
        """The bind parameters `beyond(values, name=name)` reads."""
        return {
            f"{name}_{index}": value
            for index, value in enumerate(self._atom_values(values))
            if value is not None
        }

    def at_or_beyond(self, values: Sequence[Any], *, forward: bool) -> ColumnElement[bool]:
        """Rows at the position of `values` or past it in one direction."""
        atoms = self._atoms()
        exact = and_(
            *(
                _equal(atom, value)
                for atom, value in zip(atoms, self._atom_values(values), strict=True)
            )
        )
        return or_(exact, self.beyond(values, forward=forward))

    def _is_uniform(self, atoms: list[_Atom]) -> bool:
        nullable = any(self._key(term).nullable for term in self.terms)
        return not nullable and len({atom.descending for atom in atoms}) == 1

    def fingerprint(self, scope: str = "") -> str:
        """A short hash of this ordering and `scope` (e.g. the filter), carried by cursors."""
        return _fingerprint(self, scope)

    def encode_cursor(self, row: Any, *, scope: str = "") -> str:
        return self.encode_values(self.values(row), scope=scope)

    def encode_values(self, values: Sequence[Any], *, scope: str = "") -> str:
        """The cursor of a row whose sort-key values (in term order) are `values`."""
        return encode_cursor_payload(self.fingerprint(scope), values)

    def decode_cursor(self, cursor: str, *, scope: str = "") -> list[Any]:
        """The sort-key values a cursor carries; `InvalidCursorError` if it is not one of ours."""
        raw_values = decode_cursor_payload(cursor, self.fingerprint(scope), "ordering or filter")
        if len(raw_values) != len(self.terms):
            raise InvalidCursorError(f"invalid cursor {cursor!r}: wrong number of values")
        return [
            _load(self._key(term), raw, cursor)
            for term, raw in zip(self.terms, raw_values, strict=True)
        ]


@functools.lru_cache(maxsize=256)
def _fingerprint(ordering: Ordering, scope: str) -> str:
    # Cached: every cursor of a page shares it. Filters are short (their lists are bounded).
    shape = [ordering.entity, scope] + [
        [term.key, term.descending, term.is_nulls_first] for term in ordering.terms
    ]
    return hashlib.sha256(orjson.dumps(shape)).hexdigest()[:12]


def _equal(atom: _Atom, value: Any) -> ColumnElement[bool]:
    if value is None:
        return atom.expression.is_(None)
    equal: ColumnElement[bool] = atom.expression == value
    return equal


def _past(atom: _Atom, value: Any, *, forward: bool) -> ColumnElement[bool]:
    if value is None:
        # Rows sharing the NULL flag tie on a NULL value; the flag atom orders the rest.
        return false()
    past: ColumnElement[bool] = (
        atom.expression > value if forward != atom.descending else atom.expression < value
    )
    return past


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _storable_int(key: SortKey, raw: Any) -> bool:
    """An int the key's column can hold: no row lies beyond, and PostgreSQL refuses to bind it."""
    if not isinstance(raw, int) or isinstance(raw, bool):
        return False
    limit = models.id_limit(key.expression().type)
    return -limit <= raw < limit


def _load(key: SortKey, raw: Any, cursor: str) -> Any:
    if raw is None and key.nullable:
        return None
    try:
        if key.kind is datetime:
            if not isinstance(raw, str):
                raise TypeError
            parsed = datetime.fromisoformat(raw)
            if parsed.tzinfo is None:
                raise TypeError
            return parsed.astimezone(UTC)  # OverflowError near datetime.min/max
        if key.kind is int and _storable_int(key, raw):
            return raw
        # No stored text holds NUL, and PostgreSQL refuses to bind it.
        if key.kind is str and isinstance(raw, str) and "\x00" not in raw:
            return raw
    except (TypeError, ValueError, OverflowError):
        pass
    raise InvalidCursorError(f"invalid cursor {cursor!r}: bad value for {key.name}")


def encode_cursor_payload(fingerprint: str, values: Sequence[Any]) -> str:
    """A cursor: the fingerprint of what it was made for, and its values, as url-safe base64."""
    payload = orjson.dumps([fingerprint, [_dump(value) for value in values]])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor_payload(cursor: str, fingerprint: str, what: str) -> list[Any]:
    """The raw values of a cursor made for `fingerprint`; `InvalidCursorError` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found, raw_values = orjson.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursorError(f"invalid cursor {cursor!r}: it does not decode") from None
    if found != fingerprint:
        raise InvalidCursorError(f"invalid cursor {cursor!r}: it was made for another {what}")
    if not isinstance(raw_values, list):
        raise InvalidCursorError(f"invalid cursor {cursor!r}: wrong number of values")
    return raw_values
