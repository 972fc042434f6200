"""The HTTP protocol `gql-blog serve` runs: uvicorn's httptools protocol with a bound on the URL.

uvicorn keeps a request's whole URL in memory however long it is, and httptools cannot parse one
past 64 KiB, so a longer GET would be answered with uvicorn's plain-text 400. Here a URL longer
than `MAX_URL_BYTES` keeps only its path: the query string is dropped as it arrives, and the
request reaches the app with its URL's length in the scope's `extensions`
(`URL_BYTES_EXTENSION`), so the app answers a GraphQL JSON 414 naming the limit
(`graphql_http.refuse_long_url`).
"""

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Below httptools' 64 KiB; a GET this long is better sent as a POST anyway.
MAX_URL_BYTES = 60 * 1024
URL_BYTES_EXTENSION = "gql_blog.url_bytes"


class BoundedUrlProtocol(HttpToolsProtocol):
    """httptools' protocol, holding at most `MAX_URL_BYTES` of a request's URL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._url_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = 0

    def on_url(self, url: bytes) -> None:
        kept = max(0, MAX_URL_BYTES - self._url_bytes)
        self._url_bytes += len(url)
        if kept:
            super().on_url(url[:kept])

    def on_headers_complete(self) -> None:
        if self._url_bytes <= MAX_URL_BYTES:
            super().on_headers_complete()
            return
        # The path without its query: the app still routes the request, and refuses it.
        self.url = self.url.split(b"?", 1)[0]
        super().on_headers_complete()
        self.scope["query_string"] = b""
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[URL_BYTES_EXTENSION] = self._url_bytes
