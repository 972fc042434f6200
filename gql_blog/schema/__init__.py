"""The GraphQL schema: strawberry types over the ORM models."""

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from gql_blog.schema.account_mutations import AccountMutation
from gql_blog.schema.content_mutations import ContentMutation
from gql_blog.schema.errors import MaskUnexpectedErrors
from gql_blog.schema.metrics import OperationMetrics
from gql_blog.schema.query import Query
from gql_blog.schema.types import Comment, Post, Tag, User
from gql_blog.schema.warnings import RequestWarnings


class BlogSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # MaskUnexpectedErrors logs what is unexpected, with its error id; the rest is the
        # client's mistake and is answered, not logged as a server error.
        return


schema = BlogSchema(
    query=Query,
    mutation=merge_types("Mutation", (AccountMutation, ContentMutation)),
    types=[User, Post, Comment, Tag],
    # Parsing and validating a document once per distinct query text, not once per request.
    extensions=[
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        OperationMetrics,
        RequestWarnings,
        MaskUnexpectedErrors,
    ],
)

__all__ = ["schema"]
