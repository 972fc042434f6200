"""Look-ahead over a connection's selection: which fields its nodes ask for.

A connection that knows its nodes want `author` loads every author of the page in one batch
before it builds the nodes; each `author` then resolves without an awaitable (graphql-core's
async path costs about twice its sync path), and all siblings resolve alike, so no parent's
children ever dispatch in a batch of their own.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.types import Info

from gql_blog.schema.context import Context


def node_fields(info: Info[Context, None]) -> frozenset[str]:
    """Names of the fields selected on the nodes (`nodes`, `edges.node`) of this connection."""
    raw: GraphQLResolveInfo[Any] = info._raw_info  # strawberry keeps graphql-core's info here
    cache = info.context.lookahead
    key = id(raw.field_nodes[0])
    found = cache.get(key)
    if found is None:
        found = cache[key] = frozenset(_node_field_names(raw))
    return found


def _node_field_names(raw: GraphQLResolveInfo[Any]) -> set[str]:
    names: set[str] = set()
    for connection_node in raw.field_nodes:
        for child in selected_fields(connection_node.selection_set, raw.fragments):
            if child.name.value == "nodes":
                names.update(_names(child.selection_set, raw.fragments))
            elif child.name.value == "edges":
                for edge_field in selected_fields(child.selection_set, raw.fragments):
                    if edge_field.name.value == "node":
                        names.update(_names(edge_field.selection_set, raw.fragments))
    return names


def _names(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[str]:
    return (field.name.value for field in selected_fields(selection_set, fragments))


def selected_fields(
    selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of a selection set, fragments spread in, each fragment once however often it
    is spread (a second spread of it adds the same fields), as graphql-core collects fields."""
    spread: set[str] = set()
    pending = [selection_set] if selection_set is not None else []
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in spread:
                    spread.add(name)
                    pending.append(fragment.selection_set)
