"""Pick each request's arm with the route's complexity classifier, hold its share, and count what it chose.

Models load once per name. ``strong_share`` is a promise about the route's own traffic, so such a
route decides against the cut of a live ``ScoreSketch`` of its recent scores (routes/_calibration.py),
warm-started from the model's training quantiles; a fixed ``threshold:`` (or neither: 0.5) is used
as is, and its sketch only reports the realised share. A decision costs one scoring call plus a
few microseconds for the cut and the count. The linear and static models score inline (~0.2 ms);
a model that runs the MiniLM encoder (~6 ms) scores in a worker thread, where onnxruntime
releases the GIL, so it never stalls the event loop's other requests. Sketches are only touched
on the event loop. With Redis, ``gateway.pipeline.score_sharing`` merges every replica's sketch in the background.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram

from gateway.metrics import Metrics
from policies import Classifier, PolicySet, Route
from routes import (
    CALIBRATION_BINS,
    DEFAULT_THRESHOLD,
    CalibrationWindow,
    Cut,
    Decision,
    EmbeddingClassifier,
    RoutingModel,
    ScoreSketch,
    decide,
    resolve_model,
)


@lru_cache(maxsize=64)
def _model(model: str, policies_dir: Path) -> RoutingModel:
    return resolve_model(model, policies_dir)


def model_tag(classifier: RoutingModel) -> str:
    """Names a model's score scale (its training quantiles), so replicas merge only comparable scores."""
    return hashlib.sha1(classifier.calibration.tobytes()).hexdigest()[:10]


@dataclass(frozen=True)
class RouteRule:
    """A route's ``classifier`` block, resolved: the model, and a fixed threshold or a share to hold."""

    route: str
    config: Classifier
    classifier: RoutingModel
    sketch: ScoreSketch
    namespace: str  # the sketch's name among replicas: route and model tag

    def threshold(self) -> float | Cut:
        """What the next decision is held against: the sketch's current cut, or the fixed threshold."""
        share = self.config.strong_share
        if share is not None:
            return self.sketch.cut(share)
        return self.config.threshold if self.config.threshold is not None else DEFAULT_THRESHOLD


class ArmChooser:
    def __init__(self, policies_dir: Path, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self._policies_dir = policies_dir
        self._metrics = metrics
        self._clock = clock
        self.origin = uuid.uuid4().hex[:12]  # this process, in the slices it shares
        self.scope = "process"  # "cluster" while score sharing merges other replicas' sketches
        self._sketches: dict[str, ScoreSketch] = {}
        self._rules: dict[str, tuple[Classifier, RouteRule]] = {}  # per route: for which config object
        self._counted: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}  # decision and score metrics

    def rule(self, route: str, config: Classifier) -> RouteRule:
        """The route's resolved rule; cached for the config object in force, sketches kept across reloads."""
        cached = self._rules.get(route)
        if cached is not None and cached[0] is config:
            return cached[1]
        classifier = _model(config.model, self._policies_dir)
        live = config.live
        window = (CalibrationWindow(live.window_decisions, live.window_s, live.prior_weight) if live
                  else CalibrationWindow())
        namespace = f"{route}:{model_tag(classifier)}"
        sketch = self._sketches.get(namespace)
        if sketch is None or sketch.window != window:
            sketch = ScoreSketch(classifier.calibration, window, clock=self._clock, origin=self.origin)
            self._sketches[namespace] = sketch
        rule = RouteRule(route, config, classifier, sketch, namespace)
        self._rules[route] = (config, rule)
        return rule

    def sketches(self) -> dict[str, ScoreSketch]:
        """Every route's sketch by namespace (what score sharing publishes and merges)."""
        return dict(self._sketches)

    async def choose(self, model: str, route: Route,
                     messages: Sequence[Mapping[str, Any]]) -> Decision | None:
        """The classifier's decision for ``route`` (named ``model``) when it has one; None otherwise."""
        if route.classifier is None:
            return None
        rule = self.rule(model, route.classifier)
        arguments = (rule.classifier, messages, rule.threshold(), route.classifier.low_confidence)
        if isinstance(rule.classifier, EmbeddingClassifier):
            decision = await asyncio.to_thread(decide, *arguments)
        else:
            decision = decide(*arguments)
        key = (model, decision.arm, "scored" if decision.score is not None else "unjudged")
        counted = self._counted.get(key)
        if counted is None:  # .labels() validates and locks on every call; the label sets are the policy's
            counted = self._counted[key] = (self._metrics.decisions.labels(*key), self._metrics.scores.labels(model))
        counted[0].inc()
        if decision.score is not None:
            rule.sketch.record(decision.score, decision.arm == "prompted")
            counted[1].observe(decision.score)
        return decision

    def warm(self, policy: PolicySet) -> None:
        """Load every model the policy names, so a bad model file shows at start, not on a request."""
        for name, route in policy.routes.items():
            if route.classifier is not None:
                self.rule(name, route.classifier)

    def export_gauges(self, policy: PolicySet) -> None:
        """Copy each classifier route's live threshold and realised share into its gauges (at a scrape)."""
        for name, view in self.views(policy).items():
            if view is None:
                continue
            self._metrics.classifier_threshold.labels(name).set(view["threshold"])
            share = view["prompted_share"]
            self._metrics.classifier_prompted_share.labels(name).set(math.nan if share is None else share)
            target = view["strong_share"]
            self._metrics.classifier_strong_share.labels(name).set(math.nan if target is None else target)

    def views(self, policy: PolicySet) -> dict[str, dict[str, Any] | None]:
        """Per route, what its classifier does now (None: the route has none), as GET /v1/routes shows it."""
        return {name: None if route.classifier is None else self._view(self.rule(name, route.classifier))
                for name, route in sorted(policy.routes.items())}

    @staticmethod
    def _view(rule: RouteRule) -> dict[str, Any]:
        threshold = rule.threshold()
        stats = rule.sketch.stats()
        view: dict[str, Any] = {
            "model": rule.config.model, "mode": "calibrated" if isinstance(threshold, Cut) else "fixed",
            "strong_share": rule.config.strong_share,
            "threshold": threshold.threshold if isinstance(threshold, Cut) else threshold,
            "low_confidence": rule.config.low_confidence,
            "prompted_share": stats.prompted_share, "decisions": stats.decisions,
            "window": {"decisions": rule.sketch.window.decisions, "seconds": rule.sketch.window.seconds,
                       "since": stats.since},
            "prior_weight_left": stats.prior_left,
        }
        if isinstance(threshold, Cut):
            view["cut"] = {"bin": threshold.bin, "fraction": threshold.fraction, "bins": CALIBRATION_BINS}
        return view


def route_classifier(config: Classifier, policies_dir: Path) -> RoutingModel:
    """The model a route's ``classifier`` block names, resolved as the gateway resolves it (offline tools)."""
    return _model(config.model, policies_dir)
