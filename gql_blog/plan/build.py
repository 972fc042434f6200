"""Build a plan for one operation: which rows each level fetches and how the response is built.

A plan is built once per (document, operation, values of the variables that `@skip`/`@include`
read) and cached. It is a tree that mirrors the selection: an `ObjectPlan` per selection on an
entity type (its columns, its output fields, the relations it loads for the next level) and a
`ConnectionPlan` per connection field. Shapes the planner does not cover raise
`NotPlannedError`, and the operation runs on strawberry's executor instead.
"""

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    GraphQLUnionType,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_non_null_type,
)
from graphql.execution.values import VariableValues, get_directive_values

from gql_blog import audit, models
from gql_blog.entities import NODE_MODELS
from gql_blog.errors import NotPlannedError as NotPlannedError  # re-exported: callers name it here
from gql_blog.ids import encode_global_id
from gql_blog.ordering import OrderTerm
from gql_blog.plan.declarations import PLAN, Children, Email, GlobalId, Tags, ToOne
from gql_blog.plan.mutations import WRITES, Refusal, Written
from gql_blog.plan.statements import Statements
from gql_blog.read_model import RELATIONS, Joined, Relation, joined
from gql_blog.visibility import can_see_email

_SKIP_AND_INCLUDE = frozenset({"skip", "include"})

# An output field of an object: (row, run) -> its JSON value.
Getter = Callable[[Any, Any], Any]
# An output field of a connection: (loaded connection, parent key, run) -> its JSON value.
ConnectionGetter = Callable[[Any, Any, Any], Any]


@dataclass(slots=True)
class Arguments:
    """A field's arguments as the document gives them, coerced per request (once if constant)."""

    field: GraphQLField
    node: FieldNode
    # The converted arguments, kept when the document gives them without variables.
    constant: dict[str, Any] | None = None

    @property
    def has_variables(self) -> bool:
        return any(_reads_variables(argument.value) for argument in self.node.arguments or ())


