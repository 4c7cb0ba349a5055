"""Everything a report shows, computed once from the journal: per-arm figures, differences, curve, verdict.

The result is one JSON-ready dict; the terminal table, ``--json`` and the HTML
report all render that same dict, so their numbers cannot disagree. Only
examples every requested arm has answered are summarised (a ``--limit`` run
summarises what it did).

On a route with a strategy the journal's third arm, ``strategy``, is the route
as clients get it: its figures sit beside the arms', its outcomes (how often a
cascade escalated, which acceptor rejected) under ``strategy``, and it is one
of the options the verdict weighs (``options``: each with its quality against
prompting, a paired bootstrap interval like the arms' difference, its cost per
query and its break-even).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from gateway.economics.breakeven import Investment
from gateway.evaluation.bootstrap import DEFAULT_SAMPLES, Interval, paired_difference
from gateway.evaluation.curve import Scores, assignment, cost_quality_curve
from gateway.evaluation.dataset import Example, key
from gateway.evaluation.recommendation import Measured, Option, recommend
from gateway.evaluation.scoring import arm_summary, score
from gateway.evaluation.vocabulary import DEFAULT_TOLERANCE, QUALITY, STRATEGY
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
    """``tuned`` (the fine-tuned arm, or the strategy) minus prompted, with paired bootstrap intervals, for every
    metric both have."""
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


def _strategy_view(name: str, rows: Sequence[Row], prompted: Sequence[Row] | None,
                   judgement: Judgement) -> dict[str, Any]:
    """What the route's strategy did on this set: outcomes (over the answers it judged), who answered, what it paid."""
    ok = [r for r in rows if r["ok"]]
    outcomes = Counter(r["outcome"] for r in ok if r.get("outcome"))
    engaged = sum(outcomes.values())
    differences = _differences(prompted, rows, judgement) if prompted else {}
    return {"name": name, "engaged": engaged, "outcomes": dict(sorted(outcomes.items())),
            "escalation_rate": outcomes["escalated"] / engaged if engaged and name == "cascade" else None,
            "rejected_by": dict(sorted(Counter(r["rejected_by"] for r in ok if r.get("rejected_by")).items())),
            "answered_by": dict(sorted(Counter(r["served_arm"] for r in ok).items())),
            "paid_calls": sum(len(r["calls"]) or 1 for r in ok),
            "differences": {metric: interval.as_json() for metric, interval in differences.items()}}


def summarise(examples: Sequence[Example], records: Mapping[str, Row], arms: Sequence[str], *,
              route: str, dataset: str, set_size: int, judgement: Judgement, schema: Mapping[str, Any] | None,
              scores: Scores | None, shares: Sequence[float],
              strategy: str = "route") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report's dict, and every scored journal line (for ``scores.jsonl``).

    ``examples`` are the ones this run covers (``--limit``); ``set_size`` is how many the file holds;
    ``arms`` include :data:`STRATEGY` when the route's ``strategy`` was replayed too.
    """
    done = [e for e in examples if all(key(e.index, arm) in records for arm in arms)]
    expected = [e.expected for e in done]
    scored = {arm: score([records[key(e.index, arm)] for e in done], expected, schema) for arm in arms}
    summary: dict[str, Any] = {
        "route": route, "dataset": dataset, "examples": len(done), "examples_in_set": set_size,
        "metric": judgement.metric, "arms": {arm: arm_summary(scored[arm]) for arm in arms},
        "differences": None, "strategy": None, "curve": None, "classifier": None, "recommendation": None,
        "options": None, "notes": [],
        "bootstrap": {"samples": judgement.samples, "seed": judgement.seed, "confidence": 0.95},
    }
    if done and STRATEGY in scored:
        summary["strategy"] = _strategy_view(strategy, scored[STRATEGY], scored.get(PROMPTED), judgement)
    if done and PROMPTED in scored and FINE_TUNED in scored:
        differences = _differences(scored[PROMPTED], scored[FINE_TUNED], judgement)
        summary["differences"] = {name: interval.as_json() for name, interval in differences.items()}
        if scores is not None:
            summary.update(_classifier_view(done, scored, scores, shares, judgement, differences, strategy))
    return summary, [row for arm in arms for row in scored[arm]]


def _per_example(option: Option, quality: Mapping[str, Sequence[float]], scores: Scores) -> list[float]:
    """The primary metric of each example as ``option`` would have served it."""
    candidate = option.candidate
    if isinstance(candidate, Measured):
        return list(quality[STRATEGY])
    return [quality[arm][i] for i, arm in enumerate(assignment(scores, candidate.strong_share))]


def _option_rows(options: Sequence[Option], quality: Mapping[str, Sequence[float]], scores: Scores,
                 judgement: Judgement) -> list[dict[str, Any]]:
    """Each option the verdict weighed, with its quality against prompting's on the same examples (paired)."""
    rows = []
    for option in options:
        gap = None if option.kind == "prompting" else paired_difference(
            quality[PROMPTED], _per_example(option, quality, scores), samples=judgement.samples,
            seed=judgement.seed).as_json()
        rows.append({**option.as_json(), "vs_prompting": gap})
    return rows


def _classifier_view(done: Sequence[Example], scored: Mapping[str, Sequence[Row]], scores: Scores,
                     shares: Sequence[float], judgement: Judgement,
                     differences: Mapping[str, Interval], strategy: str) -> dict[str, Any]:
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
        measured = None if STRATEGY not in scored else Measured(
            strategy, sum(quality[STRATEGY]) / len(done), sum(cost[STRATEGY]) / len(done))
        recommendation = recommend(
            curve, differences[metric], metric=metric, investment=judgement.investment, strategy=measured,
            required_accuracy=judgement.required_accuracy, tolerance=judgement.tolerance,
            style_task=judgement.style_task)
        view["recommendation"] = recommendation.as_json()
        view["options"] = _option_rows(recommendation.options, quality, subset, judgement)
    return view
