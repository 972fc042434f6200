"""Query limits, checked before any SQL runs: tokens, depth, aliases, fields, cost, list arguments.

Tokens are counted by graphql-core's parser (`max_tokens`), which stops at the limit. Depth,
aliases and fields belong to the document: `document_limit_errors` checks them, and
`DocumentLimitsRule` runs it as a validation rule, cached with the document. Cost and the lengths
of list arguments depend on the variables, so `operation_cost` and `list_argument_errors` run per
request, after validation. All of them are plain functions over the parsed document, for any
execution path; `QueryLimits` applies them on strawberry's and reports the cost in
`extensions.cost`.

Every walk below memoizes fragments: a fragment spread twice in a fragment spread twice (and so
on) is counted as often as it is used, without being walked as often.
"""

import math
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_composite_type,
    validate,
    value_from_ast_untyped,
)
from graphql.language import Lexer, Source, TokenKind
from graphql.type import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from gql_blog import pricing
from gql_blog.bad_input import UserInputError
from gql_blog.config import Settings
from gql_blog.row_counts import RowCounts
from gql_blog.schema.documents import CachedDocument, DocumentCache
from gql_blog.schema.errors import QUERY_TOO_COMPLEX, QueryTooComplexError
from gql_blog.schema.lookahead import selected_fields

# A plain list (`Post.tags`, `nodes(ids:)`) counts this many rows per parent in the cost.
PLAIN_LIST_SIZE = 10

_Fragments = Mapping[str, FragmentDefinitionNode]


def document_limit_errors(document: DocumentNode, settings: Settings) -> list[GraphQLError]:
    """Depth, alias and field refusals for a parsed document (empty when it is within them)."""
    errors: list[GraphQLError] = []
    depth = query_depth(document)
    if depth > settings.max_query_depth:
        errors.append(QueryTooComplexError("depth", maximum=settings.max_query_depth, value=depth))
    aliases = alias_count(document)
    if aliases > settings.max_aliases:
        errors.append(QueryTooComplexError("aliases", maximum=settings.max_aliases, value=aliases))
    fields = field_count(document)
    if fields > settings.max_fields:
        errors.append(QueryTooComplexError("fields", maximum=settings.max_fields, value=fields))
    return errors


def query_depth(document: DocumentNode) -> int:
    """The deepest field level of any operation, root fields being level 1, fragments inlined.

    Introspection (`__schema`, `__type`) is not counted: the schema bounds it, and GraphiQL's own
    query is deeper than any page of blog data needs. Its lists still count in the cost.
    """
    walk = _Depth(_fragments(document))
    return max((walk.of(operation.selection_set) for operation in _operations(document)), default=0)


def alias_count(document: DocumentNode) -> int:
    """Aliased fields in all operations, each fragment counted as often as it is spread."""
    walk = _Aliases(_fragments(document))
    return sum(walk.of(operation.selection_set) for operation in _operations(document))


def field_count(document: DocumentNode) -> int:
    """Field selections in all operations once fragments are expanded, each fragment counted as
    often as it is spread (its own count is computed once and multiplied, never re-expanded)."""
    walk = _Fields(_fragments(document))
    return sum(walk.of(operation.selection_set) for operation in _operations(document))


def operation_cost(
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    settings: Settings,
    *,
    schema: GraphQLSchema,
    counts: RowCounts | None = None,
) -> int:
    """The estimated work of an operation: rows it returns, and rows the database may read.

    Rows returned: per connection, the product of page sizes along its path. A connection's page
    is `first`/`last`, else the default page size (capped at the maximum page size: a larger
    page is refused as BAD_USER_INPUT, not priced); a plain list counts `PLAIN_LIST_SIZE` per
    parent. Rows read (weighted, see pricing.py), from the tables' `counts`: what `totalCount`,
    filters (their patterns and relation filters), stats, groups and search may read. Without
    counts (or with empty tables) only the rows returned are priced.
    """
    return _priced(document, operation_name, variables, settings, schema, counts)[0]


