"""When a route's fine-tune is due for retraining (the guide's Step 20: "retrain quarterly or when performance
degrades"): by age, from its fine-tuned target's ``trained_at`` against ``economics.retraining_every_months``;
by quality, from the feedback metrics, which Prometheus holds (``HybridGatewayFineTunedQualityDrop``) to the
route's declared ``economics.quality_baseline`` less its ``quality_drop_alert`` margin, both exported here.
A declared baseline, not a rolling one: a rolling baseline follows a slow decline down and never alerts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.economics.observed import SECONDS_PER_MONTH
from policies import PolicySet


def retraining_view(policy: PolicySet, now: datetime) -> dict[str, dict[str, float]]:
    """Per route with an economics block: ``quality_drop_alert``, and when its fine-tuned target says when it
    was trained, ``model_age_months``; with a cadence too, ``every_months`` and ``due`` (1 or 0)."""
    view: dict[str, dict[str, float]] = {}
    for name, route in sorted(policy.routes.items()):
        economics = route.economics
        if economics is None:
            continue
        figures = {"quality_drop_alert": economics.quality_drop_alert}
        if economics.quality_baseline is not None:
            figures["quality_baseline"] = economics.quality_baseline
        tuned = route.arms.fine_tuned
        trained_at = policy.targets[tuned.target].trained_at if tuned is not None else None
        if trained_at is not None:
            trained = trained_at if trained_at.tzinfo else trained_at.replace(tzinfo=UTC)  # a bare date means UTC
            age = max((now - trained).total_seconds(), 0.0) / SECONDS_PER_MONTH
            figures["model_age_months"] = age
            if economics.retraining_every_months is not None:
                figures["every_months"] = economics.retraining_every_months
                figures["due"] = 1.0 if age >= economics.retraining_every_months else 0.0
        view[name] = figures
    return view
