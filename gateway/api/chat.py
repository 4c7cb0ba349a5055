"""POST /v1/chat/completions: JSON and SSE, through the route's chosen arm."""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounting.completion import (
    NOTHING_DELIVERED,
    UNROUTED,
    Arrival,
    Delivery,
    Exchange,
    Routing,
    finish,
)
from gateway.accounting.usage import reply_usage
from gateway.api.common import completed_headers, failure, gateway_headers, state_of
from gateway.api.event_stream import EventStream
from gateway.capture import ShadowAnswer
from gateway.errors import InvalidRequest
from gateway.keys import chat_tokens
from gateway.pipeline.attempts import Answered, Exhausted
from gateway.pipeline.cascade import Cascaded, cascade
from gateway.pipeline.decision import decide_arm, resolve_model
from gateway.pipeline.experiments import assign_variant, feedback_token
from gateway.pipeline.grounding import RagOutcome
from gateway.pipeline.intake import client_request_id, identify, new_request_id, read_json, validate
from gateway.pipeline.plan import Plan, alternates, escalation, plan_chat
from gateway.pipeline.streaming import SSERelay
from gateway.protocol import ChatCompletionRequest
from gateway.state import GatewayState
from gateway.upstream import UpstreamReply, UpstreamStream
from policies import ARM_NAMES, Acceptors, ArmName, Assignment, Knowledge, PolicySet
from policies import Route as PolicyRoute
from routes import Decision

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_ACCEPT_WHAT_ANSWERS = Acceptors()
"""A cascade without acceptors: the fine-tuned answer stands unless its call fails (or, asked for JSON, it is not)."""


def _forced_arm(request: Request, chat: ChatCompletionRequest) -> ArmName | None:
    if chat.gateway is not None and chat.gateway.arm is not None:
        return chat.gateway.arm
    header = request.headers.get("x-gateway-arm")
    if header is None:
        return None
    for name in ARM_NAMES:
        if header == name:
            return name
    raise InvalidRequest(f"x-gateway-arm must be one of {', '.join(ARM_NAMES)}.", param="x-gateway-arm")


class _Grounding:
    """Retrieval for each plan that asks for it: once per knowledge set-up, however many attempts follow.

    The hits are cached, never the rendered messages: each plan is grounded into its own arm's prompt,
    as a new plan. Every retrieval ends by ``deadline`` (time.monotonic(), the route's), whatever its
    knowledge timeout.
    """

    def __init__(self, gateway: GatewayState, body: dict[str, Any], deadline: float) -> None:
        self._gateway = gateway
        self._deadline = deadline
        metadata = body.get("metadata")
        self._metadata = metadata if isinstance(metadata, dict) else None
        self._outcomes: dict[Knowledge, RagOutcome] = {}

    async def ground(self, plan: Plan) -> Plan:
        """``plan`` with the passages in its messages (itself when it has no knowledge or is grounded)."""
        if plan.knowledge is None or plan.grounded:
            return plan
        outcome = self._outcomes.get(plan.knowledge)
        if outcome is None:
            outcome = await self._gateway.knowledge.augment(plan.route, plan.knowledge, plan.messages,
                                                            self._metadata, self._deadline)
            self._outcomes[plan.knowledge] = outcome
        return plan.with_messages(outcome.grounded(plan.messages))

    def outcome(self, plan: Plan) -> RagOutcome | None:
        return self._outcomes.get(plan.knowledge) if plan.knowledge is not None else None

    def delivery(self, attempted: Answered[Any] | Exhausted, cascaded: Cascaded | None = None) -> Delivery:
        """What the attempts and the retrievals took; the knowledge is the one of the plan that ended them."""
        rag, effort = self.outcome(attempted.plan), attempted.effort
        rag_s = sum(o.seconds for o in self._outcomes.values())
        if cascaded is None:
            return Delivery(effort.attempts, effort.fallback, effort.upstream_s, rag.result if rag else None, rag_s,
                            rag.header() if rag else "")
        return Delivery(effort.attempts, effort.fallback, effort.upstream_s, rag.result if rag else None, rag_s,
                        rag.header() if rag else "", cascaded.outcome, cascaded.rejected_by, cascaded.calls)


def _with_sources(reply: UpstreamReply, rag: RagOutcome | None, request_id: str) -> bytes:
    """The upstream body, plus a ``gateway`` field (ignored by OpenAI clients) when context was used: the
    sources, and the gateway's request id (as in ``x-gateway-request-id``) for feedback."""
    if rag is None or not rag.sources:
        return reply.body
    return orjson.dumps({**reply.data, "gateway": {"sources": rag.body_field(), "request_id": request_id}})


def _keep_shadow_answer(gateway: GatewayState, request_id: str, route: str, target: str, body: bytes) -> None:
    gateway.captures.offer_shadow(ShadowAnswer(request_id, route, target, body))