def _priced(
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    settings: Settings,
    schema: GraphQLSchema,
    counts: RowCounts | None,
) -> tuple[int, list[GraphQLError]]:
    """The operation's cost, and its filters nested deeper than the relation filter limit."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0, []
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0, []
    values = _variables_with_defaults(operation, variables)
    walk = _Cost(schema, _fragments(document), values, settings, counts or RowCounts())
    cost = walk.of(operation.selection_set, root)
    return min(math.ceil(cost), _COST_CEILING), walk.too_deep


# Far above any limit, so that an absurd estimate stays a whole number JSON can carry.
_COST_CEILING = 10**15


def list_argument_errors(
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    settings: Settings,
) -> list[GraphQLError]:
    """BAD_USER_INPUT for list arguments over their maximum: ids, import items, and/or lists."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return []
    values = _variables_with_defaults(operation, variables)
    errors: list[GraphQLError] = []
    for field in _all_fields(operation.selection_set, _fragments(document)):
        for argument in field.arguments or ():
            value = value_from_ast_untyped(argument.value, values)
            message = _list_argument_problem(field.name.value, argument.name.value, value, settings)
            if message is not None:
                errors.append(UserInputError(message))
    return errors


def request_limit_errors(
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    settings: Settings,
    *,
    schema: GraphQLSchema,
    counts: RowCounts | None = None,
) -> tuple[int, list[GraphQLError]]:
    """The operation's cost, and the refusals that depend on its variables (relation filters
    nested too deep, then cost, then lists)."""
    cost, too_deep = _priced(document, operation_name, variables, settings, schema, counts)
    if too_deep:
        return cost, too_deep
    if cost > settings.max_cost:
        return cost, [QueryTooComplexError("cost", maximum=settings.max_cost, value=cost)]
    return cost, list_argument_errors(document, operation_name, variables, settings)


def request_cost(
    cached: CachedDocument,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    settings: Settings,
    *,
    schema: GraphQLSchema,
    counts: RowCounts | None = None,
) -> tuple[int, list[GraphQLError]]:
    """`request_limit_errors` of a cached document, its price remembered in the document's
    entry for small variables: the same request costs one lookup the next time (new row
    counts, new prices). A refusal is not remembered: it is answered once and runs no SQL."""
    name = operation_name if operation_name is not None else _only_operation_name(cached.document)
    key = (name, _variables_key(variables), 0 if counts is None else counts.version)
    if key[1] is not None:
        cost = cached.costs.get(key)  # type: ignore[arg-type]  # key[1] is a str here
        if cost is not None:
            return cost, []
    cost, errors = request_limit_errors(
        cached.document, operation_name, variables, settings, schema=schema, counts=counts
    )
    if not errors and key[1] is not None:
        cached.remember_cost(key, cost)  # type: ignore[arg-type]  # key[1] is a str here
    return cost, errors


def _only_operation_name(document: DocumentNode) -> str | None:
    """The name of a document's one operation (as strawberry names a request that gives none)."""
    operations = _operations(document)
    if len(operations) == 1 and operations[0].name is not None:
        return operations[0].name.value
    return None


def _variables_key(variables: Mapping[str, Any] | None) -> str | None:
    """Variables as a short, stable text, or None when they are too long to key a cache."""
    if not variables:
        return ""
    try:
        text = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return None
    return text if len(text) <= 1024 else None


def token_limit_error(query: str, settings: Settings) -> QueryTooComplexError:
    """The refusal of a document the parser stopped at the token limit.

    The tokens are counted again, up to twice the maximum, so a near miss learns its count
    without a huge document costing more than a small one.
    """
    ceiling = 2 * settings.max_tokens
    count = _count_tokens(query, ceiling)
    value: int | str = count if count <= ceiling else f"more than {ceiling}"
    return QueryTooComplexError("tokens", maximum=settings.max_tokens, value=value)


def validate_document(
    schema: GraphQLSchema, document: DocumentNode, settings: Settings
) -> list[GraphQLError]:
    """The document's refusals: its limits first (a document over them is not validated
    further: graphql-core's rules would spend on it what the limits refuse), then validation.

    A validation that gives up (too many errors, or too deep for Python's recursion) says why,
    with a code, instead of graphql-core's bare "Validation aborted.".
    """
    refused = document_limit_errors(document, settings)
    if refused:
        return list(refused)
    errors = validate(
        schema, document, validation_rules(settings), hide_suggestions=not settings.introspection
    )
    return [_explained(error) for error in errors]


