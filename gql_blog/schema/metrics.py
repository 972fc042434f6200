"""Per-operation observability: statement count and duration, logged (returned in debug mode)."""

import logging
import time
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from gql_blog.db import StatementCount, count_statements

logger = logging.getLogger(__name__)


class OperationMetrics(SchemaExtension):
    """Counts the SQL statements and time of one operation (not per field: off the hot path)."""

    _counted: StatementCount | None = None
    _started: float = 0.0

    def _elapsed_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 3)

    def on_operation(self) -> Iterator[None]:
        self._started = time.perf_counter()
        with count_statements() as counted:
            self._counted = counted
            yield
        logger.info(
            "graphql.request",
            extra={
                "request_id": getattr(self.execution_context.context, "request_id", None),
                "operation": self.execution_context.operation_name,
                "statements": counted.total,
                "duration_ms": self._elapsed_ms(),
            },
        )

    def get_results(self) -> dict[str, Any]:
        # Runs inside the operation, once the result is ready.
        settings = getattr(self.execution_context.context, "settings", None)
        if self._counted is None or not getattr(settings, "debug", False):
            return {}
        return {"sqlStatements": self._counted.total, "durationMs": self._elapsed_ms()}