@dataclass(slots=True, eq=False)
class ObjectPlan:
    """A selection on one entity type: its columns, output fields and next-level relations."""

    entity: str
    model: type[models.Base]
    columns: set[str] = field(default_factory=lambda: {"id"})
    output: list[tuple[str, Getter]] = field(default_factory=list)
    relations: list["RelationPlan"] = field(default_factory=list)
    # Columns of its to-one rows read beside its own (`ToOnePlan.joined`), by label.
    joined: dict[str, Joined] = field(default_factory=dict)

    # The output as one generated function (see `compile_emit`); until then, field by field.
    emit: Callable[[Any, Any], dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.emit = self._emit_fields

    def names(self) -> list[str]:
        """What its statements select: its columns, then its to-one rows' joined columns."""
        return [*sorted(self.columns), *self.joined.values()]

    def _emit_fields(self, row: Any, run: Any) -> dict[str, Any]:
        return {key: getter(row, run) for key, getter in self.output}

    def compile_emit(self) -> None:
        """Build the output as one function: a column is read inline, not through a closure.

        The dict literal it returns lists the response keys in order; a field that reads a
        column (`row['title']`) is inlined, any other calls its getter. Keys are GraphQL names
        and columns are model attribute names, both written with repr().
        """
        namespace: dict[str, Any] = {"_isoformat": _isoformat, "_encode": encode_global_id}
        entries = []
        for number, (key, getter) in enumerate(self.output):
            inline = getattr(getter, "inline", None)
            namespace |= getattr(getter, "inline_names", {})
            if inline is None:
                namespace[f"_get{number}"] = getter
                inline = f"_get{number}(row, run)"
            entries.append(f"{key!r}: {inline}")
        source = "def emit(row, run):\n    return {" + ", ".join(entries) + "}\n"
        exec(compile(source, f"<plan {self.entity}>", "exec"), namespace)
        self.emit = namespace["emit"]


@dataclass(slots=True, eq=False)
class ToOnePlan:
    index: int
    target: ObjectPlan
    foreign_key: str
    statements: Statements = field(default_factory=dict)
    # A null key or a missing row answers null (an audit entry's actor), not an error.
    nullable: bool = False
    # Set when the row is the parent of the connection this row came from (a comment's post
    # under `Post.comments`): the parent's rows carry the target's columns, and no statement runs.
    parent: ObjectPlan | None = None
    # A user (every user is visible) is read beside the rows that point at it: each of the
    # target's columns by a scalar subquery in their statement, under these labels (label ->
    # column). Rows that lack them (a write's payload) load it as before.
    joined: dict[str, str] | None = None


@dataclass(slots=True, eq=False)
class TagsPlan:
    index: int
    target: ObjectPlan
    statements: Statements = field(default_factory=dict)
    # Read beside the posts (PostgreSQL): the names their statements add, by viewer kind.
    embedded: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class ConnectionPlan:
    """A connection field: its page's object plans, and what of the page it outputs."""

    index: int
    entity: str
    arguments: Arguments
    objects: list[ObjectPlan] = field(default_factory=list)
    output: list[tuple[str, ConnectionGetter]] = field(default_factory=list)
    needs_count: bool = False
    needs_next: bool = False  # hasNextPage selected: may probe rows past `before`
    needs_previous: bool = False  # hasPreviousPage selected: may probe rows before `after`
    needs_cursors: bool = False
    needs_snippets: bool = False  # a search's edges select `snippet`
    # The order without `orderBy` (empty: the entity's default), as the relation says.
    default_order: tuple[OrderTerm, ...] = ()
    # Statements built for this node, by viewer kind and page request (see run.py).
    statements: Statements = field(default_factory=dict)
    count_statements: Statements = field(default_factory=dict)

    def emit(self, loaded: Any, parent: Any, run: Any) -> dict[str, Any]:
        return {key: getter(loaded, parent, run) for key, getter in self.output}


@dataclass(slots=True, eq=False)
class ChildrenPlan:
    relation: Relation
    connection: ConnectionPlan
    # Read beside the parents (PostgreSQL): the names their statements add, by viewer kind.
    embedded: dict[str, list[str]] = field(default_factory=dict)

    @property
    def index(self) -> int:
        return self.connection.index


RelationPlan = ToOnePlan | TagsPlan | ChildrenPlan


@dataclass(slots=True, eq=False)
class RootConnection:
    model: type[models.Base]
    connection: ConnectionPlan


@dataclass(slots=True, eq=False)
class RootLookup:
    """`post(id:)`, `postBySlug(slug:)`, `user(username:)` or `tag(name:)`: one row or null."""

    index: int
    name: str
    target: ObjectPlan
    arguments: Arguments
    statements: Statements = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class StatementSlot:
    """Where a plan node that is not a relation keeps its statements (see `Run._statement`)."""

    statements: Statements = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class RootNodes:
    """`node(id:)` or `nodes(ids:)`: rows of any entity type by global id, a plan per type."""

    index: int
    many: bool
    targets: dict[str, ObjectPlan]
    arguments: Arguments
    slots: dict[str, StatementSlot] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class RootViewer:
    target: ObjectPlan


@dataclass(slots=True, eq=False)
class RootWrite:
    """A planned mutation field: its write, then its payload: a row of `target` (an entity), a
    value of it (`Deleted`, `BulkUpdated`), or an error.

    `errors` holds each error type's output: (response key, field name) pairs, the field name
    one of `__typename`, `message`, `field`, `id` and `retryAfterSeconds`.
    """

    index: int
    name: str
    # None: the payload is a scalar, the write's own answer.
    target: "ObjectPlan | ValuePlan | None"
    errors: dict[str, list[tuple[str, str]]]
    arguments: Arguments
    # The plans of a list payload's rows (importPosts' results), loaded as the next level.
    items: list[ObjectPlan] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class RootEvent:
    """A planned subscription field: its payload rows of `target`, read by the ids of the events
    that concern it (`Run.execute_events`); `tag_statements` read `postPublished`'s tag filter."""

    index: int
    name: str
    target: ObjectPlan
    arguments: Arguments
    statements: Statements = field(default_factory=dict)
    tag_statements: Statements = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class RootTypename:
    pass


# An output field of a value that is no entity (stats, a group, its key): (value, run) -> JSON.
ValueGetter = Callable[[Any, Any], Any]


@dataclass(slots=True, eq=False)
class ValuePlan:
    """A selection on a type whose values are computed, not rows (stats, a write's `Deleted`):
    its fields are attributes."""

    output: list[tuple[str, ValueGetter]] = field(default_factory=list)

    def emit(self, value: Any, run: Any) -> dict[str, Any]:
        return {key: getter(value, run) for key, getter in self.output}


@dataclass(slots=True, eq=False)
class RootStats:
    """`userStats` or `postStats`: one row of aggregates over the entity's filtered rows."""

    index: int
    name: str
    entity: str
    target: ValuePlan
    arguments: Arguments
    statements: Statements = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class RootGroups:
    """`postGroups`: a list of groups; their keys' authors and tags are read by id after it."""

    index: int
    target: ValuePlan
    arguments: Arguments
    # The groups' key objects, loaded for the next level, by key attribute (author_id, tag_id).
    keys: list[ToOnePlan] = field(default_factory=list)
    statements: Statements = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class RootSearch:
    """`searchPosts`: a connection of posts whose page a search ranks (gql_blog.search)."""

    connection: ConnectionPlan

    @property
    def index(self) -> int:
        return self.connection.index

    @property
    def arguments(self) -> Arguments:
        return self.connection.arguments


RootField = (
    RootConnection
    | RootLookup
    | RootNodes
    | RootViewer
    | RootTypename
    | RootWrite
    | RootStats
    | RootGroups
    | RootSearch
    | RootEvent
)
# The aggregate root fields the planner runs, and the entity their `where` filters.
PLANNED_STATS = {"userStats": "User", "postStats": "Post"}
# The subscription fields the planner reads the payloads of, and the entity of their payload.
PLANNED_EVENTS = {"commentAdded": "Comment", "postPublished": "Post"}
_ERROR_FIELDS = frozenset({"__typename", "message", "field", "id", "retryAfterSeconds"})


@dataclass(slots=True, eq=False)
class Plan:
    roots: list[tuple[str, RootField]]
    slots: int  # how many loaded results a run keeps (one per relation and root field)
    connections: list[ConnectionPlan]


def directive_variables(
    operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
) -> tuple[str, ...]:
    """Names of the variables that directives read anywhere in the operation or fragments."""
    names: list[str] = []

    def visit(selection_set: SelectionSetNode | None) -> None:
        for selection in selection_set.selections if selection_set else ():
            for directive in selection.directives or ():
                for argument in directive.arguments or ():
                    if isinstance(argument.value, VariableNode):
                        names.append(argument.value.name.value)
            if isinstance(selection, FieldNode | InlineFragmentNode):
                visit(selection.selection_set)

    visit(operation.selection_set)
    for fragment in fragments:
        visit(fragment.selection_set)
    return tuple(dict.fromkeys(names))


class PlanBuilder:
    """Builds one plan; holds the document's fragments and the request's variable values."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues,
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._variables = variables
        self._slots = 0
        self._connections: list[ConnectionPlan] = []
        self._objects: list[ObjectPlan] = []

    def build(self, operation: OperationDefinitionNode) -> Plan:
        if operation.operation is OperationType.MUTATION:
            roots = self._write_roots(operation)
        elif operation.operation is OperationType.QUERY:
            query_type = self._schema.query_type
            assert query_type is not None
            roots = [
                (key, self._root(query_type, nodes))
                for key, nodes in self.root_fields(operation).items()
            ]
        else:
            roots = self._event_roots(operation)
        for object_plan in self._objects:
            object_plan.compile_emit()
        return Plan(roots=roots, slots=self._slots, connections=self._connections)

    def root_fields(self, operation: OperationDefinitionNode) -> dict[str, list[FieldNode]]:
        """The operation's root fields by response key (fragments inlined, directives applied)."""
        query_type = self._schema.query_type
        assert query_type is not None
        return self._collect(query_type, [operation.selection_set])

    def _slot(self) -> int:
        self._slots += 1
        return self._slots - 1

    def _root(self, query_type: GraphQLObjectType, nodes: list[FieldNode]) -> RootField:
        name = nodes[0].name.value
        if name == "__typename":
            return RootTypename()
        if name not in query_type.fields:  # __schema, __type: introspection is not planned
            raise NotPlannedError(f"Query.{name} is not planned")
        definition = query_type.fields[name]
        object_type = get_named_type(definition.type)
        if name in ("posts", "users", "tags", "auditLog"):
            entity = _connection_entity(object_type)
            connection = self._connection(entity, definition, nodes)
            return RootConnection(model=NODE_MODELS[entity], connection=connection)
        if name in ("post", "postBySlug", "user", "tag"):
            target = self._object(_entity_type(object_type), nodes)
            return RootLookup(self._slot(), name, target, Arguments(definition, nodes[0]))
        if name == "viewer":
            return RootViewer(self._object(_entity_type(object_type), nodes))
        if name in PLANNED_STATS or name in ("postGroups", "searchPosts"):
            return self._computed(name, definition, nodes)
        if name in ("node", "nodes"):
            # The id names the type: each entity type gets its own plan of the selection.
            targets = {
                entity: self._object(_entity_type(self._schema.type_map[entity]), nodes)
                for entity in NODE_MODELS
            }
            slots = {entity: StatementSlot() for entity in NODE_MODELS}
            arguments = Arguments(definition, nodes[0])
            return RootNodes(self._slot(), name == "nodes", targets, arguments, slots)
        raise NotPlannedError(f"Query.{name} is not planned")

    def _computed(
        self, name: str, definition: GraphQLField, nodes: list[FieldNode]
    ) -> RootStats | RootGroups | RootSearch:
        """A root field whose rows a module below the schema computes (stats, search)."""
        if name == "postGroups":
            return self._groups(definition, nodes)
        if name == "searchPosts":
            # Its arguments are the search's own (Run._search), not a page of an ordering.
            return RootSearch(self._connection("Post", definition, nodes, ordered=False))
        stats_type = get_named_type(definition.type)
        assert isinstance(stats_type, GraphQLObjectType)
        target = self._value(stats_type, nodes, {})
        arguments = Arguments(definition, nodes[0])
        return RootStats(self._slot(), name, PLANNED_STATS[name], target, arguments)

    def _groups(self, definition: GraphQLField, nodes: list[FieldNode]) -> RootGroups:
        group_type = get_named_type(definition.type)
        assert isinstance(group_type, GraphQLObjectType)
        key_field = group_type.fields["key"]
        key_type = get_named_type(key_field.type)
        assert isinstance(key_type, GraphQLObjectType)
        keys: list[ToOnePlan] = []

        def entity_key(foreign_key: str) -> Callable[[GraphQLField, list[FieldNode]], ValueGetter]:
            def build(field_definition: GraphQLField, field_nodes: list[FieldNode]) -> ValueGetter:
                target = self._object(
                    _entity_type(get_named_type(field_definition.type)), field_nodes
                )
                to_one = ToOnePlan(self._slot(), target, foreign_key, nullable=True)
                keys.append(to_one)
                index, read = to_one.index, operator.attrgetter(foreign_key)

                def getter(value: Any, run: Any) -> Any:
                    found = run.results[index].get(read(value))
                    return None if found is None else target.emit(found, run)

                return getter

            return build

        key_fields = {"author": entity_key("author_id"), "tag": entity_key("tag_id")}

        def key(field_definition: GraphQLField, field_nodes: list[FieldNode]) -> ValueGetter:
            plan = self._value(key_type, field_nodes, key_fields)
            return lambda group, run: plan.emit(group.key, run)

        target = self._value(group_type, nodes, {"key": key})
        return RootGroups(self._slot(), target, Arguments(definition, nodes[0]), keys)

    def _value(
        self,
        value_type: GraphQLObjectType,
        nodes: list[FieldNode],
        special: dict[str, Callable[[GraphQLField, list[FieldNode]], ValueGetter]],
    ) -> ValuePlan:
        """A selection on a value type: `special` builds the getters of its object fields,
        any other field reads the attribute its strawberry field names."""
        plan = ValuePlan()
        for key, field_nodes in self._collect(
            value_type, [node.selection_set for node in nodes]
        ).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                plan.output.append((key, _constant(value_type.name)))
                continue
            definition = value_type.fields[name]
            if name in special:
                plan.output.append((key, special[name](definition, field_nodes)))
                continue
            strawberry_field = definition.extensions["strawberry-definition"]
            if strawberry_field.base_resolver is not None:
                raise NotPlannedError(f"{value_type.name}.{name} is not planned")
            is_date = get_named_type(definition.type).name == "DateTime"
            plan.output.append((key, _attribute(strawberry_field.python_name, is_date)))
        return plan

    def _write_roots(self, operation: OperationDefinitionNode) -> list[tuple[str, RootField]]:
        """One planned mutation field, alone: several run one after another on the executor."""
        mutation_type = self._schema.mutation_type
        assert mutation_type is not None
        grouped = self._collect(mutation_type, [operation.selection_set])
        if len(grouped) != 1:
            raise NotPlannedError("only a single mutation field is planned")
        ((key, nodes),) = grouped.items()
        name = nodes[0].name.value
        planned = WRITES.get(name)
        if planned is None:
            raise NotPlannedError(f"Mutation.{name} is not planned")
        definition = mutation_type.fields[name]
        result_type = get_named_type(definition.type)
        items: list[ObjectPlan] = []
        target: ObjectPlan | ValuePlan | None
        errors: dict[str, list[tuple[str, str]]] = {}
        if planned.payload is None:  # a scalar (logout's Boolean)
            target = None
        elif isinstance(result_type, GraphQLUnionType):
            target, errors = self._write_result(result_type, nodes, planned.payload, items)
        else:
            # A payload listing one result per input (importPosts): its `results` are planned
            # as a single write's, and their rows start the next level.
            assert isinstance(result_type, GraphQLObjectType)
            target = self._item_results(result_type, nodes, planned.payload, items)
        arguments = Arguments(definition, nodes[0])
        write = RootWrite(self._slot(), name, target, errors, arguments, items)
        return [(key, write)]

    def _write_result(
        self,
        result_type: GraphQLUnionType,
        nodes: list[FieldNode],
        payload: str,
        items: list[ObjectPlan] | None = None,
    ) -> tuple[ObjectPlan | ValuePlan, dict[str, list[tuple[str, str]]]]:
        """A write's result union: its success type `payload`'s plan, each error's output. A
        value payload's entity fields (AuthPayload's `user`) hold a row; their plans go to
        `items`, loaded as the next level."""
        selections = [node.selection_set for node in nodes]
        target: ObjectPlan | ValuePlan | None = None
        errors: dict[str, list[tuple[str, str]]] = {}
        for member in result_type.types:
            if member.name == payload:
                is_entity = member.name in NODE_MODELS
                target = (
                    self._object(member, nodes)
                    if is_entity
                    else self._value(member, nodes, self._held_rows(member, items))
                )
                continue
            output = [
                (field_key, field_nodes[0].name.value)
                for field_key, field_nodes in self._collect(member, selections).items()
            ]
            if any(field_name not in _ERROR_FIELDS for _, field_name in output):
                raise NotPlannedError(f"{member.name}'s fields are not planned")
            errors[member.name] = output
        assert target is not None
        return target, errors

    def _held_rows(
        self, value_type: GraphQLObjectType, items: list[ObjectPlan] | None
    ) -> dict[str, Callable[[GraphQLField, list[FieldNode]], ValueGetter]]:
        """Getters of a write's value payload's entity fields: each emits the row its
        attribute holds (`mutations.SignedIn.user`)."""

        def held(definition: GraphQLField, field_nodes: list[FieldNode]) -> ValueGetter:
            if items is None:
                raise NotPlannedError(f"{value_type.name}'s rows are not planned here")
            target = self._object(_entity_type(get_named_type(definition.type)), field_nodes)
            items.append(target)
            read = operator.attrgetter(definition.extensions["strawberry-definition"].python_name)
            return lambda value, run: target.emit(read(value), run)

        return {
            name: held
            for name, definition in value_type.fields.items()
            if get_named_type(definition.type).name in NODE_MODELS
        }

    def _item_results(
        self,
        payload_type: GraphQLObjectType,
        nodes: list[FieldNode],
        payload: str,
        items: list[ObjectPlan],
    ) -> ValuePlan:
        """A payload whose `results` list one write result per input; `items` collects the
        plans of their rows (one per response key of `results`)."""

        def results(definition: GraphQLField, field_nodes: list[FieldNode]) -> ValueGetter:
            union = get_named_type(definition.type)
            assert isinstance(union, GraphQLUnionType)
            target, errors = self._write_result(union, field_nodes, payload)
            assert isinstance(target, ObjectPlan)
            items.append(target)
            return lambda value, run: [
                emit_write_result(target, errors, result, run) for result in value.results
            ]

        return self._value(payload_type, nodes, {"results": results})

    def _event_roots(self, operation: OperationDefinitionNode) -> list[tuple[str, RootField]]:
        """A subscription's one field (validation allows no other): its payload, a row of the
        entity the field names."""
        subscription_type = self._schema.subscription_type
        assert subscription_type is not None
        for key, nodes in self._collect(subscription_type, [operation.selection_set]).items():
            name = nodes[0].name.value
            if name not in PLANNED_EVENTS:
                raise NotPlannedError(f"Subscription.{name} is not planned")
            definition = subscription_type.fields[name]
            target = self._object(_entity_type(get_named_type(definition.type)), nodes)
            if name == "postPublished":
                target.columns.add("published")  # a post drafted again since is not sent
            return [(key, RootEvent(self._slot(), name, target, Arguments(definition, nodes[0])))]
        raise NotPlannedError("the subscription's field is skipped")  # the executor answers

    def _collect(
        self, parent: GraphQLObjectType, selection_sets: list[SelectionSetNode | None]
    ) -> dict[str, list[FieldNode]]:
        """Fields by response key, fragments inlined, `@skip`/`@include` applied."""
        grouped: dict[str, list[FieldNode]] = {}
        spread: set[str] = set()
        for selection_set in selection_sets:
            self._visit(parent, selection_set, grouped, spread)
        return grouped

    def _visit(
        self,
        parent: GraphQLObjectType,
        selection_set: SelectionSetNode | None,
        grouped: dict[str, list[FieldNode]],
        spread: set[str],
    ) -> None:
        """Group the fields of `selection_set` into `grouped`; a named fragment is visited once
        per collection (`spread`): spread again, it would add the same fields (as graphql-core's
        `collect_fields` does), and visiting it again would grow exponentially with nesting."""
        for selection in selection_set.selections if selection_set else ():
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
                continue
            if isinstance(selection, InlineFragmentNode):
                fragment: InlineFragmentNode | FragmentDefinitionNode = selection
            else:
                name = cast(FragmentSpreadNode, selection).name.value
                if name in spread:
                    continue
                spread.add(name)
                fragment = self._fragment(name)
            if self._matches(parent, fragment.type_condition):
                self._visit(parent, fragment.selection_set, grouped, spread)

    def _fragment(self, name: str) -> FragmentDefinitionNode:
        fragment = self._fragments[name]
        if fragment.variable_definitions:
            raise NotPlannedError("fragment variables are not planned")
        return fragment

    def _included(self, selection: Any) -> bool:
        for directive in selection.directives or ():
            if directive.name.value not in _SKIP_AND_INCLUDE:
                raise NotPlannedError(f"@{directive.name.value} is not planned")
        skip = get_directive_values(GraphQLSkipDirective, selection, self._variables)
        if skip is not None and skip["if"] is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, selection, self._variables)
        return include is None or include["if"] is True

    def _matches(self, parent: GraphQLObjectType, condition: Any) -> bool:
        if condition is None:
            return True
        name = condition.name.value
        if name == parent.name or any(i.name == name for i in parent.interfaces):
            return True
        union = self._schema.type_map.get(name)  # `... on CommentResult` inside addComment
        return isinstance(union, GraphQLUnionType) and parent in union.types

    def _object(self, object_type: GraphQLObjectType, nodes: list[FieldNode]) -> ObjectPlan:
        entity = object_type.name
        plan = ObjectPlan(entity=entity, model=NODE_MODELS[entity])
        self._objects.append(plan)
        grouped = self._collect(object_type, [node.selection_set for node in nodes])
        for key, field_nodes in grouped.items():
            plan.output.append((key, self._object_field(plan, object_type, field_nodes)))
        return plan

    def _object_field(
        self, plan: ObjectPlan, object_type: GraphQLObjectType, nodes: list[FieldNode]
    ) -> Getter:
        name = nodes[0].name.value
        if name == "__typename":
            return _constant(object_type.name)
        definition = object_type.fields[name]
        if plan.model is models.AuditLog and name in _AUDIT_FIELDS:
            return self._audit_field(plan, definition, nodes)
        strawberry_field = definition.extensions["strawberry-definition"]
        declaration = strawberry_field.metadata.get(PLAN)
        if declaration is None:
            return self._column(plan, strawberry_field, definition)
        if isinstance(declaration, GlobalId):
            return _global_id(object_type.name)
        if isinstance(declaration, Email):
            plan.columns.add("email")
            return _email
        if isinstance(declaration, Children):
            relation = RELATIONS[declaration.relation]
            connection = self._connection(declaration.entity, definition, nodes)
            connection.default_order = relation.default_order
            plan.relations.append(ChildrenPlan(relation, connection))
            _link_back_references(plan, relation, connection)
            return _children(connection)
        target_type = _entity_type(get_named_type(definition.type))
        if isinstance(declaration, ToOne):
            target = self._object(target_type, nodes)
            nullable = not is_non_null_type(definition.type)
            return self._to_one_field(plan, declaration, target, nullable=nullable)
        assert isinstance(declaration, Tags)
        tags = TagsPlan(self._slot(), self._object(target_type, nodes))
        plan.relations.append(tags)
        return _tags(tags)

    def _to_one_field(
        self, plan: ObjectPlan, declaration: ToOne, target: ObjectPlan, *, nullable: bool
    ) -> Getter:
        plan.columns.add(declaration.foreign_key)
        to_one = ToOnePlan(self._slot(), target, declaration.foreign_key, nullable=nullable)
        if target.model is models.User:
            _join(plan, to_one)
        plan.relations.append(to_one)
        return _to_one(to_one)

    def _audit_field(
        self, plan: ObjectPlan, definition: GraphQLField, nodes: list[FieldNode]
    ) -> Getter:
        """An `AuditLogEntry` field its strawberry type resolves itself (schema/types.py)."""
        name = nodes[0].name.value
        if name == "changes":
            plan.columns.add("changes")
            return _changes
        if name == "entityId":
            plan.columns |= {"entity_type", "entity_id"}
            return _entity_id
        plan.columns.add("actor_id")
        target = self._object(_entity_type(get_named_type(definition.type)), nodes)
        to_one = ToOnePlan(self._slot(), target, "actor_id", nullable=True)
        plan.relations.append(to_one)
        return _to_one(to_one)

    def _column(self, plan: ObjectPlan, strawberry_field: Any, definition: GraphQLField) -> Getter:
        attribute = strawberry_field.python_name
        if strawberry_field.base_resolver is not None or not hasattr(plan.model, attribute):
            raise NotPlannedError(f"{plan.entity}.{attribute} has no plan declaration")
        plan.columns.add(attribute)
        read = operator.itemgetter(attribute)
        if get_named_type(definition.type).name == "DateTime":
            return _inlined(
                lambda row, run: _isoformat(read(row)), f"_isoformat(row[{attribute!r}])"
            )
        return _inlined(lambda row, run: read(row), f"row[{attribute!r}]")

    def _connection(
        self, entity: str, definition: GraphQLField, nodes: list[FieldNode], *, ordered: bool = True
    ) -> ConnectionPlan:
        connection_type = get_named_type(definition.type)
        assert isinstance(connection_type, GraphQLObjectType)
        plan = ConnectionPlan(self._slot(), entity, Arguments(definition, nodes[0]))
        if ordered:  # its page request is made before any SQL (Run._prepare)
            self._connections.append(plan)
        for key, field_nodes in self._collect(
            connection_type, [node.selection_set for node in nodes]
        ).items():
            plan.output.append((key, self._connection_field(plan, connection_type, field_nodes)))
        return plan

    def _connection_field(
        self, plan: ConnectionPlan, connection_type: GraphQLObjectType, nodes: list[FieldNode]
    ) -> ConnectionGetter:
        name = nodes[0].name.value
        if name == "__typename":
            return _constant_of_connection(connection_type.name)
        if name == "totalCount":
            plan.needs_count = True
            return _total_count
        field_type = get_named_type(connection_type.fields[name].type)
        assert isinstance(field_type, GraphQLObjectType)
        if name == "nodes":
            target = self._object(field_type, nodes)
            plan.objects.append(target)
            return _nodes(target)
        if name == "edges":
            return self._edges(plan, field_type, nodes)
        assert name == "pageInfo"
        return self._page_info(plan, field_type, nodes)

    def _edges(
        self, plan: ConnectionPlan, edge_type: GraphQLObjectType, nodes: list[FieldNode]
    ) -> ConnectionGetter:
        output: list[tuple[str, Callable[[Any, Any, Any], Any]]] = []
        for key, field_nodes in self._collect(
            edge_type, [node.selection_set for node in nodes]
        ).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                output.append((key, _edge_constant(edge_type.name)))
            elif name == "cursor":
                plan.needs_cursors = True
                output.append((key, _edge_cursor))
            elif name in _SEARCH_EDGE_FIELDS:
                plan.needs_snippets = plan.needs_snippets or name == "snippet"
                output.append((key, _edge_value(_SEARCH_EDGE_FIELDS[name])))
            else:
                target = self._object(
                    _entity_type(get_named_type(edge_type.fields[name].type)), field_nodes
                )
                plan.objects.append(target)
                output.append((key, _edge_node(target)))
        return _edge_list(output)

    def _page_info(
        self, plan: ConnectionPlan, info_type: GraphQLObjectType, nodes: list[FieldNode]
    ) -> ConnectionGetter:
        output: list[tuple[str, ConnectionGetter]] = []
        for key, field_nodes in self._collect(
            info_type, [node.selection_set for node in nodes]
        ).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                output.append((key, _constant_of_connection(info_type.name)))
            elif name == "hasNextPage":
                plan.needs_next = True
                output.append((key, _has_next_page))
            elif name == "hasPreviousPage":
                plan.needs_previous = True
                output.append((key, _has_previous_page))
            else:
                plan.needs_cursors = True
                output.append((key, _start_cursor if name == "startCursor" else _end_cursor))
        return lambda loaded, parent, run: {
            key: getter(loaded, parent, run) for key, getter in output
        }


