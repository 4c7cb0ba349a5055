"""Fit the two serving models from labelled examples, and calibrate their score quantiles.

`train` fits the LinearClassifier; `train_static` stacks it with a static MiniLM topic prior (the
`fast` StaticClassifier, `routes/_static.py`); `train_embedding` stacks it with a MiniLM topic
prior (the `default` EmbeddingClassifier, `routes/_embedding.py`); `train_pair` builds both on one
linear fit. The shipped pair is rebuilt by one command, `hybrid-gateway router train --shipped`,
and evaluated by cross-validation on the train split with `hybrid-gateway router cv`.

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
on the two benchmarks, and it is the only open-ended chat the model sees). Later rounds (pooled
out-of-fold APGR, MMLU / GSM8K / MMLU-only model on GSM8K; `router cv` seeds 0 and 1): the
word-problem cues of `_features._word_problem` 0.664, 0.666 / 0.669, 0.651 / 0.584 against
0.668, 0.670 / 0.649, 0.644 / 0.587 without (same folds);
tried and rejected as no better than noise: GSM8K weighted x2 or x0.5, dense features
re-weighted per prompt format, a ridge "reasoning steps" target (length of GPT-4's solution)
stacked in, 384 MiniLM dimensions as extra linear features, a small MLP on embeddings.

Calibration. Quantiles are taken from out-of-fold scores: scores the model gave to training
prompts it had not seen, which is how it will see live traffic. In-sample scores would be
over-confident and put the thresholds in the wrong place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_array

from .._embedding import Embedder, EmbeddingClassifier, topic_encoder, topic_logits, topic_text
from .._features import Features, extract
from .._linear import LinearClassifier
from .._messages import conversation, prompt_messages
from .._static import StaticClassifier, as_static, build_encoder
from .config import TrainConfig
from .data import Example
from .logistic import fit
from .onnx import word_embeddings

CALIBRATION_LEVELS = 1001


@dataclass(frozen=True, slots=True)
class Design:
    """Training rows: dense cues, hashed n-grams (CSR), soft targets, row weights, judged texts."""

    dense: NDArray[np.float64]
    sparse: csr_array
    target: NDArray[np.float64]
    weight: NDArray[np.float64]
    texts: tuple[str, ...]

    def rows(self, index: NDArray[np.int64]) -> Design:
        texts = tuple(self.texts[i] for i in index)
        return Design(self.dense[index], self.sparse[index], self.target[index], self.weight[index], texts)


def soft_target(example: Example) -> float:
    """(1 + strong - weak) / 2; see the module docstring."""
    return 0.5 * (1.0 + example.strong - example.weak)


def train(datasets: Sequence[Sequence[Example]], config: TrainConfig | None = None) -> LinearClassifier:
    """Fit on all rows of all datasets, then calibrate on out-of-fold scores."""
    config = config or TrainConfig()
    model, _, _ = _linear_with_held_out(design(datasets, config.bits), config)
    return model


def train_embedding(
    datasets: Sequence[Sequence[Example]],
    config: TrainConfig | None = None,
    embedder: Embedder | None = None,
    embeddings: NDArray[np.float32] | None = None,
) -> EmbeddingClassifier:
    """The linear model plus a topic prior, stacked on out-of-fold logits of both.

    `embeddings` (rows in dataset order, from `embed_rows`) saves re-embedding when the caller
    trains many times on the same prompts, as cross-validation does.
    """
    config = config or TrainConfig()
    rows = design(datasets, config.bits)
    linear = _linear_with_held_out(rows, config)
    if embeddings is None:
        embeddings = embed_rows(rows.texts, embedder)
    return _stack(rows, linear, embeddings, config, embedder)


def train_static(
    datasets: Sequence[Sequence[Example]],
    config: TrainConfig | None = None,
    word_matrix: NDArray[np.float32] | None = None,
) -> StaticClassifier:
    """The linear model stacked with the static topic prior: the `fast` model (`routes/_static.py`)."""
    config = config or TrainConfig()
    rows = design(datasets, config.bits)
    return _stack_static(rows, _linear_with_held_out(rows, config), config, word_matrix)


def train_pair(
    datasets: Sequence[Sequence[Example]],
    config: TrainConfig | None = None,
    embedder: Embedder | None = None,
    embeddings: NDArray[np.float32] | None = None,
    word_matrix: NDArray[np.float32] | None = None,
) -> tuple[StaticClassifier, EmbeddingClassifier]:
    """Both shipped models (`fast`, `default`) on one shared linear fit, as `--shipped` and CV use."""
    config = config or TrainConfig()
    rows = design(datasets, config.bits)
    linear = _linear_with_held_out(rows, config)
    if embeddings is None:
        embeddings = embed_rows(rows.texts, embedder)
    fast = _stack_static(rows, linear, config, word_matrix)
    return fast, _stack(rows, linear, embeddings, config, embedder)


def _stack_static(
    rows: Design,
    linear: tuple[LinearClassifier, NDArray[np.float64], NDArray[np.int64]],
    config: TrainConfig,
    word_matrix: NDArray[np.float32] | None,
) -> StaticClassifier:
    encoder = build_encoder(word_embeddings() if word_matrix is None else word_matrix, rows.texts)
    model = _stack(rows, linear, encoder.embed([topic_text(t) for t in rows.texts]), config, encoder)
    return as_static(model, encoder)


def _stack(
    rows: Design,
    linear: tuple[LinearClassifier, NDArray[np.float64], NDArray[np.int64]],
    embeddings: NDArray[np.float32],
    config: TrainConfig,
    embedder: Embedder | None,
) -> EmbeddingClassifier:
    """Fit the topic prior on `embeddings` and stack it with the linear model's held-out logits."""
    linear_model, linear_held_out, fold = linear
    topic_held_out = np.empty(rows.target.size)
    for k in range(config.calibration_folds):
        inside, outside = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        centroids, values = _fit_topics(embeddings[inside], rows.target[inside], config)
        topic_held_out[outside] = _topic_logits(embeddings[outside], centroids, values, config)
    centroids, values = _fit_topics(embeddings, rows.target, config)
    stacked = np.column_stack((linear_held_out, topic_held_out))
    weights, _, bias = fit(stacked, _no_columns(stacked.shape[0]), rows.target, rows.weight, config.stack_l2)
    model = EmbeddingClassifier(
        linear=linear_model,
        centroids=centroids,
        centroid_values=values,
        top=min(config.topic_top, values.size),
        temperature=config.topic_temperature,
        weights=weights,
        bias=bias,
        topic_mean=float(topic_held_out.mean()),
        calibration=np.zeros(CALIBRATION_LEVELS),
        embedder=embedder,
    )
    held_out = model.combine(linear_held_out, topic_held_out)
    return replace(model, calibration=np.quantile(held_out, np.linspace(0.0, 1.0, CALIBRATION_LEVELS)))


