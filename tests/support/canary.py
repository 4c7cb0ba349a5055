"""A loopback HTTP server that records every request it gets: proof that nothing was sent to it.

A test hands its URL to a client as an attacker would (``api_base``, ``fallbacks``,
an image URL, ...) and then asserts ``received`` is empty: no request, and so no
key, ever reached an address the client chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@dataclass(frozen=True)
class Visit:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Canary:
    received: list[Visit] = field(default_factory=list)

    async def record(self, request: Request) -> Response:
        self.received.append(Visit(request.method, request.url.path, dict(request.headers)))
        return Response(b'{"error": {"message": "canary"}}', status_code=500, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.record, methods=_METHODS)])
