"""Turn a validated chat request and its arm decision into the upstream calls that may serve it.

A plan names the route, the arm and the target, and carries the exact body
sent upstream: the client's body untouched except for the model id, the arm's
system prompt and few-shot examples placed before the client's messages, and
the gateway-only ``gateway`` field removed. ``alternates`` builds the plans of
the arm's fallback chain, in order, only when they are needed. Plans are values:
grounding and deadlines make new ones (``dataclasses.replace``), never edit one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.pipeline.decision import DIRECT_ARM, ArmDecision
from gateway.protocol import GATEWAY_FIELD, ChatCompletionRequest
from policies import Arm, ArmName, Fallback, Knowledge, PolicySet, Resolution, Route, Shadow, Target, Trigger

__all__ = ["DIRECT_ARM", "Plan", "alternates", "arm_plan", "plan_chat"]


_fill = object.__setattr__


@dataclass(frozen=True, init=False)
class Plan:
    """Frozen; its ``__init__`` writes the ``__dict__`` in one call, as ``gateway.accounting.completion``'s values
    do: the generated one calls ``object.__setattr__`` for each of the 14 fields (~20,000 instructions a plan)."""

    route: str
    arm: str
    target_name: str
    target: Target
    payload: dict[str, Any]
    stream: bool
    include_usage: bool
    knowledge: Knowledge | None = None
    deadline_s: float = 120.0
    fallback: Fallback | None = None
    fallback_on: frozenset[Trigger] = frozenset()
    shadow: Shadow | None = None
    policy_route: Route | None = None  # the route resolved once, which its fallbacks are built from
    grounded: bool = False  # the knowledge's passages are in ``payload`` already

    def __init__(self, route: str, arm: str, target_name: str, target: Target, payload: dict[str, Any], stream: bool,
                 include_usage: bool, knowledge: Knowledge | None = None, deadline_s: float = 120.0,
                 fallback: Fallback | None = None, fallback_on: frozenset[Trigger] = frozenset(),
                 shadow: Shadow | None = None, policy_route: Route | None = None, grounded: bool = False) -> None:
        _fill(self, "__dict__", {"route": route, "arm": arm, "target_name": target_name, "target": target,
                                "payload": payload, "stream": stream, "include_usage": include_usage,
                                "knowledge": knowledge, "deadline_s": deadline_s, "fallback": fallback,
                                "fallback_on": fallback_on, "shadow": shadow, "policy_route": policy_route,
                                "grounded": grounded})

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.payload["messages"]
        return messages

    def with_messages(self, messages: list[dict[str, Any]]) -> Plan:
        """The same plan sending ``messages`` (grounding's): a new payload, this one untouched."""
        return replace(self, payload={**self.payload, "messages": messages}, grounded=True)

    def with_payload(self, payload: dict[str, Any]) -> Plan:
        """The same plan sending ``payload``, a new one (a cascade's request for logprobs)."""
        return replace(self, payload=payload)


def _arm_messages(arm: Arm, system_prompt: str | None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    prompt = system_prompt if system_prompt is not None else arm.system_prompt
    if prompt:
        messages.append({"role": "system", "content": prompt})
    for example in arm.few_shot:
        messages.append({"role": "user", "content": example.user})
        messages.append({"role": "assistant", "content": example.assistant})
    return messages


def _base_payload(body: Mapping[str, Any], request: ChatCompletionRequest) -> dict[str, Any]:
    payload = {key: value for key, value in body.items() if key != GATEWAY_FIELD}
    if request.stream:
        # Always ask for usage so the stream can be accounted; the relay hides it unless the client asked.
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return payload


def _plan(policy: PolicySet, request: ChatCompletionRequest, payload: dict[str, Any], route_name: str,
          route: Route | None, arm_name: str, arm: Arm | None, target_name: str, deadline_s: float,
          system_prompt: str | None = None) -> Plan:
    effective_name, target = policy.target(target_name)
    payload = {**payload, "model": target.model}
    if arm is not None:
        payload["messages"] = _arm_messages(arm, system_prompt) + list(payload["messages"])
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    fallback = arm.fallback if arm is not None else None
    return Plan(route_name, arm_name, effective_name, target, payload, request.stream, include_usage,
                arm.knowledge if arm is not None else None, deadline_s, fallback,
                frozenset(fallback.triggers) if fallback else frozenset(),
                route.shadow if route is not None else None, route)


def plan_chat(policy: PolicySet, resolution: Resolution, body: Mapping[str, Any], request: ChatCompletionRequest,
              decision: ArmDecision) -> Plan:
    """The first plan: the decided arm of the resolved route (or the exposed target as it is)."""
    payload = _base_payload(body, request)
    route = resolution.route
    if route is None:
        return _plan(policy, request, payload, resolution.name, None, DIRECT_ARM, None, resolution.name,
                     resolution.target.timeout_s if resolution.target else 120.0)
    arm: Arm = getattr(route.arms, decision.arm)
    return _plan(policy, request, payload, resolution.name, route, decision.arm, arm, decision.target or arm.target,
                 route.deadline_s, decision.system_prompt)


def arm_plan(policy: PolicySet, body: Mapping[str, Any], request: ChatCompletionRequest, first: Plan,
             arm_name: ArmName) -> Plan:
    """``arm_name``'s plan for ``first``'s request (a cascade's escalation, an ensemble's other candidate): that
    arm's own prompt, few-shot, knowledge and fallback chain, within the same deadline."""
    route = first.policy_route
    arm = getattr(route.arms, arm_name) if route is not None else None
    if route is None or arm is None:
        raise ValueError(f"route {first.route} has no {arm_name} arm to plan for")
    return _plan(policy, request, _base_payload(body, request), first.route, route, arm_name, arm, arm.target,
                 first.deadline_s)


def alternates(policy: PolicySet, body: Mapping[str, Any], request: ChatCompletionRequest,
               first: Plan) -> Iterator[Plan]:
    """The plans of ``first``'s fallback chain, in order; only the first arm's chain is followed."""
    route = first.policy_route
    if first.fallback is None or route is None:
        return
    payload = _base_payload(body, request)
    for step in first.fallback.to:
        if step.arm is not None:
            arm: Arm = getattr(route.arms, step.arm)
            yield _plan(policy, request, payload, first.route, route, step.arm, arm, arm.target, first.deadline_s)
        elif step.target is not None:
            arm = getattr(route.arms, first.arm)
            yield _plan(policy, request, payload, first.route, route, first.arm, arm, step.target, first.deadline_s)
