"""Turn a validated chat request into the upstream calls that may serve it.

A plan names the route, the arm and the target, and carries the exact body
sent upstream: the client's body untouched except for the model id, the arm's
system prompt and few-shot examples placed before the client's messages, and
the gateway-only ``gateway`` field removed. ``alternates`` builds the plans of
the arm's fallback chain, in order, only when they are needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.protocol import GATEWAY_FIELD, ChatCompletionRequest
from policies import (
    Arm,
    ArmName,
    Fallback,
    Knowledge,
    PolicySet,
    Route,
    Shadow,
    Target,
    Trigger,
    Variant,
    public_names,
    resolve,
)

DIRECT_ARM = "direct"


@dataclass(frozen=True)
class Plan:
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
    fallback_on: frozenset[Trigger] = field(default_factory=frozenset)
    shadow: Shadow | None = None


def _arm_messages(arm: Arm) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if arm.system_prompt:
        messages.append({"role": "system", "content": arm.system_prompt})
    for example in arm.few_shot:
        messages.append({"role": "user", "content": example.user})
        messages.append({"role": "assistant", "content": example.assistant})
    return messages


def _choose_arm(route_name: str, route: Route, forced: str | None) -> ArmName:
    if forced is None:
        return route.default_arm
    if not route.allow_arm_override:
        raise InvalidRequest(f"Route '{route_name}' does not allow choosing the arm.", param="gateway.arm",
                             code="arm_override_not_allowed")
    if forced == "fine_tuned" and route.arms.fine_tuned is None:
        raise InvalidRequest(f"Route '{route_name}' has no fine_tuned arm.", param="gateway.arm")
    return "fine_tuned" if forced == "fine_tuned" else "prompted"


def _unknown_model(policy: PolicySet, model: str) -> ModelNotFound:
    known = ", ".join(name for name, _ in public_names(policy))
    return ModelNotFound(f"The model '{model}' does not exist. Available: {known}.", param="model")


def _base_payload(body: dict[str, Any], request: ChatCompletionRequest) -> dict[str, Any]:
    payload = {key: value for key, value in body.items() if key != GATEWAY_FIELD}
    if request.stream:
        # Always ask for usage so the stream can be accounted; the relay hides it unless the client asked.
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return payload


def _plan(policy: PolicySet, request: ChatCompletionRequest, payload: dict[str, Any], route_name: str,
          arm_name: str, arm: Arm | None, target_name: str, deadline_s: float) -> Plan:
    effective_name, target = policy.target(target_name)
    payload = {**payload, "model": target.model}
    if arm is not None:
        payload["messages"] = _arm_messages(arm) + list(payload["messages"])
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    fallback = arm.fallback if arm is not None else None
    route = policy.routes.get(route_name) if arm is not None else None
    return Plan(route_name, arm_name, effective_name, target, payload, request.stream, include_usage,
                arm.knowledge if arm is not None else None, deadline_s, fallback,
                frozenset(fallback.triggers) if fallback else frozenset(),
                route.shadow if route is not None else None)


def plan_chat(policy: PolicySet, body: dict[str, Any], request: ChatCompletionRequest,
              forced_arm: str | None, chosen_arm: ArmName | None = None, variant: Variant | None = None) -> Plan:
    """Resolve the model and build the first plan.

    The arm is the forced one, else the experiment variant's, else ``chosen_arm`` (the
    classifier's), else the route's default; a variant may also swap the target or the
    arm's system prompt.
    """
    resolution = resolve(policy, request.model)
    if resolution is None:
        raise _unknown_model(policy, request.model)
    payload = _base_payload(body, request)
    if resolution.route is None:
        return _plan(policy, request, payload, resolution.name, DIRECT_ARM, None, resolution.name,
                     resolution.target.timeout_s if resolution.target else 120.0)
    route = resolution.route
    arm_name = _choose_arm(resolution.name, route, forced_arm) if forced_arm or chosen_arm is None else chosen_arm
    if variant is not None and variant.arm is not None:
        arm_name = variant.arm
    arm = getattr(route.arms, arm_name)
    target_name = arm.target
    if variant is not None and variant.target is not None:
        target_name = variant.target
    if variant is not None and variant.system_prompt is not None:
        arm = arm.model_copy(update={"system_prompt": variant.system_prompt})
    return _plan(policy, request, payload, resolution.name, arm_name, arm, target_name, route.deadline_s)


def alternates(policy: PolicySet, body: dict[str, Any], request: ChatCompletionRequest, first: Plan) -> Iterator[Plan]:
    """The plans of ``first``'s fallback chain, in order; only the first arm's chain is followed."""
    if first.fallback is None:
        return
    route = policy.routes[first.route]
    payload = _base_payload(body, request)
    for step in first.fallback.to:
        if step.arm is not None:
            arm = getattr(route.arms, step.arm)
            yield _plan(policy, request, payload, first.route, step.arm, arm, arm.target, first.deadline_s)
        elif step.target is not None:
            arm = getattr(route.arms, first.arm)
            yield _plan(policy, request, payload, first.route, first.arm, arm, step.target, first.deadline_s)
