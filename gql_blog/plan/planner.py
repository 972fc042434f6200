"""The planned path's front: plans per operation of a document the app's door admitted.

The app (`GraphQLApp.execute_single`, the one door) parses, validates and prices a document once,
into its entry of the app's `DocumentCache`, and asks the planner only for a valid document within
every limit; the planner keeps its work on each operation in that same entry (`CachedDocument.
plans`), so a document is planned on first sight, and forgotten with its entry. Queries are
planned, and a mutation of one planned field (`mutations.WRITES`): its write runs in one
transaction on the session, then its payload is read as a query's rows are. Variables are coerced
per request with graphql-core's own `get_variable_values`. When the read model refuses the input
of the operation's one root field (a page size, a cursor, a filter, an id), the planner answers
that error itself, as the executor would; anything else the plan or the run declines goes back to
strawberry's executor (the door calls it with the same entry: nothing is parsed again), which
answers exactly as it always does.

A subscription (`build.PLANNED_EVENTS`) is planned in the same entry, never answered here: its
fan-out group asks for an `EventReader` once, then `read_events` reads the payloads of each batch
of events from their rows' ids, one statement per plan node for the whole batch and for all the
groups of one viewer whose readers share a plan and a shape.
"""

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    Node,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    Visitor,
    is_non_null_type,
    visit,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import ExecutionResult

from gql_blog import auth, metrics, models
from gql_blog.bad_input import user_input_error
from gql_blog.config import Settings
from gql_blog.errors import InvalidInputError
from gql_blog.events import EventBus
from gql_blog.plan.build import (
    NotPlannedError,
    Plan,
    PlanBuilder,
    RootEvent,
    RootWrite,
    directive_variables,
)
from gql_blog.plan.mutations import AT_ONCE, Writer
from gql_blog.plan.run import FilterCache, Identity, Run
from gql_blog.plan.statements import DriverFetch, Statement
from gql_blog.read_pool import ReadPool
from gql_blog.serial_session import SerialSession
from gql_blog.statement_counts import count_statements

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)

# Distinct `@skip`/`@include` outcomes planned per document; more run on the generic executor.
_MAX_PLANS_PER_DOCUMENT = 8
_UNPLANNED = object()
# An operation never planned (ambiguous): its entry says so once.
_NEVER = object()


class Context(Protocol):
    """What the planner reads of a request's context (`schema.context.Context` is one)."""

    db: SerialSession
    reads: ReadPool | None
    settings: Settings
    request_id: str
    token: str | None
    tracer: "Tracer | None"
    warnings: list[str]
    # Where a planned write's events go once committed.
    events: EventBus
    client_address: str | None

    def report_signed_out(self, reason: auth.SignedOut) -> None: ...


class Entry(Protocol):
    """A document's entry in the app's cache (`schema.documents.CachedDocument` is one): the
    parse, and where the planner keeps its work on each operation."""

    @property
    def document(self) -> DocumentNode: ...

    @property
    def plans(self) -> dict[str | None, Any]: ...


@dataclass(slots=True)
class _Document:
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    directive_variables: tuple[str, ...]
    plans: dict[tuple[Any, ...], Plan | None] = field(default_factory=dict)


