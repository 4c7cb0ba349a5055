"""Turn a validated chat request into the upstream call that will serve it.

The plan names the route, the arm and the target, and carries the exact body
sent upstream: the client's body untouched except for the model id, the arm's
system prompt and few-shot examples placed before the client's messages, and
the gateway-only ``gateway`` field removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.protocol import GATEWAY_FIELD, ChatCompletionRequest
from policies import Arm, ArmName, Knowledge, PolicySet, Route, Target, public_names, resolve

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


def plan_chat(policy: PolicySet, body: dict[str, Any], request: ChatCompletionRequest,
              forced_arm: str | None) -> Plan:
    """Resolve the model, choose the arm and build the upstream body."""
    resolution = resolve(policy, request.model)
    if resolution is None:
        raise _unknown_model(policy, request.model)
    payload = {key: value for key, value in body.items() if key != GATEWAY_FIELD}
    knowledge = None
    if resolution.route is not None:
        arm_name = _choose_arm(resolution.name, resolution.route, forced_arm)
        arm = getattr(resolution.route.arms, arm_name)
        target_name = arm.target
        payload["messages"] = _arm_messages(arm) + list(body["messages"])
        knowledge = arm.knowledge
    else:
        arm_name, target_name = DIRECT_ARM, resolution.name
    target_name, target = policy.target(target_name)
    payload["model"] = target.model
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    if request.stream:
        # Always ask for usage so the stream can be accounted; the relay hides it unless the client asked.
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return Plan(resolution.name, arm_name, target_name, target, payload, request.stream, include_usage, knowledge)
