"""Everything a report shows, computed once from the journal: per-arm figures, differences, curve, verdict.

The result is one JSON-ready dict; the terminal table, ``--json`` and the HTML
report all render that same dict, so their numbers cannot disagree. Only
examples every requested arm has answered are summarised (a ``--limit`` run
summarises what it did).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from gateway.economics.breakeven import Investment
from gateway.evaluation.bootstrap import DEFAULT_SAMPLES, Interval, paired_difference
from gateway.evaluation.curve import Scores, cost_quality_curve
from gateway.evaluation.dataset import Example, key
from gateway.evaluation.recommendation import recommend
from gateway.evaluation.scoring import arm_summary, score
from gateway.evaluation.vocabulary import DEFAULT_TOLERANCE, QUALITY
from policies import ARM_NAMES

PROMPTED, FINE_TUNED = ARM_NAMES


@dataclass(frozen=True)
class Judgement:
    """How to read the numbers: the primary metric, the requirement, the investment."""

    metric: str = "f1"
    required_accuracy: float | None = None
    tolerance: float = DEFAULT_TOLERANCE
    style_task: bool = False
    investment: Investment | None = None
    seed: int = 0
    samples: int = DEFAULT_SAMPLES


Row = Mapping[str, Any]
_Paired = tuple[str, Callable[[Row], float], float | None, bool]
# name, value of one scored row, percentile (None: mean), over successful pairs only
_DIFFERENCES: tuple[_Paired, ...] = (
    *((name, itemgetter(name), None, False) for name in QUALITY),
    ("error_rate", lambda r: 0.0 if r["ok"] else 1.0, None, False),
    ("latency_p50_s", lambda r: r["latency_s"], 50, True),
    ("latency_p95_s", lambda r: r["latency_s"], 95, True),
    ("ttft_p50_s", lambda r: r["ttft_s"], 50, True),
    ("ttft_p95_s", lambda r: r["ttft_s"], 95, True),
    ("prompt_tokens_mean", lambda r: r["prompt_tokens"], None, True),
    ("completion_tokens_mean", lambda r: r["completion_tokens"], None, True),
    ("cost_per_query_usd", lambda r: r["cost_usd"], None, True),
)


def _differences(prompted: Sequence[Row], tuned: Sequence[Row], judgement: Judgement) -> dict[str, Interval]:
    """Fine-tuned minus prompted, with paired bootstrap intervals, for every metric both arms have."""
    out: dict[str, Interval] = {}
    for name, value, percentile, successful in _DIFFERENCES:
        pairs = [(value(a), value(b)) for a, b in zip(prompted, tuned, strict=True)
                 if not successful or (a["ok"] and b["ok"])]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if pairs:
            first, second = zip(*pairs, strict=True)
            out[name] = paired_difference(first, second, percentile=percentile, samples=judgement.samples,
                                          seed=judgement.seed)
    return out


def summarise(examples: Sequence[Example], records: Mapping[str, Row], arms: Sequence[str], *,
              route: str, dataset: str, set_size: int, judgement: Judgement, schema: Mapping[str, Any] | None,
              scores: Scores | None, shares: Sequence[float]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report's dict, and every scored journal line (for ``scores.jsonl``).

    ``examples`` are the ones this run covers (``--limit``); ``set_size`` is how many the file holds.
    """
    done = [e for e in examples if all(key(e.index, arm) in records for arm in arms)]
    expected = [e.expected for e in done]
    scored = {arm: score([records[key(e.index, arm)] for e in done], expected, schema) for arm in arms}
    summary: dict[str, Any] = {
        "route": route, "dataset": dataset, "examples": len(done), "examples_in_set": set_size,
        "metric": judgement.metric, "arms": {arm: arm_summary(scored[arm]) for arm in arms},
        "differences": None, "curve": None, "classifier": None, "recommendation": None, "notes": [],
        "bootstrap": {"samples": judgement.samples, "seed": judgement.seed, "confidence": 0.95},
    }
    if done and PROMPTED in scored and FINE_TUNED in scored:
        differences = _differences(scored[PROMPTED], scored[FINE_TUNED], judgement)
        summary["differences"] = {name: interval.as_json() for name, interval in differences.items()}
        if scores is not None:
            summary.update(_classifier_view(done, scored, scores, shares, judgement, differences))
    return summary, [row for arm in arms for row in scored[arm]]


def _classifier_view(done: Sequence[Example], scored: Mapping[str, Sequence[Row]], scores: Scores,
                     shares: Sequence[float], judgement: Judgement,
                     differences: Mapping[str, Interval]) -> dict[str, Any]:
    """The curve over the summarised examples, and the verdict when there is a volume to break even at."""
    subset = dataclasses.replace(scores, values=tuple(scores.values[e.index] for e in done))
    metric = judgement.metric
    quality = {arm: [r[metric] or 0.0 for r in rows] for arm, rows in scored.items()}
    cost = {arm: [(r["cost_usd"] or 0.0) if r["ok"] else 0.0 for r in rows] for arm, rows in scored.items()}
    curve = cost_quality_curve(subset, quality, cost, shares)
    view: dict[str, Any] = {"curve": [p.as_json() for p in curve],
                            "classifier": {"model": scores.model, "low_confidence": scores.low_confidence,
                                           "strong_share": scores.strong_share, "scores": list(subset.values)}}
    if judgement.investment is None:
        view["notes"] = ["no recommendation: give --monthly-volume or an economics block on the route"]
    elif metric in differences:
        view["recommendation"] = recommend(
            curve, differences[metric], metric=metric, investment=judgement.investment,
            required_accuracy=judgement.required_accuracy, tolerance=judgement.tolerance,
            style_task=judgement.style_task).as_json()
    return view
