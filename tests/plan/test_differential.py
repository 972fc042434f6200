"""The planned read path answers exactly as strawberry's executor: byte for byte, for every viewer.

Each request goes to the app with the planner twice (the first is planned on first sight of the
document, the second from the plans its cache entry keeps) and once to the app without it; the
three raw responses must be equal, and a valid query on planned root fields must be answered by
the planner both times.
Three corpora: (a) every read query the test suite spells out, (b) queries generated from the
schema with hypothesis-graphql, (c) the tricky shapes below. Each test runs a whole corpus for one
viewer over one blog, and reports every failing request at once.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tests.plan import corpus
from tests.plan.conftest import ROLES, Blog, Served
from tests.plan.differential import Outcome, Request, Twins, failures


@pytest.mark.parametrize("role", ROLES)
async def test_suite_queries_answer_alike(served: Served, role: str) -> None:
    twins, blog = served.twins, served.blog
    documents = corpus.suite_documents()
    outcomes = [
        await twins.compare(Request(query, corpus.suite_variables(query, blog)), role)
        for query in documents
    ]

    assert len(documents) >= 80  # the collection found the suite's queries
    assert not any(outcome.problems() for outcome in outcomes), failures(outcomes)
    assert sum(outcome.answered_first for outcome in outcomes) >= len(documents) // 2


@pytest.mark.parametrize("role", ROLES)
async def test_generated_queries_answer_alike(served: Served, role: str) -> None:
    twins, blog = served.twins, served.blog
    documents = corpus.generated_documents()
    outcomes = [
        await twins.compare(Request(corpus.with_global_ids(query, blog)), role)
        for query in documents
    ]

    assert not any(outcome.problems() for outcome in outcomes), failures(outcomes)
    # Many generated queries are valid, so the planner answers them, from the first request
    # (errors stay generic); how many moves with the schema, which the generator draws from (a
    # third at least).
    assert sum(outcome.answered_first for outcome in outcomes) >= len(documents) // 3


# --- (c) the tricky shapes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Id:
    """The global id of a blog row, sent as a variable's value."""

    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class CursorOf:
    """A cursor from the generic app's answer to `query` (for the same viewer), at `path`."""

    query: str
    path: tuple[str | int, ...]
    # Whose answer gives the cursor, when not the request's viewer (admins' only answers).
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    query: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    operation_name: str | None = None
    # Variables of an earlier, valid request of the same document, so `variables` (often bad
    # ones) reach a document the planner already has plans for (without it, they reach it first).
    teach: Mapping[str, Any] | None = None


FIRST_TWO_POSTS = "{ posts(first: 2) { edges { cursor } } }"
LAST_TWO_POSTS = "{ posts(last: 2) { edges { cursor } } }"
POSTS_BY_TITLE = "{ posts(first: 3, orderBy: [{field: TITLE}]) { edges { cursor } } }"
ALL_USERS = "{ users { edges { cursor } } }"
ANN_POSTS = '{ user(username: "ann") { posts(first: 2) { edges { cursor } } } }'
PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
PAGED_POSTS = f"""query($first: Int, $after: String, $last: Int, $before: String) {{
  posts(first: $first, after: $after, last: $last, before: $before) {{
    totalCount {PAGE_INFO} edges {{ cursor node {{ title createdAt }} }} }} }}"""
PAGED_USERS = f"""query($first: Int, $after: String, $last: Int, $before: String) {{
  users(first: $first, after: $after, last: $last, before: $before) {{
    {PAGE_INFO} nodes {{ username }} }} }}"""
NESTED_PAGES = f"""query($after: String, $before: String, $first: Int, $last: Int) {{
  users(first: 3) {{ nodes {{ username
    posts(first: $first, after: $after, last: $last, before: $before) {{
      totalCount {PAGE_INFO} edges {{ cursor node {{ title }} }} }} }} }} }}"""
FEED = """query($n: Int) { posts(first: $n) { nodes { id title author { username } tags { name }
  comments(first: 5) { nodes { content author { username } } } } } }"""
DIRECTIVES = """query($s: Boolean!, $i: Boolean!) {
  posts(first: 3) @include(if: $i) { nodes { title } }
  users(first: 2) { nodes { username @skip(if: $s) age @include(if: $i)
    posts(first: 1) @skip(if: $s) { totalCount } ...userBits @include(if: $s)
    ... on User @skip(if: $i) { fullName } } }
  viewer @skip(if: $i) { username } }
fragment userBits on User { isAdmin createdAt }"""
BOTH_DIRECTIVES = """query($s: Boolean!, $i: Boolean!) {
  tags { nodes { name posts @skip(if: $s) @include(if: $i) { totalCount } } } }"""
