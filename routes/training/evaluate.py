"""Score a labelled dataset with a classifier and two baselines, in RouteLLM's metrics.

The baselines say whether the classifier earns its keep: `random` (what routing without a
signal gets, averaged over seeds) and `length` (prompt length in characters, the signal every
router should beat). ROC AUC treats "strong arm strictly better than weak" as the positive class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from .._messages import prompt_messages
from .._models import RoutingModel
from .data import Example
from .quality import apgr, cpt, roc_auc, routing_curve

RANDOM_SEEDS = 10
CALIBRATION_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class RouterFigures:
    """One router's metrics on one dataset; CPT values are strong-call shares in [0, 1]."""

    router: str
    apgr: float
    cpt50: float
    cpt80: float
    roc_auc: float


@dataclass(frozen=True, slots=True)
class Report:
    dataset: str
    n: int
    routers: tuple[RouterFigures, ...]
    target_share: float
    realised_share: float


def figures(router: str, scores: NDArray[np.float64], examples: Sequence[Example]) -> RouterFigures:
    """APGR, CPT(50%), CPT(80%) and ROC AUC of one score vector."""
    weak = np.array([e.weak for e in examples])
    strong = np.array([e.strong for e in examples])
    curve = routing_curve(scores, weak, strong)
    return RouterFigures(
        router, apgr(curve), cpt(curve, 0.5), cpt(curve, 0.8), roc_auc(scores, strong > weak)
    )


def evaluate(classifier: RoutingModel, examples: Sequence[Example], dataset: str) -> Report:
    """The classifier beside the random and length baselines, plus share calibration at 30%."""
    scores = classifier.score_batch([prompt_messages(e.prompt) for e in examples])
    lengths = np.array([float(len(e.prompt)) for e in examples])
    randoms = [
        figures("random", np.random.default_rng(seed).random(len(examples)), examples)
        for seed in range(RANDOM_SEEDS)
    ]
    random_mean = RouterFigures(
        "random",
        *(
            float(np.mean([getattr(r, field) for r in randoms]))
            for field in ("apgr", "cpt50", "cpt80", "roc_auc")
        ),
    )
    threshold = classifier.threshold_for_share(CALIBRATION_SHARE)
    return Report(
        dataset=dataset,
        n=len(examples),
        routers=(figures("classifier", scores, examples), figures("length", lengths, examples), random_mean),
        target_share=CALIBRATION_SHARE,
        realised_share=float(np.mean(scores >= threshold)),
    )


def pooled_share(reports: Sequence[Report]) -> float:
    """Realised strong share over all evaluated prompts together -- traffic like the training mix.

    The calibration quantiles describe the training mix, so this, not any one dataset's share,
    is what `threshold_for_share` promises to hit.
    """
    return sum(r.realised_share * r.n for r in reports) / sum(r.n for r in reports)


def as_json(reports: Sequence[Report]) -> dict[str, object]:
    return {
        "reports": [asdict(r) for r in reports],
        "strong_share": {"target": CALIBRATION_SHARE, "realised_pooled": pooled_share(reports)},
    }


def format_table(reports: Sequence[Report]) -> str:
    """A plain-text table: one line per dataset and router, then the pooled share calibration."""
    lines = [f"{'dataset':<12}{'router':<12}{'n':>6}{'APGR':>8}{'CPT50%':>9}{'CPT80%':>9}{'AUC':>7}"]
    for report in reports:
        for r in report.routers:
            lines.append(
                f"{report.dataset:<12}{r.router:<12}{report.n:>6}{r.apgr:>8.3f}"
                f"{r.cpt50 * 100:>8.1f}%{r.cpt80 * 100:>8.1f}%{r.roc_auc:>7.3f}"
            )
        lines.append(
            f"{report.dataset:<12}strong_share target {report.target_share:.0%} -> realised {report.realised_share:.1%}"
        )
    lines.append(
        f"{'pooled':<12}strong_share target {CALIBRATION_SHARE:.0%} -> realised {pooled_share(reports):.1%}"
    )
    return "\n".join(lines)
