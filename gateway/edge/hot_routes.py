"""The endpoints that carry the traffic, served past the framework's middleware stack.

Between the server and a route, FastAPI and Starlette put six layers (server errors, telemetry,
body limits, exception mapping, an ``AsyncExitStack``, the router's scan of every path), each a
coroutine on the way in and some a wrapper around every ``send``: per request, and per event of a
stream, that is work the gateway does not need. For the routes named here the same outcome is
reached directly: the route's own ASGI app (Starlette's ``request_response``: the ``Request``, the
handler and its exception handling) runs with the app's exception handlers in the scope, where
``ExceptionMiddleware`` would have put them, and an exception no handler claims is logged with its
traceback and answered 500 in OpenAI's envelope, as ``ServerErrorMiddleware`` would have done.

Anything else takes the full stack: other paths, other methods (the 405), and any request under a
``root_path`` (whose path the router, not this table, knows how to strip).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import InternalError, error_response

log = logging.getLogger("hybrid_gateway")
Handler = Any  # Starlette's exception handler: (Request, Exception) -> Response, sync or async


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(InternalError("The gateway failed to handle the request."))


class HotRoutes:
    """Dispatches exact (method, path) matches of ``routes`` straight to the route; the rest to ``app``."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route], handlers: Mapping[Any, Handler]) -> None:
        self.app = app
        self._routes = {(method, route.path): route for route in routes for method in route.methods or ()}
        # The shape ExceptionMiddleware puts in the scope: (handlers by exception class, handlers by status).
        self._handlers: tuple[dict[Any, Handler], dict[int, Handler]] = ({**{kind: handler for kind, handler in handlers.items() if kind is not Exception},
                           Exception: _unhandled}, {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (self._routes.get((scope["method"], scope["path"]))
                 if scope["type"] == "http" and not scope.get("root_path") else None)
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["starlette.exception_handlers"] = self._handlers
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        await route.app(scope, receive, send)
