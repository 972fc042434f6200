"""`searchPosts`: ranked full-text search over posts; its edges carry a rank and a snippet."""

import dataclasses

import strawberry

from gql_blog import search
from gql_blog.arguments import page_request
from gql_blog.read_model import Page
from gql_blog.schema.connections import PageInfo, compile_filter
from gql_blog.schema.inputs import PostWhere
from gql_blog.schema.types import BlogInfo, Post


@strawberry.type(description="A post a search found, with its rank and a snippet.")
class PostSearchEdge:
    cursor: str
    node: Post
    rank: float = strawberry.field(description="How well the post matches; higher is better.")
    snippet: str = strawberry.field(
        description="About 30 words of the content around the first hit; hits marked «like this»."
    )


@strawberry.type(description="One page of search results, best match first.")
class PostSearchConnection:
    edges: list[PostSearchEdge]
    page_info: PageInfo
    source: strawberry.Private[search.PostSearch]

    @strawberry.field(description="The page's posts.")
    def nodes(self) -> list[Post]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many posts the search finds (counted only when asked).")
    async def total_count(self) -> int:
        return await self.source.count()


async def resolve_search_posts(
    info: BlogInfo,
    query: str,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    where: PostWhere | None = None,
) -> PostSearchConnection:
    """One page of the posts matching `query` that the viewer may see, best first."""
    context = info.context
    sizes = page_request(
        context.settings, search.PAGE_ORDERING, first=first, after=None, last=last, before=None
    )
    source = search.PostSearch(
        context.db,
        text=query,
        viewer=context.viewer,
        where=compile_filter(context.loaders, "Post", where),
    )
    request = search.SearchRequest(
        size=sizes.size,
        backward=sizes.backward,
        after=source.query.decode_argument("after", after),
        before=source.query.decode_argument("before", before),
    )
    page = await source.page(request)
    edges = []
    for hit in page.hits:
        context.loaders.remember(hit.post)
        edges.append(
            PostSearchEdge(
                cursor=source.encode_cursor(hit),
                node=Post.from_model(hit.post),
                rank=hit.rank,
                snippet=hit.snippet,
            )
        )
    position = dataclasses.replace(sizes, after=request.after, before=request.before)
    page_info = PageInfo(
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
        page=Page(rows=page.hits, has_more=page.has_more, request=position),
        source=source,
    )
    return PostSearchConnection(edges=edges, page_info=page_info, source=source)
