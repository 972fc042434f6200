"""What a read may cost the database: the rows its filters, counts, stats, groups and searches
may read, estimated from the tables' row counts (row_counts.py). GraphQL-free: the cost model
(schema/limits.py) calls it with plain `where` values, as the client wrote them.

A row read weighs less than a row returned (which counts 1 in the cost), by what the database
does with it; measured on SQLite and PostgreSQL with 40,000 posts (issue 19): a case-insensitive
substring test of a post costs 7 to 12 µs, about what a returned row costs the server.
- `PATTERN_ROW`: a row tested by a substring, prefix, suffix or case-insensitive filter — no
  index serves those, and the test reads (for INSENSITIVE, lower-cases) the whole text.
- `PROBE_ROW`: a row a relation filter reaches through an index: an EXISTS per outer row.
- `SCAN_ROW`: a row a count, a stat or a plain (comparison) filter reads.
An indexed equality (`id: {eq}` or `id: {in: [...]}` beside a filter's other conditions) prices
only the rows it matches.
"""

from collections.abc import Mapping
from typing import Any

from gql_blog.row_counts import POST_TAGS, RowCounts
from gql_blog.where import relation_of

PATTERN_ROW = 1.0
PROBE_ROW = 0.1
SCAN_ROW = 0.01
_PATTERN_OPERATORS = frozenset({"contains", "startsWith", "endsWith"})
_QUANTIFIERS = ("some", "none", "every")


def filter_reads(entity: str, where: Any, rows: float, counts: RowCounts) -> float:
    """The weighted rows a filter of `entity` reads when `rows` of it are in scope.

    Each level of the filter tests its rows (as patterns if any of its fields is a pattern
    filter, else as a scan); each relation filter probes, per outer row, the related rows (one
    for a to-one relation, the average fan-out for a to-many one), and tests them in turn.
    Iterative: a `where` from variables may nest as deep as the client likes.
    """
    probes = 0.0
    scopes: list[tuple[float, bool]] = []
    pending: list[tuple[str, Any, float]] = [(entity, where, rows)]
    while pending:
        scope_entity, scope_where, scope_rows = pending.pop()
        scope_rows = min(scope_rows, _id_matches(scope_where, scope_rows))
        is_pattern = False
        for level in _same_entity_levels(scope_where):
            for key, value in level.items():
                relation = relation_of(scope_entity, key)
                if relation is None:
                    is_pattern = is_pattern or _is_pattern(value)
                    continue
                target, to_many = relation
                fanout = counts.fanout(scope_entity, target) if to_many else 1.0
                for inner in _inner_filters(value, to_many=to_many):
                    probes += scope_rows * fanout * PROBE_ROW
                    pending.append((target, inner, scope_rows * fanout))
        scopes.append((scope_rows, is_pattern))
    tested = sum(rows * (PATTERN_ROW if pattern else SCAN_ROW) for rows, pattern in scopes)
    return probes + tested


def connection_reads(
    entity: str,
    where: Any,
    scope: float,
    counts: RowCounts,
    *,
    page: int,
    counted: bool,
) -> float:
    """What a connection's statements read beyond the page they return: its `totalCount`
    counts every row in scope; with a filter, both the count and the page (which may scan
    the scope for rows that match) test every row in scope."""
    if not where:
        return scope * SCAN_ROW if counted else 0.0
    statements = (1 if page > 0 else 0) + (1 if counted else 0)
    return statements * filter_reads(entity, where, scope, counts)


def aggregate_reads(entity: str, where: Any, counts: RowCounts, *, through_tags: bool) -> float:
    """A stat or group over every row of `entity` a filter keeps (through post_tags when it
    groups by tag)."""
    reads = filter_reads(entity, where, counts.of(entity), counts)
    if through_tags:
        reads += counts.table(POST_TAGS) * SCAN_ROW
    return reads


def search_reads(where: Any, counts: RowCounts) -> float:
    """A full-text search: the index may match (and the ranking score) every post."""
    posts = counts.of("Post")
    reads = posts * PROBE_ROW
    if where:
        reads += filter_reads("Post", where, posts, counts)
    return reads


def relation_depth(entity: str, where: Any) -> tuple[int, str]:
    """How many relation filters nest inside each other at most, and the path to the deepest
    (as the client wrote it, e.g. `comments.some.author.posts`)."""
    deepest = (0, "")
    pending: list[tuple[str, Any, int, str]] = [(entity, where, 0, "")]
    while pending:
        scope_entity, scope_where, depth, path = pending.pop()
        deepest = max(deepest, (depth, path))
        for level, level_path in _same_entity_levels_with_paths(scope_where, path):
            for key, value in level.items():
                relation = relation_of(scope_entity, key)
                if relation is None:
                    continue
                target, to_many = relation
                key_path = f"{level_path}.{key}" if level_path else key
                for quantifier, inner in _inner_filters_with_keys(value, to_many=to_many):
                    inner_path = f"{key_path}.{quantifier}" if quantifier else key_path
                    pending.append((target, inner, depth + 1, inner_path))
    return deepest


def _id_matches(where: Any, rows: float) -> float:
    """The rows an indexed `id` equality or list at the filter's top level (ANDed with the
    rest) lets through at most; `rows` when it has none."""
    ids = where.get("id") if isinstance(where, Mapping) else None
    if not isinstance(ids, Mapping):
        return rows
    if "eq" in ids:
        return 1.0
    listed = ids.get("in")
    return float(len(listed)) if isinstance(listed, list) else rows


def _is_pattern(value: Any) -> bool:
    return isinstance(value, Mapping) and (
        not _PATTERN_OPERATORS.isdisjoint(value) or value.get("mode") == "INSENSITIVE"
    )


def _same_entity_levels(where: Any) -> list[Mapping[str, Any]]:
    return [level for level, _ in _same_entity_levels_with_paths(where, "")]


def _same_entity_levels_with_paths(where: Any, path: str) -> list[tuple[Mapping[str, Any], str]]:
    """The filter and every `and`/`or`/`not` inside it on the same entity, with their paths."""
    levels: list[tuple[Mapping[str, Any], str]] = []
    pending = [(where, path)]
    while pending:
        level, level_path = pending.pop()
        if not isinstance(level, Mapping):
            continue
        levels.append((level, level_path))
        prefix = f"{level_path}." if level_path else ""
        for key in ("and", "or"):
            items = level.get(key)
            if isinstance(items, list):
                pending.extend((item, f"{prefix}{key}[{n}]") for n, item in enumerate(items))
        if "not" in level:
            pending.append((level["not"], f"{prefix}not"))
    return levels


def _inner_filters(value: Any, *, to_many: bool) -> list[Any]:
    return [inner for _, inner in _inner_filters_with_keys(value, to_many=to_many)]


def _inner_filters_with_keys(value: Any, *, to_many: bool) -> list[tuple[str, Any]]:
    if not to_many:
        return [("", value)]
    if not isinstance(value, Mapping):
        return []
    return [(quantifier, value[quantifier]) for quantifier in _QUANTIFIERS if quantifier in value]
