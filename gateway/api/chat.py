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
    Strategy,
    finish,
)
from gateway.accounting.usage import cost_usd, reply_usage
from gateway.api.common import completed_headers, failure, gateway_headers, state_of
from gateway.api.event_stream import EventStream
from gateway.capture import ShadowAnswer
from gateway.errors import InvalidRequest
from gateway.keys import chat_tokens
from gateway.pipeline.attempts import Answered, Effort, Exhausted
from gateway.pipeline.candidates import BufferedStream, Run
from gateway.pipeline.cascade import cascade
from gateway.pipeline.decision import ArmDecision, decide_arm, resolve_model
from gateway.pipeline.ensemble import candidate_plans, ensemble
from gateway.pipeline.experiments import assign_variant, feedback_token
from gateway.pipeline.grounding import RagOutcome
from gateway.pipeline.intake import Caller, client_request_id, identify, new_request_id, read_json, validate
from gateway.pipeline.judge import JudgeCaller
from gateway.pipeline.plan import Plan, alternates, arm_plan, plan_chat
from gateway.pipeline.streaming import SSERelay
from gateway.protocol import ChatCompletionRequest
from gateway.response_cache import cache_key
from gateway.state import GatewayState
from gateway.upstream import UpstreamReply, UpstreamStream
from policies import ARM_NAMES, Acceptors, ArmName, Assignment, Knowledge, PolicySet
from policies import Route as PolicyRoute
from routes import Decision

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_ACCEPT_WHAT_ANSWERS = Acceptors()
"""A strategy without acceptors: an answer stands unless its call fails (or, asked for JSON, it is not JSON)."""


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

    def delivery(self, attempted: Answered[Any] | Exhausted, strategy: Strategy | None = None, cache: str = "",
                 saved_usd: float | None = None) -> Delivery:
        """What the attempts and the retrievals took; the knowledge is the one of the plan that ended them."""
        rag, effort = self.outcome(attempted.plan), attempted.effort
        return Delivery(effort.attempts, effort.fallback, effort.upstream_s, rag.result if rag else None,
                        sum(o.seconds for o in self._outcomes.values()), rag.header() if rag else "", strategy,
                        cache, saved_usd)


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


def _strategy(route: PolicyRoute | None, decision: ArmDecision, stream: bool) -> str:
    """The strategy this request gets: its route's, unless its arm was forced, it is a stream the route
    passes through, or (a cascade) the route chose its prompted arm, which a cascade never second-guesses."""
    if route is None or route.strategy == "route" or decision.source == "forced":
        return "route"
    if stream and route.stream == "passthrough-no-cascade":
        return "route"
    if route.strategy == "cascade" and decision.arm != "fine_tuned":
        return "route"
    return route.strategy


async def _served_once(gateway: GatewayState, first: Plan, run: Run,
                       grounding: _Grounding) -> tuple[Answered[Any] | Exhausted, Delivery]:
    """``strategy: route``: the answer from the route's cache when it keeps one and holds this request's,
    else from upstream, kept for the next time when the first plan gave it (``gateway.response_cache``)."""
    limits = first.policy_route.cache if first.policy_route is not None else None
    key = cache_key(first.route, first.target_name, first.payload, limits) if limits is not None else None
    if key is None or limits is None:
        attempted = await run(first)
        return attempted, grounding.delivery(attempted)
    entry = await gateway.cache.get(first.route, key, limits)
    if entry is not None:
        replay = BufferedStream(entry.body) if entry.stream else UpstreamReply(entry.body, orjson.loads(entry.body))
        hit: Answered[Any] = Answered(first, replay, Effort(0, (), 0.0))
        return hit, grounding.delivery(hit, cache="hit", saved_usd=cost_usd(first.target, entry.usage))
    attempted = await run(first)
    if isinstance(attempted, Answered) and not attempted.effort.fallbacks:
        result = attempted.result
        if isinstance(result, UpstreamReply):
            gateway.cache.keep_reply(first.route, key, result, first.messages, limits)
        else:
            result = gateway.cache.recording(first.route, key, result, first.messages, limits)
            attempted = Answered(attempted.plan, result, attempted.effort)
    return attempted, grounding.delivery(attempted, cache="miss")


