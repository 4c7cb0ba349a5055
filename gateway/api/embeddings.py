"""POST /v1/embeddings: to an exposed embedding target, accounted like completions.

The reply holds one vector per input, so the number and size of the inputs are
capped before anything goes upstream (``settings.limits``, OpenAI's own limits
by default), with token counts that stop at the limit instead of tokenising a
hostile body whole.
"""

from __future__ import annotations

import time
from functools import partial
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounting.completion import NOTHING_DELIVERED, UNROUTED, Arrival, Delivery, Routing, finish
from gateway.accounting.usage import Usage, estimate_tokens, estimate_tokens_upto
from gateway.api.common import completed_headers, failure, state_of
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.limits import Limits
from gateway.pipeline.intake import client_request_id, identify, new_request_id, read_json, validate
from gateway.pipeline.plan import DIRECT_ARM
from gateway.protocol import GATEWAY_FIELD, EmbeddingRequest


def _items(request: EmbeddingRequest) -> list[str | list[int]]:
    """One entry per vector the reply will hold: a string, or a list of token ids."""
    given = request.input
    if isinstance(given, str) or (given and isinstance(given[0], int)):
        return [given]
    return list(cast("list[str] | list[list[int]]", given))


def _input_tokens(request: EmbeddingRequest) -> int:
    return sum(estimate_tokens(item) if isinstance(item, str) else len(item) for item in _items(request))


def _refuse(message: str, code: str) -> InvalidRequest:
    return InvalidRequest(message, param="input", code=code)


def check_inputs(request: EmbeddingRequest, limits: Limits) -> None:
    """Refuse an empty input, too many inputs, or too many tokens in one input or in all of them together.

    A string has no more tokens than characters, so a batch whose characters fit both limits is not
    counted at all; otherwise counting stops as soon as a limit is passed.
    """
    items = _items(request)
    if not items or any(len(item) == 0 for item in items):
        raise _refuse("'input' must not be empty, nor hold an empty item.", "invalid_parameter")
    if len(items) > limits.max_embedding_inputs:
        raise _refuse(f"'input' holds {len(items)} items; at most {limits.max_embedding_inputs} are accepted "
                      "per request.", "too_many_inputs")
    per_input, budget = limits.max_embedding_input_tokens, limits.max_embedding_tokens
    if sum(len(item) for item in items) <= budget and all(len(item) <= per_input for item in items):
        return
    total = 0
    for index, item in enumerate(items):
        tokens = estimate_tokens_upto(item, min(per_input, budget - total)) if isinstance(item, str) else len(item)
        if tokens > per_input:
            raise _refuse(f"input[{index}] has more than {per_input} tokens, the most one input may have.",
                          "input_too_long")
        total += tokens
        if total > budget:
            raise _refuse(f"'input' has more than {budget} tokens in all, the most one request may have.",
                          "too_many_tokens")


async def embeddings(request: Request) -> Response:
    gateway = state_of(request)
    arrival = Arrival(new_request_id(), "embeddings", client_request_id(request))
    routing, delivery = UNROUTED, NOTHING_DELIVERED
    try:
        caller = identify(request, gateway.settings)
        arrival = arrival.owned_by(caller.owner, caller.name)
        body = await read_json(request, gateway.settings)
        embedding = validate(EmbeddingRequest, body)
        check_inputs(embedding, gateway.settings.limits)
        if caller.key is not None:  # a named key: its routes and limits
            arrival = await gateway.keys.admit(arrival, caller.key, embedding.model, partial(_input_tokens, embedding))
        policy = gateway.policies.current
        target = policy.targets.get(embedding.model)
        if target is None or not target.expose:
            exposed = ", ".join(name for name, t in sorted(policy.targets.items()) if t.expose)
            raise ModelNotFound(f"The model '{embedding.model}' does not exist. Available: {exposed}.", param="model")
        routing = Routing(embedding.model, DIRECT_ARM, embedding.model)
        payload = {key: value for key, value in body.items() if key != GATEWAY_FIELD} | {"model": target.model}
        started = time.perf_counter()
        try:
            reply = await gateway.upstreams.for_target(target).embed(target, payload)
        finally:
            delivery = Delivery(upstream_s=time.perf_counter() - started)
        reported = (reply.data.get("usage") or {}).get("prompt_tokens")
        usage = Usage(reported, 0) if isinstance(reported, int) else Usage(_input_tokens(embedding), 0, True)
        done = finish(arrival, routing, delivery, target=target, usage=usage)
        response = Response(reply.body, media_type="application/json", headers=completed_headers(done))
        gateway.ledger.close(done)
        return response
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, arrival, exc, routing, delivery)


endpoints = [
    Route("/v1/embeddings", embeddings, methods=["POST"]),
]