class Planner:
    """Answers the queries it has plans for; `None` means: run strawberry's executor."""

    def __init__(self, schema: Any) -> None:
        self._schema = schema
        self._graphql_schema = schema._schema
        # The viewer's statements (identity, token state), by builder and dialect name.
        self._statements: dict[tuple[str, str, bool], Statement] = {}
        self._filters = FilterCache(1024)
        # How many requests, and reads of a batch of subscription events (one per audience and
        # shared reader), the planner answered (tests read it).
        self.answered = 0

    async def execute(
        self, cached: Entry, operation_name: Any, variables: Any, context: Context
    ) -> ExecutionResult | None:
        """The answer to a valid document within the limits, or None: the executor answers."""
        if not (variables is None or isinstance(variables, dict)):
            return None
        document = _operation(cached, operation_name if isinstance(operation_name, str) else None)
        if document is None or document.operation.operation is OperationType.SUBSCRIPTION:
            return None  # a subscription's plan reads its events' rows (`read_events`)
        planned = self._planned(document, variables)
        if planned is None:
            return None
        return await self._run(*planned, document, context)

    def event_reader(
        self, cached: Entry, operation_name: str | None, variables: dict[str, Any] | None
    ) -> "EventReader | None":
        """The plan of a subscription operation with these variables, or None: its events'
        payloads run on strawberry's executor."""
        document = _operation(cached, operation_name)
        if document is None or document.operation.operation is not OperationType.SUBSCRIPTION:
            return None
        planned = self._planned(document, variables)
        if planned is None:
            return None
        plan, coerced = planned
        ((_, root),) = plan.roots
        assert isinstance(root, RootEvent)
        try:
            tag = get_argument_values(root.arguments.field, root.arguments.node, coerced).get("tag")
        except GraphQLError:
            return None
        chosen_by_root = _root_only_variables(document, root.arguments.node)
        payload_variables = {k: v for k, v in (variables or {}).items() if k not in chosen_by_root}
        shape = orjson.dumps(payload_variables, option=orjson.OPT_SORT_KEYS)
        name = document.operation.name.value if document.operation.name else None
        return EventReader(plan, coerced, name, shape, tag)

    @staticmethod
    async def event_fetch(db: SerialSession, tracer: "Tracer | None") -> DriverFetch | None:
        """How a batch's `read_events` send their statements: on PostgreSQL untraced, on the
        driver's connection under `db`'s session (taken once for the batch); else None."""
        if db.dialect.name != "postgresql" or tracer is not None:
            return None
        return _fetch_on(db, await db.driver_connection())

    async def read_events(
        self,
        shares: Sequence[tuple["EventReader", Sequence[int]]],
        *,
        viewer: models.User | None,
        settings: Settings,
        db: SerialSession,
        driver: DriverFetch | None,
    ) -> list[list[dict[str, Any]]]:
        """For each share (a fan-out group's reader and the ids of its events' rows, in their
        order), the `data` of the payloads `viewer` may see: for readers of one plan and one
        `shape`, all read at once, on `db` as a query's levels are (on `driver`, from
        `event_fetch`, where it is not None). `NotPlannedError`: the executor answers."""
        started = time.perf_counter()
        dialect = db.dialect
        first = shares[0][0]
        with count_statements() as counted:
            run = Run(
                first.plan,
                schema=self._schema,
                variables=first.variables,
                viewer=_identity_of(viewer),
                settings=settings,
                fetch_rows=db.core_rows,
                dialect=dialect.name,
                driver_rows=driver,
                dialect_impl=dialect,
                filters=self._filters,
            )
            data = await run.execute_events([(row_ids, reader.tag) for reader, row_ids in shares])
        self.answered += 1
        metrics.observe_operation(
            operation=first.operation_name,
            seconds=time.perf_counter() - started,
            statements=counted.total,
            error_codes=(),
            path=metrics.PLANNED,
        )
        return data

    def _planned(self, document: _Document, variables: Any) -> tuple[Plan, VariableValues] | None:
        """The operation's plan for these variables (coerced by graphql-core), or None: they
        are not valid, or the plan declined."""
        coerced = get_variable_values(
            self._graphql_schema, document.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            return None
        plan = self._plan(document, coerced)
        return None if plan is None else (plan, coerced)

    def _plan(self, document: _Document, variables: VariableValues) -> Plan | None:
        outcome = tuple(variables.coerced.get(name) for name in document.directive_variables)
        plan: Any = document.plans.get(outcome, _UNPLANNED)
        if plan is not _UNPLANNED:
            return plan  # type: ignore[no-any-return]  # Plan | None, as stored below
        if len(document.plans) >= _MAX_PLANS_PER_DOCUMENT:
            return None
        try:
            plan = PlanBuilder(self._graphql_schema, document.fragments, variables).build(
                document.operation
            )
        except (NotPlannedError, GraphQLError) as reason:
            logger.debug("plan.declined", extra={"reason": str(reason)})
            plan = None
        document.plans[outcome] = plan
        return plan  # type: ignore[no-any-return]

    async def _run(
        self, plan: Plan, variables: VariableValues, document: _Document, context: Context
    ) -> ExecutionResult | None:
        started = time.perf_counter()
        dialect_impl = context.db.dialect
        dialect = dialect_impl.name
        writes = document.operation.operation is OperationType.MUTATION
        # Traced statements go through SQLAlchemy, whose events open their spans. A write
        # commits on the session: its statements (and its payload's) stay there.
        use_driver = dialect == "postgresql" and context.tracer is None
        at_once = use_driver and writes and _at_once(plan)
        with count_statements() as counted, _operation_span(context, document.operation):
            async with _driver_fetch(
                context, use_driver and (at_once or not writes), at_once
            ) as driver:
                identity = await self._identity(context, dialect_impl, driver)
                run = Run(
                    plan,
                    schema=self._schema,
                    variables=variables,
                    viewer=identity,
                    settings=context.settings,
                    fetch_rows=context.db.core_rows,
                    dialect=dialect,
                    driver_rows=driver,
                    dialect_impl=dialect_impl,
                    filters=self._filters,
                    writer=_writer(context, driver if at_once else None) if writes else None,
                )
                errors: list[GraphQLError] = []
                try:
                    data: dict[str, Any] | None = await run.execute()
                except NotPlannedError as reason:
                    logger.debug("plan.run_declined", extra={"reason": str(reason)})
                    return None
                except InvalidInputError as refused:
                    data, error = self._refused(plan, variables, document, refused)
                    errors.append(error)
                if at_once:
                    # Its writes committed as they ran, each a statement of its own on the
                    # session's connection; the session's transaction, which never began on
                    # the database, commits too (joined to an outer one, it keeps them there).
                    await context.db.locked(_commit)
        self.answered += 1
        elapsed = time.perf_counter() - started
        duration_ms = round(elapsed * 1000, 3)
        operation = document.operation.name.value if document.operation.name else None
        # As OperationMetrics and RequestWarnings record and answer for the generic executor.
        metrics.observe_operation(
            operation=operation,
            seconds=elapsed,
            statements=counted.total,
            error_codes=[(error.extensions or {}).get("code") for error in errors],
            path=metrics.PLANNED,
        )
        logger.info(
            "graphql.request",
            extra={
                "request_id": context.request_id,
                "operation": operation,
                "statements": counted.total,
                "duration_ms": duration_ms,
                "planned": True,
            },
        )
        extensions: dict[str, Any] = {}
        if context.settings.debug:
            extensions |= {"sqlStatements": counted.total, "durationMs": duration_ms}
        if context.warnings:
            extensions["warnings"] = list(context.warnings)
        return ExecutionResult(data=data, errors=errors or None, extensions=extensions or None)

    def _refused(
        self, plan: Plan, variables: VariableValues, document: _Document, refused: InvalidInputError
    ) -> tuple[dict[str, Any] | None, GraphQLError]:
        """The answer to the read model's refusal of the one root field's input, as the executor
        gives it: the field's error, located in the document, and null in its place, which a
        non-null field passes on to `data`."""
        key, _ = plan.roots[0]
        builder = PlanBuilder(self._graphql_schema, document.fragments, variables)
        nodes = builder.root_fields(document.operation)[key]
        query_type = self._graphql_schema.query_type
        assert query_type is not None
        error = user_input_error(refused, nodes=nodes, path=[key])
        if is_non_null_type(query_type.fields[nodes[0].name.value].type):
            return None, error
        return {key: None}, error

    async def _identity(
        self, context: Context, dialect: Dialect, driver: DriverFetch | None
    ) -> Identity | None:
        """The token's user, by one statement built once (the resolvers' ORM row is not needed);
        when it signs no one in, one more says why (`Context.report_signed_out`)."""
        if context.token is None:
            return None
        token_hash = auth.token_digest(context.token)
        now = models.utc_now()
        parameters = {"token_hash": token_hash, "now": now}
        row = await self._first_row(auth.identity_statement, parameters, context, dialect, driver)
        if row is not None:
            return Identity(id=row["id"], is_admin=row["is_admin"], row=dict(row))
        state = await self._first_row(
            auth.token_state_statement, {"token_hash": token_hash}, context, dialect, driver
        )
        context.report_signed_out(auth.signed_out_reason(state, now))
        return None

    async def _first_row(
        self,
        build: Callable[[], Select[Any]],
        parameters: dict[str, Any],
        context: Context,
        dialect: Dialect,
        driver: DriverFetch | None,
    ) -> Mapping[str, Any] | None:
        """The first row of a statement built once per dialect, on the driver or the session."""
        # Compiled only for a run on the driver: a write's run (on the session) builds it
        # uncompiled, and a read that found that one would go through the session while it
        # holds a read-pool connection — two connections for one request.
        key = (build.__name__, dialect.name, driver is not None)
        statement = self._statements.get(key)
        if statement is None:
            statement = Statement(build(), compiled_for=None if driver is None else dialect)
            self._statements[key] = statement
        if driver is not None and statement.sql is not None:
            rows = await driver(statement.sql, statement.arguments(parameters))
        else:
            rows = await context.db.core_rows(statement.stmt, parameters)
        return next(iter(rows), None)


async def _commit(session: AsyncSession) -> None:
    await session.commit()


def _at_once(plan: Plan) -> bool:
    """Whether the mutation's writes all run as single statements (`mutations.AT_ONCE`): then
    they and their payloads go on the driver, and the session's transaction never begins."""
    return all(isinstance(root, RootWrite) and root.name in AT_ONCE for _, root in plan.roots)


@dataclass(frozen=True, slots=True)
class EventReader:
    """A subscription operation's plan, for one set of its variables (a fan-out group's).

    Readers of one plan and one `shape` read their batch together (`Planner.read_events`):
    `shape` is the canonical JSON of the variables the payloads read, all but those only the
    root field's arguments read (`commentAdded`'s `postId` chooses the events, not what is sent
    about them); `tag` is `postPublished`'s argument, applied per reader."""

    plan: Plan
    variables: VariableValues
    operation_name: str | None
    shape: bytes
    tag: str | None


def _root_only_variables(document: _Document, root: FieldNode) -> frozenset[str]:
    """The variables the operation reads only in `root`'s arguments."""
    everywhere = _variable_uses(
        document.operation.selection_set, *(document.operation.directives or ())
    ) + _variable_uses(*document.fragments.values())
    at_root = _variable_uses(*(root.arguments or ()))
    return frozenset(name for name, uses in at_root.items() if everywhere[name] == uses)


def _variable_uses(*nodes: Node) -> Counter[str]:
    uses: Counter[str] = Counter()

    class Uses(Visitor):
        def enter_variable(self, node: VariableNode, *_: Any) -> None:
            uses[node.name.value] += 1

    for node in nodes:
        visit(node, Uses())
    return uses


def _identity_of(user: models.User | None) -> Identity | None:
    """The planned path's viewer for a user row looked up already (a subscriber's)."""
    if user is None:
        return None
    row = {name: getattr(user, name) for name in auth.IDENTITY_COLUMNS}
    return Identity(id=user.id, is_admin=user.is_admin, row=row)


@asynccontextmanager
async def _driver_fetch(
    context: Context, use_driver: bool, writes: bool = False
) -> AsyncIterator[DriverFetch | None]:
    """How this run sends compiled statements on the driver's own connection, or None (then
    they go through the session). The connection is the read pool's, held for the run only,
    or else the session's (no commit comes between): always the session's for writes, which
    go to the primary database whatever the read pool reads."""
    if not use_driver:
        yield None
        return
    if context.reads is None or writes:
        connection = await context.db.driver_connection()
        yield _fetch_on(context.db, connection)
        return
    async with context.reads.connection() as connection:
        yield _fetch_on(context.db, connection)


def _fetch_on(db: SerialSession, connection: Any) -> DriverFetch:
    async def fetch(sql: str, arguments: Sequence[Any]) -> Sequence[Any]:
        return await db.driver_rows(connection, sql, arguments)

    return fetch


@contextmanager
def _operation_span(context: Context, operation: OperationDefinitionNode) -> Iterator[None]:
    """The operation's span when tracing is on, named as the generic executor names it."""
    tracer = context.tracer
    if tracer is None:
        yield
        return
    name = operation.name.value if operation.name else None
    kind = operation.operation.value  # query or mutation
    with tracer.start_as_current_span(
        f"graphql {kind} {name}" if name else f"graphql {kind}"
    ) as span:
        span.set_attribute("graphql.operation.type", kind)
        if name:
            span.set_attribute("graphql.operation.name", name)
        yield


def _operation(cached: Entry, operation_name: str | None) -> _Document | None:
    """The planner's work on one operation of a cached document, kept in its entry."""
    found = cached.plans.get(operation_name)
    if found is None:
        found = _document(cached.document, operation_name) or _NEVER
        cached.plans[operation_name] = found
    return found if isinstance(found, _Document) else None


def _document(document: DocumentNode, operation_name: str | None) -> _Document | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [d for d in operations if d.name and d.name.value == operation_name]
    if len(operations) != 1:
        return None  # ambiguous: never planned
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = operations[0]
    return _Document(operation, fragments, directive_variables(operation, fragments.values()))


def _writer(context: Context, driver: DriverFetch | None) -> Writer:
    """What the request's planned write needs of it; `driver` for writes of one statement."""
    return Writer(
        context.db,
        context.events,
        context.token,
        settings=context.settings,
        client_address=context.client_address,
        driver=driver,
        dialect=context.db.dialect,
    )