def _link_back_references(
    parent: ObjectPlan, relation: Relation, connection: ConnectionPlan
) -> None:
    """Serve the children's to-one fields that point back at their parent from its own rows."""
    if relation.through_tags:
        return
    parent_key: Any = relation.parent_key()
    foreign_key = parent_key.key
    for child in connection.objects:
        for to_one in child.relations:
            if (
                isinstance(to_one, ToOnePlan)
                and to_one.foreign_key == foreign_key
                and to_one.target.entity == parent.entity
            ):
                to_one.parent = parent
                parent.columns |= to_one.target.columns
                parent.joined |= to_one.target.joined
                for label in to_one.joined or ():  # served by the parent's rows instead
                    del child.joined[label]
                to_one.joined = None


def _join(parent: ObjectPlan, to_one: ToOnePlan) -> None:
    """Read `to_one`'s row beside `parent`'s: each of its columns by a scalar subquery
    correlated with the parent's row. Its id (which says the row is there) is the foreign key
    itself: a key that is not null names a row that is there (every key to a user is a
    constraint, so no subquery needs to look)."""
    foreign_key = getattr(parent.model, to_one.foreign_key)
    to_one.joined = {}
    for column in sorted(to_one.target.columns):
        label = f"_{to_one.index}_{column}"
        if column == "id":
            parent.joined[label] = Joined(label, foreign_key)
        else:
            parent.joined[label] = joined(label, to_one.target.model, column, foreign_key)
        to_one.joined[label] = column


