"""Call the app in-process: one request in, one response out, no sockets.

The thin test adapter of traft.kv.http: it builds a Request as the server
would and frames the Response as the server does (content-length, no body
for HEAD). The module keeps its old name so the tests that import it stay
unchanged; the app's ASGI adapter has its own test.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from traft.kv.http import KVApp, Request


@attrs.frozen
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)


async def call(
    app: KVApp,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    chunk: int | None = None,  # kept for the callers; the server hands over whole bodies
) -> Response:
    """Send one request; ``target`` is the raw path and query as a client sends it."""
    path, _, query = target.encode().partition(b"?")
    request = Request(
        method,
        path,
        query,
        [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        body,
    )
    response = await app.handle(request)
    out = {k.decode(): v.decode() for k, v in response.headers}
    out["content-length"] = str(len(response.body))
    return Response(response.status, out, b"" if method == "HEAD" else response.body)