async def _serve(gateway: GatewayState, policy: PolicySet, arrival: Arrival, routing: Routing,
                 body: dict[str, Any], chat: ChatCompletionRequest, first: Plan, capturing: bool,
                 strategy: str) -> Response:
    """Call upstream through retries, breakers and fallbacks; answer from whichever plan succeeded.

    ``capturing``: the route keeps this request (``gateway.capture``); its ``Completion`` then carries
    the ``Exchange``, raw, for the capture writer to parse off the request path. ``strategy``: route (one
    arm), cascade (``gateway.pipeline.cascade``) or ensemble (``gateway.pipeline.ensemble``)."""
    deadline = time.monotonic() + first.deadline_s  # one for retrieval and every attempt (the runner's clock)
    grounding = _Grounding(gateway, body, deadline)

    async def call(plan: Plan) -> UpstreamReply | UpstreamStream:
        client = gateway.upstreams.for_target(plan.target)
        if plan.stream:
            return await client.open_stream(plan.target, plan.payload)
        return await client.complete(plan.target, plan.payload)

    first = await grounding.ground(first)  # before mirroring, so a shadow sees the same prompt
    # The shadow's answer to a captured request is kept beside it, paired for the router's labels.
    paired = (partial(_keep_shadow_answer, gateway, arrival.request_id, first.route)
              if capturing and first.shadow is not None else None)
    gateway.shadow.maybe_mirror(policy, first.route, first.shadow, first.payload, paired)
    async def run(plan: Plan) -> Answered[Any] | Exhausted:
        plan = await grounding.ground(plan)
        return await gateway.attempts.run(call, plan, alternates(policy, body, chat, plan), deadline,
                                          prepare=grounding.ground)

    route = first.policy_route
    if strategy == "route" or route is None:
        attempted, delivery = await _served_once(gateway, first, run, grounding)
    else:
        acceptors, judges = route.acceptors or _ACCEPT_WHAT_ANSWERS, JudgeCaller(policy, gateway.upstreams)
        max_bytes = gateway.settings.limits.max_upstream_reply_bytes
        if route.ensemble is not None:
            other = arm_plan(policy, body, chat, first, "fine_tuned" if first.arm == "prompted" else "prompted")
            served = await ensemble(run, candidate_plans(first, other, route.ensemble.samples), route.ensemble,
                                  acceptors, judges, deadline, max_bytes)
        else:
            served = await cascade(run, first, partial(arm_plan, policy, body, chat, first, "prompted"), acceptors,
                                 judges, deadline, max_bytes)
        attempted = served.attempted
        delivery = grounding.delivery(attempted, served.strategy)
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
    try:
        caller = identify(request, gateway.settings)
        arrival = arrival.owned_by(caller.owner, caller.name)
        body = await read_json(request, gateway.settings)
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, arrival, exc)
    return await serve_chat(request, gateway, arrival, caller, body)


async def serve_chat(request: Request, gateway: GatewayState, arrival: Arrival, caller: Caller,
                     body: dict[str, Any]) -> Response:
    """The chat pipeline for a read, authenticated body: the caller's key limits, routing, arm, experiments,
    grounding, attempts, the answer (JSON or SSE) and its one ``Completion``, or the failure's.
    ``/v1/responses`` enters here with the chat body it translated (``gateway.api.responses``), so both
    endpoints share every step."""
    routing = UNROUTED
    try:
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
        strategy = _strategy(resolution.route, decision, plan.stream)
        return await _serve(gateway, policy, arrival, routing, body, chat, plan, capturing, strategy)
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, arrival, exc, routing, NOTHING_DELIVERED)


endpoints = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
