"""GET /v1/models: the public route names and exposed targets."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.api_keys import ApiKey
from gateway.errors import ModelNotFound, json_response
from gateway.pipeline.intake import identify
from policies import PolicySet, public_names

_CREATED = 1_735_689_600  # 2025-01-01: stable, since routes have no creation time of their own


def _entries(policy: PolicySet, key: ApiKey | None) -> list[dict[str, object]]:
    """What the caller may call: every public name, or those its named key's ``routes`` list (as OpenAI lists
    only the models a key has access to)."""
    return [{"id": name, "object": "model", "created": _CREATED, "owned_by": f"hybrid-gateway:{kind}"}
            for name, kind in public_names(policy) if key is None or key.may_call(name)]



async def list_models(request: Request) -> Response:
    gateway = state_of(request)
    caller = identify(request, gateway.settings)
    return json_response({"object": "list", "data": _entries(gateway.policies.current, caller.key)})


async def get_model(request: Request) -> Response:
    gateway = state_of(request)
    model = request.path_params["model"]
    caller = identify(request, gateway.settings)
    entry = next((e for e in _entries(gateway.policies.current, caller.key) if e["id"] == model), None)
    if entry is None:
        shown = " or you do not have access to it" if caller.key is not None and caller.key.routes else ""
        raise ModelNotFound(f"The model '{model}' does not exist{shown}.", param="model")
    return json_response(entry)


endpoints = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
]
