"""POST /v1/embeddings: to an exposed embedding target, accounted like completions."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounting import Usage, cost_usd, estimate_tokens, format_cost
from gateway.api.common import failure, gateway_headers, state_of
from gateway.errors import ModelNotFound
from gateway.intake import authenticate, read_json, request_id, validate
from gateway.ledger import RequestRecord
from gateway.plan import DIRECT_ARM
from gateway.protocol import GATEWAY_FIELD, EmbeddingRequest


def _input_tokens(request: EmbeddingRequest) -> int:
    items = request.input if isinstance(request.input, list) else [request.input]
    return sum(estimate_tokens(item) if isinstance(item, str) else 1 for item in items)


async def embeddings(request: Request) -> Response:
    gateway = state_of(request)
    record = RequestRecord(request_id(request), "embeddings")
    try:
        authenticate(request, gateway.settings)
        body = await read_json(request, gateway.settings.max_body_bytes)
        embedding = validate(EmbeddingRequest, body)
        policy = gateway.policies.current
        target = policy.targets.get(embedding.model)
        if target is None or not target.expose:
            exposed = ", ".join(name for name, t in sorted(policy.targets.items()) if t.expose)
            raise ModelNotFound(f"The model '{embedding.model}' does not exist. Available: {exposed}.", param="model")
        record.route, record.arm, record.target = embedding.model, DIRECT_ARM, embedding.model
        payload = {key: value for key, value in body.items() if key != GATEWAY_FIELD} | {"model": target.model}
        started = time.perf_counter()
        try:
            reply = await gateway.upstreams.for_target(target).embed(target, payload)
        finally:
            record.upstream_s = time.perf_counter() - started
        reported = (reply.data.get("usage") or {}).get("prompt_tokens")
        record.usage = Usage(reported, 0) if isinstance(reported, int) else Usage(_input_tokens(embedding), 0, True)
        record.cost_usd = cost_usd(target, record.usage)
        headers = gateway_headers(record, format_cost(record.cost_usd))
        gateway.ledger.close(record)
        return Response(reply.body, media_type="application/json", headers=headers)
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, record, exc)


routes = [
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]