def _reads_variables(value: Any) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_reads_variables(item) for item in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_reads_variables(item.value) for item in value.fields)
    return False


def _connection_entity(connection_type: GraphQLNamedType) -> str:
    entity = connection_type.name.removesuffix("Connection")
    if entity not in NODE_MODELS:
        raise NotPlannedError(f"{connection_type.name} is not planned")
    return entity


def _entity_type(named: GraphQLNamedType) -> GraphQLObjectType:
    if not isinstance(named, GraphQLObjectType) or named.name not in NODE_MODELS:
        raise NotPlannedError(f"{named.name} is not planned")
    return named


def emit_write_result(
    target: ObjectPlan | ValuePlan | None,
    errors: dict[str, list[tuple[str, str]]],
    result: Any,
    run: Any,
) -> Any:
    """A write's answer: its row or value through `target`, its refusal's output, or (no
    target) the scalar it answered."""
    if target is None:
        return result
    if isinstance(result, Refusal):
        return {
            key: result.type_name if name == "__typename" else result.values[name]
            for key, name in errors[result.type_name]
        }
    if isinstance(result, Written):
        assert isinstance(target, ObjectPlan)
        return target.emit(result.row, run)
    assert isinstance(target, ValuePlan)
    return target.emit(result, run)


def _isoformat(value: Any) -> Any:
    return None if value is None else value.isoformat()


