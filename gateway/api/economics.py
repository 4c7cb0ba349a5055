"""GET /v1/economics: the break-even projection recomputed from this gateway's real traffic."""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import GatewayError, error_response
from gateway.intake import authenticate
from gateway.observed_economics import economics_report, observed_by_route


async def economics(request: Request) -> Response:
    gateway = state_of(request)
    try:
        authenticate(request, gateway.settings)
    except GatewayError as exc:
        return error_response(exc)
    observed = observed_by_route(gateway.metrics.exposition())
    window_s = time.time() - gateway.metrics.started
    body = {"routes": economics_report(gateway.policies.current, observed, window_s)}
    return Response(orjson.dumps(body), media_type="application/json")


routes = [Route("/v1/economics", economics, methods=["GET"])]
