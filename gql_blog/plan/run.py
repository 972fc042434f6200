"""Run a plan level by level: every key of a level in one statement per relation, then assemble.

Arguments of every connection and lookup are coerced and checked before any SQL runs. When the
read model refuses the input of the operation's one root field, the run raises its error (the
planner answers it as that field's error); any other refusal raises `NotPlannedError`, and
strawberry's executor answers the request with the error where it belongs. A level's keys are
all known before its statements run, so a batch never splits: the statement count is a function
of the query's shape.
"""

import dataclasses
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from graphql import GraphQLError
from graphql.execution.values import VariableValues, get_argument_values
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select
from strawberry.types.arguments import convert_arguments

from gql_blog import audit, models, read_model, search, stats
from gql_blog.arguments import ordering_of, page_request, plain_where
from gql_blog.caches import LruCache
from gql_blog.config import Settings
from gql_blog.errors import ForbiddenReadError, InvalidInputError
from gql_blog.ids import decode_global_id
from gql_blog.ordering import Ordering
from gql_blog.plan import mutations
from gql_blog.plan.build import (
    Arguments,
    ChildrenPlan,
    ConnectionPlan,
    NotPlannedError,
    ObjectPlan,
    Plan,
    RelationPlan,
    RootConnection,
    RootEvent,
    RootField,
    RootGroups,
    RootLookup,
    RootNodes,
    RootSearch,
    RootStats,
    RootTypename,
    RootViewer,
    RootWrite,
    TagsPlan,
    ToOnePlan,
    emit_write_result,
)
from gql_blog.plan.mutations import Imported, Writer, Written
from gql_blog.plan.statements import DriverFetch, Statement, StatementKey, Statements
from gql_blog.read_model import MAX_BATCH, Filter, Page, PageRequest, ViewerParameter, compile_where
from gql_blog.where import canonical_where

# (statement, parameters) -> rows as mappings.
Fetch = Callable[[Select[Any], Mapping[str, Any]], Awaitable[Sequence[Mapping[str, Any]]]]
# Statement variants a plan node keeps (viewer kinds, page requests without cursor or filter).
_MAX_STATEMENTS_PER_NODE = 8


@dataclass(frozen=True, slots=True)
class Identity:
    """The signed-in viewer as the planned path knows it: its user row's readable columns."""

    id: int
    is_admin: bool
    row: Mapping[str, Any]


@dataclass(slots=True)
class Loaded:
    """What one connection plan loaded: a page per parent (None for a root), counts, probes."""

    request: PageRequest
    scope: str
    # By parent key; a root connection's under None.
    pages: dict[int | None, Page] = field(default_factory=dict)
    counts: dict[int | None, int] = field(default_factory=dict)
    beyond_next: set[int | None] = field(default_factory=set)
    beyond_previous: set[int | None] = field(default_factory=set)

    def cursor(self, row: Any) -> str:
        # Sort keys are named for their attributes (CREATED_AT reads created_at).
        ordering = self.request.ordering
        values = [row[term.key.lower()] for term in ordering.terms]
        return ordering.encode_values(values, scope=self.scope)


@dataclass(slots=True)
class SearchLoaded(Loaded):
    """A search's page: its cursors hold a hit's rank and id (gql_blog.search)."""

    query: Any = None

    def cursor(self, row: Any) -> str:
        cursor: str = self.query.cursor(row["search_rank"], row["id"])
        return cursor


