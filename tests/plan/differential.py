"""Differential runs: one request to the planner's app (twice) and to the generic app, compared.

The planner's app plans a document on first sight: its first request is planned from a new entry
of the document cache, the second from the plans that entry then keeps. All three raw bodies and
status codes must be equal byte for byte. The one thing allowed to differ is the random id of a
masked internal error, which every response draws anew (on either path); it is replaced by a
placeholder before comparing.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
)

from gql_blog.plan.planner import Planner

# The root fields the planner covers; every other root field runs on strawberry's executor.
PLANNED_ROOT_FIELDS = frozenset(
    {
        "posts",
        "users",
        "tags",
        "post",
        "postBySlug",
        "user",
        "tag",
        "viewer",
        "node",
        "nodes",
        "auditLog",
        "userStats",
        "postStats",
        "postGroups",
        "searchPosts",
        "__typename",
    }
)
_ERROR_ID = re.compile(rb'"errorId":"([0-9a-f]{32})"')


@dataclass(frozen=True, slots=True)
class Request:
    query: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    operation_name: str | None = None
    label: str = ""  # what the request is about, for failure reports


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes

    def comparable(self) -> tuple[int, bytes]:
        body = self.body
        for error_id in _ERROR_ID.findall(body):
            body = body.replace(error_id, b"<error id>")
        return self.status, body

    def has_errors(self) -> bool:
        if self.status == 0:
            return True
        value = orjson.loads(self.body)
        return not isinstance(value, dict) or "errors" in value

    def __str__(self) -> str:
        return f"{self.status} {self.body.decode(errors='replace')}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The three responses to one request, and whether the planner answered the first two."""

    request: Request
    role: str
    first: Response
    planned: Response
    generic: Response
    answered_first: bool
    answered_second: bool

    @property
    def expects_planning(self) -> bool:
        """A valid query on planned root fields only: both its requests must be planned."""
        if self.generic.status != 200 or self.generic.has_errors():
            return False
        names = root_field_names(self.request.query, self.request.operation_name)
        return names is not None and names <= PLANNED_ROOT_FIELDS

    def problems(self) -> list[str]:
        found = []
        generic = self.generic.comparable()
        if self.first.comparable() != generic:
            found.append("the planner app's first response differs from the generic one")
        if self.planned.comparable() != generic:
            found.append("the planner app's second response differs from the generic one")
        if self.expects_planning and not self.answered_first:
            found.append("the planner did not answer the first request (a new document)")
        if self.expects_planning and not self.answered_second:
            found.append("the planner did not answer the second request")
        return found

    def report(self) -> str:
        variables = orjson.dumps(dict(self.request.variables)).decode()
        return "\n".join(
            [
                f"{self.request.label or 'request'}, viewer {self.role}: "
                + "; ".join(self.problems()),
                f"query: {self.request.query.strip()}",
                f"variables: {variables}; operationName: {self.request.operation_name}",
                f"planner app, 1st: {self.first}",
                f"planner app, 2nd: {self.planned}",
                f"generic app:      {self.generic}",
            ]
        )


@dataclass(slots=True)
class Twins:
    """The app with the planner and the app without it, over the same rows."""

    planned: httpx.AsyncClient
    generic: httpx.AsyncClient
    planner: Planner
    tokens: dict[str, str | None]

    async def send(self, client: httpx.AsyncClient, request: Request, role: str) -> Response:
        token = self.tokens[role]
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        body: dict[str, Any] = {"query": request.query, "variables": dict(request.variables)}
        if request.operation_name is not None:
            body["operationName"] = request.operation_name
        try:
            response = await client.post("/graphql", json=body, headers=headers)
        except Exception as error:  # an exception escaping the app is a failure to report
            return Response(0, f"exception escaped the app: {error!r}".encode())
        return Response(response.status_code, response.content)

    async def compare(self, request: Request, role: str) -> Outcome:
        answered = self.planner.answered
        first = await self.send(self.planned, request, role)
        answered_first = self.planner.answered == answered + 1
        answered = self.planner.answered
        planned = await self.send(self.planned, request, role)
        answered_second = self.planner.answered == answered + 1
        generic = await self.send(self.generic, request, role)
        return Outcome(request, role, first, planned, generic, answered_first, answered_second)


def failures(outcomes: list[Outcome]) -> str:
    """Every outcome with a problem, reported with its query and bodies."""
    reports = [outcome.report() for outcome in outcomes if outcome.problems()]
    return f"{len(reports)} of {len(outcomes)} requests failed:\n\n" + "\n\n".join(reports)


def root_field_names(query: str, operation_name: str | None) -> set[str] | None:
    """The root field names (fragments inlined, directives ignored); None for no one query."""
    try:
        document = parse(query)
    except GraphQLSyntaxError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [d for d in operations if d.name and d.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    names: set[str] = set()
    _collect_names(operations[0].selection_set, fragments, names, set())
    return names


def _collect_names(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    names: set[str],
    seen: set[str],
) -> None:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            _collect_names(selection.selection_set, fragments, names, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                _collect_names(fragment.selection_set, fragments, names, seen)
