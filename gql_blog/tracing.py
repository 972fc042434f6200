"""Optional OpenTelemetry tracing: a span per GraphQL operation and one per SQL statement
(transaction control aside, as in the statement count).

Off unless `GQL_BLOG_OTEL=true`; then the `otel` extra must be installed (`pip install
'gql-blog[otel]'`) and spans go over OTLP/HTTP, configured by the standard `OTEL_*` variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, ...). The operation's span is opened by the
`OperationMetrics` extension; statement spans by engine events, as children of the operation's
span (SQLAlchemy runs a statement in the awaiting task's context). Nothing runs per field.
"""

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from gql_blog.engines import BACKGROUND
from gql_blog.statement_counts import is_transaction_control

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

# Where a statement's span waits for the statement to end (on SQLAlchemy's execution context).
_SPAN_ATTRIBUTE = "_gql_blog_span"


def create_provider() -> "TracerProvider":
    """The SDK's provider, exporting in batches over OTLP/HTTP as the OTEL_* variables say."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracer_of(provider: "TracerProvider") -> "Tracer":
    return provider.get_tracer("gql_blog")


def instrument_engine(engine: AsyncEngine, tracer: "Tracer") -> None:
    """Open a span around every SQL statement `engine` runs."""
    from opentelemetry.trace import StatusCode

    system = engine.dialect.name

    def before(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if is_transaction_control(statement) or context.execution_options.get(BACKGROUND):
            return  # as the statement count does; housekeeping belongs to no operation
        span = tracer.start_span(
            _span_name(statement),
            attributes={"db.system": system, "db.statement": statement},
        )
        setattr(context, _SPAN_ATTRIBUTE, span)

    def after(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        span = _take_span(context)
        if span is not None:
            span.end()

    def failed(exception_context: Any) -> None:
        span = _take_span(exception_context.execution_context)
        if span is not None:
            span.record_exception(exception_context.original_exception)
            span.set_status(StatusCode.ERROR)
            span.end()

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    event.listen(engine.sync_engine, "handle_error", failed)


def _span_name(statement: str) -> str:
    """The statement's verb (`SELECT`, `INSERT`, ...): span names stay few. MariaDB's
    `SET STATEMENT <settings> FOR <statement>` (a nested page's, see `read_model`) is named
    by the statement it runs."""
    words = statement.split(maxsplit=1)
    if not words:
        return "sql"
    verb = words[0].upper()
    if verb == "SET" and (ran := _SET_STATEMENT_FOR.match(statement)) is not None:
        verb = ran.group(1).upper()
    return f"sql {verb}"


_SET_STATEMENT_FOR = re.compile(r"\s*SET\s+STATEMENT\s.*?\sFOR\s+(\w+)", re.IGNORECASE | re.DOTALL)


def _take_span(context: ExecutionContext | None) -> "Span | None":
    """The span `before` opened for this statement, now no longer on its context."""
    span: Span | None = getattr(context, _SPAN_ATTRIBUTE, None)
    if span is not None:
        delattr(context, _SPAN_ATTRIBUTE)
    return span