def _inlined(getter: Getter, expression: str, **names: Any) -> Getter:
    """`getter`, marked with the Python expression `ObjectPlan.compile_emit` inlines for it
    (and the `names` that expression reads, which must not clash with other getters')."""
    getter.inline = expression  # type: ignore[attr-defined]  # read back with getattr
    getter.inline_names = names  # type: ignore[attr-defined]
    return getter


def _attribute(name: str, is_date: bool) -> ValueGetter:
    read = operator.attrgetter(name)
    if is_date:
        return lambda value, run: _isoformat(read(value))
    return lambda value, run: read(value)


def _constant(value: str) -> Getter:
    return _inlined(lambda row, run: value, repr(value))


def _constant_of_connection(value: str) -> ConnectionGetter:
    return lambda loaded, parent, run: value


def _global_id(type_name: str) -> Getter:
    return _inlined(
        lambda row, run: encode_global_id(type_name, row["id"]),
        f"_encode({type_name!r}, row['id'])",
    )


# The AuditLogEntry fields with resolvers of their own, planned by `PlanBuilder._audit_field`.
_AUDIT_FIELDS = frozenset({"changes", "entityId", "actor"})


def _changes(row: Any, run: Any) -> Any:
    stored = row["changes"]
    if isinstance(stored, str):  # PostgreSQL's driver hands JSON over undecoded
        stored = orjson.loads(stored)
    return None if stored is None else audit.shown_changes(stored)


