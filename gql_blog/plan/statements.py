"""A plan node's statements: built once per viewer kind and page shape, compiled once for the
driver where it can be (see `Run._statement`)."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

# (viewer kind, the signed-in user's id a filter names, the page's shape or None).
StatementKey = tuple[str, int | None, tuple[Any, ...] | None]
Statements = dict[StatementKey, "Statement"]


class Statement:
    """A plan node's statement; compiled once for the asyncpg driver where `compiled` is set."""

    __slots__ = ("_defaults", "_positions", "_processors", "sql", "stmt")

    def __init__(self, stmt: Select[Any], *, compiled_for: Dialect | None = None) -> None:
        self.stmt = stmt
        self.sql: str | None = None
        self._positions: tuple[str, ...] = ()
        self._defaults: dict[str, Any] = {}
        self._processors: tuple[Any, ...] = ()
        if compiled_for is not None:
            result: Any = stmt.compile(dialect=compiled_for)
            # Not for statements whose parameters expand at execution (IN lists).
            if "POSTCOMPILE" not in result.string:
                self.sql = result.string
                self._positions = tuple(result.positiontup or ())
                self._defaults = dict(result.params)
                # The types' own conversions, as SQLAlchemy applies them before the driver.
                processors = result._bind_processors
                self._processors = tuple(processors.get(name) for name in self._positions)

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        defaults = self._defaults
        values = [
            parameters[name] if name in parameters else defaults[name] for name in self._positions
        ]
        return [
            value if process is None or value is None else process(value)
            for process, value in zip(self._processors, values, strict=True)
        ]