def embed_rows(texts: Sequence[str], embedder: Embedder | None = None) -> NDArray[np.float32]:
    """Topic embeddings of judged turns, exactly as the serving model computes them."""
    encoder = embedder if embedder is not None else topic_encoder()
    return encoder.embed([topic_text(text) for text in texts])


def design(datasets: Sequence[Sequence[Example]], bits: int) -> Design:
    """Features, soft targets and row weights of all rows, datasets in order."""
    features: list[Features] = []
    targets: list[float] = []
    weights: list[float] = []
    texts: list[str] = []
    for rows in datasets:
        for example in rows:
            conv = conversation(prompt_messages(example.prompt))
            features.append(extract(conv, bits))
            texts.append(conv.text)
            targets.append(soft_target(example))
            weights.append(1.0 / np.sqrt(len(rows)))
    if not features:
        raise ValueError("no training examples")
    indptr = np.concatenate(([0], np.cumsum([f.indices.size for f in features])))
    sparse = csr_array(
        (np.concatenate([f.values for f in features]), np.concatenate([f.indices for f in features]), indptr),
        shape=(len(features), 1 << bits),
    )
    return Design(
        np.array([f.dense for f in features]), sparse, np.array(targets), np.array(weights), tuple(texts)
    )


def linear_logits(model: LinearClassifier, rows: Design) -> NDArray[np.float64]:
    """Log-odds exactly as `LinearClassifier.logit` computes them, but for many rows at once."""
    hashed: NDArray[np.float64] = rows.sparse @ model.hashed_weights.astype(np.float64)
    return rows.dense @ model.dense_weights + hashed + model.bias


