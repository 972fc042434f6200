"""The benchmark's GraphQL queries, and which servers answer each.

The naive server (`bench/naive.py`) has no `where` arguments and no `searchPosts`: `filtered` and
`search` are measured on gql_blog alone, with no answer to compare and no ratio.
"""

from dataclasses import dataclass
from typing import Final

BOTH: Final = ("gql_blog", "naive")
GQL_BLOG_ONLY: Final = ("gql_blog",)


@dataclass(frozen=True, slots=True)
class Query:
    """A query's text and the names (as in `bench.load.SERVERS`) of the servers that answer it."""

    text: str
    servers: tuple[str, ...] = BOTH


# The 20 newest published posts with author, tags and the 5 newest comments with their authors.
FEED: Final = (
    "{ posts(first: 20) { nodes { id title author { username } tags { name }"
    " comments(first: 5) { nodes { content author { username } } } } } }"
)

# The same page, one level deeper: counts and nested pages under authors, tags and comments.
NESTED: Final = (
    "{ posts(first: 20) { totalCount nodes { title"
    " author { username posts(first: 3) { totalCount nodes { title } } }"
    " tags { name posts(first: 2) { nodes { title } } }"
    " comments(first: 5) { totalCount nodes { content author { username } post { title } } } } } }"
)

# Filters at three levels. On the full data (`gql-blog seed --seed 42`, 1,000 users): 2,278 of
# the 42,625 published posts carry the tag python or sql (each of the 40 tags is on about 5 % of
# posts) and have an author aged 30 or more (559 of the users; a quarter have no age); about a
# quarter of the comments contain "thanks" ("Great post, thanks!" is one of nine remarks), and
# 72 % are by a user with an age.
FILTERED: Final = (
    '{ posts(first: 20, where: { tags: { some: { name: { in: ["python", "sql"] } } },'
    " author: { age: { gte: 30 } } }) { totalCount nodes { title"
    ' author { username comments(first: 3, where: { content: { contains: "thanks" } })'
    " { totalCount nodes { content } } }"
    " tags { name }"
    " comments(first: 5, where: { author: { age: { isNull: false } } })"
    " { nodes { content author { username } } } } } }"
)

# Full-text search for a common word of the seed's topics ("async Python"): it is in the title
# or content of 10,132 of the 42,625 published posts, and every one of them is ranked for the page.
SEARCH: Final = (
    '{ searchPosts(query: "python", first: 20) { totalCount'
    " edges { rank snippet node { title author { username } } } } }"
)

QUERIES: Final = {
    "feed": Query(FEED),
    "nested": Query(NESTED),
    "filtered": Query(FILTERED, GQL_BLOG_ONLY),
    "search": Query(SEARCH, GQL_BLOG_ONLY),
}
