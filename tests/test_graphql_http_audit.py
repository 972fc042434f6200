"""The graphql-http audit suite (npm `graphql-http`): every MUST, SHOULD and MAY passes.

The audits run in node against the app served by uvicorn on a real socket. Without node or the
npm package the test skips, except in CI (CI=true), where it fails; .ci/run installs the package.
"""

import asyncio
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from gql_blog.app import create_app
from gql_blog.config import Settings

ROOT = Path(__file__).resolve().parent.parent
AUDIT_SCRIPT = ROOT / "tests" / "graphql_http_audit.mjs"
AUDIT_SECONDS = 60


def _node() -> str:
    node = shutil.which("node")
    if node and (ROOT / "node_modules" / "graphql-http").is_dir():
        return node
    reason = "node or the graphql-http npm package is missing (run `npm ci`)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
async def served_url(settings: Settings) -> AsyncIterator[str]:
    """The app on a real socket; the socket listens before uvicorn starts, so no wait is needed."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(128)
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    yield f"http://127.0.0.1:{port}/graphql"
    server.should_exit = True
    await serving
    listening.close()


async def test_every_graphql_http_audit_passes(served_url: str) -> None:
    node = _node()
    audit = await asyncio.create_subprocess_exec(
        node, str(AUDIT_SCRIPT), served_url, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(audit.communicate(), AUDIT_SECONDS)
    assert audit.returncode == 0
    results = json.loads(output)
    assert len(results) > 30
    failed = [
        f"{result['id']} {result['name']}: {result['reason']}"
        for result in results
        if result["status"] != "ok"
    ]
    assert failed == []
