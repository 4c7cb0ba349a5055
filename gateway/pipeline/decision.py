"""Which arm serves a request: the precedence, applied in one place.

The arm is the client's forced one, else the experiment variant's, else the route's
classifier's, else the route's default. Before this module the precedence was split between
the handler (which skipped the classifier when a variant named an arm) and the planner (which
let the variant win again), right only because both agreed. A variant's ``system_prompt`` is
"a prompt variant of the route's default arm" (policies/schema.py): it rewrites that arm only,
never the fine-tuned arm a classifier picked, whose short prompt is what the fine-tune saves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from gateway.errors import InvalidRequest, ModelNotFound
from policies import ArmName, PolicySet, Resolution, Route, Variant, public_names, resolve
from routes import Decision

DIRECT_ARM = "direct"
Source = Literal["direct", "forced", "variant", "classifier", "default"]
Classify = Callable[[str, Route], Awaitable[Decision | None]]


@dataclass(frozen=True)
class ArmDecision:
    """The arm (``direct`` for an exposed target), why it was chosen, and what a variant changes in it."""

    arm: str
    source: Source
    score: float | None = None
    target: str | None = None  # a variant's target instead of the arm's
    system_prompt: str | None = None  # a variant's prompt instead of the (default) arm's


def resolve_model(policy: PolicySet, model: str) -> Resolution:
    """The route or exposed target the request names, looked up once for the whole request."""
    resolution = resolve(policy, model)
    if resolution is None:
        known = ", ".join(name for name, _ in public_names(policy))
        raise ModelNotFound(f"The model '{model}' does not exist. Available: {known}.", param="model")
    return resolution


def _forced(name: str, route: Route, forced: ArmName) -> ArmName:
    if not route.allow_arm_override:
        raise InvalidRequest(f"Route '{name}' does not allow choosing the arm.", param="gateway.arm",
                             code="arm_override_not_allowed")
    if forced == "fine_tuned" and route.arms.fine_tuned is None:
        raise InvalidRequest(f"Route '{name}' has no fine_tuned arm.", param="gateway.arm")
    return forced


async def decide_arm(resolution: Resolution, forced: ArmName | None, variant: Variant | None,
                     classify: Classify) -> ArmDecision:
    """Forced arm, else the variant's arm, else the classifier's (``classify`` runs only then), else the default."""
    route = resolution.route
    if route is None:
        return ArmDecision(DIRECT_ARM, "direct")
    if forced is not None:
        return ArmDecision(_forced(resolution.name, route, forced), "forced")
    target = variant.target if variant is not None else None
    if variant is not None and variant.arm is not None:
        return ArmDecision(variant.arm, "variant", target=target)
    decision = await classify(resolution.name, route)
    arm: ArmName = decision.arm if decision is not None else route.default_arm
    prompt = variant.system_prompt if variant is not None and arm == route.default_arm else None
    return ArmDecision(arm, "classifier" if decision is not None else "default",
                       decision.score if decision is not None else None, target, prompt)