def validation_rules(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    """graphql-core's rules, strawberry's own, and introspection's refusal when it is off."""
    rules: list[type[ASTValidationRule]] = [
        *specified_rules,
        MaybeNullValidationRule,
        OneOfInputValidationRule,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def _is_huge_integer(error: GraphQLError) -> bool:
    """Whether graphql-core failed to read an integer literal: Python refuses to convert one
    of more than `sys.get_int_max_str_digits()` digits."""
    return any(
        isinstance(node, IntValueNode) and len(node.value) > sys.get_int_max_str_digits()
        for node in error.nodes or ()
    )


# graphql-core stops validating after this many errors (its `max_errors` default).
VALIDATION_MAX_ERRORS = 100


def _explained(error: GraphQLError) -> GraphQLError:
    if isinstance(error.original_error, ValueError) and _is_huge_integer(error):
        return UserInputError(
            "An integer literal is too long to read (over Python's limit of "
            f"{sys.get_int_max_str_digits()} digits); Int takes 32-bit values."
        )
    if not isinstance(error, ValidationAbortedError):
        return error
    if "error limit" in error.message:
        return QueryTooComplexError(
            "validation errors",
            maximum=VALIDATION_MAX_ERRORS,
            value=f"more than {VALIDATION_MAX_ERRORS}",
        )
    return GraphQLError(
        "The query is too large or too deeply repeated to validate (validation gave up: "
        "graphql-core ran out of recursion). Send fewer or less repeated selections.",
        extensions={"code": QUERY_TOO_COMPLEX, "limit": "validation"},
    )


class QueryLimits(SchemaExtension):
    """Applies every limit on strawberry's path, caches documents, reports `extensions.cost`.

    Parsing stops at the token limit; validation (with depth and aliases) runs once per distinct
    document, kept in the app's byte-bounded `DocumentCache`; cost and list arguments are checked
    per request (`request_cost`: an admitted price is remembered in the document's entry, where
    the app's door already put it). A refusal is a pre-execution error, so no resolver and no
    SQL runs.
    """

    def __init__(self) -> None:
        self._cached: CachedDocument | None = None
        self._cost: int | None = None

    @property
    def _settings(self) -> Settings:
        settings: Settings = self.execution_context.context.settings
        return settings

    @property
    def _documents(self) -> DocumentCache:
        documents: DocumentCache = self.execution_context.context.documents
        return documents

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        query = self.execution_context.query
        if result is None or not result.errors or query is None:
            return
        result.errors = [self._parse_refusal(error, query) for error in result.errors]

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        cached = self._documents.get(context.query) if context.query else None
        if cached is None:
            context.parse_options["max_tokens"] = self._settings.max_tokens
        else:
            self._cached = cached
            context.graphql_document = cached.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None:  # strawberry validates only parsed documents
            yield
            return
        cached = self._cached or self._validate(document)
        errors = list(cached.errors)
        if not errors:
            errors = self._request_errors(cached)
        context.pre_execution_errors = errors
        yield

    def get_results(self) -> dict[str, Any]:
        return {} if self._cost is None else {"cost": self._cost}

    def _validate(self, document: DocumentNode) -> CachedDocument:
        context = self.execution_context
        errors = validate_document(context.schema._schema, document, self._settings)
        if context.query is None:
            return CachedDocument(document, tuple(errors), 0)
        return self._documents.put(context.query, document, errors)

    def _request_errors(self, cached: CachedDocument) -> list[GraphQLError]:
        context = self.execution_context
        self._cost, errors = request_cost(
            cached,
            context.operation_name,
            context.variables,
            self._settings,
            schema=context.schema._schema,
            counts=context.context.row_counts,
        )
        return errors

    def _parse_refusal(self, error: GraphQLError, query: str) -> GraphQLError:
        if not isinstance(error, GraphQLSyntaxError):
            return error
        settings = self._settings
        if "contains more than" in error.message:
            return token_limit_error(query, settings)
        if "nested too deeply" in error.message:
            return QueryTooComplexError(
                "depth", maximum=settings.max_query_depth, value="too deep to parse"
            )
        return error


# --- walks over a document ---------------------------------------------------------------------


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def _operations(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]


_INTROSPECTION_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


def _is_introspection(field: FieldNode) -> bool:
    return field.name.value in _INTROSPECTION_FIELDS


class _Walk:
    """A fold over an operation's selections, each fragment walked once (memoized by name)."""

    def __init__(self, fragments: _Fragments) -> None:
        self._fragments = fragments
        self._memo: dict[str, int] = {}

    def of(self, selection_set: SelectionSetNode, visiting: frozenset[str] = frozenset()) -> int:
        return self._combine([self._selection(item, visiting) for item in selection_set.selections])

    def _selection(self, selection: Any, visiting: frozenset[str]) -> int:
        if isinstance(selection, FieldNode):
            below = self.of(selection.selection_set, visiting) if selection.selection_set else 0
            return self._field(selection, below)
        if isinstance(selection, InlineFragmentNode):
            return self.of(selection.selection_set, visiting)
        name = selection.name.value
        if name in self._memo:
            return self._memo[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in visiting:  # unknown or cyclic: validation refuses it
            return 0
        self._memo[name] = value = self.of(fragment.selection_set, visiting | {name})
        return value

    def _combine(self, scores: list[int]) -> int:
        raise NotImplementedError

    def _field(self, field: FieldNode, below: int) -> int:
        raise NotImplementedError


class _Depth(_Walk):
    def _combine(self, scores: list[int]) -> int:
        return max(scores, default=0)

    def _field(self, field: FieldNode, below: int) -> int:
        return 0 if _is_introspection(field) else 1 + below


class _Aliases(_Walk):
    def _combine(self, scores: list[int]) -> int:
        return sum(scores)

    def _field(self, field: FieldNode, below: int) -> int:
        return below + (1 if field.alias else 0)


class _Fields(_Walk):
    def _combine(self, scores: list[int]) -> int:
        return sum(scores)

    def _field(self, field: FieldNode, below: int) -> int:
        return 1 + below


class _Cost:
    """Cost per parent row of a selection set; a nested set costs its parent's page times it.

    Relation filters nested deeper than `max_relation_filter_depth` are collected in `too_deep`
    (a BAD_USER_INPUT each), found by the same walk, which knows each `where`'s entity.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: _Fragments,
        variables: dict[str, Any],
        settings: Settings,
        counts: RowCounts,
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._variables = variables
        self._settings = settings
        self._counts = counts
        self._memo: dict[str, float] = {}
        self.too_deep: list[GraphQLError] = []

    def of(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        visiting: frozenset[str] = frozenset(),
    ) -> float:
        total = 0.0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field(selection, parent, visiting)
            elif isinstance(selection, InlineFragmentNode):
                total += self.of(selection.selection_set, self._type(selection, parent), visiting)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value, visiting)
        return total

    def _field(self, field: FieldNode, parent: GraphQLNamedType, visiting: frozenset[str]) -> float:
        field_type = self._field_type(parent, field.name.value)
        if field_type is None:
            return 0
        named = get_named_type(field_type)
        below = 0.0
        if field.selection_set is not None and is_composite_type(named):
            below = self.of(field.selection_set, named, visiting)
        rows = self._rows(field, parent, field_type, named)
        returned = below if rows is None else rows + rows * below
        return returned + self._reads(field, parent, named)

    def _rows(
        self,
        field: FieldNode,
        parent: GraphQLNamedType,
        field_type: GraphQLOutputType,
        named: GraphQLNamedType,
    ) -> int | None:
        """The rows one parent gets from this field, or None when it is not a list of rows."""
        if _is_connection(named):
            return self._page_size(field)
        if isinstance(get_nullable_type(field_type), GraphQLList) and not _is_connection(parent):
            return PLAIN_LIST_SIZE  # a connection's own edges and nodes are its page
        return None

    def _reads(self, field: FieldNode, parent: GraphQLNamedType, named: GraphQLNamedType) -> float:
        """The weighted rows the database may read for this field, per parent row."""
        where = self._argument(field, "where")
        entity = self._where_entity(parent, field.name.value)
        if entity is not None and where:
            self._check_relation_depth(entity, where)
        name = field.name.value
        if name in _AGGREGATES and entity is not None:
            through_tags = "TAG" in (self._argument(field, "groupBy") or ())
            return pricing.aggregate_reads(entity, where, self._counts, through_tags=through_tags)
        if not _is_connection(named) or entity is None:
            return 0.0
        if name == "searchPosts":
            return pricing.search_reads(where, self._counts)
        is_root = parent is self._schema.query_type
        scope = self._counts.of(entity) if is_root else self._counts.fanout(parent.name, entity)
        return pricing.connection_reads(
            entity,
            where,
            scope,
            self._counts,
            page=self._page_size(field),
            counted=_selects(field, "totalCount", self._fragments),
        )

    def _check_relation_depth(self, entity: str, where: Any) -> None:
        maximum = self._settings.max_relation_filter_depth
        depth, path = pricing.relation_depth(entity, where)
        if depth > maximum:
            self.too_deep.append(
                UserInputError(
                    f"where.{path}: relation filters nest at most {maximum} deep "
                    f"(GQL_BLOG_MAX_RELATION_FILTER_DEPTH); this one nests {depth}."
                )
            )

    def _argument(self, field: FieldNode, name: str) -> Any:
        for argument in field.arguments or ():
            if argument.name.value == name:
                return value_from_ast_untyped(argument.value, self._variables)
        return None

    def _where_entity(self, parent: GraphQLNamedType, name: str) -> str | None:
        """The entity a field's `where` filters (and its rows are counted of), if it has one."""
        fields = getattr(parent, "fields", None)
        if fields is None or name not in fields or "where" not in fields[name].args:
            return None
        where_type = get_named_type(fields[name].args["where"].type)
        return _WHERE_ENTITIES.get(where_type.name)

    def _page_size(self, field: FieldNode) -> int:
        sizes = [
            value_from_ast_untyped(argument.value, self._variables)
            for argument in field.arguments or ()
            if argument.name.value in ("first", "last")
        ]
        given = [size for size in sizes if isinstance(size, int) and not isinstance(size, bool)]
        if not given:
            return self._settings.default_page_size
        return max(0, min(max(given), self._settings.max_page_size))

    def _field_type(self, parent: GraphQLNamedType, name: str) -> GraphQLOutputType | None:
        if name in _INTROSPECTION_FIELDS:
            return _INTROSPECTION_FIELDS[name].type
        fields = getattr(parent, "fields", None)  # objects and interfaces; unions have none
        if fields is None or name not in fields:
            return None
        field_type: GraphQLOutputType = fields[name].type
        return field_type

    def _type(self, fragment: InlineFragmentNode, parent: GraphQLNamedType) -> GraphQLNamedType:
        if fragment.type_condition is None:
            return parent
        return self._schema.get_type(fragment.type_condition.name.value) or parent

    def _fragment(self, name: str, visiting: frozenset[str]) -> float:
        if name in self._memo:
            return self._memo[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in visiting:
            return 0
        parent = self._schema.get_type(fragment.type_condition.name.value)
        if parent is None:
            return 0
        self._memo[name] = value = self.of(fragment.selection_set, parent, visiting | {name})
        return value


# The entity each `where` input type filters.
_WHERE_ENTITIES = {
    "PostWhere": "Post",
    "UserWhere": "User",
    "CommentWhere": "Comment",
    "TagWhere": "Tag",
    "AuditLogWhere": "AuditLogEntry",
}
# Root fields that aggregate every row a filter keeps.
_AGGREGATES = frozenset({"postStats", "userStats", "postGroups"})


def _selects(field: FieldNode, name: str, fragments: _Fragments) -> bool:
    """Whether a field's own selection (fragments spread in, each once) selects `name`."""
    return any(
        child.name.value == name for child in selected_fields(field.selection_set, fragments)
    )


def _is_connection(named: GraphQLNamedType) -> bool:
    return isinstance(named, GraphQLObjectType) and "pageInfo" in named.fields


def _all_fields(selection_set: SelectionSetNode, fragments: _Fragments) -> Iterator[FieldNode]:
    """Every field of an operation, each fragment's fields once however often it is spread."""
    seen: set[str] = set()
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
                if selection.selection_set is not None:
                    pending.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    pending.append(fragments[name].selection_set)


def _list_argument_problem(field: str, argument: str, value: Any, settings: Settings) -> str | None:
    if field == "nodes" and argument == "ids":
        return _too_long("`nodes(ids:)`", "ids", value, settings.max_node_ids)
    if field == "importPosts" and argument == "inputs":
        return _too_long("`importPosts(inputs:)`", "items", value, settings.max_import_posts)
    if argument == "where":
        for items in _logical_lists(value):
            problem = _too_long(
                "An `and`/`or` filter list", "items", items, settings.max_filter_items
            )
            if problem is not None:
                return problem
    return None


def _too_long(what: str, unit: str, value: Any, maximum: int) -> str | None:
    if not isinstance(value, list) or len(value) <= maximum:
        return None
    return f"{what} takes at most {maximum} {unit} (got {len(value)})."


def _logical_lists(where: Any) -> Iterator[Any]:
    """The `and`/`or` lists anywhere in a raw where value (iterative: variables nest deeply)."""
    pending = [where]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key in ("and", "or") and isinstance(item, list):
                    yield item
                pending.append(item)


def _variables_with_defaults(
    operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
) -> dict[str, Any]:
    values = {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    values.update(variables or {})
    return values


def _count_tokens(query: str, ceiling: int) -> int:
    """Tokens in `query` as the parser's `max_tokens` counts them (comments included),
    counting no further than `ceiling + 1`."""
    lexer = Lexer(Source(query))
    count, end = 0, 0
    try:
        while count <= ceiling:
            token = lexer.read_next_token(end)
            if token.kind == TokenKind.EOF:
                break
            count, end = count + 1, token.end
    except GraphQLError:  # a syntax error past the limit: the count so far is a lower bound
        return count
    return count
