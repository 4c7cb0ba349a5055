"""The endpoints that carry the traffic, served past the framework's middleware stack.

Between the server and a route, FastAPI and Starlette put eight layers (server errors, telemetry,
body limits, exception mapping, an ``AsyncExitStack``, the router's scan of every path, the route's
request wrapper and its exception wrapper), each a coroutine on the way in and some a wrapper
around every ``send``: per request, and per event of a stream, that is work the gateway does not
need. For the routes named here the same outcome is reached directly: the handler is called with a
``Request`` and its response sent; an exception it raises goes to the app's handler for its class
(what ``ExceptionMiddleware`` would have done), and one no handler claims is logged with its
traceback and answered 500 in OpenAI's envelope (what ``ServerErrorMiddleware`` would have done).
An exception while the response is being sent is the server's to log, as it was.

Anything else takes the full stack: other paths, other methods (the 405), and any request under a
``root_path`` (whose path the router, not this table, knows how to strip).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import InternalError, error_response

log = logging.getLogger("hybrid_gateway")
Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(InternalError("The gateway failed to handle the request."))


class HotRoutes:
    """Dispatches exact (method, path) matches of ``routes`` straight to their handler; the rest to ``app``."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route], handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self._endpoints: dict[tuple[str, str], Endpoint] = {
            (method, route.path): route.endpoint for route in routes for method in route.methods or ()}
        self._handlers: dict[type[BaseException], Handler] = {
            **{kind: handler for kind, handler in handlers.items() if kind is not Exception}, Exception: _unhandled}
        for call in [*self._endpoints.values(), *self._handlers.values()]:
            if not inspect.iscoroutinefunction(call):
                raise TypeError(f"{call!r} must be a coroutine function to be served as a hot route")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (self._endpoints.get((scope["method"], scope["path"]))
                    if scope["type"] == "http" and not scope.get("root_path") else None)
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self._handler_for(exc)(request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Handler:
        return next(self._handlers[kind] for kind in type(exc).__mro__ if kind in self._handlers)
