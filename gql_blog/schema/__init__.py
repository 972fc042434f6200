"""The GraphQL schema: strawberry types over the ORM models."""

from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, GraphQLSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from gql_blog.schema.account_mutations import AccountMutation
from gql_blog.schema.content_mutations import ContentMutation
from gql_blog.schema.errors import MaskUnexpectedErrors
from gql_blog.schema.limits import QueryLimits
from gql_blog.schema.metrics import OperationMetrics
from gql_blog.schema.query import Query
from gql_blog.schema.subscription import Subscription
from gql_blog.schema.types import Comment, Post, Tag, User
from gql_blog.schema.warnings import RequestWarnings


class BlogExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's executor; with introspection off, variable errors suggest no names."""

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        settings = getattr(context_value, "settings", None)
        if settings is not None and not settings.introspection:
            kwargs["hide_suggestions"] = True
        return super().build(schema, document, root_value, context_value, *args, **kwargs)


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
    subscription=Subscription,
    types=[User, Post, Comment, Tag],
    execution_context_class=BlogExecutionContext,
    # QueryLimits parses and validates once per distinct query text (in the app's byte-bounded
    # cache) and refuses what is over a limit. It comes after MaskUnexpectedErrors so that it
    # sees a parse that failed on recursion before that is masked (hooks unwind in reverse).
    extensions=[OperationMetrics, RequestWarnings, MaskUnexpectedErrors, QueryLimits],
)

__all__ = ["schema"]