class Run:
    """One request's run of a plan."""

    def __init__(
        self,
        plan: Plan,
        *,
        schema: Any,
        variables: VariableValues,
        viewer: Identity | None,
        settings: Settings,
        fetch_rows: Fetch,
        dialect: str,
        driver_rows: DriverFetch | None = None,
        dialect_impl: Dialect | None = None,
        filters: "FilterCache",
        writer: Writer | None = None,
    ) -> None:
        self.plan = plan
        self.results: list[Any] = [None] * plan.slots
        self._schema = schema
        self._variables = variables
        self._settings = settings
        self._fetch = fetch_rows
        self._dialect = dialect
        self._driver = driver_rows
        self._dialect_impl = dialect_impl
        self._filters = filters
        self._parameters: dict[str, Any] = {}
        self._act_as(viewer)
        # A connection's page request, or why its arguments were refused (raised only once a
        # parent row needs the page, as the generic executor evaluates them only then).
        self._requests: dict[
            int, tuple[PageRequest, str] | NotPlannedError | InvalidInputError
        ] = {}
        self._rows_of: dict[int, list[Any]] = {}
        self._lookups: dict[int, dict[str, Any]] = {}
        self._writer = writer
        # What a write answered: rows it holds by (entity, id), and its post's tags.
        self._written: Written | None = None
        # Per child connection index: whether its pages are read beside their parents.
        self._embedding: dict[int, bool] = {}

    def _act_as(self, viewer: Identity | None) -> None:
        """Read as `viewer` from now on (register and login sign in for the rest of the request)."""
        self.viewer = viewer
        self._viewer_kind = ViewerParameter.kind(viewer)
        self._viewer_id = None if viewer is None or viewer.is_admin else viewer.id
        self._viewer_parameter = ViewerParameter.of(viewer)
        self._parameters.pop("viewer_id", None)
        if viewer is not None and not viewer.is_admin:
            self._parameters["viewer_id"] = viewer.id

    async def execute(self) -> dict[str, Any]:
        self._prepare()
        try:
            return await self._load_and_emit()
        except NotPlannedError as reason:
            if self._written is None:
                raise
            # Declining now would make the executor write a second time.
            raise RuntimeError(f"a committed write's payload was declined: {reason}") from None

    async def execute_events(
        self, shares: Sequence[tuple[Sequence[int], str | None]]
    ) -> list[list[dict[str, Any]]]:
        """The data of the payloads of each share of a batch (a fan-out group's: the ids of the
        rows of its events, in their order, and its `postPublished` tag or None), for the groups
        of one subscription plan whose variables differ only in the root field's arguments: one
        per row the viewer may see and the share's field sends.

        The rows of all the shares are read by id in one statement (a batch never splits), the
        tags of `postPublished`'s in one more, their levels as a query's, each row's payload
        emitted once; any refusal declines (`NotPlannedError`): the executor answers instead."""
        ((key, root),) = self.plan.roots
        if not isinstance(root, RootEvent):
            raise NotPlannedError("not a subscription's plan")
        self._prepare()
        found = await self._event_rows(root, _unique(i for row_ids, _ in shares for i in row_ids))
        tagged = await self._event_tags(root, found, {tag for _, tag in shares if tag is not None})
        self.results[root.index] = found
        try:
            await self._load_levels([(root.target, list(found.values()))])
        except InvalidInputError as error:  # a nested field's: its place is the executor's
            raise NotPlannedError(str(error)) from None
        emit = root.target.emit
        data = {row_id: {key: emit(row, self)} for row_id, row in found.items()}
        return [
            [data[i] for i in row_ids if i in (found if tag is None else tagged[tag])]
            for row_ids, tag in shares
        ]

    async def _event_rows(self, root: RootEvent, row_ids: list[int]) -> dict[int, Any]:
        """The events' rows the viewer may see, by id; `postPublished`'s only while published."""
        stmt = self._statement(root.statements, None, self._by_id(root.target))
        found: dict[int, Any] = {}
        for chunk in _chunks([row_id for row_id in row_ids if row_id < models.ID_LIMIT]):
            found.update((row["id"], row) for row in await self._rows(stmt, chunk))
        if root.name != "postPublished":
            return found
        return {row_id: row for row_id, row in found.items() if row["published"]}

    async def _event_tags(
        self, root: RootEvent, found: dict[int, Any], tags: set[str]
    ) -> dict[str, set[int]]:
        """For each `tag` argument of `postPublished`, the ids of the found posts it names (one
        statement for all of them)."""
        names = {tag: tag.strip().lower() for tag in tags}
        if not names or not found:
            return {tag: set() for tag in names}
        stmt = self._statement(
            root.tag_statements, None, lambda: read_model.tags_of_posts({"name"}, self._dialect)
        )
        posts_of: dict[str, set[int]] = {}
        for chunk in _chunks(list(found)):
            for row in await self._rows(stmt, chunk):
                posts_of.setdefault(row["name"], set()).add(row["parent_key"])
        return {tag: posts_of.get(name, set()) for tag, name in names.items()}

    async def _load_and_emit(self) -> dict[str, Any]:
        level: list[tuple[ObjectPlan, list[Any]]] = []
        for _, root in self.plan.roots:
            try:
                level.extend(await self._load_root(root))
            except InvalidInputError as error:
                # Beside other root fields, its error's place in the answer is the executor's.
                if len(self.plan.roots) > 1:
                    raise NotPlannedError(str(error)) from None
                raise
        try:
            await self._load_levels(level)
        except InvalidInputError as error:  # a nested field's, once per parent: the executor's
            raise NotPlannedError(str(error)) from None
        return {key: self._emit_root(root) for key, root in self.plan.roots}

    async def _load_levels(self, level: list[tuple[ObjectPlan, list[Any]]]) -> None:
        while level:
            next_level: list[tuple[ObjectPlan, list[Any]]] = []
            for object_plan, rows in level:
                self._rows_of[id(object_plan)] = rows
            for object_plan, rows in level:
                for relation in object_plan.relations:
                    next_level.extend(await self._load_relation(relation, rows))
            level = next_level

    # --- arguments, before any SQL ---------------------------------------------------------

    def _prepare(self) -> None:
        for connection in self.plan.connections:
            try:
                self._requests[connection.index] = self._page_request(connection)
            except (NotPlannedError, InvalidInputError) as refused:
                self._requests[connection.index] = refused
        for _, root in self.plan.roots:
            if isinstance(
                root,
                RootLookup
                | RootNodes
                | RootWrite
                | RootStats
                | RootGroups
                | RootSearch
                | RootEvent,
            ):
                self._lookups[root.index] = self._arguments(root.arguments)
            if isinstance(root, RootWrite):
                # Every refusal before the write: the payload's arguments too.
                for request in self._requests.values():
                    if isinstance(request, NotPlannedError):
                        raise request

    def _arguments(self, arguments: Arguments) -> dict[str, Any]:
        if arguments.constant is not None:
            return dict(arguments.constant)
        try:
            raw = get_argument_values(arguments.field, arguments.node, self._variables)
        except GraphQLError as error:
            raise NotPlannedError(str(error)) from None
        definition = arguments.field.extensions["strawberry-definition"]
        converted = convert_arguments(
            raw,
            definition.arguments,
            scalar_registry=self._schema.schema_converter.scalar_registry,
            config=self._schema.config,
        )
        if not arguments.has_variables:
            # The document's own literals: the same for every request of this plan.
            arguments.constant = converted
            return dict(converted)
        return converted

    def _page_request(self, connection: ConnectionPlan) -> tuple[PageRequest, str]:
        args = self._arguments(connection.arguments)
        ordering = ordering_of(
            connection.entity, args.pop("order_by", None), connection.default_order
        )
        where = self._where(connection.entity, args.pop("where", None))
        request = page_request(
            self._settings,
            ordering,
            where=where,
            first=args.get("first"),
            after=args.get("after"),
            last=args.get("last"),
            before=args.get("before"),
        )
        return request, "" if where is None else where.key

    def _where(self, entity: str, where: Any) -> Filter | None:
        plain = plain_where(where)
        if not plain:
            return None
        if entity == "AuditLogEntry":
            plain = audit.plain_log_where(plain)
        key = (entity, canonical_where(plain), self._viewer_kind, self._viewer_id)
        compiled = self._filters.get(key)
        if compiled is not None:
            return compiled
        compiled = compile_where(
            self.viewer, entity, plain, max_depth=self._settings.max_filter_depth
        )
        if compiled is not None:
            self._filters.put(key, compiled)
        return compiled

    def _request(self, connection: ConnectionPlan) -> tuple[PageRequest, str]:
        found = self._requests[connection.index]
        if isinstance(found, NotPlannedError | InvalidInputError):
            raise found
        return found

    # --- statements --------------------------------------------------------------------------

    def _statement(
        self, statements: Statements, request: PageRequest | None, build: Callable[[], Select[Any]]
    ) -> Statement:
        """The node's statement for this viewer kind and page, built once and reused.

        Cursor values are bind parameters; a filter's values are literals, so each filter text has
        statements of its own (bounded per node: past that, they are built per request).
        """
        shape = None if request is None else request.shape()
        # A filter's relation conditions name a signed-in user's id as a literal.
        owner = self._viewer_id if request is not None and request.where is not None else None
        return self._kept(statements, (self._viewer_kind, owner, shape), build)

    def _kept(
        self, statements: Statements, key: StatementKey, build: Callable[[], Select[Any]]
    ) -> Statement:
        """The node's statement under `key`, built (and compiled for the driver) on first use;
        kept while the node holds fewer than `_MAX_STATEMENTS_PER_NODE`."""
        statement = statements.get(key)
        if statement is None:
            statement = Statement(
                build(), compiled_for=None if self._driver is None else self._dialect_impl
            )
            if len(statements) < _MAX_STATEMENTS_PER_NODE:
                statements[key] = statement
        return statement

    async def _rows(
        self, statement: Statement | Select[Any], keys: Sequence[Any] | None = None, **extra: Any
    ) -> Sequence[Any]:
        parameters = dict(self._parameters, **extra)
        if keys is not None:
            parameters["keys"] = keys
        if not isinstance(statement, Statement):
            if self._driver is None:
                return await self._fetch(statement, parameters)
            # Built for this request only (a pageInfo probe): compiled here, so the run stays
            # on its one connection rather than taking the session's beside it.
            statement = Statement(statement, compiled_for=self._dialect_impl)
        if self._driver is not None and (call := statement.driver_call(parameters)) is not None:
            return await self._driver(*call)
        return await self._fetch(statement.stmt, parameters)

    async def _load_root(self, root: RootField) -> list[tuple[ObjectPlan, list[Any]]]:
        if isinstance(root, RootConnection):
            return await self._load_root_connection(root)
        if isinstance(root, RootLookup):
            row = await self._lookup(root)
            self.results[root.index] = row
            return [] if row is None else [(root.target, [row])]
        if isinstance(root, RootViewer):
            if self.viewer is None:
                return []
            return [(root.target, [self.viewer.row])]
        if isinstance(root, RootNodes):
            return await self._load_nodes(root)
        if isinstance(root, RootWrite):
            return await self._write(root)
        if isinstance(root, RootStats | RootGroups | RootSearch):
            return await self._computed(root)
        return []

    def _shaped(
        self,
        statements: Statements,
        shape: tuple[Any, ...],
        where: Filter | None,
        build: Callable[[], Select[Any]],
    ) -> Statement:
        """A statement built once per viewer kind, `shape` and filter text (a filter's values
        are literals, and its relation conditions name a signed-in viewer's id), and bounded
        per node as `_statement`'s are."""
        owner = self._viewer_id if where is not None else None
        filtered = None if where is None else where.key
        return self._kept(statements, (self._viewer_kind, owner, (shape, filtered)), build)

    async def _computed(
        self, root: RootStats | RootGroups | RootSearch
    ) -> list[tuple[ObjectPlan, list[Any]]]:
        if isinstance(root, RootSearch):
            return await self._search(root)
        if isinstance(root, RootGroups):
            return await self._groups(root)
        await self._stats(root)
        return []

    async def _stats(self, root: RootStats) -> None:
        args = self._lookups[root.index]
        where = self._where(root.entity, args.get("where"))
        viewer = self._viewer_parameter
        if root.name == "userStats":
            stmt = self._shaped(
                root.statements, (), where, lambda: stats.user_stats_statement(where)
            )
            (row,) = await self._rows(stmt)
            self.results[root.index] = stats.user_stats_of(row)
            return
        stmt = self._shaped(
            root.statements,
            (),
            where,
            lambda: stats.post_stats_statement(viewer=viewer, where=where),
        )
        (row,) = await self._rows(stmt)
        self.results[root.index] = stats.post_stats_of(row)

    async def _search(self, root: RootSearch) -> list[tuple[ObjectPlan, list[Any]]]:
        """A page of hits as the resolver reads it (schema/search.py), then its count and
        probes; its rows carry their rank and snippet (`search_rank`, `search_snippet`)."""
        connection, args = root.connection, self._lookups[root.index]
        sizes = page_request(
            self._settings,
            search.PAGE_ORDERING,
            first=args["first"],
            after=None,
            last=args["last"],
            before=None,
        )
        where = self._where("Post", args.get("where"))
        query = search.SearchQuery(
            self._dialect, text=args["query"], viewer=self._viewer_parameter, where=where
        )
        request = search.SearchRequest(
            size=sizes.size,
            backward=sizes.backward,
            after=query.decode_argument("after", args["after"]),
            before=query.decode_argument("before", args["before"]),
        )
        hits = await self._search_hits(connection, query, request, where)
        kept, has_more = search.page_of(request, hits)
        position = dataclasses.replace(sizes, after=request.after, before=request.before)
        page = Page(rows=kept, has_more=has_more, request=position)
        loaded = SearchLoaded(position, "", pages={None: page}, query=query)
        if connection.needs_count and query.strategy is not None:

            def count_statement() -> Select[Any]:
                built = query.count_statement()
                assert built is not None  # the query has words
                return built

            count = self._shaped(connection.count_statements, ("search",), where, count_statement)
            parameters = query.parameters(search.SearchRequest(size=0))
            loaded.counts[None] = int(next(iter(await self._rows(count, **parameters)))["count"])
        for values, forward, found in _probes(connection, position, loaded):
            probe = query.beyond_statement(values, forward=forward)
            if probe is not None and next(iter(await self._rows(probe)))["found"]:
                found.add(None)
        self.results[root.index] = loaded
        return [(target, kept) for target in connection.objects]

    async def _search_hits(
        self,
        connection: ConnectionPlan,
        query: search.SearchQuery,
        request: search.SearchRequest,
        where: Filter | None,
    ) -> list[dict[str, Any]]:
        names = self._page_columns(connection, search.PAGE_ORDERING)
        snippets = connection.needs_snippets
        if snippets and self._dialect in ("mysql", "mariadb"):
            # MariaDB's snippet is cut here, from the title and content.
            names += [name for name in ("title", "content") if name not in names]
        strategy = query.strategy
        if strategy is None:
            return []  # no words: nothing is found

        def build() -> Select[Any]:
            columns = read_model.selected(models.Post, names)
            # Nobody selected a snippet: none is made (ts_headline costs a quarter of a page).
            built = (query.page_statement if snippets else query.hits_statement)(request, columns)
            assert built is not None  # the query has words
            return built

        # Built and compiled once per shape (the text and cursors are parameters): building
        # and compiling a search's page cost more than running it.
        shape = ("search", query.shape(request), snippets, tuple(names))
        stmt = self._shaped(connection.statements, shape, where, build)
        hits = []
        for row in await self._rows(stmt, **query.parameters(request)):
            values = list(row.values())
            hit = dict(zip(names, values, strict=False))
            hit["search_rank"] = float(values[len(names)])
            if snippets:
                extra = values[len(names) + 1 :]
                content, title = hit.get("content", ""), hit.get("title", "")
                hit["search_snippet"] = strategy.snippet(content, title, extra)
            hits.append(hit)
        return hits

    async def _groups(self, root: RootGroups) -> list[tuple[ObjectPlan, list[Any]]]:
        args = self._lookups[root.index]
        if not args["group_by"]:
            raise NotPlannedError("`groupBy` names no field")  # the executor's own error
        group_by = [stats.GroupField(field.value) for field in args["group_by"]]
        settings = self._settings
        limit = stats.group_limit(settings.default_page_size, settings.max_page_size, args["first"])
        where = self._where("Post", args.get("where"))
        stmt = self._shaped(
            root.statements,
            (tuple(group_by), limit),
            where,
            lambda: stats.groups_statement(
                viewer=self._viewer_parameter, where=where, group_by=group_by, limit=limit
            ),
        )
        groups = stats.post_groups_of(await self._rows(stmt), group_by)
        self.results[root.index] = groups
        level = []
        for key in root.keys:
            target = key.target
            wanted = _unique(
                found
                for group in groups
                if (found := getattr(group.key, key.foreign_key)) is not None
            )
            stmt = self._statement(key.statements, None, self._by_id(target))
            found_rows: dict[int, Any] = {}
            for chunk in _chunks(wanted):
                found_rows.update((row["id"], row) for row in await self._rows(stmt, chunk))
            self.results[key.index] = found_rows
            level.append((target, list(found_rows.values())))
        return level

    async def _write(self, root: RootWrite) -> list[tuple[ObjectPlan, list[Any]]]:
        """Run the mutation's write; its payload rows (if it wrote) start the next level."""
        planned = mutations.WRITES[root.name]
        args = self._lookups[root.index]
        if self._writer is None:
            raise NotPlannedError("no writer for this run")
        if isinstance(planned, mutations.PlannedSignIn):
            return self._signed_in(root, await planned.write(self._writer, args))
        if self.viewer is None:
            self.results[root.index] = planned.anonymous(args, self._writer.token)
            return []
        call = mutations.Call(self._writer, self.viewer, self.viewer.row, args, self._where)
        result = await planned.write(call)
        self.results[root.index] = result
        if isinstance(result, Imported):
            self._written = result.held()
            rows = [item.row for item in result.results if isinstance(item, Written)]
            return [(target, rows) for target in root.items]
        if not isinstance(result, Written):
            return []
        assert isinstance(root.target, ObjectPlan)  # a row is the payload of an entity type
        self._written = result
        return [(root.target, [result.row])]

    def _signed_in(self, root: RootWrite, result: Any) -> list[tuple[ObjectPlan, list[Any]]]:
        """register's or login's answer; signed in, its user is the viewer from now on."""
        self.results[root.index] = result
        if not isinstance(result, mutations.SignedIn):
            return []
        user = result.user
        self._act_as(Identity(user["id"], user["is_admin"], user))
        self._written = Written(user, {("User", user["id"]): user})
        return [(target, [user]) for target in root.items]

    def _by_id(self, target: ObjectPlan) -> Callable[[], Select[Any]]:
        def build() -> Select[Any]:
            return read_model.rows_by_id(
                target.model, self._names(target), self._viewer_parameter, self._dialect
            )

        return build

    async def _load_nodes(self, root: RootNodes) -> list[tuple[ObjectPlan, list[Any]]]:
        """Rows by global id: one statement per entity type named, as the generic loaders."""
        args = self._lookups[root.index]
        keys = [
            _node_key(value, root.targets) for value in (args["ids"] if root.many else [args["id"]])
        ]
        wanted: dict[str, list[int]] = defaultdict(list)
        for type_name, row_id in keys:
            if row_id < models.ID_LIMIT:
                wanted[type_name].append(row_id)
        found: dict[tuple[str, int], Any] = {}
        level = []
        for type_name, row_ids in wanted.items():
            target = root.targets[type_name]
            stmt = self._statement(root.slots[type_name].statements, None, self._by_id(target))
            rows = [
                row for chunk in _chunks(_unique(row_ids)) for row in await self._rows(stmt, chunk)
            ]
            found.update(((type_name, row["id"]), row) for row in rows)
            level.append((target, rows))
        self.results[root.index] = (keys, found)
        return level

    async def _lookup(self, root: RootLookup) -> Any:
        args = self._lookups[root.index]
        columns = self._names(root.target)
        viewer = self._viewer_parameter
        if root.name == "post":
            type_name, row_id = decode_global_id(args["id"])
            if type_name != "Post" or row_id >= models.ID_LIMIT:
                return None
            build = lambda: read_model.rows_by_id(models.Post, columns, viewer, self._dialect)  # noqa: E731
            rows = await self._rows(self._statement(root.statements, None, build), [row_id])
        elif root.name == "user":
            if "\x00" in args["username"]:
                return None
            stmt = self._statement(
                root.statements, None, lambda: read_model.user_by_username(columns)
            )
            rows = await self._rows(stmt, username_key=models.fold_username(args["username"]))
        elif root.name == "postBySlug":
            if "\x00" in args["slug"]:
                return None
            stmt = self._statement(
                root.statements, None, lambda: read_model.post_by_slug(columns, viewer)
            )
            rows = await self._rows(stmt, slug=args["slug"])
        else:
            if "\x00" in args["name"]:
                return None
            stmt = self._statement(
                root.statements, None, lambda: read_model.tag_by_name(columns, viewer)
            )
            rows = await self._rows(stmt, name=args["name"].strip().lower())
        return next(iter(rows), None)

    async def _load_root_connection(
        self, root: RootConnection
    ) -> list[tuple[ObjectPlan, list[Any]]]:
        connection = root.connection
        if root.model is models.AuditLog and (self.viewer is None or not self.viewer.is_admin):
            # FORBIDDEN before anything else, as the executor answers it.
            raise ForbiddenReadError(audit.FORBIDDEN_MESSAGE)
        request, scope = self._request(connection)
        names = self._page_columns(connection, request.ordering)
        viewer = self._viewer_parameter
        stmt = self._statement(
            connection.statements,
            request,
            lambda: read_model.root_page(root.model, names, request, viewer),
        )
        rows = await self._rows(stmt, **request.cursor_parameters())
        loaded = Loaded(request, scope, pages={None: request.page(rows)})
        if connection.needs_count:
            stmt = self._statement(
                connection.count_statements,
                request,
                lambda: read_model.root_count(root.model, request.where, viewer),
            )
            loaded.counts[None] = int(next(iter(await self._rows(stmt)))["count"])
        for values, forward, found in _probes(connection, request, loaded):
            probe = read_model.root_beyond(
                root.model,
                request.ordering,
                values,
                forward=forward,
                where=request.where,
                viewer=viewer,
            )
            if next(iter(await self._rows(probe)))["found"]:
                found.add(None)
        self.results[connection.index] = loaded
        page_rows = loaded.pages[None].rows
        return [(target, page_rows) for target in connection.objects]

    async def _load_relation(
        self, relation: RelationPlan, rows: list[Any]
    ) -> list[tuple[ObjectPlan, list[Any]]]:
        if isinstance(relation, ToOnePlan):
            return await self._load_to_one(relation, rows)
        if isinstance(relation, TagsPlan):
            return await self._load_tags(relation, rows)
        assert isinstance(relation, ChildrenPlan)
        return await self._load_children(relation, rows)

    async def _load_to_one(
        self, relation: ToOnePlan, rows: list[Any]
    ) -> list[tuple[ObjectPlan, list[Any]]]:
        target = relation.target
        # A nullable foreign key (a comment's parent) names no row when NULL.
        keys = _unique(key for row in rows if (key := row[relation.foreign_key]) is not None)
        if relation.parent is not None:
            parents = {row["id"]: row for row in self._rows_of[id(relation.parent)]}
            own = {key: parents[key] for key in keys}
            self.results[relation.index] = own
            return [(target, list(own.values()))]
        if relation.joined is not None and (beside := _joined_rows(relation, rows)) is not None:
            self.results[relation.index] = beside
            return [(target, list(beside.values()))]
        known = self._known_rows(target, keys)
        if known is not None:
            self.results[relation.index] = known
            return [(target, list(known.values()))]
        stmt = self._statement(
            relation.statements,
            None,
            lambda: read_model.rows_by_id(
                target.model, self._names(target), self._viewer_parameter, self._dialect
            ),
        )
        found: dict[int, Any] = {}
        for chunk in _chunks(keys):
            found.update((row["id"], row) for row in await self._rows(stmt, chunk))
        self.results[relation.index] = found
        return [(target, list(found.values()))]

    def _known_rows(self, target: ObjectPlan, keys: list[Any]) -> dict[int, Any] | None:
        """The rows a write holds for all of `keys`, if it holds every column the plan reads."""
        known = {} if self._written is None else self._written.known
        rows = [known.get((target.entity, key)) for key in keys]
        if not all(row is not None and target.columns <= row.keys() for row in rows):
            return None
        return dict(zip(keys, rows, strict=True))

    async def _load_tags(
        self, relation: TagsPlan, rows: list[Any]
    ) -> list[tuple[ObjectPlan, list[Any]]]:
        known = {} if self._written is None else self._written.tags
        keys = _unique(row["id"] for row in rows)
        if keys and all(key in known for key in keys):
            held = {key: known[key] for key in keys}
            self.results[relation.index] = held
            return [(relation.target, [tag for tags in held.values() for tag in tags])]
        if (beside := self._embedded_rows(relation, relation.target.model, rows)) is not None:
            self.results[relation.index] = beside
            return [(relation.target, [tag for tags in beside.values() for tag in tags])]
        stmt = self._statement(
            relation.statements,
            None,
            lambda: read_model.tags_of_posts(relation.target.columns, self._dialect),
        )
        grouped: dict[int, list[Any]] = defaultdict(list)
        for chunk in _chunks(_unique(row["id"] for row in rows)):
            for tag in await self._rows(stmt, chunk):
                grouped[tag["parent_key"]].append(tag)
        self.results[relation.index] = grouped
        return [(relation.target, [tag for tags in grouped.values() for tag in tags])]

    async def _load_children(
        self, relation: ChildrenPlan, rows: list[Any]
    ) -> list[tuple[ObjectPlan, list[Any]]]:
        connection = relation.connection
        keys = _unique(row["id"] for row in rows)
        if not keys:
            self.results[connection.index] = None
            return []
        request, scope = self._request(connection)
        if (embedded := self._embedded_pages(relation, request, rows)) is not None:
            return embedded
        names = self._page_columns(connection, request.ordering)
        viewer, dialect = self._viewer_parameter, self._dialect
        pages = self._statement(
            connection.statements,
            request,
            lambda: read_model.child_pages(relation.relation, names, request, viewer, dialect),
        )
        counts = self._statement(
            connection.count_statements,
            request,
            lambda: read_model.child_counts(relation.relation, request.where, viewer, dialect),
        )
        loaded = Loaded(request, scope)
        grouped: dict[int, list[Any]] = defaultdict(list)
        for chunk in _chunks(keys):
            for child in await self._rows(pages, chunk, **request.cursor_parameters()):
                grouped[child["parent_key"]].append(child)
            if connection.needs_count:
                loaded.counts.update(
                    (row["parent_key"], row["count"]) for row in await self._rows(counts, chunk)
                )
            for values, forward, found in _probes(connection, request, loaded):
                stmt = read_model.children_beyond(
                    relation.relation,
                    request.ordering,
                    values,
                    forward=forward,
                    where=request.where,
                    viewer=viewer,
                    dialect=dialect,
                )
                found.update(row["parent_key"] for row in await self._rows(stmt, chunk))
        loaded.pages = {key: request.page(grouped[key]) for key in keys}
        self.results[connection.index] = loaded
        children = [child for key in keys for child in loaded.pages[key].rows]
        return [(target, children) for target in connection.objects]

    # --- pages read beside their parents (PostgreSQL) ---------------------------------------

    def _names(self, target: ObjectPlan) -> list[str]:
        """What the statements of `target`'s rows select: its names, and the pages of its
        to-many relations that are read beside each row (`_embeds`)."""
        names = target.names()
        for relation in target.relations:
            if isinstance(relation, TagsPlan | ChildrenPlan) and self._embeds(relation):
                found = relation.embedded.get(self._viewer_kind)
                if found is None:
                    found = relation.embedded[self._viewer_kind] = self._embedded_names(relation)
                names.extend(found)
        return names

    def _embedded_names(self, relation: TagsPlan | ChildrenPlan) -> list[str]:
        label = _embedded_label(relation)
        if isinstance(relation, TagsPlan):
            return [read_model.embedded_tags(label, self._names(relation.target))]
        connection = relation.connection
        request, _ = self._request(connection)
        names = self._page_columns(connection, request.ordering)
        viewer = self._viewer_parameter
        found: list[str] = [
            read_model.embedded_page(label, relation.relation, names, request, viewer)
        ]
        if connection.needs_count:
            found.append(read_model.embedded_count(f"{label}_count", relation.relation, viewer))
        return found

    def _page_columns(self, connection: ConnectionPlan, ordering: Ordering) -> list[str]:
        names: dict[str, None] = {"id": None}
        for target in connection.objects:
            names.update(dict.fromkeys(self._names(target)))
        if connection.needs_cursors:
            # Sort keys are named for their attributes (CREATED_AT reads created_at).
            names.update(dict.fromkeys(term.key.lower() for term in ordering.terms))
        return list(names)

    def _embeds(self, relation: TagsPlan | ChildrenPlan) -> bool:
        """Whether the relation's pages are read beside its parents' rows, in their statement.

        On PostgreSQL, for the post's tags, and for pages whose request is the same in every
        run of the plan (arguments without variables), with no filter or cursor (the parents'
        statements are kept by the parents' own page request and viewer kind only)."""
        if self._dialect != "postgresql":
            return False
        if isinstance(relation, TagsPlan):
            return True
        known = self._embedding.get(relation.index)
        if known is None:
            request = self._requests[relation.connection.index]
            known = (
                isinstance(request, tuple)
                and request[0].where is None
                and request[0].after is None
                and request[0].before is None
                and not relation.relation.through_tags
                and relation.relation.model is not relation.relation.parent
                and not relation.connection.arguments.has_variables
            )
            self._embedding[relation.index] = known
        return known

    def _embedded_rows(
        self, relation: TagsPlan | ChildrenPlan, model: type[models.Base], rows: list[Any]
    ) -> dict[int, list[Any]] | None:
        """Each parent's rows read beside it, by parent id; None unless every row has them."""
        if not rows or not self._embeds(relation):
            return None
        label = _embedded_label(relation)
        try:
            texts = {row["id"]: row[label] for row in rows}
        except KeyError:
            return None  # rows read otherwise (a write's payload, a joined to-one row)
        decode = _json_decoder(model)
        return {key: decode(text, key) for key, text in texts.items()}

    def _embedded_pages(
        self, relation: ChildrenPlan, request: PageRequest, rows: list[Any]
    ) -> list[tuple[ObjectPlan, list[Any]]] | None:
        connection = relation.connection
        grouped = self._embedded_rows(relation, relation.relation.model, rows)
        if grouped is None:
            return None
        loaded = Loaded(request, "")
        if connection.needs_count:
            label = f"{_embedded_label(relation)}_count"
            loaded.counts.update((row["id"], row[label]) for row in rows)
        keys = _unique(row["id"] for row in rows)
        loaded.pages = {key: request.page(grouped[key]) for key in keys}
        self.results[connection.index] = loaded
        children = [child for key in keys for child in loaded.pages[key].rows]
        return [(target, children) for target in connection.objects]

    # --- assembly ----------------------------------------------------------------------------

    def _emit_root(self, root: RootField) -> Any:
        if isinstance(root, RootConnection):
            return root.connection.emit(self.results[root.connection.index], None, self)
        if isinstance(root, RootLookup):
            row = self.results[root.index]
            return None if row is None else root.target.emit(row, self)
        if isinstance(root, RootViewer):
            return None if self.viewer is None else root.target.emit(self.viewer.row, self)
        if isinstance(root, RootNodes):
            keys, found = self.results[root.index]
            nodes = [
                None if (row := found.get(key)) is None else root.targets[key[0]].emit(row, self)
                for key in keys
            ]
            return nodes if root.many else nodes[0]
        if isinstance(root, RootWrite):
            return self._emit_write(root)
        if isinstance(root, RootStats | RootGroups | RootSearch):
            return self._emit_computed(root)
        assert isinstance(root, RootTypename)
        return "Query"

    def _emit_write(self, root: RootWrite) -> Any:
        return emit_write_result(root.target, root.errors, self.results[root.index], self)

    def _emit_computed(self, root: RootStats | RootGroups | RootSearch) -> Any:
        if isinstance(root, RootSearch):
            return root.connection.emit(self.results[root.index], None, self)
        if isinstance(root, RootStats):
            return root.target.emit(self.results[root.index], self)
        return [root.target.emit(group, self) for group in self.results[root.index]]


