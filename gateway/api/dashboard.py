"""GET /dashboard: a built-in page of the gateway's aggregate numbers, and its script and style sheet.

No authentication: the page and its assets are static and contain no data.
The script reads ``/metrics`` (open, like any Prometheus scrape endpoint) and
``/v1/economics`` (behind client keys when they are configured; without one
the page falls back to the ``gateway_economics`` gauges of ``/metrics``).
Everything shown is an aggregate per route, arm, target or variant — never a
user, key, prompt or request — so serving the page openly discloses nothing
that ``/metrics`` does not already.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.dashboard import ASSETS, asset

_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}


async def page(request: Request) -> Response:
    return Response(asset("index.html"), media_type=ASSETS["index.html"], headers=_HEADERS)


async def static(request: Request) -> Response:
    name = request.path_params["asset"]
    if name not in ASSETS or name == "index.html":
        return Response(b"Not Found", status_code=404, media_type="text/plain")
    return Response(asset(name), media_type=ASSETS[name], headers=_HEADERS)


routes = [Route("/dashboard", page, methods=["GET"]), Route("/dashboard/{asset}", static, methods=["GET"])]
