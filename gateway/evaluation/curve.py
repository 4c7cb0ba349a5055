"""The classifier's view: what routing the top-scored share of this set to the prompted arm would cost and score.

Each example is scored by the route's own complexity classifier, exactly as
the gateway would score the client's messages. For a strong share ``s`` the
``round(s * n)`` highest-scored examples go to the prompted arm and the rest to
the fine-tuned one (examples the classifier cannot judge go to the route's
low-confidence arm at every share, as in the gateway). The point's accuracy is
the mean primary metric of the arm each example went to, its cost the mean
cost of that arm's call (a failed call costs 0 and scores 0). Share 1 is
prompting alone, share 0 the fine-tune alone (up to unjudgeable examples).

``threshold`` is the score cut the policy's ``strong_share: s`` comes to once the
gateway has seen this set: its live calibration (routes/_calibration.py) fed these
scores, warm start included. It is this traffic's cut, not a constant: the
same share on other traffic gives another threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.pipeline.arm_choice import route_classifier
from policies import Classifier
from routes import CalibrationWindow, ScoreSketch

SHARES = tuple(round(i / 10, 1) for i in range(11))


@dataclass(frozen=True)
class CurvePoint:
    strong_share: float
    threshold: float
    prompted_examples: int
    accuracy: float
    cost_per_query_usd: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scores:
    """The classifier's score per example (None: could not judge) and where unjudged ones go."""

    model: str
    values: tuple[float | None, ...]
    low_confidence: str
    thresholds: Mapping[float, float]
    strong_share: float | None = None
    """The route's own ``strong_share``, if its policy sets one."""


def score_examples(config: Classifier | None, policies_dir: Path, chats: Sequence[Sequence[Mapping[str, Any]]],
                   shares: Sequence[float]) -> Scores:
    """Score every chat with a route's classifier block (None: the shipped ``default`` model)."""
    config = config or Classifier()
    classifier = route_classifier(config, policies_dir)
    values = tuple(s.value if s.judgeable else None for s in map(classifier.score, chats))
    live = config.live
    window = CalibrationWindow(live.window_decisions, live.window_s, live.prior_weight) if live else CalibrationWindow()
    sketch = ScoreSketch(classifier.calibration, window)
    for value in values:
        if value is not None:
            sketch.record(value, False)  # the arm does not move the cut
    return Scores(config.model, values, config.low_confidence,
                  {share: sketch.cut(share).threshold for share in shares}, config.strong_share)


def assignment(scores: Scores, share: float) -> list[str]:
    """The arm each example goes to at ``share``: the top-scored share to the prompted arm, the unjudged ones to
    the route's low-confidence arm."""
    judged = sorted((i for i, v in enumerate(scores.values) if v is not None),
                    key=lambda i: (-(scores.values[i] or 0.0), i))
    strong = set(judged[:round(share * len(judged))])
    if scores.low_confidence == "prompted":
        strong.update(i for i, v in enumerate(scores.values) if v is None)
    return ["prompted" if i in strong else "fine_tuned" for i in range(len(scores.values))]


def cost_quality_curve(scores: Scores, quality: Mapping[str, Sequence[float]],
                       cost: Mapping[str, Sequence[float]], shares: Sequence[float]) -> list[CurvePoint]:
    """One point per strong share; ``quality``/``cost`` hold each arm's per-example values, in example order."""
    points = []
    for share in shares:
        arms = assignment(scores, share)
        n = len(arms)
        points.append(CurvePoint(
            strong_share=share, threshold=scores.thresholds[share], prompted_examples=arms.count("prompted"),
            accuracy=sum(quality[arm][i] for i, arm in enumerate(arms)) / n,
            cost_per_query_usd=sum(cost[arm][i] for i, arm in enumerate(arms)) / n))
    return points