def _node_key(value: Any, targets: dict[str, ObjectPlan]) -> tuple[str, int]:
    """A global id's (type, row id); `InvalidIdError` for an invalid id; a type without a plan
    declines."""
    type_name, row_id = decode_global_id(value)
    if type_name not in targets:
        raise NotPlannedError(f"{type_name} nodes are not planned")
    return type_name, row_id


# Compiled filters by entity, filter text and viewer (see `Run._where`).
FilterCache = LruCache[Any, Filter]


def _embedded_label(relation: TagsPlan | ChildrenPlan) -> str:
    return f"embedded_{relation.index}"


def _json_decoder(model: type[models.Base]) -> Callable[[Any, int], list[dict[str, Any]]]:
    """Rows from a JSON array (its text, or decoded: a page nested in a page's rows, or one read
    through SQLAlchemy's connection): the model's timestamps parsed, each row's `parent_key` set
    (JSON carries strings, numbers and booleans as asyncpg would; times as ISO text)."""
    times = _TIME_COLUMNS.get(model)
    if times is None:
        table: Any = model.__table__
        times = tuple(
            column.key for column in table.columns if isinstance(column.type, models.UtcDateTime)
        )
        _TIME_COLUMNS[model] = times

    def decode(value: Any, parent_key: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = orjson.loads(value) if isinstance(value, str) else value
        if not found:
            return found
        selected = [name for name in times if name in found[0]]
        for row in found:
            row["parent_key"] = parent_key
            for name in selected:
                if (time := row[name]) is not None:
                    row[name] = datetime.fromisoformat(time).astimezone(UTC)
        return found

    return decode


_TIME_COLUMNS: dict[type[models.Base], tuple[str, ...]] = {}


def _probes(
    connection: ConnectionPlan, request: PageRequest, loaded: Loaded
) -> Iterator[tuple[tuple[Any, ...], bool, set[Any]]]:
    """The far-side probes pageInfo needs: rows past `before`, rows before `after`."""
    if connection.needs_next and request.before is not None:
        yield request.before, True, loaded.beyond_next
    if connection.needs_previous and request.after is not None:
        yield request.after, False, loaded.beyond_previous


def _joined_rows(relation: ToOnePlan, rows: list[Any]) -> dict[Any, dict[str, Any]] | None:
    """The to-one rows read beside `rows` (`ToOnePlan.joined`), by key; None when the rows do
    not carry them (a write's payload row). A key whose row is gone is left out, as a statement
    by id would leave it."""
    assert relation.joined is not None
    labels = list(relation.joined.items())
    if rows:
        try:
            rows[0][labels[0][0]]
        except KeyError:
            return None
    found: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key = row[relation.foreign_key]
        if key is None or key in found:
            continue
        target = {column: row[label] for label, column in labels}
        if target["id"] is not None:
            found[key] = target
    return found


def _unique(keys: Any) -> list[Any]:
    return list(dict.fromkeys(keys))


def _chunks(keys: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(keys), MAX_BATCH):
        yield keys[start : start + MAX_BATCH]
