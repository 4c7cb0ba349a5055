"""GET /v1/routes: each route's strategy, and what its classifier does now, its live threshold and realised share.

For a route with ``strong_share`` the threshold is the live one (calibrated on the route's recent
scores, merged across replicas when Redis is configured and up: ``scope`` says "cluster", else
"process"); ``cut`` gives the exact rule (bin and fraction) that ``router score --url`` applies.
Authenticated like /v1/economics: client keys when they are configured.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import json_response
from gateway.pipeline.intake import authenticate


async def route_views(request: Request) -> Response:
    gateway = state_of(request)
    authenticate(request, gateway.settings)
    policy = gateway.policies.current
    views = gateway.chooser.views(policy)
    body = {"scope": gateway.chooser.scope,
            "routes": [{"route": name, "strategy": policy.routes[name].strategy, "classifier": view}
                       for name, view in views.items()]}
    return json_response(body)


endpoints = [Route("/v1/routes", route_views, methods=["GET"])]