def _entity_id(row: Any, run: Any) -> str:
    return encode_global_id(row["entity_type"], row["entity_id"])


def _email(row: Any, run: Any) -> Any:
    return row["email"] if can_see_email(run.viewer, row["id"]) else None


def _to_one(plan: ToOnePlan) -> Getter:
    read_key = operator.itemgetter(plan.foreign_key)
    index, target = plan.index, plan.target
    if plan.nullable:
        # A null key, or a row the viewer may not see (or gone), is null: an audit entry's
        # actor, a top-level comment's parent.

        def nullable(row: Any, run: Any) -> Any:
            found = run.results[index].get(read_key(row))
            return None if found is None else target.emit(found, run)

        return nullable

    def missing(row: Any) -> Any:
        # A non-null foreign key without its row: let the executor say so.
        raise NotPlannedError(f"missing {target.entity} {read_key(row)}")

    def getter(row: Any, run: Any) -> Any:
        return target.emit(run.results[index].get(read_key(row)) or missing(row), run)

    # Found rows are never empty (they hold the id at least), so `or` only meets a miss.
    return _inlined(
        getter,
        f"_{id(target)}.emit(run.results[{index}].get(row[{plan.foreign_key!r}])"
        f" or _missing{id(target)}(row), run)",
        **{f"_{id(target)}": target, f"_missing{id(target)}": missing},
    )


