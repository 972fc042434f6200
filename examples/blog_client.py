"""A Python client of the gql_blog API (PyPI `gql` over httpx): register, sign in, post, read.

    pip install 'gql-blog[examples]'
    python examples/blog_client.py --url http://127.0.0.1:8000/graphql

It runs the operations in examples/operations/ (the ones graphql-codegen types for TypeScript),
validated against schema.graphql before they are sent, and exits 1 when a step fails.
"""

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import click
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError
from gql.transport.httpx import HTTPXAsyncTransport

HERE = Path(__file__).resolve().parent
SCHEMA = HERE.parent / "schema.graphql"
OPERATIONS = HERE / "operations"
PASSWORD = "example-password"


class ExampleFailed(click.ClickException):
    """A step answered something else than it should have."""


def operation(name: str, variables: dict[str, Any]) -> GraphQLRequest:
    """An operation of operations/, sent with its hash as an automatic persisted query."""
    request = GraphQLRequest((OPERATIONS / f"{name}.graphql").read_text())
    # gql sends the document as it prints it, so that text is what the hash is of.
    sent = request.payload["query"]
    persisted = {"version": 1, "sha256Hash": hashlib.sha256(sent.encode()).hexdigest()}
    return GraphQLRequest(
        request, variable_values=variables, extensions={"persistedQuery": persisted}
    )


def client(url: str, token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = HTTPXAsyncTransport(url=url, headers=headers, timeout=10)
    return Client(transport=transport, schema=SCHEMA.read_text())


def expect(result: dict[str, Any], typename: str) -> dict[str, Any]:
    """A mutation's result value of `typename`, or the failure with the error value's message."""
    if result["__typename"] != typename:
        raise ExampleFailed(f"expected {typename}, got {result['__typename']}: {result}")
    return result


async def run(url: str) -> None:
    username = f"example_{uuid.uuid4().hex[:8]}"
    async with client(url) as anonymous:
        account = {"username": username, "email": f"{username}@example.test", "password": PASSWORD}
        registered = await anonymous.execute(operation("register", {"input": account}))
        expect(registered["register"], "AuthPayload")
        click.echo(f"registered {username}")
        signed_in = await anonymous.execute(
            operation("sign_in", {"username": username, "password": PASSWORD})
        )
        token = expect(signed_in["login"], "AuthPayload")["token"]
        click.echo(f"signed in as {username}")
    async with client(url, token) as session:
        post = {
            "title": "Hello from gql",
            "content": "Posted by examples/blog_client.py.",
            "published": True,
            "tags": ["examples", "python"],
        }
        created = await session.execute(operation("create_post", {"input": post}))
        post_id = expect(created["createPost"], "Post")["id"]
        click.echo(f"created post {post_id}")
        feed = await session.execute(operation("feed", {"first": 5}))
    if feed["viewer"] != {"username": username}:
        raise ExampleFailed(f"the feed's viewer is {feed['viewer']}, not {username}")
    posts = feed["posts"]["nodes"]
    if not posts or posts[0]["id"] != post_id:
        raise ExampleFailed(f"the new post does not open the feed: {posts}")
    click.echo(f"feed ({feed['posts']['totalCount']} posts):")
    for item in posts:
        tags = " ".join(f"#{tag['name']}" for tag in item["tags"])
        click.echo(f"  {item['title']} by {item['author']['username']} {tags}".rstrip())


@click.command()
@click.option("--url", default="http://127.0.0.1:8000/graphql", help="The API's /graphql URL.")
def main(url: str) -> None:
    """Register, sign in, create a post and read the feed of a running gql_blog server."""
    try:
        asyncio.run(run(url))
    except (TransportError, OSError) as error:
        raise ExampleFailed(f"{type(error).__name__}: {error}") from None


if __name__ == "__main__":
    main()
