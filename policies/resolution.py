"""Turn a public model name into what the policy says serves it."""

from __future__ import annotations

from dataclasses import dataclass

from policies.schema import Experiment, PolicySet, Route, Target


@dataclass(frozen=True)
class Resolution:
    """Either a route (arms chosen per request) or an exposed target called as it is."""

    name: str
    route: Route | None = None
    target: Target | None = None


def resolve(policy: PolicySet, model: str) -> Resolution | None:
    route = policy.routes.get(model)
    if route is not None:
        return Resolution(model, route=route)
    target = policy.targets.get(model)
    if target is not None and target.expose:
        return Resolution(model, target=target)
    return None


def public_names(policy: PolicySet) -> list[tuple[str, str]]:
    """(name, kind) of everything a client may call, routes first."""
    names = [(name, "route") for name in sorted(policy.routes)]
    return names + [(name, "target") for name, t in sorted(policy.targets.items()) if t.expose]


def experiment_for(policy: PolicySet, route: str) -> tuple[str, Experiment] | None:
    """The experiment running on ``route`` (the loader allows at most one), by name."""
    return next(((name, e) for name, e in policy.experiments.items() if e.route == route), None)
