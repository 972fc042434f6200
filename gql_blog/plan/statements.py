"""A plan node's statements: built once per viewer kind and page shape, compiled once for the
driver where it can be (see `Run._statement`)."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select

# (viewer kind, the signed-in user's id a filter names, the page's shape or None).
StatementKey = tuple[str, int | None, tuple[Any, ...] | None]
Statements = dict[StatementKey, "Statement"]
# (compiled SQL, positional arguments) -> rows, on the driver's connection (PostgreSQL).
DriverFetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Any]]]


class Statement:
    """A plan node's statement; compiled once for the asyncpg driver when `compiled_for` is set.

    A statement whose parameters expand when it runs (an `in` filter's list: SQLAlchemy's
    POSTCOMPILE) has no text of its own: `driver_call` expands it per request, so it still runs
    on the driver's connection and never on a session beside it.
    """

    __slots__ = ("_defaults", "_expanding", "_positions", "_processors", "sql", "stmt")

    def __init__(self, stmt: Select[Any], *, compiled_for: Dialect | None = None) -> None:
        self.stmt = stmt
        self.sql: str | None = None
        self._expanding: Any = None
        self._positions: tuple[str, ...] = ()
        self._defaults: dict[str, Any] = {}
        self._processors: tuple[Any, ...] = ()
        if compiled_for is not None:
            result: Any = stmt.compile(dialect=compiled_for)
            if "POSTCOMPILE" in result.string:
                self._expanding = result
                return
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

    def driver_call(self, parameters: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
        """The text and arguments for the driver; None when it was not compiled for one."""
        if self.sql is not None:
            return self.sql, self.arguments(parameters)
        if self._expanding is None:
            return None
        compiled = self._expanding
        state = compiled.construct_expanded_state(compiled.construct_params(dict(parameters)))
        processors = state.processors
        arguments = []
        for name in state.positiontup or ():
            value = state.parameters[name]
            process = processors.get(name)
            arguments.append(value if process is None or value is None else process(value))
        return state.statement, arguments
