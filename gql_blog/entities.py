"""The entity types: each GraphQL type whose rows have global ids, and the model of its rows."""

from gql_blog import models

# Every type a global id may name.
NODE_MODELS: dict[str, type[models.Base]] = {
    "User": models.User,
    "Post": models.Post,
    "Comment": models.Comment,
    "Tag": models.Tag,
    # Admins only: read apart from the blog's content (the audit log connection, `node`).
    "AuditLogEntry": models.AuditLog,
}

# The blog's content: what `where` filters relate, visibility rules cover and the planner plans.
CONTENT_MODELS: dict[str, type[models.Base]] = {
    name: model for name, model in NODE_MODELS.items() if model is not models.AuditLog
}
