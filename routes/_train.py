"""Fit a LinearClassifier from labelled examples, and calibrate its score quantiles.

Target. For each prompt the label is (1 + strong - weak) / 2, a soft label in [0, 1]: 1 when only
the strong arm got it right, 0 when only the weak one did, 0.5 when they tie. Log loss on soft
labels is a proper scoring rule, so the fitted score estimates (1 + expected quality gain) / 2 and
ranks prompts by what the strong arm is expected to add -- exactly what PGR rewards. (Labelling
"weak arm failed" instead also rewards prompts that both arms fail, and scored clearly worse in
cross-validation on the train split.)

Mixing datasets. Each row is weighted by 1 / sqrt(size of its dataset), a middle way between
pooling (MMLU's 11k rows would drown GSM8K's 1k) and equal shares (MT-Bench's 56 rows would be
overfitted).

Choices made by 5-fold cross-validation on the train split only (mean fold APGR, MMLU / GSM8K):
soft gain label 0.677 / 0.682 vs "weak failed" 0.588 / 0.592; L2 2e-3; MT-Bench included (neutral
on the two benchmarks, and it is the only open-ended chat the model sees).

Calibration. Quantiles are taken from out-of-fold scores: scores the model gave to training
prompts it had not seen, which is how it will see live traffic. In-sample scores would be
over-confident and put the thresholds in the wrong place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._data import Example
from ._features import Features, extract
from ._linear import LinearClassifier
from ._logistic import SparseRows, fit
from ._messages import conversation, prompt_messages

CALIBRATION_LEVELS = 1001


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults were chosen by 5-fold cross-validation on the train split."""

    bits: int = 18
    l2: float = 2e-3
    max_iter: int = 300
    calibration_folds: int = 5
    seed: int = 0


@dataclass(frozen=True, slots=True)
class _Design:
    dense: NDArray[np.float64]
    sparse: SparseRows
    target: NDArray[np.float64]
    weight: NDArray[np.float64]

    def rows(self, index: NDArray[np.int64]) -> _Design:
        starts, ends = self.sparse.indptr[index], self.sparse.indptr[index + 1]
        lengths = ends - starts
        take = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(
            lengths.sum()
        )
        sparse = SparseRows(
            indptr=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
            indices=self.sparse.indices[take],
            values=self.sparse.values[take],
            n_cols=self.sparse.n_cols,
        )
        return _Design(self.dense[index], sparse, self.target[index], self.weight[index])


def soft_target(example: Example) -> float:
    """(1 + strong - weak) / 2; see the module docstring."""
    return 0.5 * (1.0 + example.strong - example.weak)


def train(datasets: Sequence[Sequence[Example]], config: TrainConfig | None = None) -> LinearClassifier:
    """Fit on all rows of all datasets, then calibrate on out-of-fold scores."""
    config = config or TrainConfig()
    design = _design(datasets, config.bits)
    if design.target.size < config.calibration_folds * 2:
        raise ValueError(
            f"need at least {config.calibration_folds * 2} examples to train, got {design.target.size}"
        )
    model = _fit(design, config, calibration=np.zeros(CALIBRATION_LEVELS))
    fold = np.random.default_rng(config.seed).permutation(design.target.size) % config.calibration_folds
    held_out = np.empty(design.target.size)
    for k in range(config.calibration_folds):
        inside, outside = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        part = _fit(design.rows(inside), config, calibration=np.zeros(CALIBRATION_LEVELS))
        held_out[outside] = _raw_scores(part, design.rows(outside))
    calibration = np.quantile(held_out, np.linspace(0.0, 1.0, CALIBRATION_LEVELS))
    return LinearClassifier(
        bits=model.bits,
        dense_weights=model.dense_weights,
        dense_means=model.dense_means,
        hashed_weights=model.hashed_weights,
        bias=model.bias,
        calibration=calibration,
    )


def _design(datasets: Sequence[Sequence[Example]], bits: int) -> _Design:
    features: list[Features] = []
    targets: list[float] = []
    weights: list[float] = []
    for rows in datasets:
        for example in rows:
            features.append(extract(conversation(prompt_messages(example.prompt)), bits))
            targets.append(soft_target(example))
            weights.append(1.0 / np.sqrt(len(rows)))
    if not features:
        raise ValueError("no training examples")
    lengths = np.array([f.indices.size for f in features])
    sparse = SparseRows(
        indptr=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        indices=np.concatenate([f.indices for f in features]),
        values=np.concatenate([f.values for f in features]),
        n_cols=1 << bits,
    )
    return _Design(np.array([f.dense for f in features]), sparse, np.array(targets), np.array(weights))


def _fit(design: _Design, config: TrainConfig, calibration: NDArray[np.float64]) -> LinearClassifier:
    """Standardise the dense columns, fit, and fold the standardisation back into the weights."""
    means = design.dense.mean(axis=0)
    scales = design.dense.std(axis=0)
    scales[scales == 0] = 1.0
    w_dense, w_sparse, bias = fit(
        (design.dense - means) / scales,
        design.sparse,
        design.target,
        design.weight,
        config.l2,
        config.max_iter,
    )
    dense_weights = w_dense / scales
    return LinearClassifier(
        bits=config.bits,
        dense_weights=dense_weights,
        dense_means=means,
        hashed_weights=w_sparse.astype(np.float32),
        bias=bias - float(dense_weights @ means),
        calibration=calibration,
    )


def _raw_scores(model: LinearClassifier, design: _Design) -> NDArray[np.float64]:
    """Probabilities exactly as `LinearClassifier.score` computes them, but for many rows at once."""
    logits = (
        design.dense @ model.dense_weights
        + design.sparse.dot(model.hashed_weights.astype(np.float64))
        + model.bias
    )
    return 0.5 * (1.0 + np.tanh(0.5 * logits))