def _routing(plan: Plan, score: float | None, assigned: Assignment | None, capturing: bool) -> Routing:
    """A request in an experiment, or captured, gets a feedback token: its caller may judge it. Built once,
    as ``dataclasses.replace`` to add the token to a captured request's routing cost ~5 us."""
    if assigned is None:
        return Routing(plan.route, plan.arm, plan.target_name, plan.stream, score,
                       feedback_token=feedback_token() if capturing else None)
    return Routing(plan.route, plan.arm, plan.target_name, plan.stream, score, assigned.experiment,
                   assigned.variant, assigned.keyed, feedback_token())


async def _serve(gateway: GatewayState, policy: PolicySet, arrival: Arrival, routing: Routing,
                 body: dict[str, Any], chat: ChatCompletionRequest, first: Plan, capturing: bool,
                 acceptors: Acceptors | None) -> Response:
    """Call upstream through retries, breakers and fallbacks; answer from whichever plan succeeded.

    ``capturing``: the route keeps this request (``gateway.capture``); its ``Completion`` then carries
    the ``Exchange``, raw, for the capture writer to parse off the request path. ``acceptors``: the
    route's, when this request is a cascade's (``gateway.pipeline.cascade``)."""
    deadline = time.monotonic() + first.deadline_s  # one for retrieval and every attempt (the runner's clock)
    grounding = _Grounding(gateway, body, deadline)

    async def call(plan: Plan) -> UpstreamReply | UpstreamStream:
        client = gateway.upstreams.for_target(plan.target)
        if plan.stream:
            return await client.open_stream(plan.target, plan.payload)
        return await client.complete(plan.target, plan.payload)

    first = await grounding.ground(first)  # before mirroring, so a shadow sees the same prompt
    # The shadow's answer to a captured request is kept beside it, paired for the router's labels.
    paired = partial(_keep_shadow_answer, gateway, arrival.request_id, first.route) if capturing else None
    gateway.shadow.maybe_mirror(policy, first.route, first.shadow, first.payload, paired)
    async def run(plan: Plan) -> Answered[Any] | Exhausted:
        plan = await grounding.ground(plan)
        return await gateway.attempts.run(call, plan, alternates(policy, body, chat, plan), deadline,
                                          prepare=grounding.ground)

    if acceptors is None:
        attempted = await run(first)
        delivery = grounding.delivery(attempted)
    else:
        cascaded = await cascade(run, first, partial(escalation, policy, body, chat, first), acceptors, deadline,
                                 gateway.settings.limits.max_upstream_reply_bytes)
        attempted = cascaded.attempted
        delivery = grounding.delivery(attempted, cascaded)
    sent = attempted.plan
    if sent is not first:  # a fallback answered: the routing names the arm and target that did
        routing = replace(routing, arm=sent.arm, target=sent.target_name)
    if isinstance(attempted, Exhausted):
        return failure(gateway, arrival, attempted.error, routing, delivery)
    result = attempted.result
    client_messages = body["messages"] if capturing else None
    if isinstance(result, UpstreamReply):
        exchange = Exchange(client_messages, sent.messages, result.body) if client_messages is not None else None
        done = finish(arrival, routing, delivery, target=sent.target, usage=reply_usage(result.data, sent.messages),
                      exchange=exchange)
        response = Response(_with_sources(result, grounding.outcome(sent), arrival.request_id),
                            media_type="application/json", headers=completed_headers(done))
        gateway.ledger.close(done)
        return response
    relay = SSERelay(sent, arrival, routing, delivery, gateway.ledger.close, client_messages)
    headers = {**gateway_headers(arrival, routing, delivery, "pending"), **_SSE_HEADERS}
    return EventStream(relay.run(result), headers)


async def chat_completions(request: Request) -> Response:
    gateway = state_of(request)
    arrival = Arrival(new_request_id(), "chat", client_request_id(request))
    routing = UNROUTED
    try:
        caller = identify(request, gateway.settings)
        arrival = arrival.owned_by(caller.owner, caller.name)
        body = await read_json(request, gateway.settings)
        chat = validate(ChatCompletionRequest, body)
        if caller.key is not None:  # a named key: its routes and limits
            arrival = await gateway.keys.admit(arrival, caller.key, chat.model,
                                               partial(chat_tokens, body["messages"], chat))
        policy = gateway.policies.current  # one snapshot for the whole request, whatever reloads meanwhile
        forced = _forced_arm(request, chat)
        resolution = resolve_model(policy, chat.model)  # the one lookup of the route for this request
        assigned = None if forced else assign_variant(policy, chat, request.headers)

        async def classify(name: str, route: PolicyRoute) -> Decision | None:
            return await gateway.chooser.choose(name, route, body["messages"])

        decision = await decide_arm(resolution, forced, assigned[1] if assigned else None, classify)
        plan = plan_chat(policy, resolution, body, chat, decision)
        capturing = gateway.capture.sampled(resolution.route)
        routing = _routing(plan, decision.score, assigned[0] if assigned else None, capturing)
        route = resolution.route
        cascading = (route is not None and route.strategy == "cascade" and decision.arm == "fine_tuned"
                     and decision.source != "forced")
        acceptors = (route.acceptors or _ACCEPT_WHAT_ANSWERS) if cascading and route is not None else None
        return await _serve(gateway, policy, arrival, routing, body, chat, plan, capturing, acceptors)
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, arrival, exc, routing, NOTHING_DELIVERED)


endpoints = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
