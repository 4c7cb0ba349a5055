"""POST /v1/chat/completions: JSON and SSE, through the route's chosen arm."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.accounting.ledger import RequestRecord
from gateway.accounting.usage import cost_usd, format_cost, reply_usage
from gateway.api.common import failure, gateway_headers, state_of
from gateway.errors import InvalidRequest
from gateway.pipeline.attempts import Journey
from gateway.pipeline.experiments import assign_variant, feedback_token
from gateway.pipeline.grounding import RagOutcome
from gateway.pipeline.intake import authenticate, client_request_id, new_request_id, read_json, validate
from gateway.pipeline.plan import Plan, alternates, plan_chat
from gateway.pipeline.streaming import SSERelay
from gateway.protocol import ChatCompletionRequest
from gateway.state import GatewayState
from gateway.upstream import UpstreamReply, UpstreamStream
from policies import ARM_NAMES, Knowledge, PolicySet

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _forced_arm(request: Request, chat: ChatCompletionRequest) -> str | None:
    if chat.gateway is not None and chat.gateway.arm is not None:
        return chat.gateway.arm
    header = request.headers.get("x-gateway-arm")
    if header is not None and header not in ARM_NAMES:
        raise InvalidRequest(f"x-gateway-arm must be one of {', '.join(ARM_NAMES)}.", param="x-gateway-arm")
    return header


class _Grounding:
    """Retrieval for each plan that asks for it: once per knowledge set-up, however many attempts follow.

    Every retrieval ends by ``deadline`` (time.monotonic(), the route's), whatever its knowledge timeout.
    """

    def __init__(self, gateway: GatewayState, record: RequestRecord, body: dict[str, Any], deadline: float) -> None:
        self._gateway = gateway
        self._record = record
        self._deadline = deadline
        metadata = body.get("metadata")
        self._metadata = metadata if isinstance(metadata, dict) else None
        self._outcomes: dict[Knowledge, RagOutcome] = {}
        self._grounded: set[int] = set()

    async def apply(self, plan: Plan) -> RagOutcome | None:
        if plan.knowledge is None:
            return None
        outcome = self._outcomes.get(plan.knowledge)
        if outcome is None:
            outcome = await self._gateway.knowledge.augment(plan.route, plan.knowledge, plan.payload["messages"],
                                                            self._metadata, self._deadline)
            self._outcomes[plan.knowledge] = outcome
            self._record.rag_s += outcome.seconds
        if id(plan.payload) not in self._grounded:  # each plan's own prompt, grounded once
            self._grounded.add(id(plan.payload))
            plan.payload["messages"] = outcome.grounded(plan.payload["messages"])
        self._record.rag, self._record.sources = outcome.result, outcome.header()
        return outcome

    def outcome(self, plan: Plan) -> RagOutcome | None:
        return self._outcomes.get(plan.knowledge) if plan.knowledge is not None else None


def _with_sources(reply: UpstreamReply, rag: RagOutcome | None, request_id: str) -> bytes:
    """The upstream body, plus a ``gateway`` field (ignored by OpenAI clients) when context was used: the
    sources, and the gateway's request id (as in ``x-gateway-request-id``) for feedback."""
    if rag is None or not rag.sources:
        return reply.body
    return orjson.dumps({**reply.data, "gateway": {"sources": rag.body_field(), "request_id": request_id}})


def _completed(gateway: GatewayState, plan: Plan, record: RequestRecord, reply: UpstreamReply,
               rag: RagOutcome | None) -> Response:
    record.usage = reply_usage(reply.data, plan.payload["messages"])
    record.cost_usd = cost_usd(plan.target, record.usage)
    headers = gateway_headers(record, format_cost(record.cost_usd))
    gateway.ledger.close(record)
    return Response(_with_sources(reply, rag, record.request_id), media_type="application/json", headers=headers)


def _streamed(gateway: GatewayState, plan: Plan, record: RequestRecord, stream: UpstreamStream) -> Response:
    relay = SSERelay(plan, record, gateway.ledger.close)
    headers = {**gateway_headers(record, "pending"), **_SSE_HEADERS}
    return StreamingResponse(relay.run(stream), media_type="text/event-stream", headers=headers)


async def _serve(gateway: GatewayState, policy: PolicySet, record: RequestRecord, body: dict[str, Any],
                 chat: ChatCompletionRequest, first: Plan) -> Response:
    """Call upstream through retries, breakers and fallbacks; answer from whichever plan succeeded."""
    deadline = time.monotonic() + first.deadline_s  # one for retrieval and every attempt (the runner's clock)
    grounding = _Grounding(gateway, record, body, deadline)
    journey = Journey()

    async def call(plan: Plan) -> UpstreamReply | UpstreamStream:
        await grounding.apply(plan)
        record.arm, record.target = plan.arm, plan.target_name
        client = gateway.upstreams.for_target(plan.target)
        started = time.perf_counter()
        try:
            if plan.stream:
                return await client.open_stream(plan.target, plan.payload)
            return await client.complete(plan.target, plan.payload)
        finally:
            record.upstream_s += time.perf_counter() - started

    await grounding.apply(first)  # before mirroring, so a shadow sees the same prompt
    gateway.shadow.maybe_mirror(policy, first.route, first.shadow, first.payload)
    try:
        final, result = await gateway.attempts.run(
            call, first, alternates(policy, body, chat, first), journey, deadline)
    finally:
        record.attempts, record.fallback = journey.attempts, journey.header()
    if isinstance(result, UpstreamReply):
        return _completed(gateway, final, record, result, grounding.outcome(final))
    return _streamed(gateway, final, record, result)


async def chat_completions(request: Request) -> Response:
    gateway = state_of(request)
    record = RequestRecord(new_request_id(), "chat", client_request_id(request))
    try:
        record.owner = authenticate(request, gateway.settings)
        body = await read_json(request, gateway.settings)
        chat = validate(ChatCompletionRequest, body)
        policy = gateway.policies.current  # one snapshot for the whole request, whatever reloads meanwhile
        forced = _forced_arm(request, chat)
        assigned = None if forced else assign_variant(policy, chat, request.headers)
        variant = assigned[1] if assigned else None
        if assigned:
            record.experiment, record.variant, record.keyed = (assigned[0].experiment, assigned[0].variant,
                                                               assigned[0].keyed)
            record.feedback_token = feedback_token()
        decision = None if forced or (variant and variant.arm) else await gateway.chooser.choose(
            policy, chat.model, body["messages"])
        plan = plan_chat(policy, body, chat, forced, decision.arm if decision else None, variant)
        record.route, record.arm, record.target, record.stream = plan.route, plan.arm, plan.target_name, plan.stream
        record.score = decision.score if decision else None
        return await _serve(gateway, policy, record, body, chat, plan)
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, record, exc)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