def _tags(plan: TagsPlan) -> Getter:
    index, target = plan.index, plan.target
    return _inlined(
        lambda row, run: [target.emit(tag, run) for tag in run.results[index].get(row["id"], ())],
        f"[_{id(target)}.emit(tag, run) for tag in run.results[{index}].get(row['id'], ())]",
        **{f"_{id(target)}": target},
    )


def _children(plan: ConnectionPlan) -> Getter:
    index = plan.index
    return _inlined(
        lambda row, run: plan.emit(run.results[index], row["id"], run),
        f"_{id(plan)}.emit(run.results[{index}], row['id'], run)",
        **{f"_{id(plan)}": plan},
    )


def _total_count(loaded: Any, parent: Any, run: Any) -> int:
    count: int = loaded.counts.get(parent, 0)
    return count


def _nodes(target: ObjectPlan) -> ConnectionGetter:
    return lambda loaded, parent, run: [target.emit(row, run) for row in loaded.pages[parent].rows]


def _edge_list(output: list[tuple[str, Callable[[Any, Any, Any], Any]]]) -> ConnectionGetter:
    def getter(loaded: Any, parent: Any, run: Any) -> list[dict[str, Any]]:
        return [
            {key: edge_getter(row, loaded, run) for key, edge_getter in output}
            for row in loaded.pages[parent].rows
        ]

    return getter


