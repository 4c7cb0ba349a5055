"""GET /dashboard: a built-in page of the gateway's aggregate numbers, and its script and style sheet.

The script reads ``/metrics`` and ``/v1/economics``. Everything shown is an
aggregate per route, arm, target or variant, never a user, key, prompt or request.

With client keys configured, the page, its assets and ``/metrics`` need a key
(unless ``HYBRID_GATEWAY_MONITORING_NEEDS_KEY=0``), and a browser cannot send a
bearer token on its own: a request without a key is answered 401 with an HTTP
Basic challenge, the browser asks once for a user name (ignored) and password
(the key), and sends them with the page's own requests. GET endpoints accept
that form of the key (``gateway.pipeline.intake.authenticate``), so the script itself
does nothing about authentication.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.dashboard import ASSETS, asset
from gateway.errors import NotFound
from gateway.pipeline.intake import authenticate_monitoring

_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}


async def page(request: Request) -> Response:
    authenticate_monitoring(request, state_of(request).settings)
    return Response(asset("index.html"), media_type=ASSETS["index.html"], headers=_HEADERS)


async def static(request: Request) -> Response:
    authenticate_monitoring(request, state_of(request).settings)
    name = request.path_params["asset"]
    if name not in ASSETS or name == "index.html":
        raise NotFound(f"No dashboard asset named '{name}'.")
    return Response(asset(name), media_type=ASSETS[name], headers=_HEADERS)


endpoints = [Route("/dashboard", page, methods=["GET"]), Route("/dashboard/{asset}", static, methods=["GET"])]
