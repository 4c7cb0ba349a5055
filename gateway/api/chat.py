"""POST /v1/chat/completions: JSON and SSE, through the route's chosen arm."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.accounting import (
    Usage,
    completion_text,
    cost_usd,
    estimate_prompt_tokens,
    estimate_tokens,
    usage_from,
)
from gateway.api.common import failure, format_cost, gateway_headers, state_of
from gateway.errors import InvalidRequest
from gateway.intake import authenticate, read_json, request_id, validate
from gateway.knowledge import RagOutcome
from gateway.ledger import RequestRecord
from gateway.plan import Plan, plan_chat
from gateway.protocol import ChatCompletionRequest
from gateway.state import GatewayState
from gateway.streaming import SSERelay
from gateway.upstream import UpstreamReply

_ARMS = ("prompted", "fine_tuned")
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _forced_arm(request: Request, chat: ChatCompletionRequest) -> str | None:
    if chat.gateway is not None and chat.gateway.arm is not None:
        return chat.gateway.arm
    header = request.headers.get("x-gateway-arm")
    if header is not None and header not in _ARMS:
        raise InvalidRequest(f"x-gateway-arm must be one of {', '.join(_ARMS)}.", param="x-gateway-arm")
    return header


async def _ground(gateway: GatewayState, plan: Plan, record: RequestRecord, body: dict[str, Any]) -> RagOutcome | None:
    """Put the arm's knowledge into the upstream messages, when the arm asks for it."""
    if plan.knowledge is None:
        return None
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
    outcome = await gateway.knowledge.augment(plan.route, plan.knowledge, plan.payload["messages"], metadata)
    plan.payload["messages"] = outcome.messages
    record.rag, record.sources = outcome.result, outcome.header()
    return outcome


def _with_sources(reply: UpstreamReply, rag: RagOutcome | None) -> bytes:
    """The upstream body, plus a ``gateway.sources`` field (ignored by OpenAI clients) when context was used."""
    if rag is None or not rag.sources:
        return reply.body
    return orjson.dumps({**reply.data, "gateway": {"sources": rag.body_field()}})


async def _complete(gateway: GatewayState, plan: Plan, record: RequestRecord, rag: RagOutcome | None) -> Response:
    client = gateway.upstreams.for_target(plan.target)
    started = time.perf_counter()
    try:
        reply = await client.complete(plan.target, plan.payload)
    finally:
        record.upstream_s = time.perf_counter() - started
    record.usage = usage_from(reply.data) or Usage(
        estimate_prompt_tokens(plan.payload["messages"]), estimate_tokens(completion_text(reply.data)), estimated=True)
    record.cost_usd = cost_usd(plan.target, record.usage)
    headers = gateway_headers(record, format_cost(record.cost_usd))
    gateway.ledger.close(record)
    return Response(_with_sources(reply, rag), media_type="application/json", headers=headers)


async def _stream(gateway: GatewayState, plan: Plan, record: RequestRecord) -> Response:
    client = gateway.upstreams.for_target(plan.target)
    started = time.perf_counter()
    try:
        stream = await client.open_stream(plan.target, plan.payload)
    finally:
        record.upstream_s = time.perf_counter() - started
    relay = SSERelay(plan, record, gateway.ledger.close)
    headers = {**gateway_headers(record, "pending"), **_SSE_HEADERS}
    return StreamingResponse(relay.run(stream), media_type="text/event-stream", headers=headers)


async def chat_completions(request: Request) -> Response:
    gateway = state_of(request)
    record = RequestRecord(request_id(request), "chat")
    try:
        authenticate(request, gateway.settings)
        body = await read_json(request, gateway.settings.max_body_bytes)
        chat = validate(ChatCompletionRequest, body)
        plan = plan_chat(gateway.policies.current, body, chat, _forced_arm(request, chat))
        record.route, record.arm, record.target, record.stream = plan.route, plan.arm, plan.target_name, plan.stream
        rag = await _ground(gateway, plan, record, body)
        if plan.stream:
            return await _stream(gateway, plan, record)
        return await _complete(gateway, plan, record, rag)
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, record, exc)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