def _edge_constant(value: str) -> Callable[[Any, Any, Any], Any]:
    return lambda row, loaded, run: value


def _edge_cursor(row: Any, loaded: Any, run: Any) -> str:
    cursor: str = loaded.cursor(row)
    return cursor


# A search hit's edge fields, and the keys its rows hold them under (Run._search).
_SEARCH_EDGE_FIELDS = {"rank": "search_rank", "snippet": "search_snippet"}


def _edge_value(key: str) -> Callable[[Any, Any, Any], Any]:
    read = operator.itemgetter(key)
    return lambda row, loaded, run: read(row)


def _edge_node(target: ObjectPlan) -> Callable[[Any, Any, Any], Any]:
    return lambda row, loaded, run: target.emit(row, run)


def _has_next_page(loaded: Any, parent: Any, run: Any) -> bool:
    page = loaded.pages[parent]
    if not page.request.backward and page.has_more:
        return True
    if page.request.before is None:
        return False
    return parent in loaded.beyond_next


def _has_previous_page(loaded: Any, parent: Any, run: Any) -> bool:
    page = loaded.pages[parent]
    if page.request.backward and page.has_more:
        return True
    if page.request.after is None:
        return False
    return parent in loaded.beyond_previous


def _start_cursor(loaded: Any, parent: Any, run: Any) -> str | None:
    rows = loaded.pages[parent].rows
    return loaded.cursor(rows[0]) if rows else None


def _end_cursor(loaded: Any, parent: Any, run: Any) -> str | None:
    rows = loaded.pages[parent].rows
    return loaded.cursor(rows[-1]) if rows else None
