"""GraphiQL served offline: the page at GET /graphql and its vendored assets under /graphql/static.

It opens on the README's example query and an `Authorization` template in its Headers tab.

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

# What GraphiQL opens on (unless the browser kept an earlier query): the README's first query,
# which runs on an empty database too, and how to sign in.
EXAMPLE_QUERY = (
    "{ posts(first: 5) { totalCount nodes { title author { username fullName } tags { name } } } }"
)
DEFAULT_QUERY = f"""# gql_blog: run this query with the \u25b6 button (or Ctrl-Enter).
#
# To sign in, run this mutation (after `gql-blog seed`, the first seeded user is demo1), then
# paste its token into the Authorization header in the Headers tab below:
#   mutation {{ login(input: {{username: "demo1", password: "demo-password"}}) {{
#     ... on AuthPayload {{ token }} ... on Error {{ message }} }} }}

{EXAMPLE_QUERY}
"""
# The Headers tab's template. The page sends no Authorization header while it still holds this
# placeholder (a placeholder token would run requests signed out, and refuse a websocket).
TOKEN_PLACEHOLDER = "Bearer <token from the login mutation>"
DEFAULT_HEADERS = json.dumps({"Authorization": TOKEN_PLACEHOLDER}, indent=2)

# graphiql_page fills in `{static}` and the `*_json` values; the script's braces are doubled.
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
    const placeholder = {placeholder_json};
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const send = GraphiQL.createFetcher({{
      url: endpoint,
      subscriptionUrl: `${{scheme}}//${{window.location.host}}${{endpoint}}`,
    }});
    // The header template is not a token: until one is pasted in, requests go signed out.
    const fetcher = (params, options) => {{
      const headers = Object.fromEntries(
        Object.entries(options?.headers ?? {{}}).filter(([, value]) => value !== placeholder),
      );
      return send(params, {{ ...options, headers }});
    }};
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {query_json},
        defaultHeaders: {headers_json},
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
        endpoint_json=_script_json(endpoint),
        placeholder_json=_script_json(TOKEN_PLACEHOLDER),
        query_json=_script_json(DEFAULT_QUERY),
        headers_json=_script_json(DEFAULT_HEADERS),
    )
    return HTMLResponse(page)


def _script_json(value: str) -> str:
    """`value` as a JavaScript string literal that is safe inside <script>."""
    # Inside <script>, "</" must not appear verbatim; JSON lets us write it as "<\\/".
    return json.dumps(value).replace("</", "<\\/")


def static_mount() -> Mount:
    """The route serving the vendored assets at STATIC_PATH."""
    files = StaticFiles(packages=[("gql_blog", "static/graphiql")])
    return Mount(STATIC_PATH, app=files, name="graphiql-static")
