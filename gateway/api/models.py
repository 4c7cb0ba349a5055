"""GET /v1/models: the public route names and exposed targets."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import GatewayError, ModelNotFound, error_response
from gateway.intake import authenticate
from policies import PolicySet, public_names

_CREATED = 1_735_689_600  # 2025-01-01: stable, since routes have no creation time of their own


def _entries(policy: PolicySet) -> list[dict[str, object]]:
    return [{"id": name, "object": "model", "created": _CREATED, "owned_by": f"hybrid-gateway:{kind}"}
            for name, kind in public_names(policy)]


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def list_models(request: Request) -> Response:
    gateway = state_of(request)
    try:
        authenticate(request, gateway.settings)
    except GatewayError as exc:
        return error_response(exc)
    return _json({"object": "list", "data": _entries(gateway.policies.current)})


async def get_model(request: Request) -> Response:
    gateway = state_of(request)
    model = request.path_params["model"]
    try:
        authenticate(request, gateway.settings)
        entry = next((e for e in _entries(gateway.policies.current) if e["id"] == model), None)
        if entry is None:
            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
        return _json(entry)
    except GatewayError as exc:
        return error_response(exc)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
]
