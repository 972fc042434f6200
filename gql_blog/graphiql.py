"""GraphiQL served offline: the page at GET /graphql and its vendored assets under /graphql/static.

The assets in static/graphiql/ are the npm packages' own builds, copied unchanged (each with its
LICENSE.<package>): graphiql@3.9.0 (graphiql.min.js, graphiql.min.css; the UMD bundle includes the
graphql library, the graphql-ws client its subscriptions use, and web fonts), react@18.3.1 and
react-dom@18.3.1 (umd/*.production.min.js).
"""

import html
import json

from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC_PATH = "/graphql/static"
ENDPOINT_PATH = "/graphql"

# graphiql_page fills in `{static}` and `{endpoint_json}`; the script's braces are doubled.
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>gql_blog · GraphiQL</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{static}/graphiql.min.css">
  <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
  <script src="{static}/react.production.min.js"></script>
  <script src="{static}/react-dom.production.min.js"></script>
  <script src="{static}/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script>
    // Subscriptions go over graphql-transport-ws on the same path (the bundle has graphql-ws);
    // the Headers tab's Authorization travels in the connection_init payload.
    const endpoint = {endpoint_json};
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const fetcher = GraphiQL.createFetcher({{
      url: endpoint,
      subscriptionUrl: `${{scheme}}//${{window.location.host}}${{endpoint}}`,
    }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher,
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: false,
        defaultEditorToolsVisibility: "headers",
      }}),
    );
  </script>
</body>
</html>
"""


def graphiql_page(root_path: str = "") -> HTMLResponse:
    """The GraphiQL page for a server mounted at `root_path` (the ASGI scope's, usually "")."""
    endpoint = root_path + ENDPOINT_PATH
    page = _PAGE.format(
        static=html.escape(root_path + STATIC_PATH),
        # Inside <script>, "</" must not appear verbatim; JSON lets us write it as "<\\/".
        endpoint_json=json.dumps(endpoint).replace("</", "<\\/"),
    )
    return HTMLResponse(page)


def static_mount() -> Mount:
    """The route serving the vendored assets at STATIC_PATH."""
    files = StaticFiles(packages=[("gql_blog", "static/graphiql")])
    return Mount(STATIC_PATH, app=files, name="graphiql-static")
