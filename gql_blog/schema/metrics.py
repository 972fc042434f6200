"""Per-operation observability: statement count and duration, logged, counted in Prometheus
metrics (see `gql_blog.metrics`) and returned in debug mode."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gql_blog import metrics
from gql_blog.statement_counts import StatementCount, count_statements

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)


class OperationMetrics(SchemaExtension):
    """Counts the SQL statements and time of one operation (not per field: off the hot path)."""

    _counted: StatementCount | None = None
    _started: float = 0.0

    def _elapsed_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 3)

    def on_operation(self) -> Iterator[None]:
        self._started = time.perf_counter()
        tracer = getattr(self.execution_context.context, "tracer", None)
        passing: list[GraphQLError] | None = None
        try:
            with count_statements() as counted, _traced(tracer, self.execution_context):
                self._counted = counted
                yield
        except GraphQLError as error:  # a syntax error passes through here on its way out
            passing = [error]
            raise
        finally:
            self._record(self._errors() if passing is None else passing)

    def _record(self, errors: list[GraphQLError]) -> None:
        elapsed_ms = self._elapsed_ms()
        operation = self.execution_context.operation_name
        statements = 0 if self._counted is None else self._counted.total
        metrics.observe_operation(
            operation=operation,
            seconds=elapsed_ms / 1000,
            statements=statements,
            error_codes=[_code(error) for error in errors],
            path=metrics.EXECUTOR,
        )
        logger.info(
            "graphql.request",
            extra={
                "request_id": getattr(self.execution_context.context, "request_id", None),
                "operation": operation,
                "statements": statements,
                "duration_ms": elapsed_ms,
            },
        )

    def _errors(self) -> list[GraphQLError]:
        # The result's errors are masked already; parse and validation errors have no result.
        result = self.execution_context.result
        if result is not None:
            return list(result.errors or ())
        return list(self.execution_context.pre_execution_errors or ())

    def get_results(self) -> dict[str, Any]:
        # Runs inside the operation, once the result is ready.
        settings = getattr(self.execution_context.context, "settings", None)
        if self._counted is None or not getattr(settings, "debug", False):
            return {}
        return {"sqlStatements": self._counted.total, "durationMs": self._elapsed_ms()}


def _code(error: GraphQLError) -> str | None:
    code = (error.extensions or {}).get("code")
    return code if isinstance(code, str) else None


@contextmanager
def _traced(tracer: "Tracer | None", execution_context: ExecutionContext) -> Iterator[None]:
    """The operation's span (when tracing is on), named once the operation is known."""
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span("graphql.operation") as span:
        yield
        name = execution_context.operation_name
        try:
            kind = execution_context.operation_type.value
        except RuntimeError:  # the document did not parse
            kind = "unknown"
        span.update_name(f"graphql {kind} {name}" if name else f"graphql {kind}")
        span.set_attribute("graphql.operation.type", kind)
        if name:
            span.set_attribute("graphql.operation.name", name)
