"""GET /v1/models: the public route names and exposed targets."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import ModelNotFound, json_response
from gateway.pipeline.intake import authenticate
from policies import PolicySet, public_names

_CREATED = 1_735_689_600  # 2025-01-01: stable, since routes have no creation time of their own


def _entries(policy: PolicySet) -> list[dict[str, object]]:
    return [{"id": name, "object": "model", "created": _CREATED, "owned_by": f"hybrid-gateway:{kind}"}
            for name, kind in public_names(policy)]



async def list_models(request: Request) -> Response:
    gateway = state_of(request)
    authenticate(request, gateway.settings)
    return json_response({"object": "list", "data": _entries(gateway.policies.current)})


async def get_model(request: Request) -> Response:
    gateway = state_of(request)
    model = request.path_params["model"]
    authenticate(request, gateway.settings)
    entry = next((e for e in _entries(gateway.policies.current) if e["id"] == model), None)
    if entry is None:
        raise ModelNotFound(f"The model '{model}' does not exist.", param="model")
    return json_response(entry)


endpoints = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
]
