"""The SQL statement counter: how many statements a request (or a test) sent, per contextvar."""

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

# BEGIN too: SQLite gets an explicit BEGIN (see engines.py), the other dialects none.
_TRANSACTION_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")


@dataclass(slots=True)
class StatementCount:
    """How many SQL statements ran while this count was current (transaction control excluded)."""

    total: int = 0
    statements: list[str] = field(default_factory=list)


# Every count open in this context (counts nest: a test counts around a request that counts too).
_open_counts: contextvars.ContextVar[tuple[StatementCount, ...]] = contextvars.ContextVar(
    "gql_blog_statement_counts", default=()
)


@contextmanager
def count_statements() -> Iterator[StatementCount]:
    """Count the statements the current task (and tasks it starts) send to any engine."""
    counted = StatementCount()
    token = _open_counts.set((*_open_counts.get(), counted))
    try:
        yield counted
    finally:
        _open_counts.reset(token)


@contextmanager
def not_counted() -> Iterator[None]:
    """Statements of the server's own (not of any request): no open count includes them."""
    token = _open_counts.set(())
    try:
        yield
    finally:
        _open_counts.reset(token)


def is_transaction_control(statement: str) -> bool:
    """BEGIN, SAVEPOINT, RELEASE or ROLLBACK: not a statement that counts."""
    return statement.lstrip().upper().startswith(_TRANSACTION_CONTROL)


def count_cursor_execute(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
    """The engines' `before_cursor_execute` hook: the statement counts in every open count."""
    counts = _open_counts.get()
    if not counts or is_transaction_control(statement):
        return
    for counted in counts:
        counted.total += 1
        counted.statements.append(statement)


def record_statement(statement: str) -> None:
    """Count a statement sent past SQLAlchemy (on the driver's own connection)."""
    for counted in _open_counts.get():
        counted.total += 1
        counted.statements.append(statement)
