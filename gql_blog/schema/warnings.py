"""`extensions.warnings`: what a client should know about its request, e.g. an ignored header."""

from typing import Any

from strawberry.extensions import SchemaExtension


class RequestWarnings(SchemaExtension):
    """Adds the context's warnings to the response (once per operation, not per field)."""

    def get_results(self) -> dict[str, Any]:
        warnings = getattr(self.execution_context.context, "warnings", None)
        return {"warnings": list(warnings)} if warnings else {}
