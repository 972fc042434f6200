"""The differential corpus: the test suite's queries and queries generated from the schema.

The hand-written tricky shapes live beside their test, in `test_differential.py`.
"""

import ast
import functools
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import graphql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries

from gql_blog.schema import schema
from tests.plan.conftest import Blog

TESTS = Path(__file__).resolve().parent.parent
_PLACEHOLDER = re.compile(r"@@(post|user|tag|comment):(\w+)@@")


# --- (a) every read query of the test suite -----------------------------------------------------


@functools.cache
def suite_documents() -> tuple[str, ...]:
    """Every query document (no mutation) that the test suite spells out, once each.

    Two sources, so none is maintained by hand: every string literal in tests/**/*.py that
    parses as a GraphQL query document, and every module-level string of the test modules
    (imported, which resolves documents built with f-strings, such as test_pagination's USERS).
    Documents assembled inside a test function at run time (f-strings with loop values, `%`
    templates) are not collected; (c) in test_differential.py covers their shapes.
    """
    found: dict[str, None] = {}
    for path in sorted(TESTS.rglob("*.py")):
        if path.parent.name == "plan":
            continue
        found.update(dict.fromkeys(_literal_documents(path)))
        if path.name.startswith("test_"):
            found.update(dict.fromkeys(_module_documents(path)))
    return tuple(found)


def _literal_documents(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and _is_query_document(node.value):
            yield node.value


def _module_documents(path: Path) -> Iterator[str]:
    name = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
    for value in vars(importlib.import_module(name)).values():
        if isinstance(value, str) and _is_query_document(value):
            yield value


def _is_query_document(text: str) -> bool:
    if not text.lstrip().startswith(("{", "query")):
        return False
    try:
        document = graphql.parse(text)
    except graphql.GraphQLSyntaxError:
        return False
    operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    return bool(operations) and all(
        operation.operation is graphql.OperationType.QUERY for operation in operations
    )


def suite_variables(document: str, blog: Blog) -> dict[str, Any]:
    """Values for the variables the suite's documents declare, by name; others stay unset."""
    values: dict[str, Any] = {
        "n": 3,
        "first": 2,
        "id": blog.global_id("post", "hello"),
        "ids": [
            blog.global_id("post", "hello"),
            blog.global_id("user", "ann"),
            blog.global_id("comment", "draft_ann"),
            blog.global_id("post", "ann_draft"),
            blog.global_id("tag", "secret"),
        ],
        "name": "python",
        "username": "ann",
        "slug": "draft-by-ann",
        "s": "ann",
        "query": "world",
        "ages": [30, 40],
        "groupBy": ["AUTHOR", "TAG"],
    }
    operations = [
        d
        for d in graphql.parse(document).definitions
        if isinstance(d, graphql.OperationDefinitionNode)
    ]
    declared = {
        definition.variable.name.value
        for operation in operations
        for definition in operation.variable_definitions or ()
    }
    return {name: value for name, value in values.items() if name in declared}


# --- (b) queries generated from the served schema -----------------------------------------------

GENERATED_ROOT_FIELDS = ["posts", "users", "tags", "post", "postBySlug", "user", "tag", "viewer"]
GENERATED_EXAMPLES = 50

# Scalars drawn from the blog's own values (ids are placeholders, replaced per test by the rows'
# global ids), so generated filters match rows and lookups find them; a few bad values too.
_IDS = [
    "@@post:hello@@",
    "@@post:ann_draft@@",
    "@@post:bob_draft@@",
    "@@user:ann@@",
    "@@tag:secret@@",
    "@@comment:draft_ann@@",
    "not-an-id",
]
_STRINGS = ["ann", "bob", "Same title", "python", "secret", "Comment", "", "é", "Ünï"]
_STRINGS += ["hello-world", "draft-by-ann"]  # slugs
_DATETIMES = ["2024-03-01T12:00:00+00:00", "2024-03-02T12:00:00.250000+00:00", "2024-03-04"]
_SCALARS = {
    "ID": st.sampled_from(_IDS).map(nodes.String),
    "String": st.sampled_from(_STRINGS).map(nodes.String),
    "Int": st.one_of(st.integers(0, 4), st.sampled_from([-1, 101])).map(nodes.Int),
    "DateTime": st.sampled_from(_DATETIMES).map(nodes.String),
}
_CURSOR_ARGUMENTS = frozenset({"after", "before"})


def _print_query(document: graphql.DocumentNode) -> str:
    # Generated cursors are never real ones; drop most of them so most queries are valid (the
    # hand-written cases and the bad strings that remain cover cursors).
    class DropCursors(graphql.Visitor):
        def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
            if node.name.value in _CURSOR_ARGUMENTS and isinstance(
                node.value, graphql.StringValueNode
            ):
                return None if node.value.value == "ann" else graphql.REMOVE
            return None

    return graphql.print_ast(graphql.visit(document, DropCursors()))


@functools.cache
def generated_documents() -> tuple[str, ...]:
    """GENERATED_EXAMPLES queries on the planned root fields, the same on every run."""
    found: list[str] = []

    @settings(
        max_examples=GENERATED_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        queries(
            schema._schema,
            fields=GENERATED_ROOT_FIELDS,
            custom_scalars=_SCALARS,
            print_ast=_print_query,
        )
    )
    def collect(query: str) -> None:
        found.append(query)

    collect()
    return tuple(dict.fromkeys(found))


def with_global_ids(query: str, blog: Blog) -> str:
    """`query` with each id placeholder replaced by the blog row's global id."""
    return _PLACEHOLDER.sub(lambda match: blog.global_id(match[1], match[2]), query)