def _linear_with_held_out(
    rows: Design, config: TrainConfig
) -> tuple[LinearClassifier, NDArray[np.float64], NDArray[np.int64]]:
    """The model fitted on all rows, its out-of-fold logits, and the fold of each row."""
    if rows.target.size < config.calibration_folds * 2:
        raise ValueError(
            f"need at least {config.calibration_folds * 2} examples to train, got {rows.target.size}"
        )
    model = _fit(rows, config, calibration=np.zeros(CALIBRATION_LEVELS))
    fold = np.random.default_rng(config.seed).permutation(rows.target.size) % config.calibration_folds
    held_out = np.empty(rows.target.size)
    for k in range(config.calibration_folds):
        inside, outside = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        part = _fit(rows.rows(inside), config, calibration=np.zeros(CALIBRATION_LEVELS))
        held_out[outside] = linear_logits(part, rows.rows(outside))
    calibration = np.quantile(0.5 * (1.0 + np.tanh(0.5 * held_out)), np.linspace(0.0, 1.0, CALIBRATION_LEVELS))
    return replace(model, calibration=calibration), held_out, fold


def _fit(rows: Design, config: TrainConfig, calibration: NDArray[np.float64]) -> LinearClassifier:
    """Standardise the dense columns, fit, and fold the standardisation back into the weights."""
    means = rows.dense.mean(axis=0)
    scales = rows.dense.std(axis=0)
    scales[scales == 0] = 1.0
    w_dense, w_sparse, bias = fit(
        (rows.dense - means) / scales,
        rows.sparse,
        rows.target,
        rows.weight,
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


def _fit_topics(
    embeddings: NDArray[np.float32], target: NDArray[np.float64], config: TrainConfig
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Spherical k-means centroids and each cluster's mean target, shrunk towards the global mean."""
    n_clusters = max(1, min(config.clusters, embeddings.shape[0] // 4))
    rng = np.random.default_rng(config.seed)
    centroids = embeddings[rng.choice(embeddings.shape[0], n_clusters, replace=False)].copy()
    for _ in range(config.kmeans_iter):
        assigned = np.argmax(embeddings @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assigned, embeddings)
        norms = np.linalg.norm(sums, axis=1)
        filled = norms > 0  # an empty cluster keeps its old centroid
        centroids[filled] = sums[filled] / norms[filled, None]
    assigned = np.argmax(embeddings @ centroids.T, axis=1)
    counts = np.bincount(assigned, minlength=n_clusters)
    totals = np.bincount(assigned, weights=target, minlength=n_clusters)
    values = (totals + config.topic_prior * target.mean()) / (counts + config.topic_prior)
    return centroids, values


def _topic_logits(
    embeddings: NDArray[np.float32],
    centroids: NDArray[np.float32],
    values: NDArray[np.float64],
    config: TrainConfig,
) -> NDArray[np.float64]:
    return topic_logits(
        embeddings, centroids, values, min(config.topic_top, values.size), config.topic_temperature
    )


def _no_columns(n_rows: int) -> csr_array:
    return csr_array((n_rows, 0))
