"""Pick each request's arm with the route's complexity classifier, and count what it chose.

Models and thresholds are resolved once per policy set (``strong_share`` turns
into a threshold from the model's calibration quantiles), so a decision costs
one scoring call on the hot path. The linear model scores inline (~0.2 ms); a
model that runs the MiniLM encoder (~6 ms) scores in a worker thread, where
onnxruntime releases the GIL, so it never stalls the event loop's other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.metrics import Metrics
from policies import Classifier, PolicySet
from routes import SHIPPED_MODELS, Decision, EmbeddingClassifier, RoutingModel, decide, load_classifier

DEFAULT_THRESHOLD = 0.5


@lru_cache(maxsize=64)
def _model(model: str, policies_dir: Path, threshold: float | None,
           share: float | None) -> tuple[RoutingModel, float]:
    """A shipped model by name (``default``, ``fast``), else a model file relative to the policies."""
    classifier = load_classifier(model if model in SHIPPED_MODELS else policies_dir / model)
    if threshold is None:
        threshold = classifier.threshold_for_share(share) if share is not None else DEFAULT_THRESHOLD
    return classifier, threshold


class ArmChooser:
    def __init__(self, policies_dir: Path, metrics: Metrics) -> None:
        self._policies_dir = policies_dir
        self._metrics = metrics

    def _resolved(self, config: Classifier) -> tuple[RoutingModel, float]:
        return _model(config.model, self._policies_dir, config.threshold, config.strong_share)

    async def choose(self, policy: PolicySet, model: str,
                     messages: Sequence[Mapping[str, Any]]) -> Decision | None:
        """The classifier's decision for a route that has one; None for everything else."""
        route = policy.routes.get(model)
        if route is None or route.classifier is None:
            return None
        classifier, threshold = self._resolved(route.classifier)
        arguments = (classifier, messages, threshold, route.classifier.low_confidence)
        if isinstance(classifier, EmbeddingClassifier):
            decision = await asyncio.to_thread(decide, *arguments)
        else:
            decision = decide(*arguments)
        self._metrics.decisions.labels(model, decision.arm, "scored" if decision.score is not None else "unjudged").inc()
        if decision.score is not None:
            self._metrics.scores.labels(model).observe(decision.score)
        return decision

    def warm(self, policy: PolicySet) -> None:
        """Load every model the policy names, so a bad model file shows at start, not on a request."""
        for route in policy.routes.values():
            if route.classifier is not None:
                self._resolved(route.classifier)


def route_classifier(config: Classifier, policies_dir: Path) -> RoutingModel:
    """The model a route's ``classifier`` block names, resolved as the gateway resolves it (offline tools)."""
    return _model(config.model, policies_dir, config.threshold, config.strong_share)[0]