NESTED_ARGUMENTS = """query($n: Int, $w: CommentWhere, $o: [CommentOrder!], $pw: PostWhere) {
  posts(where: $pw) { nodes { title comments(first: $n, where: $w, orderBy: $o) {
    totalCount nodes { content author { username } } } } } }"""
ERRORS_UNDER_LIST = """query($n: Int, $after: String) {
  users(first: 4) { nodes { username posts(first: $n, after: $after) { nodes { title } } } } }"""
COMMENTS_UNDER_POSTS = """query($n: Int) {
  posts { nodes { title comments(first: $n) { totalCount nodes { content } } } } }"""
LOOKUP = "query($id: ID!) { post(id: $id) { title author { username } tags { name } } }"


def _nested_not(depth: int) -> dict[str, Any]:
    return {"title": {"eq": "x"}} if depth == 0 else {"not": _nested_not(depth - 1)}


# One level deeper than GQL_BLOG_MAX_FILTER_DEPTH allows.
TOO_DEEP = _nested_not(11)
TWO_OPERATIONS = """query Posts { posts(first: 2) { nodes { title } } }
query Users { users(first: 2) { nodes { username } } }"""

AUDIT_PAGE = f"""query($first: Int, $after: String, $where: AuditLogWhere) {{
  auditLog(first: $first, after: $after, where: $where) {{ __typename totalCount {PAGE_INFO}
    edges {{ cursor node {{ id __typename entityType entityId action changes createdAt
      actor {{ username email posts(first: 1) {{ totalCount nodes {{ title }} }} }} }} }} }} }}"""
