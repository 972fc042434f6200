"""Check a server in trusted-documents mode against graphql-codegen's persisted-documents.json.

    GQL_BLOG_TRUSTED_DOCUMENTS=examples/generated/client/persisted-documents.json gql-blog serve
    python examples/trusted_documents.py --url http://127.0.0.1:8000/graphql \\
        --documents examples/generated/client/persisted-documents.json

A listed document runs by its key alone, as the client preset's generated code sends it; a
document that is not listed is refused. Exits 1 when the server does otherwise.
"""

import json
from pathlib import Path
from typing import Any

import click
import httpx


class CheckFailed(click.ClickException):
    """The server answered something else than trusted-documents mode should."""


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.post(url, json=body, timeout=10).json()
    return answer


@click.command()
@click.option("--url", default="http://127.0.0.1:8000/graphql", help="The API's /graphql URL.")
@click.option(
    "--documents",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The persisted-documents.json the server was started with.",
)
def main(url: str, documents: Path) -> None:
    """Run a listed document by its key, and see an unlisted one refused."""
    listed = json.loads(documents.read_text())
    key = next(key for key, text in listed.items() if "query Feed" in text)
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": key}}
    feed = post(url, {"operationName": "Feed", "extensions": persisted})
    if feed.get("errors") or "posts" not in (feed.get("data") or {}):
        raise CheckFailed(f"the listed Feed document did not run: {feed}")
    click.echo(f"ran Feed by its key {key[:20]}…: {feed['data']['posts']['totalCount']} posts")
    other = post(url, {"query": "{ __typename }"})
    codes = [error.get("extensions", {}).get("code") for error in other.get("errors") or []]
    if codes != ["FORBIDDEN"]:
        raise CheckFailed(f"an unlisted document was not refused: {other}")
    click.echo("refused an unlisted document (FORBIDDEN)")


if __name__ == "__main__":
    main()
