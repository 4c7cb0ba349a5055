"""Cross-validation on the train split: how model choices are made without touching the test split.

Each dataset's train rows are dealt into `folds` parts (seeded, per dataset, so every part holds
the same mix). For each part, both shipped models -- one linear model, each topic prior (static
for `fast`, MiniLM for `default`) and each stack, with their own inner out-of-fold calibration --
are trained on the other parts with `train_pair`, and the held-out part is scored by the linear
model alone (`linear`, the `fast` model before the static prior), `fast` and `default`. Figures
are RouteLLM's metrics on the pooled out-of-fold scores of each dataset, beside prompt length.
The cross-domain figure trains on MMLU only and scores all GSM8K train rows, as the acceptance
test does on the test split.

    hybrid-gateway router cv            # ~8 minutes on 2 cores; prints the table below
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from .._embedding import Embedder, EmbeddingClassifier, topic_text
from .._models import RoutingModel
from .._static import StaticClassifier
from .config import TrainConfig
from .data import Example
from .evaluate import CALIBRATION_SHARE
from .quality import apgr, cpt, routing_curve
from .train import Design, design, embed_rows, linear_logits, train_pair

MODELS = ("linear", "fast", "default")
CROSS_TRAIN, CROSS_TEST = "mmlu", "gsm8k"


@dataclass(frozen=True, slots=True)
class CvFigures:
    """One router on one dataset's pooled out-of-fold scores (CPT as a strong-call share, 0..1)."""

    router: str
    dataset: str
    n: int
    apgr: float
    cpt50: float


@dataclass(frozen=True, slots=True)
class CvReport:
    folds: int
    seed: int
    figures: tuple[CvFigures, ...]
    realised_share: dict[str, float]  # per model: pooled share sent strong at the 30% threshold
    cross_domain: tuple[CvFigures, ...]  # trained on MMLU train only, scored on GSM8K train


def cross_validate(
    datasets: Mapping[str, Sequence[Example]],
    config: TrainConfig | None = None,
    folds: int = 5,
    seed: int = 0,
    embedder: Embedder | None = None,
) -> CvReport:
    """Out-of-fold figures of both models on every dataset; see the module docstring."""
    config = config or TrainConfig()
    names = list(datasets)
    examples = [e for name in names for e in datasets[name]]
    owner = np.concatenate([np.full(len(datasets[name]), i) for i, name in enumerate(names)])
    rows = design([datasets[name] for name in names], config.bits)
    embeddings = embed_rows(rows.texts, embedder)
    rng = np.random.default_rng(seed)
    fold = np.empty(owner.size, dtype=np.int64)
    for i in range(len(names)):
        members = np.flatnonzero(owner == i)
        fold[members] = rng.permutation(members.size) % folds

    scores = {model: np.empty(owner.size) for model in MODELS}
    strong = {model: np.empty(owner.size, dtype=bool) for model in MODELS}
    for k in range(folds):
        inside, outside = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        train_sets = [[examples[j] for j in inside if owner[j] == i] for i in range(len(names))]
        pair = train_pair(train_sets, config, embedder, embeddings[inside])
        for name, value in _score_all(pair, rows.rows(outside), embeddings[outside]).items():
            scores[name][outside] = value
            strong[name][outside] = value >= _threshold(pair, name)

    figures = []
    for i, name in enumerate(names):
        members = np.flatnonzero(owner == i)
        held = [examples[j] for j in members]
        lengths = np.array([float(len(e.prompt)) for e in held])
        for router, values in (*((m, scores[m][members]) for m in MODELS), ("length", lengths)):
            figures.append(_figures(router, name, values, held))
    return CvReport(
        folds=folds,
        seed=seed,
        figures=tuple(figures),
        realised_share={m: float(strong[m].mean()) for m in MODELS},
        cross_domain=_cross_domain(datasets, config, embedder, embeddings, names, owner),
    )


def _cross_domain(
    datasets: Mapping[str, Sequence[Example]],
    config: TrainConfig,
    embedder: Embedder | None,
    embeddings: NDArray[np.float32],
    names: list[str],
    owner: NDArray[np.int64],
) -> tuple[CvFigures, ...]:
    if CROSS_TRAIN not in datasets or CROSS_TEST not in datasets:
        return ()
    source = np.flatnonzero(owner == names.index(CROSS_TRAIN))
    target = np.flatnonzero(owner == names.index(CROSS_TEST))
    pair = train_pair([datasets[CROSS_TRAIN]], config, embedder, embeddings[source])
    held = list(datasets[CROSS_TEST])
    rows = design([held], config.bits)
    return tuple(
        _figures(f"{name} (mmlu-only)", CROSS_TEST, value, held)
        for name, value in _score_all(pair, rows, embeddings[target]).items()
    )


def _score_all(
    pair: tuple[StaticClassifier, EmbeddingClassifier], rows: Design, embeddings: NDArray[np.float32]
) -> dict[str, NDArray[np.float64]]:
    """Scores of the shared linear model alone, `fast` and `default`, exactly as served."""
    fast, default = pair
    logits = linear_logits(default.linear, rows)
    static = fast.embed_texts([topic_text(text) for text in rows.texts])
    return {
        "linear": 0.5 * (1.0 + np.tanh(0.5 * logits)),
        "fast": fast.combine(logits, fast.topic_logits(static)),
        "default": default.combine(logits, default.topic_logits(embeddings)),
    }


def _threshold(pair: tuple[StaticClassifier, EmbeddingClassifier], name: str) -> float:
    fast, default = pair
    models: dict[str, RoutingModel] = {"linear": default.linear, "fast": fast, "default": default}
    return models[name].threshold_for_share(CALIBRATION_SHARE)


def _figures(router: str, dataset: str, scores: NDArray[np.float64], held: list[Example]) -> CvFigures:
    curve = routing_curve(scores, [e.weak for e in held], [e.strong for e in held])
    return CvFigures(router, dataset, len(held), apgr(curve), cpt(curve, 0.5))


def as_json(report: CvReport) -> dict[str, object]:
    return asdict(report)


def format_table(report: CvReport) -> str:
    lines = [
        f"{report.folds}-fold cross-validation on the train split (seed {report.seed}), pooled out-of-fold scores",
        f"{'dataset':<10}{'router':<22}{'n':>6}{'APGR':>8}{'CPT50%':>9}",
    ]
    for f in (*report.figures, *report.cross_domain):
        lines.append(f"{f.dataset:<10}{f.router:<22}{f.n:>6}{f.apgr:>8.3f}{f.cpt50 * 100:>8.1f}%")
    for model, share in report.realised_share.items():
        lines.append(f"pooled    {model:<22}strong_share target {CALIBRATION_SHARE:.0%} -> realised {share:.1%}")
    return "\n".join(lines)