FIRST_AUDIT_ENTRIES = "{ auditLog(first: 3) { edges { cursor } } }"
AUDIT_NODES = (
    """query($where: AuditLogWhere) { auditLog(first: 4, where: $where) { nodes { id } } }"""
)
ENTRY_NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on AuditLogEntry { action entityType changes actor { username } } } }"""

STATS = """query($uw: UserWhere, $pw: PostWhere) { __typename
  userStats(where: $uw) { __typename count averageAge minAge max: maxAge }
  postStats(where: $pw) { count publishedCount firstCreatedAt lastCreatedAt __typename } }"""
GROUPS = """query($by: [PostGroupField!]!, $first: Int, $where: PostWhere) {
  postGroups(groupBy: $by, first: $first, where: $where) { __typename count firstCreatedAt
    lastCreatedAt key { __typename published createdMonth
      author { username email posts(first: 1) { totalCount nodes { title } } }
      tag { name posts { totalCount } } } } }"""

SEARCH = f"""query($q: String!, $first: Int, $after: String, $last: Int, $before: String,
  $where: PostWhere) {{ searchPosts(query: $q, first: $first, after: $after, last: $last,
  before: $before, where: $where) {{ __typename totalCount {PAGE_INFO} nodes {{ id }}
    edges {{ __typename cursor rank snippet node {{ title author {{ username }} tags {{ name }}
      comments(first: 2) {{ totalCount nodes {{ content }} }} }} }} }} }}"""
WORDS = "title OR draft OR world"
FIRST_HITS = '{ searchPosts(query: "title OR draft OR world", first: 3) { edges { cursor } } }'
OTHER_HITS = '{ searchPosts(query: "hello", first: 1) { edges { cursor } } }'

CASES = [
    # Pages read beside their parents on PostgreSQL (arguments without variables): timestamps,
    # cursors, counts and pageInfo of the JSON rows, at two levels, and `last`.
    Case(
        "pages-beside-parents",
        """{ users(first: 3) { nodes { username createdAt
          posts(first: 2, orderBy: [{field: PUBLISHED_AT, direction: DESC}]) { totalCount
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { cursor node { title slug published createdAt updatedAt publishedAt
              tags { id name } author { username email }
              comments(last: 2) { totalCount pageInfo { hasPreviousPage startCursor }
                nodes { id content createdAt editedAt parent { id } author { username } }
              } } } } } } }""",
    ),
    # Threads and edits (issue 18): parent, replies at several levels, isReply, parent filters.
    Case(
        "threads",
        """{ posts { nodes { slug comments(where: {isReply: {eq: false}}) { totalCount
          nodes { id content editedAt parent { id } replies { totalCount
            pageInfo { hasNextPage endCursor }
            nodes { content parent { content author { username } }
              replies(orderBy: [{field: CREATED_AT, direction: DESC}]) { nodes { content
                parent { parent { content } } } } } } } } } } }""",
    ),
    Case(
        "thread-filters",
        """{ users { nodes { username
          replies: comments(where: {isReply: {eq: true}}) { totalCount nodes { content } }
          edited: comments(where: {editedAt: {isNull: false}}) { nodes { content editedAt } }
          answers: comments(where: {parent: {author: {username: {eq: "bob"}}}}) {
            nodes { content } } } } }""",
    ),
    Case(
        "replies-paged",
        """query($after: String) { posts(where: {slug: {eq: "hello-world"}}) { nodes {
          comments(where: {content: {eq: "Comment hello_bob"}}) { nodes {
            replies(first: 1, after: $after) { edges { cursor node { content } }
              pageInfo { hasNextPage hasPreviousPage } } } } } } }""",
        {
            "after": CursorOf(
                """{ posts(where: {slug: {eq: "hello-world"}}) { nodes {
                  comments(where: {content: {eq: "Comment hello_bob"}}) { nodes {
                    replies(first: 1) { pageInfo { endCursor } } } } } } }""",
                ("posts", "nodes", 0, "comments", "nodes", 0, "replies", "pageInfo", "endCursor"),
            )
        },
    ),
    Case(
        "reply-nodes",
        """query($ids: [ID!]!) { nodes(ids: $ids) { ... on Comment { content editedAt
          parent { content } replies { totalCount } } } }""",
        {
            "ids": [
                Id("comment", "reply_deep"),
                Id("comment", "reply_draft"),
                Id("comment", "hello_cyd"),
            ]
        },
    ),
    # Slugs and publishing times (issue 18): lookups, drafts, orderings with nulls, filters.
    Case(
        "post-by-slug",
        """{ hello: postBySlug(slug: "hello-world") { id slug publishedAt title
          author { username } }
        draft: postBySlug(slug: "draft-by-ann") { slug publishedAt }
        second: postBySlug(slug: "same-title-2") { title slug }
        missing: postBySlug(slug: "no-such-post") { id } }""",
    ),
    Case(
        "published-at-orderings",
        """{ asc: posts(orderBy: [{field: PUBLISHED_AT}]) { nodes { slug publishedAt } }
        desc: posts(orderBy: [{field: PUBLISHED_AT, direction: DESC}], first: 3) {
          pageInfo { hasNextPage endCursor } nodes { slug } }
        nullsFirst: posts(orderBy: [{field: PUBLISHED_AT, nulls: FIRST}]) { nodes { slug } }
        nested: users { nodes { username
          posts(orderBy: [{field: PUBLISHED_AT, direction: DESC}]) { nodes { slug } } } } }""",
    ),
    Case(
        "published-at-cursor",
        """query($after: String) { posts(first: 2, after: $after,
          orderBy: [{field: PUBLISHED_AT, nulls: FIRST}]) { nodes { slug publishedAt }
          pageInfo { hasNextPage hasPreviousPage } } }""",
        {
            "after": CursorOf(
                """{ posts(first: 2, orderBy: [{field: PUBLISHED_AT, nulls: FIRST}]) {
                  pageInfo { endCursor } } }""",
                ("posts", "pageInfo", "endCursor"),
            )
        },
    ),
    Case(
        "slug-and-published-at-filters",
        """{ bySlug: posts(where: {slug: {startsWith: "same-title"}}) { totalCount nodes { slug } }
        drafts: posts(where: {publishedAt: {isNull: true}}) { nodes { slug } }
        later: posts(where: {publishedAt: {gt: "2024-03-02T00:00:00+00:00"}}) { nodes { slug } }
        commented: users { nodes { username
          comments(where: {post: {slug: {eq: "hello-world"}}}) { totalCount } } } }""",
    ),
    # Aliases: the same field twice with different arguments, at the root and nested.
    Case(
        "root-aliases",
        """{ newest: posts(first: 2) { nodes { title } }
        byTitle: posts(first: 2, orderBy: [{field: TITLE, direction: DESC}]) { nodes { title } }
        everyone: users { totalCount } someone: user(username: "bob") { username }
        nobody: user(username: "nobody") { username } }""",
    ),
    Case(
        "nested-aliases",
        """{ posts(first: 4) { nodes { title
          newest: comments(first: 1) { nodes { content } }
          oldest: comments(last: 1) { nodes { content } }
          byId: comments(orderBy: [{field: ID, direction: DESC}]) { totalCount nodes { id } }
          login: author { name: username who: fullName } } } }""",
    ),
    Case("scalar-aliases", "{ users { nodes { a: username b: username c: id d: __typename } } }"),
    # Fragments and inline fragments, also on the Node interface.
    Case(
        "fragments",
        """query { posts(first: 3) { ...page } tags { ...tags } }
        fragment page on PostConnection { totalCount nodes { ...post } }
        fragment post on Post { id title author { ...user } }
        fragment user on User { username fullName }
        fragment tags on TagConnection { nodes { name posts { nodes { ...post } } } }""",
    ),
    Case(
        "inline-fragments",
        """{ posts(first: 3) { nodes { ... on Node { id } ... on Post { title
          author { ... on User { username } ... on Node { id } } } ... { published } } }
          viewer { ... on Node { __typename id } } }""",
    ),
    Case(
        "node-fragment-on-every-level",
        """fragment n on Node { id __typename }
        { users(first: 2) { nodes { ...n posts { nodes { ...n comments { nodes { ...n
          author { ...n } post { ...n tags { ...n } } } } } } } } }""",
    ),
    # @skip/@include with variables: every outcome (the planner keys its plans by them).
    Case("directives-false-false", DIRECTIVES, {"s": False, "i": False}),
    Case("directives-true-false", DIRECTIVES, {"s": True, "i": False}),
    Case("directives-false-true", DIRECTIVES, {"s": False, "i": True}),
    Case("directives-true-true", DIRECTIVES, {"s": True, "i": True}),
    Case("skip-and-include-kept", BOTH_DIRECTIVES, {"s": False, "i": True}),
    Case("skip-and-include-skipped", BOTH_DIRECTIVES, {"s": True, "i": True}),
    Case("skip-and-include-excluded", BOTH_DIRECTIVES, {"s": False, "i": False}),
    Case(
        "literal-directives",
        """{ posts(first: 2) { nodes { title @include(if: false) id @skip(if: false) } }
        users @skip(if: true) { totalCount } }""",
    ),
    Case(
        "directive-variable-missing",
        DIRECTIVES,
        {"s": True},
        teach={"s": True, "i": True},
    ),
    # __typename at every level.
    Case(
        "typename-everywhere",
        """{ __typename posts(first: 2) { __typename totalCount
          pageInfo { __typename hasNextPage } edges { __typename cursor node { __typename
          author { __typename posts(first: 1) { __typename nodes { __typename } } }
          tags { __typename name } comments { __typename edges { __typename
          node { __typename } } } } } }
          viewer { __typename } tag(name: "python") { __typename } }""",
    ),
    Case("typename-alone", "{ __typename }"),
    # Nested arguments given by variables.
    Case(
        "nested-variables",
        NESTED_ARGUMENTS,
        {
            "n": 1,
            "w": {"author": {"username": {"in": ["ann", "bob"]}}},
            "o": [{"field": "CREATED_AT", "direction": "DESC"}],
            "pw": {"comments": {"some": {"content": {"contains": "bob"}}}},
        },
    ),
    Case("nested-variables-null", NESTED_ARGUMENTS, {"n": None, "w": None, "o": None}),
    Case("nested-variables-omitted", NESTED_ARGUMENTS),
    Case(
        "variable-defaults",
        """query($n: Int = 2, $o: [PostOrder!] = [{field: TITLE}]) {
          posts(first: $n, orderBy: $o) { nodes { title } } }""",
    ),
    # where / orderBy at several levels.
    Case(
        "where-and-order-at-three-levels",
        """{ users(where: {age: {gte: 30}}, orderBy: [{field: AGE, direction: DESC},
          {field: USERNAME}]) { nodes { username age
          posts(where: {title: {contains: "T", mode: INSENSITIVE}},
            orderBy: [{field: TITLE}, {field: CREATED_AT, direction: DESC}]) {
            totalCount nodes { title
            comments(where: {author: {username: {ne: "ann"}}},
              orderBy: [{field: CREATED_AT}]) { totalCount nodes { content } } } } } } }""",
    ),
    Case(
        "nulls-ordering",
        """{ users(orderBy: [{field: AGE, nulls: FIRST}]) { nodes { username age } }
          byName: users(orderBy: [{field: FULL_NAME, direction: DESC, nulls: LAST}]) {
          edges { cursor node { fullName } } } }""",
    ),
    Case(
        "where-on-relations",
        """{ posts(where: {or: [{tags: {some: {name: {eq: "secret"}}}},
          {author: {fullName: {startsWith: "Ann"}}}], not: {title: {eq: "Same title"}}}) {
          totalCount nodes { title } }
          tags(where: {posts: {none: {published: {eq: true}}}}) { nodes { name } }
          users(where: {comments: {every: {post: {published: {eq: true}}}}}) {
            nodes { username } } }""",
    ),
    Case(
        "where-dates",
        """{ posts(where: {createdAt: {gt: "2024-03-01T12:00:00+00:00"}}) { nodes { title } }
          comments: posts { nodes { comments(where: {createdAt: {in: [
            "2024-03-02T12:00:00.250000+00:00"]}}) { totalCount } } } }""",
    ),
    # first/after/last/before with cursors from a previous response.
    Case(
        "after-cursor",
        PAGED_POSTS,
        {"first": 2, "after": CursorOf(FIRST_TWO_POSTS, ("posts", "edges", 1, "cursor"))},
    ),
    Case(
        "before-cursor",
        PAGED_POSTS,
        {"last": 2, "before": CursorOf(LAST_TWO_POSTS, ("posts", "edges", 0, "cursor"))},
    ),
    Case(
        "first-before-probes-next",
        PAGED_POSTS,
        {"first": 1, "before": CursorOf(LAST_TWO_POSTS, ("posts", "edges", 0, "cursor"))},
    ),
    Case(
        "last-after-probes-previous",
        PAGED_POSTS,
        {"last": 1, "after": CursorOf(FIRST_TWO_POSTS, ("posts", "edges", 0, "cursor"))},
    ),
    Case(
        "after-and-before",
        PAGED_USERS,
        {
            "first": 10,
            "after": CursorOf(ALL_USERS, ("users", "edges", 0, "cursor")),
            "before": CursorOf(ALL_USERS, ("users", "edges", 4, "cursor")),
        },
    ),
    Case(
        "after-last-row",
        PAGED_USERS,
        {"first": 3, "after": CursorOf(ALL_USERS, ("users", "edges", -1, "cursor"))},
    ),
    Case("first-zero", PAGED_POSTS, {"first": 0}),
    Case("last-only", PAGED_USERS, {"last": 2}),
    Case(
        "nested-after-cursor",
        NESTED_PAGES,
        {"first": 1, "after": CursorOf(ANN_POSTS, ("user", "posts", "edges", 0, "cursor"))},
    ),
    Case(
        "nested-before-cursor",
        NESTED_PAGES,
        {"last": 1, "before": CursorOf(ANN_POSTS, ("user", "posts", "edges", 1, "cursor"))},
    ),
    Case(
        "cursor-of-another-ordering",
        PAGED_POSTS,
        {"first": 2, "after": CursorOf(POSTS_BY_TITLE, ("posts", "edges", 0, "cursor"))},
        teach={"first": 2},
    ),
    # totalCount at several levels, edges beside nodes, merged selections.
    Case(
        "total-counts",
        """{ posts { totalCount nodes { comments { totalCount } author { posts { totalCount }
          comments { totalCount } } tags { posts { totalCount } } } }
          users { totalCount } tags { totalCount } }""",
    ),
    Case(
        "edges-beside-nodes",
        """{ posts(first: 3) { edges { cursor node { title } } nodes { id }
          pageInfo { endCursor } edges { node { id } } } }""",
    ),
    Case(
        "merged-selections",
        """{ posts(first: 3) { nodes { author { username } author { id } author { posts {
          totalCount } } author { posts { nodes { title } } } } nodes { tags { name } } }
          posts(first: 3) { totalCount } }""",
    ),
    Case(
        "deep-nesting",
        """{ tags { nodes { name posts(first: 2) { nodes { title author { username posts(last: 1) {
          nodes { comments { nodes { content post { title tags { name } } author { email
          } } } } } } } } } } }""",
    ),
    # Viewer-dependent answers: drafts, their comments and tags, e-mail addresses.
    Case(
        "viewer-and-visibility",
        """{ viewer { username email posts { totalCount nodes { title published } }
          comments { totalCount nodes { content } } }
          users { nodes { username email comments { totalCount } posts { totalCount } } }
          secret: tag(name: " Secret ") { name posts { totalCount nodes { title } } } }""",
    ),
    Case("lookup-draft", LOOKUP, {"id": Id("post", "ann_draft")}),
    Case("lookup-other-draft", LOOKUP, {"id": Id("post", "bob_draft")}),
    Case("lookup-published", LOOKUP, {"id": Id("post", "hello")}),
    Case("lookup-id-of-a-user", LOOKUP, {"id": Id("user", "ann")}),
    Case(
        "lookups",
        """{ user(username: "ANN") { username bio age } tag(name: "unused") { posts { totalCount } }
          missingTag: tag(name: "nope") { name } }""",
    ),
    Case("two-operations", TWO_OPERATIONS, operation_name="Users"),
    Case("two-operations-unnamed", TWO_OPERATIONS),
    Case("feed", FEED, {"n": 5}),
    Case(
        "several-root-fields",
        """query($id: ID!) { node(id: $id) { id ... on Post { title } }
          postStats { count } posts(first: 1) { nodes { title } } }""",
        {"id": Id("post", "hello")},
    ),
    # The audit log (admins only: FORBIDDEN for anyone else, as the executor answers).
    Case("audit-log", AUDIT_PAGE, {"first": 4}),
    Case("audit-log-default-page", "{ auditLog { nodes { action entityType } } }"),
    Case(
        "audit-log-after",
        AUDIT_PAGE,
        {
            "first": 2,
            "after": CursorOf(FIRST_AUDIT_ENTRIES, ("auditLog", "edges", 1, "cursor"), "admin"),
        },
    ),
    Case(
        "audit-log-where",
        AUDIT_PAGE,
        {
            "first": 5,
            "where": {
                "or": [{"action": "UPDATE"}, {"entityType": {"eq": "Post"}}],
                "not": {"actor": {"username": {"eq": "bob"}}},
            },
        },
    ),
    Case("audit-log-bad-cursor", AUDIT_PAGE, {"first": 2, "after": "bad"}, teach={"first": 2}),
    Case("audit-log-first-too-large", AUDIT_PAGE, {"first": 500}, teach={"first": 2}),
    Case(
        "audit-log-bad-where",
        AUDIT_PAGE,
        {"where": {"actor": {"id": {"in": ["garbage"]}}}},
        teach={"first": 2},
    ),
    Case(
        "audit-log-bad-date-variable",
        AUDIT_PAGE,
        {"where": {"createdAt": {"gt": "yesterday"}}},
        teach={"first": 2},
    ),
    Case("audit-log-beside-posts", "{ auditLog(first: 1) { totalCount } posts { totalCount } }"),
    # Stats and groups: the viewer's visible posts only.
    Case("stats", STATS),
    Case(
        "stats-where",
        STATS,
        {
            "uw": {"age": {"gte": 25}, "posts": {"some": {"published": {"eq": False}}}},
            "pw": {"tags": {"some": {"name": {"in": ["secret", "sql"]}}}},
        },
    ),
    Case("stats-match-nothing", STATS, {"uw": {"id": {"in": []}}, "pw": {"id": {"in": []}}}),
    Case(
        "stats-bad-where",
        "query($uw: UserWhere) { userStats(where: $uw) { count } }",
        {"uw": {"id": {"eq": "garbage"}}},
        teach={"uw": {"age": {"gt": 1}}},
    ),
    Case("groups-by-tag", GROUPS, {"by": ["TAG"]}),
    Case("groups-by-author-and-month", GROUPS, {"by": ["AUTHOR", "CREATED_MONTH"], "first": 3}),
    Case(
        "groups-by-everything",
        GROUPS,
        {"by": ["PUBLISHED", "TAG", "AUTHOR", "CREATED_MONTH", "TAG"], "first": 50},
    ),
    Case(
        "groups-where",
        GROUPS,
        {"by": ["AUTHOR"], "where": {"title": {"contains": "a", "mode": "INSENSITIVE"}}},
    ),
    Case("groups-first-zero", GROUPS, {"by": ["TAG"], "first": 0}),
    Case("groups-first-too-large", GROUPS, {"by": ["TAG"], "first": 500}, teach={"by": ["TAG"]}),
    Case("groups-first-negative", GROUPS, {"by": ["TAG"], "first": -1}, teach={"by": ["TAG"]}),
    Case("groups-by-nothing", GROUPS, {"by": []}, teach={"by": ["TAG"]}),
    Case(
        "groups-bad-where",
        GROUPS,
        {"by": ["TAG"], "where": {"author": {"id": {"eq": "garbage"}}}},
        teach={"by": ["TAG"]},
    ),
    # searchPosts: ranked pages of the viewer's visible posts, cursors of rank and id.
    Case("search", SEARCH, {"q": WORDS, "first": 5}),
    Case("search-default-page", '{ searchPosts(query: "title") { nodes { title } } }'),
    Case(
        "search-after",
        SEARCH,
        {
            "q": WORDS,
            "first": 2,
            "after": CursorOf(FIRST_HITS, ("searchPosts", "edges", 0, "cursor")),
        },
    ),
    Case(
        "search-last-before",
        SEARCH,
        {
            "q": WORDS,
            "last": 1,
            "before": CursorOf(FIRST_HITS, ("searchPosts", "edges", 1, "cursor")),
        },
    ),
    Case(
        "search-first-before",
        SEARCH,
        {
            "q": WORDS,
            "first": 1,
            "before": CursorOf(FIRST_HITS, ("searchPosts", "edges", 1, "cursor")),
        },
    ),
    Case(
        "search-where",
        SEARCH,
        {"q": WORDS, "where": {"author": {"username": {"eq": "ann"}}}},
    ),
    Case("search-no-words", SEARCH, {"q": "!!! ...", "first": 2}),
    Case("search-nothing-found", SEARCH, {"q": "zyzzyva", "first": 2}),
    Case("search-bad-cursor", SEARCH, {"q": WORDS, "after": "bad"}, teach={"q": WORDS}),
    Case(
        "search-cursor-of-another-search",
        SEARCH,
        {"q": WORDS, "before": CursorOf(OTHER_HITS, ("searchPosts", "edges", 0, "cursor"))},
        teach={"q": WORDS},
    ),
    Case("search-first-too-large", SEARCH, {"q": WORDS, "first": 500}, teach={"q": WORDS}),
    Case("search-first-and-last", SEARCH, {"q": WORDS, "first": 1, "last": 1}, teach={"q": WORDS}),
    Case(
        "search-bad-where",
        SEARCH,
        {"q": WORDS, "where": {"id": {"eq": "garbage"}}},
        teach={"q": WORDS},
    ),
    # Invalid inputs: the same errors, paths and null propagation.
    Case("first-too-large", PAGED_POSTS, {"first": 500}, teach={"first": 2}),
    Case("last-negative", PAGED_POSTS, {"last": -1}, teach={"last": 2}),
    Case("first-and-last", PAGED_POSTS, {"first": 1, "last": 1}),
    Case("bad-cursor", PAGED_POSTS, {"first": 2, "after": "not-a-cursor"}, teach={"first": 2}),
    Case("bad-id", LOOKUP, {"id": "bm90LWFuLWlk"}, teach={"id": Id("post", "hello")}),
    Case("id-not-base64", LOOKUP, {"id": "%%%"}, teach={"id": Id("post", "hello")}),
    Case("id-beyond-32-bits", LOOKUP, {"id": "UG9zdDo5OTk5OTk5OTk5OTk="}),
    Case(
        "bad-where",
        NESTED_ARGUMENTS,
        {"w": {"id": {"eq": "garbage"}}},
        teach={"w": {"id": {"in": []}}},
    ),
    Case(
        "where-too-deep",
        NESTED_ARGUMENTS,
        {"pw": TOO_DEEP},
        teach={"pw": {"not": {"title": {"eq": "x"}}}},
    ),
    Case("variable-of-wrong-type", PAGED_POSTS, {"first": "three"}, teach={"first": 2}),
    Case("variable-out-of-range", PAGED_POSTS, {"first": 2**40}, teach={"first": 2}),
    Case(
        "nested-first-too-large-under-list",
        ERRORS_UNDER_LIST,
        {"n": 500},
        teach={"n": 1},
    ),
    Case(
        "nested-bad-cursor-under-list",
        ERRORS_UNDER_LIST,
        {"n": 1, "after": "bad"},
        teach={"n": 1},
    ),
    Case(
        "nested-cursor-of-another-parent",
        ERRORS_UNDER_LIST,
        {"n": 1, "after": CursorOf(FIRST_TWO_POSTS, ("posts", "edges", 0, "cursor"))},
        teach={"n": 1},
    ),
    Case("nested-negative-under-list", COMMENTS_UNDER_POSTS, {"n": -1}, teach={"n": 2}),
    Case(
        "nested-bad-argument-literal", "{ posts { nodes { comments(first: 101) { totalCount } } } }"
    ),
    Case(
        "bad-date-literal",
        '{ posts(where: {createdAt: {gt: "yesterday"}}) { totalCount } }',
    ),
    Case(
        "nul-in-lookup",
        "query($s: String!) { user(username: $s) { id } }",
        {"s": "ab\x00"},
        teach={"s": "ann"},
    ),
    Case(
        "nul-in-tag-lookup",
        "query($s: String!) { tag(name: $s) { id } }",
        {"s": "ab\x00"},
        teach={"s": "python"},
    ),
]


async def _resolve(value: Any, twins: Twins, blog: Blog, role: str) -> Any:
    if isinstance(value, Id):
        return blog.global_id(value.kind, value.name)
    if isinstance(value, CursorOf):
        response = await twins.send(twins.generic, Request(value.query), value.role or role)
        found: Any = orjson.loads(response.body)["data"]
        for step in value.path:
            found = found[step]
        return found
    if isinstance(value, dict):
        return {key: await _resolve(item, twins, blog, role) for key, item in value.items()}
    if isinstance(value, list):
        return [await _resolve(item, twins, blog, role) for item in value]
    return value


async def _run_case(case: Case, twins: Twins, blog: Blog, role: str) -> list[Outcome]:
    outcomes = []
    if case.teach is not None:
        taught = await _resolve(case.teach, twins, blog, role)
        teaching = Request(case.query, taught, case.operation_name, label=f"{case.name} (teach)")
        outcomes.append(await twins.compare(teaching, role))
    variables = await _resolve(case.variables, twins, blog, role)
    request = Request(case.query, variables, case.operation_name, label=case.name)
    outcomes.append(await twins.compare(request, role))
    return outcomes


@pytest.mark.parametrize("role", ROLES)
async def test_tricky_shapes_answer_alike(served: Served, role: str) -> None:
    twins, blog = served.twins, served.blog
    outcomes = [outcome for case in CASES for outcome in await _run_case(case, twins, blog, role)]

    assert not any(outcome.problems() for outcome in outcomes), failures(outcomes)


# The read model refuses the input of the operation's one root field: the planner answers the
# error itself (the executor's answer, byte for byte), instead of running the request again.
ROOT_REFUSALS = frozenset(
    {
        "first-too-large",
        "last-negative",
        "bad-cursor",
        "bad-id",
        "id-not-base64",
        "where-too-deep",
        "stats-bad-where",
        "groups-first-too-large",
        "groups-first-negative",
        "groups-bad-where",
        "search-bad-cursor",
        "search-cursor-of-another-search",
        "search-first-too-large",
        "search-first-and-last",
        "search-bad-where",
    }
)
# The audit log's refusals: BAD_USER_INPUT for admins, FORBIDDEN (first) for anyone else, both
# answered by the planner itself.
AUDIT_REFUSALS = frozenset(
    {"audit-log-bad-cursor", "audit-log-first-too-large", "audit-log-bad-where"}
)


@pytest.mark.parametrize("role", ROLES)
async def test_refused_root_field_inputs_are_answered_by_the_planner(
    served: Served, role: str
) -> None:
    twins, blog = served.twins, served.blog
    cases = [case for case in CASES if case.name in ROOT_REFUSALS]
    refused = [(await _run_case(case, twins, blog, role))[-1] for case in cases]

    assert len(cases) == len(ROOT_REFUSALS)
    assert not any(outcome.problems() for outcome in refused), failures(refused)
    assert all(b"BAD_USER_INPUT" in outcome.planned.body for outcome in refused)
    assert all(outcome.answered_first for outcome in refused), failures(refused)
    assert all(outcome.answered_second for outcome in refused), failures(refused)


@pytest.mark.parametrize("role", ROLES)
async def test_audit_log_refusals_are_the_planners(served: Served, role: str) -> None:
    twins, blog = served.twins, served.blog
    cases = [case for case in CASES if case.name in AUDIT_REFUSALS]
    refused = [(await _run_case(case, twins, blog, role))[-1] for case in cases]

    assert len(cases) == len(AUDIT_REFUSALS)
    assert not any(outcome.problems() for outcome in refused), failures(refused)
    code = b"BAD_USER_INPUT" if role == "admin" else b"FORBIDDEN"
    assert all(code in outcome.planned.body for outcome in refused)
    assert all(outcome.answered_first for outcome in refused), failures(refused)
    assert all(outcome.answered_second for outcome in refused), failures(refused)


async def test_search_cases_find_and_mark_posts(served: Served) -> None:
    """The search cases compare real hits (MariaDB sees the committed blog too)."""
    case = next(case for case in CASES if case.name == "search")
    (outcome,) = await _run_case(case, served.twins, served.blog, "admin")

    assert not outcome.problems(), failures([outcome])
    hits = orjson.loads(outcome.planned.body)["data"]["searchPosts"]["edges"]
    assert len(hits) >= 3
    assert all("«" in hit["snippet"] for hit in hits)


# --- (d) tokens that sign no one in ---------------------------------------------------------

BAD_TOKEN_QUERIES = ["{ viewer { id } }", "{ posts(first: 3) { nodes { title } } }"]


@pytest.mark.parametrize("kind", ["unknown", "revoked"])
async def test_bad_token_warnings_answer_alike(served: Served, kind: str) -> None:
    twins = served.twins
    token = "no-such-token"
    if kind == "revoked":
        token = str(twins.tokens["author"])
        logout = await twins.generic.post(
            "/graphql",
            json={"query": "mutation { logout }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert logout.json()["data"] == {"logout": True}
    bad = dataclasses.replace(twins, tokens={kind: token})
    outcomes = [await bad.compare(Request(query), kind) for query in BAD_TOKEN_QUERIES]

    assert not any(outcome.problems() for outcome in outcomes), failures(outcomes)
    assert all(outcome.answered_first and outcome.answered_second for outcome in outcomes)
    assert all(b"extensions" in outcome.planned.body for outcome in outcomes)
    assert all(b"signed out" in outcome.planned.body for outcome in outcomes)
